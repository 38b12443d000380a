package collect

import (
	"errors"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/veil-analytics/veil/internal/httpx"
	"github.com/veil-analytics/veil/internal/jsonscan"
)

// fieldErr turns a reader error while decoding field into a client error:
// a syntax error spoils the whole body, a type error names the field.
func fieldErr(field string, err error) *httpx.Error {
	var se *jsonscan.SyntaxError
	if errors.As(err, &se) {
		return bad("invalid_json", "", "%s", se.Error())
	}
	var he *httpx.Error
	if errors.As(err, &he) {
		return he
	}
	msg := err.Error()
	if i := strings.Index(msg, "must be"); i >= 0 {
		msg = msg[i:]
	}
	return bad("invalid_field", field, "%s", msg)
}

// isSyntax reports whether err means the JSON itself is malformed.
func isSyntax(err error) bool {
	var he *httpx.Error
	return errors.As(err, &he) && he.Reason == "invalid_json"
}

func optString(r *jsonscan.Reader, field string) (string, error) {
	if r.Null() {
		return "", nil
	}
	s, err := r.String()
	if err != nil {
		return "", fieldErr(field, err)
	}
	return s, nil
}

func optBool(r *jsonscan.Reader, field string) (*bool, error) {
	if r.Null() {
		return nil, nil
	}
	v, err := r.Bool()
	if err != nil {
		return nil, fieldErr(field, err)
	}
	return &v, nil
}

// ParsePlausible parses a Plausible event body into an Input (without the
// client's IP and user agent, which come from the request) and the list of
// domains it names. Unknown fields are ignored, as Plausible does.
func ParsePlausible(body []byte) (*Input, []string, error) {
	in := &Input{Interactive: true, ScrollDepth: -1}
	var domain string
	r := jsonscan.NewReader(body)
	if r.Peek() != jsonscan.Object {
		if r.Peek() == jsonscan.Invalid {
			return nil, nil, bad("invalid_json", "", "body must be a JSON object")
		}
		return nil, nil, bad("invalid_json", "", "body must be a JSON object, not %s", r.Peek())
	}
	err := r.Object(func(k []byte) error {
		var err error
		switch string(k) {
		case "n", "name":
			in.Name, err = optString(r, "name")
		case "u", "url":
			in.URL, err = optString(r, "url")
		case "d", "domain":
			domain, err = optString(r, "domain")
		case "r", "referrer":
			in.Referrer, err = optString(r, "referrer")
		case "p", "props", "m", "meta":
			var props []Prop
			props, err = parseProps(r)
			if err == nil && props != nil {
				in.Props = props
			}
		case "i", "interactive":
			var v *bool
			if v, err = optBool(r, "interactive"); v != nil {
				in.Interactive = *v
			}
		case "h":
			var raw []byte
			if raw, err = r.Raw(); err == nil {
				switch string(raw) {
				case "0", "false", "null":
				case "1", "true":
					in.HashRoute = true
				default:
					err = bad("invalid_field", "h", "h must be 0, 1, true or false")
				}
			}
		case "sd":
			var raw []byte
			if raw, err = r.Raw(); err == nil && string(raw) != "null" {
				v, perr := strconv.Atoi(string(raw))
				if perr != nil || v < 0 || v > 100 {
					err = bad("invalid_field", "sd", "scroll depth must be an integer between 0 and 100")
				}
				in.ScrollDepth = v
			}
		case "e":
			var raw []byte
			if raw, err = r.Raw(); err == nil && string(raw) != "null" {
				v, perr := strconv.ParseInt(string(raw), 10, 64)
				if perr != nil || v < 0 {
					err = bad("invalid_field", "e", "engagement time must be a non-negative integer of milliseconds")
				}
				in.EngagedMS = v
			}
		case "consent":
			in.Consent, err = optBool(r, "consent")
		default: // "v", "$" (revenue) and anything newer trackers add
			err = r.Skip()
		}
		return err
	})
	if err == nil {
		err = r.End()
	}
	if err != nil {
		return nil, nil, fieldErr("", err)
	}
	var domains []string
	for _, d := range strings.Split(domain, ",") {
		if d = strings.TrimSpace(d); d != "" {
			domains = append(domains, d)
		}
	}
	if len(domains) > 10 {
		return nil, nil, bad("invalid_field", "domain", "at most 10 domains per event")
	}
	return in, domains, nil
}

// maxRawProps bounds props read before the per-event limit is applied.
const maxRawProps = 1000

// parseProps reads props given as a JSON object or a string holding one.
// Scalar values become strings; null, empty, list and object values are
// dropped, as Plausible does.
func parseProps(r *jsonscan.Reader) ([]Prop, error) {
	switch r.Peek() {
	case jsonscan.Null:
		r.Null()
		return nil, nil
	case jsonscan.String:
		s, err := r.String()
		if err != nil {
			return nil, fieldErr("props", err)
		}
		if strings.TrimSpace(s) == "" {
			return nil, nil
		}
		inner := jsonscan.NewReader([]byte(s))
		props, err := propsObject(inner)
		if err == nil {
			err = inner.End()
		}
		if err != nil {
			return nil, bad("invalid_props", "props", "props must be an object or a JSON string holding one")
		}
		return props, nil
	case jsonscan.Object:
		return propsObject(r)
	}
	if err := r.Skip(); err != nil {
		return nil, fieldErr("props", err)
	}
	return nil, bad("invalid_props", "props", "props must be an object or a JSON string holding one")
}

func propsObject(r *jsonscan.Reader) ([]Prop, error) {
	var props []Prop
	seen := map[string]bool{}
	tooMany := false
	err := r.Object(func(k []byte) error {
		if len(props) >= maxRawProps {
			// Keep reading so only this event is rejected, not the batch.
			tooMany = true
			return r.Skip()
		}
		var val string
		switch r.Peek() {
		case jsonscan.String:
			s, err := r.String()
			if err != nil {
				return err
			}
			val = s
		case jsonscan.Number, jsonscan.Bool:
			raw, err := r.Raw()
			if err != nil {
				return err
			}
			val = string(raw) // kept as written
		default:
			return r.Skip()
		}
		key := string(k)
		if strings.TrimSpace(val) == "" || strings.TrimSpace(key) == "" || seen[key] {
			// Blank keys and values are dropped, as Plausible does; a
			// repeated key keeps its first value.
			return nil
		}
		seen[key] = true
		props = append(props, Prop{Key: key, Value: val})
		return nil
	})
	if err != nil {
		return nil, fieldErr("props", err)
	}
	if tooMany {
		return nil, bad("too_many_props", "props", "too many props")
	}
	// Sort so the stored event does not depend on the sender's key order.
	sort.Slice(props, func(i, j int) bool { return props[i].Key < props[j].Key })
	return props, nil
}

// parseTimestamp accepts RFC 3339 or a Unix time in seconds or milliseconds
// (told apart by magnitude).
func parseTimestamp(r *jsonscan.Reader) (time.Time, error) {
	const msg = "timestamp must be RFC 3339 or Unix seconds/milliseconds"
	switch r.Peek() {
	case jsonscan.Null:
		r.Null()
		return time.Time{}, nil
	case jsonscan.String:
		s, err := r.String()
		if err != nil {
			return time.Time{}, fieldErr("timestamp", err)
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, bad("bad_timestamp", "timestamp", msg)
		}
		return t, nil
	case jsonscan.Number:
		raw, err := r.Raw()
		if err != nil {
			return time.Time{}, fieldErr("timestamp", err)
		}
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || f < 0 || f > 1e14 {
			return time.Time{}, bad("bad_timestamp", "timestamp", msg)
		}
		if f >= 1e11 { // milliseconds
			return time.UnixMilli(int64(f)), nil
		}
		return time.UnixMilli(int64(f * 1000)), nil
	}
	if err := r.Skip(); err != nil {
		return time.Time{}, fieldErr("timestamp", err)
	}
	return time.Time{}, bad("bad_timestamp", "timestamp", msg)
}

// parseNative reads one native batch event. It returns the input and the
// site domain, or an error; a syntax error (isSyntax) spoils the batch.
// Every field is decoded even after a semantic error, so the reader stays
// in place for the next event.
func parseNative(r *jsonscan.Reader) (*Input, string, error) {
	in := &Input{Interactive: true, ScrollDepth: -1}
	var site, ip, ua string
	var first error
	err := r.Object(func(k []byte) error {
		var err error
		switch string(k) {
		case "id":
			in.EventID, err = optString(r, "id")
		case "site":
			site, err = optString(r, "site")
		case "name":
			in.Name, err = optString(r, "name")
		case "url":
			in.URL, err = optString(r, "url")
		case "referrer":
			in.Referrer, err = optString(r, "referrer")
		case "props":
			in.Props, err = parseProps(r)
		case "timestamp":
			in.Time, err = parseTimestamp(r)
		case "user_id":
			in.UserID, err = optString(r, "user_id")
		case "ip":
			ip, err = optString(r, "ip")
		case "user_agent":
			ua, err = optString(r, "user_agent")
		case "consent":
			in.Consent, err = optBool(r, "consent")
		case "interactive":
			var v *bool
			if v, err = optBool(r, "interactive"); v != nil {
				in.Interactive = *v
			}
		case "hash_route":
			var v *bool
			if v, err = optBool(r, "hash_route"); v != nil {
				in.HashRoute = *v
			}
		default:
			if err = r.Skip(); err == nil {
				// The key may be personal data itself: do not echo it.
				err = bad("unknown_field", "", "unknown field (see the API reference for the fields an event may have)")
			}
		}
		if err != nil && !isSyntax(err) {
			var se *jsonscan.SyntaxError
			if !errors.As(err, &se) {
				if first == nil {
					first = err
				}
				return nil
			}
		}
		return err
	})
	if err != nil {
		return nil, "", fieldErr("", err)
	}
	if first != nil {
		return nil, "", first
	}
	if ip != "" || ua != "" {
		if ip == "" || ua == "" {
			return nil, "", bad("invalid_field", "ip", "ip and user_agent must be given together")
		}
		a, perr := netip.ParseAddr(ip)
		if perr != nil {
			return nil, "", bad("invalid_field", "ip", "ip is not an IPv4 or IPv6 address")
		}
		in.IP, in.UA, in.HasClient = a.Unmap(), ua, true
	}
	return in, site, nil
}
