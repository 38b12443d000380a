package statsquery

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/veil-analytics/veil/internal/httpx"
)

// The body is decoded value by value (json.RawMessage) rather than into a
// struct so that every error names its exact JSON path ("filters[0][2][3]"),
// keys match exactly (encoding/json matches struct fields case-insensitively)
// and duplicate keys are refused instead of the last one silently winning.

// maxEcho caps how much of a client's string an error message quotes.
const maxEcho = 64

// member is one key of a JSON object, in document order.
type member struct {
	key string
	val json.RawMessage
}

// kind returns the first byte of a JSON value: '{', '[', '"', 't', 'f', 'n'
// or a digit/'-' for numbers; 0 when raw is empty.
func kind(raw json.RawMessage) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

func kindName(raw json.RawMessage) string {
	switch kind(raw) {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case 0:
		return "nothing"
	default:
		return "a number"
	}
}

func typeErr(field, want string, raw json.RawMessage) *httpx.Error {
	return bad(reasonType, field, "must be %s, not %s", want, kindName(raw))
}

// decodeObject returns the members of the object raw, refusing duplicate keys.
func decodeObject(raw json.RawMessage, field string) ([]member, error) {
	if kind(raw) != '{' {
		return nil, typeErr(orBody(field), "an object", raw)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return nil, httpx.JSONError(err)
	}
	var out []member
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, httpx.JSONError(err)
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, httpx.JSONError(err)
		}
		if seen[key] {
			return nil, bad(reasonDupKey, capField(join(field, key)), "duplicate field")
		}
		seen[key] = true
		out = append(out, member{key, val})
	}
	return out, nil
}

func orBody(field string) string {
	if field == "" {
		return "body"
	}
	return field
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

// decodeArray returns the elements of the array raw; want describes the
// expected value for the error message.
func decodeArray(raw json.RawMessage, field, want string) ([]json.RawMessage, error) {
	if kind(raw) != '[' {
		return nil, typeErr(field, want, raw)
	}
	var out []json.RawMessage
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, httpx.JSONError(err)
	}
	return out, nil
}

func decodeString(raw json.RawMessage, field string) (string, error) {
	if kind(raw) != '"' {
		return "", typeErr(field, "a string", raw)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", httpx.JSONError(err)
	}
	return s, nil
}

func decodeBool(raw json.RawMessage, field string) (bool, error) {
	switch string(bytes.TrimSpace(raw)) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, typeErr(field, "a boolean", raw)
}

// decodeInt reads an integer in [lo, hi]; 10.0 and 1e2 are refused because a
// fractional limit is a client bug worth reporting.
func decodeInt(raw json.RawMessage, field string, lo, hi int) (int, error) {
	k := kind(raw)
	if k != '-' && (k < '0' || k > '9') {
		return 0, typeErr(field, "an integer", raw)
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64)
	if err != nil || n < int64(lo) || n > int64(hi) {
		return 0, bad(reasonInvalid, field, "must be an integer from %d to %d", lo, hi)
	}
	return int(n), nil
}

// decodeFloat reads a finite number.
func decodeFloat(raw json.RawMessage, field string) (float64, error) {
	k := kind(raw)
	if k != '-' && (k < '0' || k > '9') {
		return 0, typeErr(field, "a number", raw)
	}
	f, err := strconv.ParseFloat(string(bytes.TrimSpace(raw)), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, bad(reasonInvalid, field, "must be a finite number")
	}
	return f, nil
}

// echo quotes a client's string for an error message, cut so the result is
// at most maxEcho bytes.
func echo(s string) string {
	if len(s) <= maxEcho-2 {
		if q := strconv.Quote(s); len(q) <= maxEcho {
			return q
		}
	}
	const more = "..."
	best := `""`
	for i := 0; i < len(s) && i < maxEcho; {
		_, n := utf8.DecodeRuneInString(s[i:])
		i += n
		q := strconv.Quote(s[:i])
		if len(q)+len(more) > maxEcho {
			break
		}
		best = q
	}
	return best + more
}

// capField cuts a field path that embeds a client's key to maxEcho bytes.
func capField(f string) string {
	if len(f) <= maxEcho {
		return f
	}
	i := maxEcho - len("...")
	for i > 0 && !utf8.RuneStart(f[i]) {
		i--
	}
	return f[:i] + "..."
}
