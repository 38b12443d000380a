package collect

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/veil-analytics/veil/internal/httpx"
	"github.com/veil-analytics/veil/internal/jsonscan"
)

// Seeds live in testdata/fuzz/<Target>/.

// jsonDepth returns the deepest nesting of objects and arrays in b.
func jsonDepth(b []byte) int {
	depth, max, inStr := 0, 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inStr && c == '\\':
			i++
		case inStr:
			inStr = c != '"'
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			if depth++; depth > max {
				max = depth
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return max
}

// strictJSON reports whether b is one JSON value the way the ingest reader
// must accept it: valid UTF-8 (HandleEvent and HandleBatch reject anything
// else first) and not nested deeper than jsonscan allows.
func strictJSON(b []byte) bool {
	return utf8.Valid(b) && json.Valid(b) && jsonDepth(b) <= jsonscan.MaxDepth
}

func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// checkProps checks what ParsePlausible and parseNative promise about props.
func checkProps(t *testing.T, props []Prop) {
	t.Helper()
	if len(props) > maxRawProps {
		t.Fatalf("%d props, more than %d", len(props), maxRawProps)
	}
	for i, p := range props {
		if p.Value == "" {
			t.Fatalf("prop %q has an empty value", p.Key)
		}
		// Empty keys are not checked: see TestParsePlausibleDropsBlankProps.
		if !utf8.ValidString(p.Key) || !utf8.ValidString(p.Value) {
			t.Fatalf("prop %q=%q is not valid UTF-8", p.Key, p.Value)
		}
		if i > 0 && props[i-1].Key >= p.Key {
			t.Fatalf("props not sorted by unique key: %q", props)
		}
	}
}

func FuzzParsePlausible(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		in, domains, err := ParsePlausible(body)
		if err != nil {
			var he *httpx.Error
			if !errors.As(err, &he) || he.Status != http.StatusBadRequest || he.Reason == "" || he.Msg == "" {
				t.Fatalf("error %#v is not a client error", err)
			}
			if in != nil || domains != nil {
				t.Fatalf("input or domains along with error %v", err)
			}
			if he.Reason == "invalid_json" && firstByte(body) == '{' && strictJSON(body) {
				t.Fatalf("valid JSON object rejected as invalid JSON: %v", err)
			}
			return
		}
		if in == nil {
			t.Fatal("nil input without error")
		}
		if firstByte(body) != '{' || !utf8.Valid(body) || !json.Valid(body) {
			t.Fatalf("accepted a body that is not one valid JSON object")
		}
		if in.ScrollDepth < -1 || in.ScrollDepth > 100 {
			t.Fatalf("ScrollDepth = %d", in.ScrollDepth)
		}
		if in.EngagedMS < 0 {
			t.Fatalf("EngagedMS = %d", in.EngagedMS)
		}
		if in.HasClient || in.IP.IsValid() || in.UA != "" || in.UserID != "" || in.EventID != "" || !in.Time.IsZero() {
			t.Fatalf("Plausible body set request or native fields: %+v", *in)
		}
		checkProps(t, in.Props)
		if len(domains) > 10 {
			t.Fatalf("%d domains", len(domains))
		}
		for _, d := range domains {
			if d == "" || d != strings.TrimSpace(d) || strings.Contains(d, ",") {
				t.Fatalf("domain %q", d)
			}
		}
	})
}

const fuzzMaxEvents = 8

func FuzzParseBatch(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		items, herr := parseBatch(body, fuzzMaxEvents)
		want := expectBatch(body)
		if herr != nil {
			if items != nil {
				t.Fatalf("items along with request error %v", herr)
			}
			switch {
			case herr.Status == http.StatusBadRequest && herr.Reason == "invalid_json":
			case herr.Status == http.StatusRequestEntityTooLarge && herr.Reason == "too_many_events":
			default:
				t.Fatalf("request error %d %q: %v", herr.Status, herr.Reason, herr)
			}
			if want == batchOK {
				t.Fatalf("well-formed batch rejected as a whole: %v", herr)
			}
			if want == batchTooMany && herr.Reason != "too_many_events" {
				t.Fatalf("batch of more than %d events: got %v", fuzzMaxEvents, herr)
			}
			return
		}
		if want == batchTooMany || want == batchBad {
			t.Fatalf("parseBatch accepted a body expected to fail (%v): %d items", want, len(items))
		}
		if len(items) == 0 || len(items) > fuzzMaxEvents {
			t.Fatalf("%d items", len(items))
		}
		for i, it := range items {
			if (it.in == nil) == (it.err == nil) {
				t.Fatalf("item %d: in=%v err=%v, want exactly one", i, it.in, it.err)
			}
			if it.err != nil {
				var he *httpx.Error
				if !errors.As(it.err, &he) || he.Status != http.StatusBadRequest || he.Reason == "" || he.Reason == "invalid_json" {
					t.Fatalf("item %d: error %#v is not a per-event client error", i, it.err)
				}
				continue
			}
			in := it.in
			if in.ScrollDepth != -1 || in.EngagedMS != 0 {
				t.Fatalf("item %d: native event with sd/e: %+v", i, *in)
			}
			if in.HasClient != in.IP.IsValid() || in.HasClient != (in.UA != "") || in.IP.Is4In6() {
				t.Fatalf("item %d: client fields inconsistent: %v %v %q", i, in.HasClient, in.IP, in.UA)
			}
			checkProps(t, in.Props)
		}
	})
}

type batchWant int

const (
	batchUnknown batchWant = iota // the oracle does not know
	batchOK                       // must parse (per-event errors allowed)
	batchTooMany                  // must be too_many_events
	batchBad                      // must be rejected as a whole
)

// expectBatch is an oracle for parseBatch built on encoding/json. It only
// answers for bodies that are valid UTF-8 and not too deeply nested.
func expectBatch(body []byte) batchWant {
	if !utf8.Valid(body) || jsonDepth(body) > jsonscan.MaxDepth {
		return batchUnknown
	}
	// Oversized props objects are a known bug (TestParseBatchManyPropsRejectOnlyTheirEvent).
	if bytes.Count(body, []byte(":")) > maxRawProps {
		return batchUnknown
	}
	switch firstByte(body) {
	case '[':
		var elems []json.RawMessage
		if err := json.Unmarshal(body, &elems); err != nil {
			return batchBad
		}
		for i, e := range elems {
			if i >= fuzzMaxEvents {
				return batchTooMany
			}
			if firstByte(e) != '{' {
				return batchBad
			}
		}
		if len(elems) == 0 {
			return batchBad
		}
		return batchOK
	case '{':
		n := 0
		for _, line := range bytes.Split(body, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 { // as the parser skips blank lines
				continue
			}
			if n >= fuzzMaxEvents {
				return batchTooMany
			}
			if !json.Valid(line) || firstByte(line) != '{' {
				return batchBad
			}
			n++
		}
		return batchOK
	}
	return batchBad
}

var fuzzTrust = func() ProxyTrust {
	pt, err := ParseTrusted([]string{"10.0.0.0/8", "192.168.0.0/16", "2001:db8:ffff::/48", "127.0.0.1"})
	if err != nil {
		panic(err)
	}
	return pt
}()

// hopCandidates lists every address a header value could be read as.
func hopCandidates(values []string) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	add := func(s string) {
		s = strings.Trim(strings.TrimSpace(s), `"`)
		if a, err := netip.ParseAddr(s); err == nil {
			out[a.Unmap()] = true
		}
		if ap, err := netip.ParseAddrPort(s); err == nil {
			out[ap.Addr().Unmap()] = true
		}
		if len(s) >= 2 && s[0] == '[' && s[len(s)-1] == ']' {
			if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
				out[a.Unmap()] = true
			}
		}
	}
	for _, v := range values {
		for _, piece := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' }) {
			add(piece)
			if _, val, ok := strings.Cut(piece, "="); ok {
				add(val)
			}
		}
	}
	return out
}

func FuzzClientIP(f *testing.F) {
	f.Fuzz(func(t *testing.T, remote, xff, fwd string) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
		var xffs, fwds []string
		if xff != "" {
			xffs = strings.Split(xff, "\n")
		}
		if fwd != "" {
			fwds = strings.Split(fwd, "\n")
		}
		for _, v := range xffs {
			r.Header.Add("X-Forwarded-For", v)
		}
		for _, v := range fwds {
			r.Header.Add("Forwarded", v)
		}
		got := fuzzTrust.ClientIP(r)
		peer := fuzzTrust.ClientIP(&http.Request{RemoteAddr: remote, Header: http.Header{}})
		if untrusted := (ProxyTrust{}).ClientIP(r); untrusted != peer {
			t.Fatalf("without trusted proxies ClientIP = %v, want the peer %v", untrusted, peer)
		}
		if got.Is4In6() || peer.Is4In6() {
			t.Fatalf("IPv4-mapped result: %v (peer %v)", got, peer)
		}
		if got == peer {
			return
		}
		if !peer.IsValid() || !fuzzTrust.isTrusted(peer) {
			t.Fatalf("headers believed from untrusted peer %v: got %v", peer, got)
		}
		if !got.IsValid() {
			t.Fatalf("trusted peer %v, got no address", peer)
		}
		// By default only X-Forwarded-For is read; Forwarded must be ignored.
		from := xffs
		if !hopCandidates(from)[got] {
			t.Fatalf("ClientIP = %v appears nowhere in %q", got, from)
		}
	})
}
