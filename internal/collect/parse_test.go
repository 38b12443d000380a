package collect

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/httpx"
	"github.com/veil-analytics/veil/internal/jsonscan"
)

// asHTTPErr returns err as an *httpx.Error, failing the test otherwise.
func asHTTPErr(t *testing.T, err error) *httpx.Error {
	t.Helper()
	var he *httpx.Error
	if !errors.As(err, &he) {
		t.Fatalf("error %v (%T) is not an *httpx.Error", err, err)
	}
	return he
}

func wantErr(t *testing.T, err error, status int, reason, field string) *httpx.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s (field %q)", reason, field)
	}
	he := asHTTPErr(t, err)
	if he.Status != status || he.Reason != reason || he.Field != field {
		t.Fatalf("got error status=%d reason=%q field=%q (%v), want status=%d reason=%q field=%q",
			he.Status, he.Reason, he.Field, he.Msg, status, reason, field)
	}
	return he
}

func mustParsePlausible(t *testing.T, body string) (*Input, []string) {
	t.Helper()
	in, domains, err := ParsePlausible([]byte(body))
	if err != nil {
		t.Fatalf("ParsePlausible(%s): %v", body, err)
	}
	if in == nil {
		t.Fatalf("ParsePlausible(%s): nil input without error", body)
	}
	return in, domains
}

func TestParsePlausibleShortAndLongNames(t *testing.T) {
	short := `{"n":"signup","u":"https://example.com/a?b=c","d":"example.com","r":"https://ref.example.org/x",
		"p":{"plan":"pro"},"i":false,"h":1,"sd":42,"e":1500,"consent":true}`
	long := `{"name":"signup","url":"https://example.com/a?b=c","domain":"example.com","referrer":"https://ref.example.org/x",
		"props":{"plan":"pro"},"interactive":false,"h":true,"sd":42,"e":1500,"consent":true}`
	want := Input{
		Name: "signup", URL: "https://example.com/a?b=c", Referrer: "https://ref.example.org/x",
		Props: []Prop{{"plan", "pro"}}, Interactive: false, HashRoute: true, ScrollDepth: 42, EngagedMS: 1500,
	}
	for _, body := range []string{short, long} {
		in, domains := mustParsePlausible(t, body)
		if in.Consent == nil || !*in.Consent {
			t.Errorf("%s: consent = %v, want true", body, in.Consent)
		}
		in.Consent = nil
		if !reflect.DeepEqual(*in, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", body, *in, want)
		}
		if !reflect.DeepEqual(domains, []string{"example.com"}) {
			t.Errorf("%s: domains = %q", body, domains)
		}
	}
	// "m" and "meta" are aliases of props (Plausible's old name).
	for _, k := range []string{"p", "props", "m", "meta"} {
		in, _ := mustParsePlausible(t, `{"n":"x","`+k+`":{"k":"v"}}`)
		if !reflect.DeepEqual(in.Props, []Prop{{"k", "v"}}) {
			t.Errorf("props under %q = %v", k, in.Props)
		}
	}
}

func TestParsePlausibleDefaults(t *testing.T) {
	in, domains := mustParsePlausible(t, `{"n":"pageview","u":"https://example.com/"}`)
	if !in.Interactive || in.HashRoute || in.ScrollDepth != -1 || in.EngagedMS != 0 || in.Consent != nil || in.Props != nil {
		t.Errorf("defaults wrong: %+v", *in)
	}
	if in.HasClient || in.IP.IsValid() || in.UA != "" {
		t.Errorf("ParsePlausible must not invent client data: %+v", *in)
	}
	if domains != nil {
		t.Errorf("domains = %q, want none", domains)
	}
	// Explicit nulls are the same as absent fields.
	in, _ = mustParsePlausible(t, `{"n":null,"u":null,"d":null,"r":null,"p":null,"i":null,"h":null,"sd":null,"e":null,"consent":null}`)
	if in.Name != "" || in.URL != "" || !in.Interactive || in.HashRoute || in.ScrollDepth != -1 || in.EngagedMS != 0 || in.Consent != nil || in.Props != nil {
		t.Errorf("nulls: %+v", *in)
	}
	// h accepts 0/false; sd its bounds.
	in, _ = mustParsePlausible(t, `{"n":"x","h":0,"sd":0}`)
	if in.HashRoute || in.ScrollDepth != 0 {
		t.Errorf("h:0 sd:0 → %+v", *in)
	}
	in, _ = mustParsePlausible(t, `{"n":"x","h":false,"sd":100,"i":true}`)
	if in.HashRoute || in.ScrollDepth != 100 || !in.Interactive {
		t.Errorf("h:false sd:100 → %+v", *in)
	}
	in, _ = mustParsePlausible(t, `{"n":"x","consent":false}`)
	if in.Consent == nil || *in.Consent {
		t.Errorf("consent:false → %v", in.Consent)
	}
}

func TestParsePlausibleProps(t *testing.T) {
	for _, tc := range []struct {
		name, props string
		want        []Prop
	}{
		{"object", `{"plan":"pro","seats":"3"}`, []Prop{{"plan", "pro"}, {"seats", "3"}}},
		{"string holding object", `"{\"plan\":\"pro\",\"seats\":\"3\"}"`, []Prop{{"plan", "pro"}, {"seats", "3"}}},
		{"scalars as written", `{"f":1.50,"b":true,"c":false,"e":-2E+3,"i":0}`,
			[]Prop{{"b", "true"}, {"c", "false"}, {"e", "-2E+3"}, {"f", "1.50"}, {"i", "0"}}},
		{"scalars in string form", `"{\"n\": 7, \"ok\": true}"`, []Prop{{"n", "7"}, {"ok", "true"}}},
		{"dropped values", `{"null":null,"list":[1,2],"obj":{"a":"b"},"empty":"","emptylist":[],"keep":"x"}`, []Prop{{"keep", "x"}}},
		{"repeated key keeps first", `{"k":"first","k":"second","k":"third"}`, []Prop{{"k", "first"}}},
		{"sorted by key", `{"zeta":"1","alpha":"2","Mid":"3","beta":"4"}`, []Prop{{"Mid", "3"}, {"alpha", "2"}, {"beta", "4"}, {"zeta", "1"}}},
		{"escapes decoded", `{"\u0041b":"caf\u00e9 \"q\""}`, []Prop{{"Ab", `café "q"`}}},
		{"empty object", `{}`, nil},
		{"blank string", `"  "`, nil},
		{"empty string", `""`, nil},
		{"null", `null`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, _ := mustParsePlausible(t, `{"n":"x","p":`+tc.props+`}`)
			if len(in.Props) == 0 && len(tc.want) == 0 {
				return
			}
			if !reflect.DeepEqual(in.Props, tc.want) {
				t.Errorf("props = %q, want %q", in.Props, tc.want)
			}
		})
	}
}

func TestParsePlausibleDropsBlankProps(t *testing.T) {
	in, _ := mustParsePlausible(t, `{"n":"x","u":"https://example.com/","p":{"":"v","  ":"v","k":" ","k2":"  \t","ok":"1"}}`)
	if !reflect.DeepEqual(in.Props, []Prop{{"ok", "1"}}) {
		t.Errorf("props = %q, want only ok=1", in.Props)
	}
	in, _ = mustParsePlausible(t, `{"n":"x","p":"{\"\":\"v\",\"ok\":\"1\"}"}`)
	if !reflect.DeepEqual(in.Props, []Prop{{"ok", "1"}}) {
		t.Errorf("props in string form = %q, want only ok=1", in.Props)
	}
}

func TestParsePlausiblePropsErrors(t *testing.T) {
	for _, tc := range []struct {
		props, reason, field string
	}{
		{`5`, "invalid_props", "props"},
		{`true`, "invalid_props", "props"},
		{`["a","b"]`, "invalid_props", "props"},
		{`"not json"`, "invalid_props", "props"},
		{`"[1,2]"`, "invalid_props", "props"},
		{`"{\"a\":\"b\"} trailing"`, "invalid_props", "props"},
		{`"{\"a\":}"`, "invalid_props", "props"},
		// A syntax error in the body itself spoils the whole body.
		{`{"a":tru}`, "invalid_json", ""},
		{`{"a":"b",}`, "invalid_json", ""},
		{`["a",]`, "invalid_json", ""},
	} {
		_, _, err := ParsePlausible([]byte(`{"n":"x","p":` + tc.props + `}`))
		t.Run(tc.props, func(t *testing.T) { wantErr(t, err, http.StatusBadRequest, tc.reason, tc.field) })
	}
}

func TestParsePlausibleTooManyRawProps(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"n":"x","p":{`)
	for i := 0; i <= maxRawProps; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":"v"`, i)
	}
	b.WriteString(`}}`)
	_, _, err := ParsePlausible([]byte(b.String()))
	wantErr(t, err, http.StatusBadRequest, "too_many_props", "props")

	// Dropped values do not count towards the bound...
	b.Reset()
	b.WriteString(`{"n":"x","p":{`)
	for i := 0; i < 2*maxRawProps; i++ {
		fmt.Fprintf(&b, `"d%d":null,`, i)
	}
	b.WriteString(`"keep":"1"}}`)
	in, _ := mustParsePlausible(t, b.String())
	if !reflect.DeepEqual(in.Props, []Prop{{"keep", "1"}}) {
		t.Errorf("props = %v", in.Props)
	}
}

func TestParsePlausibleDomains(t *testing.T) {
	for _, tc := range []struct {
		d    string
		want []string
	}{
		{`"example.com"`, []string{"example.com"}},
		{`"a.example, b.example,c.example"`, []string{"a.example", "b.example", "c.example"}},
		{`" a.example ,, ,b.example, "`, []string{"a.example", "b.example"}},
		{`""`, nil},
		{`" , "`, nil},
		{`"1,2,3,4,5,6,7,8,9,10"`, []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10"}},
	} {
		_, domains := mustParsePlausible(t, `{"n":"x","d":`+tc.d+`}`)
		if !reflect.DeepEqual(domains, tc.want) {
			t.Errorf("d=%s: domains = %q, want %q", tc.d, domains, tc.want)
		}
	}
	_, _, err := ParsePlausible([]byte(`{"n":"x","d":"1,2,3,4,5,6,7,8,9,10,11"}`))
	wantErr(t, err, http.StatusBadRequest, "invalid_field", "domain")
}

func TestParsePlausibleIgnoresUnknownFields(t *testing.T) {
	in, _ := mustParsePlausible(t, `{"v":20,"n":"purchase","$":{"amount":"12.50","currency":"EUR"},
		"u":"https://example.com/","future":[1,{"x":null}],"N":"ignored","NAME":5,"user_id":"u1"}`)
	if in.Name != "purchase" || in.URL != "https://example.com/" {
		t.Errorf("got %+v", *in)
	}
	if in.UserID != "" || in.Props != nil {
		t.Errorf("unknown fields leaked into the input: %+v", *in)
	}
	// ...but an unknown field must still be well-formed JSON.
	_, _, err := ParsePlausible([]byte(`{"n":"x","v":[1,}`))
	wantErr(t, err, http.StatusBadRequest, "invalid_json", "")
}

func TestParsePlausibleTypeErrors(t *testing.T) {
	for _, tc := range []struct{ body, field string }{
		{`{"n":5}`, "name"},
		{`{"name":["x"]}`, "name"},
		{`{"u":true}`, "url"},
		{`{"url":{}}`, "url"},
		{`{"d":1}`, "domain"},
		{`{"domain":[]}`, "domain"},
		{`{"r":2}`, "referrer"},
		{`{"referrer":false}`, "referrer"},
		{`{"i":"yes"}`, "interactive"},
		{`{"interactive":1}`, "interactive"},
		{`{"h":2}`, "h"},
		{`{"h":"1"}`, "h"},
		{`{"sd":101}`, "sd"},
		{`{"sd":-1}`, "sd"},
		{`{"sd":"50"}`, "sd"},
		{`{"sd":50.5}`, "sd"},
		{`{"sd":1e1}`, "sd"},
		{`{"e":-1}`, "e"},
		{`{"e":1.5}`, "e"},
		{`{"e":"100"}`, "e"},
		{`{"e":99999999999999999999}`, "e"},
		{`{"consent":"no"}`, "consent"},
		{`{"consent":0}`, "consent"},
	} {
		t.Run(tc.body, func(t *testing.T) {
			in, d, err := ParsePlausible([]byte(tc.body))
			he := wantErr(t, err, http.StatusBadRequest, "invalid_field", tc.field)
			if in != nil || d != nil {
				t.Errorf("got input %+v and domains %q along with the error", in, d)
			}
			if he.Msg == "" {
				t.Error("empty message")
			}
		})
	}
	// The message says what was expected, not Go internals.
	_, _, err := ParsePlausible([]byte(`{"n":5}`))
	if he := asHTTPErr(t, err); he.Msg != "must be string, not number" {
		t.Errorf("message = %q", he.Msg)
	}
}

func TestParsePlausibleInvalidJSON(t *testing.T) {
	for _, body := range []string{
		``,
		`   `,
		`{`,
		`{"n":"x"`,
		`{"n":"x",}`,
		`{"n" "x"}`,
		`{n:"x"}`,
		`{'n':'x'}`,
		`[]`,
		`[{"n":"x"}]`,
		`"n"`,
		`null`,
		`42`,
		`{"n":"x"}garbage`,
		`{"n":"x"} {"n":"y"}`,
		`{"n":"x"}}`,
		`{"n":"x\u12"}`,
		"{\"n\":\"a\x01b\"}",
		"{\"n\":\"\xff\"}",
		`{"n":"x","sd":01}`,
		`{"n":"x","e":-}`,
		`{"n":"x","h":tru}`,
		`{"n":"x","i":nul}`,
	} {
		t.Run(body, func(t *testing.T) {
			in, d, err := ParsePlausible([]byte(body))
			wantErr(t, err, http.StatusBadRequest, "invalid_json", "")
			if in != nil || d != nil {
				t.Errorf("got input %+v and domains %q along with the error", in, d)
			}
		})
	}
	// Trailing whitespace is fine.
	mustParsePlausible(t, " \t\r\n{\"n\":\"x\"} \r\n\t")
}

func TestParsePlausibleDoesNotAliasBody(t *testing.T) {
	// HandleEvent reuses request buffers: nothing parsed may point into them.
	body := []byte(`{"n":"signup","u":"https://example.com/","r":"https://r.example/","d":"example.com","p":{"key":"value","num":12}}`)
	in, domains, err := ParsePlausible(body)
	if err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = 'X'
	}
	if in.Name != "signup" || in.URL != "https://example.com/" || in.Referrer != "https://r.example/" ||
		!reflect.DeepEqual(domains, []string{"example.com"}) ||
		!reflect.DeepEqual(in.Props, []Prop{{"key", "value"}, {"num", "12"}}) {
		t.Errorf("parsed values changed with the body: %+v %q", *in, domains)
	}
}

// parseTS runs parseTimestamp over one JSON value.
func parseTS(t *testing.T, v string) (time.Time, error) {
	t.Helper()
	r := jsonscan.NewReader([]byte(v))
	ts, err := parseTimestamp(r)
	if err == nil {
		if e := r.End(); e != nil {
			t.Fatalf("parseTimestamp(%s) did not consume the value: %v", v, e)
		}
	}
	return ts, err
}

func TestParseTimestamp(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Time
	}{
		{`"2026-01-02T03:04:05Z"`, base},
		{`"2026-01-02T04:04:05+01:00"`, base},
		{`"2026-01-02T03:04:05.123456789Z"`, base.Add(123456789)},
		{`1767323045`, base},
		{`1767323045.5`, base.Add(500 * time.Millisecond)},
		{`1767323045123`, base.Add(123 * time.Millisecond)},
		{`1767323045123.0`, base.Add(123 * time.Millisecond)},
		{`0`, time.Unix(0, 0)},
		// Just under 1e11 is still seconds (year 5138); 1e11 is milliseconds (1973).
		{`99999999999`, time.Unix(99999999999, 0)},
		{`100000000000`, time.UnixMilli(100000000000)},
		{`1e11`, time.UnixMilli(100000000000)},
		{`100000000000000`, time.UnixMilli(1e14)},
		{`null`, time.Time{}},
	} {
		got, err := parseTS(t, tc.v)
		if err != nil {
			t.Errorf("parseTimestamp(%s): %v", tc.v, err)
			continue
		}
		if !got.Equal(tc.want) || got.IsZero() != tc.want.IsZero() {
			t.Errorf("parseTimestamp(%s) = %v, want %v", tc.v, got, tc.want)
		}
	}
	for _, v := range []string{
		`"yesterday"`, `"2026-01-02"`, `"2026-01-02 03:04:05"`, `"2026-01-02T03:04:05"`, `""`,
		`-1`, `-0.5`, `100000000000001`, `1e15`, `1e400`, `true`, `[]`, `{}`,
	} {
		_, err := parseTS(t, v)
		t.Run(v, func(t *testing.T) { wantErr(t, err, http.StatusBadRequest, "bad_timestamp", "timestamp") })
	}
	_, err := parseTS(t, `[1,`)
	wantErr(t, err, http.StatusBadRequest, "invalid_json", "")
}
