package collect

import (
	"fmt"
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustParseBatch(t *testing.T, body string, max int) []batchItem {
	t.Helper()
	items, err := parseBatch([]byte(body), max)
	if err != nil {
		t.Fatalf("parseBatch(%q): %v", body, err)
	}
	for i, it := range items {
		if (it.in == nil) == (it.err == nil) {
			t.Fatalf("item %d: in=%v err=%v, want exactly one", i, it.in, it.err)
		}
	}
	return items
}

func wantBatchErr(t *testing.T, body string, max, status int, reason string) string {
	t.Helper()
	items, err := parseBatch([]byte(body), max)
	if err == nil {
		t.Fatalf("parseBatch(%q) = %d items, want %s", body, len(items), reason)
	}
	if items != nil {
		t.Errorf("parseBatch(%q) returned items with a request error", body)
	}
	if err.Status != status || err.Reason != reason {
		t.Fatalf("parseBatch(%q): status=%d reason=%q (%s), want %d %q", body, err.Status, err.Reason, err.Msg, status, reason)
	}
	return err.Msg
}

const (
	ev1 = `{"site":"a.example","name":"pageview","url":"https://a.example/1"}`
	ev2 = `{"site":"b.example","name":"signup","url":"https://b.example/2","props":{"plan":"pro"}}`
	ev3 = `{"site":"a.example","name":"pageview","url":"https://a.example/3","user_id":"u1"}`
)

func checkThree(t *testing.T, items []batchItem) {
	t.Helper()
	if len(items) != 3 {
		t.Fatalf("got %d items, want 3", len(items))
	}
	for i, want := range []struct{ site, name, url string }{
		{"a.example", "pageview", "https://a.example/1"},
		{"b.example", "signup", "https://b.example/2"},
		{"a.example", "pageview", "https://a.example/3"},
	} {
		it := items[i]
		if it.err != nil {
			t.Fatalf("item %d: %v", i, it.err)
		}
		if it.site != want.site || it.in.Name != want.name || it.in.URL != want.url {
			t.Errorf("item %d = site %q %+v, want %v", i, it.site, *it.in, want)
		}
	}
	if !reflect.DeepEqual(items[1].in.Props, []Prop{{"plan", "pro"}}) {
		t.Errorf("item 1 props = %v", items[1].in.Props)
	}
	if items[2].in.UserID != "u1" {
		t.Errorf("item 2 user id = %q", items[2].in.UserID)
	}
}

func TestParseBatchArrayAndNDJSON(t *testing.T) {
	for name, body := range map[string]string{
		"array":              "[" + ev1 + "," + ev2 + "," + ev3 + "]",
		"array with spacing": " [\n " + ev1 + " ,\n\t" + ev2 + "\r\n," + ev3 + " \n] \n",
		"ndjson":             ev1 + "\n" + ev2 + "\n" + ev3,
		"ndjson trailing nl": ev1 + "\n" + ev2 + "\n" + ev3 + "\n",
		"ndjson blank lines": ev1 + "\n\n   \n" + ev2 + "\n\t\n" + ev3 + "\n\n",
		"ndjson crlf":        ev1 + "\r\n" + ev2 + "\r\n" + ev3 + "\r\n",
	} {
		t.Run(name, func(t *testing.T) { checkThree(t, mustParseBatch(t, body, 10)) })
	}
}

func TestParseBatchNativeFields(t *testing.T) {
	items := mustParseBatch(t, `[{"id":"order-1","site":"a.example","name":"purchase","url":"https://a.example/",
		"referrer":"https://r.example/","props":"{\"k\":1}","timestamp":1767323045,"user_id":"u-42",
		"ip":"::ffff:203.0.113.9","user_agent":"Mozilla/5.0","consent":true,"interactive":false,"hash_route":true}]`, 10)
	in := items[0].in
	if in.EventID != "order-1" || in.Referrer != "https://r.example/" || in.UserID != "u-42" ||
		in.Interactive || !in.HashRoute || in.Consent == nil || !*in.Consent || in.ScrollDepth != -1 {
		t.Errorf("got %+v", *in)
	}
	if !in.Time.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("time = %v", in.Time)
	}
	if !reflect.DeepEqual(in.Props, []Prop{{"k", "1"}}) {
		t.Errorf("props = %v", in.Props)
	}
	// The IP is kept unmapped so IPv4 clients pseudonymize the same either way.
	if !in.HasClient || in.IP != netip.MustParseAddr("203.0.113.9") || in.UA != "Mozilla/5.0" {
		t.Errorf("client = %v %v %q", in.HasClient, in.IP, in.UA)
	}

	// Defaults, and nulls as absent.
	items = mustParseBatch(t, `{"site":"a.example","name":"x","url":null,"ip":null,"user_agent":null,"timestamp":null,"props":null}`, 10)
	in = items[0].in
	if !in.Interactive || in.HashRoute || in.HasClient || !in.Time.IsZero() || in.Props != nil || in.Consent != nil {
		t.Errorf("defaults: %+v", *in)
	}
	// A missing site is for the caller to report; the parser leaves it empty.
	items = mustParseBatch(t, `{"name":"x"}`, 10)
	if items[0].site != "" || items[0].err != nil {
		t.Errorf("no site: %+v", items[0])
	}
}

func TestParseBatchTimestamps(t *testing.T) {
	want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, ts := range []string{`"2026-01-02T03:04:05Z"`, `"2026-01-02T05:04:05+02:00"`, `1767323045`, `1767323045000`} {
		items := mustParseBatch(t, `[{"name":"x","timestamp":`+ts+`}]`, 10)
		if items[0].err != nil || !items[0].in.Time.Equal(want) {
			t.Errorf("timestamp %s: %v %v", ts, items[0].in, items[0].err)
		}
	}
}

func TestParseBatchSyntaxErrorAnywhere(t *testing.T) {
	bad := `{"name":"x","url":"https://a.example/"`  // unterminated object
	bad2 := `{"name":"x","props":{"a":tru}}`         // syntax error inside a nested value
	bad3 := `{"name":"x","unknown":[1,}`             // syntax error inside an unknown field
	bad4 := `{"name":5,"url":"https://a.example/",}` // semantic error first, then a syntax error
	bad5 := `{"name":"x","timestamp":"2026"}{"a":1}` // trailing data on the line
	for _, b := range []string{bad, bad2, bad3, bad4} {
		for i, body := range []string{
			"[" + b + "," + ev1 + "," + ev2 + "]",
			"[" + ev1 + "," + b + "," + ev2 + "]",
			"[" + ev1 + "," + ev2 + "," + b + "]",
		} {
			t.Run(fmt.Sprintf("array/%d/%s", i, b), func(t *testing.T) {
				wantBatchErr(t, body, 10, http.StatusBadRequest, "invalid_json")
			})
		}
	}
	for _, b := range []string{bad, bad2, bad3, bad4, bad5} {
		for i, body := range []string{
			b + "\n" + ev1 + "\n" + ev2,
			ev1 + "\n" + b + "\n" + ev2,
			ev1 + "\n\n" + ev2 + "\n" + b,
			ev1 + "\n\n" + ev2 + "\n" + b + "\n",
		} {
			t.Run(fmt.Sprintf("ndjson/%d/%s", i, b), func(t *testing.T) {
				msg := wantBatchErr(t, body, 10, http.StatusBadRequest, "invalid_json")
				line := []int{1, 2, 4, 4}[i]
				if !strings.HasPrefix(msg, fmt.Sprintf("line %d: ", line)) {
					t.Errorf("message %q does not name line %d", msg, line)
				}
			})
		}
	}
	// Array-level syntax errors.
	for _, body := range []string{
		"[" + ev1 + "," + ev2,
		"[" + ev1 + "," + ev2 + ",]",
		"[" + ev1 + " " + ev2 + "]",
		"[" + ev1 + "] " + ev2,
		"[" + ev1 + "]]",
		"[" + ev1 + "] x",
		"[",
		"]",
		"",
		"   \n",
		"garbage",
		`"string"`,
		`42`,
		`null`,
		"[]",
		"\n\n",
	} {
		t.Run("body/"+body, func(t *testing.T) { wantBatchErr(t, body, 10, http.StatusBadRequest, "invalid_json") })
	}
}

func TestParseBatchNDJSONLineNumbers(t *testing.T) {
	// Blank lines count; the message names the line the client sent.
	body := ev1 + "\n\n" + ev2 + "\r\n\n" + `{"name":}` + "\n" + ev3
	msg := wantBatchErr(t, body, 10, http.StatusBadRequest, "invalid_json")
	if !strings.HasPrefix(msg, "line 5: ") {
		t.Errorf("message = %q, want line 5", msg)
	}
	// An object spread over lines is not NDJSON.
	msg = wantBatchErr(t, "{\"name\":\"x\",\n\"url\":\"https://a.example/\"}", 10, http.StatusBadRequest, "invalid_json")
	if !strings.HasPrefix(msg, "line 1: ") {
		t.Errorf("message = %q, want line 1", msg)
	}
}

func TestParseBatchNonObjectElement(t *testing.T) {
	for _, body := range []string{
		"[" + ev1 + ",5]",
		"[" + ev1 + `,"event"]`,
		"[" + ev1 + ",null]",
		"[" + ev1 + ",[" + ev2 + "]]",
		"[5," + ev1 + "]",
	} {
		t.Run(body, func(t *testing.T) { wantBatchErr(t, body, 10, http.StatusBadRequest, "invalid_json") })
	}
	for _, tc := range []struct {
		body string
		line int
	}{
		{ev1 + "\n[" + ev2 + "]", 2},
		{ev1 + "\n\n5", 3},
		{ev1 + "\nnull\n" + ev2, 2},
		{ev1 + "\n\"x\"", 2},
	} {
		msg := wantBatchErr(t, tc.body, 10, http.StatusBadRequest, "invalid_json")
		if !strings.HasPrefix(msg, fmt.Sprintf("line %d: ", tc.line)) {
			t.Errorf("%q: message %q does not name line %d", tc.body, msg, tc.line)
		}
	}
}

func TestParseBatchTooManyEvents(t *testing.T) {
	arr := func(n int) string {
		evs := make([]string, n)
		for i := range evs {
			evs[i] = ev1
		}
		return "[" + strings.Join(evs, ",") + "]"
	}
	nd := func(n int) string { return strings.Repeat(ev1+"\n", n) }
	if items := mustParseBatch(t, arr(3), 3); len(items) != 3 {
		t.Errorf("array at the limit: %d items", len(items))
	}
	if items := mustParseBatch(t, nd(3), 3); len(items) != 3 {
		t.Errorf("ndjson at the limit: %d items", len(items))
	}
	for name, body := range map[string]string{"array": arr(4), "ndjson": nd(4), "big array": arr(100), "big ndjson": nd(100)} {
		t.Run(name, func(t *testing.T) {
			msg := wantBatchErr(t, body, 3, http.StatusRequestEntityTooLarge, "too_many_events")
			if !strings.Contains(msg, "3") {
				t.Errorf("message %q does not state the limit", msg)
			}
		})
	}
}

func TestParseBatchSemanticErrorsRejectOnlyTheirEvent(t *testing.T) {
	for _, tc := range []struct {
		name, ev, reason, field string
	}{
		{"unknown field", `{"site":"a.example","name":"x","email":"jane@example.com"}`, "unknown_field", ""},
		{"plausible short name", `{"site":"a.example","n":"x"}`, "unknown_field", ""},
		{"name as number", `{"site":"a.example","name":5,"url":"https://a.example/"}`, "invalid_field", "name"},
		{"url as object", `{"site":"a.example","name":"x","url":{"a":1}}`, "invalid_field", "url"},
		{"site as list", `{"site":["a.example"],"name":"x"}`, "invalid_field", "site"},
		{"id as number", `{"id":7,"name":"x"}`, "invalid_field", "id"},
		{"user_id as number", `{"user_id":7,"name":"x"}`, "invalid_field", "user_id"},
		{"consent as string", `{"consent":"false","name":"x"}`, "invalid_field", "consent"},
		{"interactive as number", `{"interactive":0,"name":"x"}`, "invalid_field", "interactive"},
		{"hash_route as string", `{"hash_route":"1","name":"x"}`, "invalid_field", "hash_route"},
		{"bad timestamp", `{"site":"a.example","name":"x","timestamp":"yesterday"}`, "bad_timestamp", "timestamp"},
		{"negative timestamp", `{"name":"x","timestamp":-5}`, "bad_timestamp", "timestamp"},
		{"timestamp as bool", `{"name":"x","timestamp":true}`, "bad_timestamp", "timestamp"},
		{"props as number", `{"name":"x","props":5}`, "invalid_props", "props"},
		{"props string not json", `{"name":"x","props":"a=b"}`, "invalid_props", "props"},
		{"ip without user_agent", `{"site":"a.example","name":"x","ip":"203.0.113.9"}`, "invalid_field", "ip"},
		{"user_agent without ip", `{"site":"a.example","name":"x","user_agent":"Mozilla/5.0"}`, "invalid_field", "ip"},
		{"invalid ip", `{"site":"a.example","name":"x","ip":"203.0.113.300","user_agent":"Mozilla/5.0"}`, "invalid_field", "ip"},
		{"ip with port", `{"name":"x","ip":"203.0.113.9:80","user_agent":"Mozilla/5.0"}`, "invalid_field", "ip"},
		{"ip hostname", `{"name":"x","ip":"localhost","user_agent":"Mozilla/5.0"}`, "invalid_field", "ip"},
		// The first error wins; the rest of the event is still read.
		{"two errors", `{"name":5,"timestamp":"x","url":"https://a.example/"}`, "invalid_field", "name"},
		{"error then good fields", `{"timestamp":"x","name":"y","props":{"a":[1,{"b":2}]},"url":"https://a.example/"}`, "bad_timestamp", "timestamp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, body := range []string{
				"[" + ev1 + "," + tc.ev + "," + ev2 + "]",
				ev1 + "\n" + tc.ev + "\n" + ev2 + "\n",
			} {
				items := mustParseBatch(t, body, 10)
				if len(items) != 3 {
					t.Fatalf("%d items, want 3", len(items))
				}
				wantErr(t, items[1].err, http.StatusBadRequest, tc.reason, tc.field)
				if items[1].in != nil {
					t.Errorf("rejected event still has an input: %+v", *items[1].in)
				}
				if items[0].err != nil || items[0].in.URL != "https://a.example/1" ||
					items[2].err != nil || items[2].in.URL != "https://b.example/2" {
					t.Errorf("neighbours were affected: %+v / %+v", items[0], items[2])
				}
			}
		})
	}
	// An unknown field is not echoed: its name may be personal data.
	items := mustParseBatch(t, `[{"name":"x","jane.doe@example.com":1}]`, 10)
	if he := asHTTPErr(t, items[0].err); strings.Contains(he.Error(), "jane") {
		t.Errorf("error echoes the field name: %q", he.Error())
	}
}

func TestParseBatchManyPropsRejectOnlyTheirEvent(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"name":"x","props":{`)
	for i := 0; i <= maxRawProps; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":"v"`, i)
	}
	b.WriteString(`},"url":"https://a.example/"}`)
	for _, body := range []string{
		"[" + ev1 + "," + b.String() + "," + ev2 + "]",
		ev1 + "\n" + b.String() + "\n" + ev2,
	} {
		items, err := parseBatch([]byte(body), 10)
		if err != nil {
			t.Fatalf("valid JSON rejected as a whole: %v (%s)", err, err.Reason)
		}
		if len(items) != 3 {
			t.Fatalf("%d items", len(items))
		}
		wantErr(t, items[1].err, http.StatusBadRequest, "too_many_props", "props")
		if items[0].err != nil || items[2].err != nil {
			t.Errorf("neighbours were affected: %+v / %+v", items[0], items[2])
		}
	}
}
