package collect

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/veil-analytics/veil/internal/httpx"
)

// plausibleBody is Plausible's event API body; each field has a short and a
// long name.
type plausibleBody struct {
	N           *string         `json:"n"`
	Name        *string         `json:"name"`
	U           *string         `json:"u"`
	URL         *string         `json:"url"`
	D           *string         `json:"d"`
	Domain      *string         `json:"domain"`
	R           *string         `json:"r"`
	Referrer    *string         `json:"referrer"`
	P           json.RawMessage `json:"p"`
	Props       json.RawMessage `json:"props"`
	M           json.RawMessage `json:"m"`
	Meta        json.RawMessage `json:"meta"`
	I           *bool           `json:"i"`
	Interactive *bool           `json:"interactive"`
	H           json.RawMessage `json:"h"`
	SD          json.RawMessage `json:"sd"`
	E           json.RawMessage `json:"e"`
	// Veil's own tracker may say that consent was refused.
	Consent *bool `json:"consent"`
}

func first(a, b *string) string {
	if a != nil {
		return *a
	}
	if b != nil {
		return *b
	}
	return ""
}

func firstRaw(raws ...json.RawMessage) json.RawMessage {
	for _, r := range raws {
		if len(r) > 0 && !bytes.Equal(r, []byte("null")) {
			return r
		}
	}
	return nil
}

// ParsePlausible parses a Plausible event body into an Input (without the
// client's IP and user agent, which come from the request) and the list of
// domains it names.
func ParsePlausible(body []byte) (*Input, []string, error) {
	var b plausibleBody
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, nil, httpx.JSONError(err)
	}
	in := &Input{
		Name:        first(b.N, b.Name),
		URL:         first(b.U, b.URL),
		Referrer:    first(b.R, b.Referrer),
		Interactive: true,
		ScrollDepth: -1,
		Consent:     b.Consent,
	}
	if b.I != nil {
		in.Interactive = *b.I
	} else if b.Interactive != nil {
		in.Interactive = *b.Interactive
	}
	switch h := string(firstRaw(b.H)); h {
	case "", "0", "false":
	case "1", "true":
		in.HashRoute = true
	default:
		return nil, nil, bad("invalid_field", "h", "h must be 0, 1, true or false")
	}
	var err error
	if in.Props, err = parseProps(firstRaw(b.P, b.Props, b.M, b.Meta)); err != nil {
		return nil, nil, err
	}
	if sd := firstRaw(b.SD); sd != nil {
		v, err := strconv.Atoi(string(sd))
		if err != nil || v < 0 || v > 100 {
			return nil, nil, bad("invalid_field", "sd", "scroll depth must be an integer between 0 and 100")
		}
		in.ScrollDepth = v
	}
	if e := firstRaw(b.E); e != nil {
		v, err := strconv.ParseInt(string(e), 10, 64)
		if err != nil || v < 0 {
			return nil, nil, bad("invalid_field", "e", "engagement time must be a non-negative integer of milliseconds")
		}
		in.EngagedMS = v
	}
	var domains []string
	for _, d := range strings.Split(first(b.D, b.Domain), ",") {
		if d = strings.TrimSpace(d); d != "" {
			domains = append(domains, d)
		}
	}
	if len(domains) > 10 {
		return nil, nil, bad("invalid_field", "domain", "at most 10 domains per event")
	}
	return in, domains, nil
}

// parseProps accepts props as a JSON object or a string holding one. Scalar
// values become strings; null, empty, list and object values are dropped, as
// Plausible does.
func parseProps(raw json.RawMessage) ([]Prop, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, bad("invalid_props", "props", "props must be an object or a JSON string holding one")
		}
		if strings.TrimSpace(s) == "" {
			return nil, nil
		}
		raw = json.RawMessage(s)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, bad("invalid_props", "props", "props must be an object or a JSON string holding one")
	}
	if len(m) > 1000 {
		return nil, bad("too_many_props", "props", "too many props")
	}
	props := make([]Prop, 0, len(m))
	for k, v := range m {
		var val string
		switch {
		case len(v) == 0:
			continue
		case v[0] == '"':
			if err := json.Unmarshal(v, &val); err != nil {
				return nil, bad("invalid_props", "props", "a prop value is not a valid string")
			}
		case v[0] == '{' || v[0] == '[' || string(v) == "null":
			continue
		default: // number or boolean, kept as written
			val = string(v)
		}
		if val == "" {
			continue
		}
		props = append(props, Prop{Key: k, Value: val})
	}
	// Maps have no order; sort so the stored event is deterministic.
	sort.Slice(props, func(i, j int) bool { return props[i].Key < props[j].Key })
	return props, nil
}

// nativeEvent is one event of the native batch API.
type nativeEvent struct {
	ID          string          `json:"id"`
	Site        string          `json:"site"`
	Name        string          `json:"name"`
	URL         string          `json:"url"`
	Referrer    string          `json:"referrer"`
	Props       json.RawMessage `json:"props"`
	Timestamp   json.RawMessage `json:"timestamp"`
	UserID      string          `json:"user_id"`
	IP          string          `json:"ip"`
	UserAgent   string          `json:"user_agent"`
	Consent     *bool           `json:"consent"`
	Interactive *bool           `json:"interactive"`
	HashRoute   bool            `json:"hash_route"`
}

// parseTimestamp accepts RFC 3339 or a Unix time in seconds or milliseconds
// (told apart by magnitude).
func parseTimestamp(raw json.RawMessage) (time.Time, *httpx.Error) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				return t, nil
			}
		}
		return time.Time{}, bad("bad_timestamp", "timestamp", "timestamp must be RFC 3339 or Unix seconds/milliseconds")
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f < 0 || f > 1e14 {
		return time.Time{}, bad("bad_timestamp", "timestamp", "timestamp must be RFC 3339 or Unix seconds/milliseconds")
	}
	if f >= 1e11 { // milliseconds
		return time.UnixMilli(int64(f)), nil
	}
	return time.UnixMilli(int64(f * 1000)), nil
}

// input converts a native event to an Input.
func (n *nativeEvent) input() (*Input, *httpx.Error) {
	in := &Input{Name: n.Name, URL: n.URL, Referrer: n.Referrer, Interactive: true, ScrollDepth: -1,
		EventID: n.ID, UserID: n.UserID, Consent: n.Consent, HashRoute: n.HashRoute}
	if n.Interactive != nil {
		in.Interactive = *n.Interactive
	}
	props, err := parseProps(n.Props)
	if err != nil {
		return nil, err.(*httpx.Error)
	}
	in.Props = props
	t, terr := parseTimestamp(n.Timestamp)
	if terr != nil {
		return nil, terr
	}
	in.Time = t
	if n.IP != "" || n.UserAgent != "" {
		if n.IP == "" || n.UserAgent == "" {
			return nil, bad("invalid_field", "ip", "ip and user_agent must be given together")
		}
		a, perr := parseIP(n.IP)
		if perr != nil {
			return nil, bad("invalid_field", "ip", "ip is not an IPv4 or IPv6 address")
		}
		in.IP, in.UA, in.HasClient = a, n.UserAgent, true
	}
	return in, nil
}

func parseIP(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	return a.Unmap(), err
}
