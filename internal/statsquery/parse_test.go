package statsquery

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseFull(t *testing.T) {
	b := `{
		"site_id": "example.com",
		"metrics": ["visitors", "pageviews"],
		"date_range": ["2024-01-01", "2024-01-31"],
		"dimensions": ["time:day", "visit:country"],
		"filters": [["is", "event:page", ["/b", "/a", "/b"]], ["contains_not", "visit:source", ["spam"]]],
		"order_by": [["visitors", "desc"], ["time:day", "asc"]],
		"pagination": {"limit": 50, "offset": 10},
		"include": {"time_labels": true},
		"privacy": {"epsilon": 0.5, "purpose": "weekly-report_2"}
	}`
	got := mustParse(t, b)
	want := Query{
		SiteID:     "example.com",
		Metrics:    []Metric{Visitors, Pageviews},
		From:       date(2024, 1, 1),
		To:         date(2024, 2, 1),
		Range:      "2024-01-01..2024-01-31",
		Dimensions: []string{"time:day", "visit:country"},
		Filters: []Filter{
			{Op: "is", Dim: "event:page", Values: []string{"/a", "/b"}},
			{Op: "contains_not", Dim: "visit:source", Values: []string{"spam"}},
		},
		OrderBy: []Order{{Key: "visitors", Desc: true}, {Key: "time:day"}},
		Limit:   50,
		Offset:  10,
		Include: Include{TimeLabels: true},
		Epsilon: 0.5,
		Purpose: "weekly-report_2",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if got.TimeDim() != "time:day" || got.BreakdownDim() != "visit:country" {
		t.Errorf("TimeDim %q BreakdownDim %q", got.TimeDim(), got.BreakdownDim())
	}
}

func TestParseDefaults(t *testing.T) {
	q := mustParse(t, body())
	if q.Limit != DefaultLimit || q.Offset != 0 || q.Epsilon != 0 || q.Purpose != "" ||
		q.Dimensions != nil || q.Filters != nil || q.OrderBy != nil || q.Include.TimeLabels {
		t.Errorf("defaults: %+v", q)
	}
	if q.TimeDim() != "" || q.BreakdownDim() != "" {
		t.Errorf("TimeDim %q BreakdownDim %q", q.TimeDim(), q.BreakdownDim())
	}
	// null means absent for optional keys.
	q2 := mustParse(t, body("dimensions", "null", "filters", "null", "order_by", "null",
		"pagination", `{"limit":null,"offset":null}`, "include", `{"time_labels":null}`,
		"privacy", `{"epsilon":null,"purpose":null}`))
	if !reflect.DeepEqual(q, q2) {
		t.Errorf("nulls: %+v, want %+v", q2, q)
	}
}

func TestParseAccepts(t *testing.T) {
	long := strings.Repeat("x", MaxValueBytes)
	many := `["` + strings.Repeat(`v","`, MaxFilterValues-1) + `v"]`
	tenFilters := "[" + strings.TrimSuffix(strings.Repeat(`["is","visit:os",["Linux"]],`, MaxFilters), ",") + "]"
	for _, tc := range []struct {
		name  string
		body  string
		check func(Query) bool
	}{
		{"all metrics", body("metrics", `["visitors","visits","pageviews","events","bounce_rate","views_per_visit"]`),
			func(q Query) bool { return len(q.Metrics) == 6 }},
		{"time dimension only", body("dimensions", `["time:month"]`),
			func(q Query) bool { return q.TimeDim() == "time:month" && q.BreakdownDim() == "" }},
		{"breakdown first", body("dimensions", `["event:props:plan","time:hour"]`),
			func(q Query) bool { return q.TimeDim() == "time:hour" && q.BreakdownDim() == "event:props:plan" }},
		{"prop name 64 bytes", body("dimensions", `["event:props:`+strings.Repeat("p", 64)+`"]`), nil},
		{"prop name with space and unicode", body("dimensions", `["event:props:Plan Tier é"]`), nil},
		{"prop name like an identifier but not one", body("dimensions", `["event:props:zip"]`), nil},
		{"time:hour over 30d", body("date_range", `"30d"`, "dimensions", `["time:hour"]`), nil},
		{"time:hour over month", body("date_range", `"month"`, "dimensions", `["time:hour"]`), nil},
		{"time:hour over 31 days", body("date_range", `["2024-01-01","2024-01-31"]`, "dimensions", `["time:hour"]`), nil},
		{"bounce_rate by visit dim", body("metrics", `["bounce_rate","views_per_visit"]`, "dimensions", `["visit:entry_page","time:day"]`), nil},
		{"bounce_rate filtered by event dim", body("metrics", `["bounce_rate"]`, "filters", `[["is","event:page",["/"]]]`), nil},
		{"value of 256 bytes", body("filters", `[["is","event:page",["`+long+`"]]]`), nil},
		{"empty value", body("filters", `[["is","visit:source",[""]]]`), nil},
		{"100 values", body("filters", `[["is","event:page",`+many+`]]`),
			func(q Query) bool { return len(q.Filters[0].Values) == 1 }},
		{"10 filters", body("filters", tenFilters), func(q Query) bool { return len(q.Filters) == 10 }},
		{"and form", body("filters", `["and",[["is","event:page",["/"]],["is_not","visit:os",["Linux"]]]]`),
			func(q Query) bool { return len(q.Filters) == 2 && q.Filters[1].Op == "is_not" }},
		{"nested and", body("filters", `[["and",[["is","event:page",["/"]],["and",[["contains","event:goal",["Sign"]]]]]],["is","visit:os",["Linux"]]]`),
			func(q Query) bool { return len(q.Filters) == 3 && q.Filters[1].Dim == "event:goal" }},
		{"filter on props", body("filters", `[["is","event:props:plan",["pro"]]]`), nil},
		{"order by dimension", body("dimensions", `["visit:os"]`, "order_by", `[["visit:os","asc"]]`),
			func(q Query) bool { return q.OrderBy[0] == Order{Key: "visit:os"} }},
		{"limit 1", body("pagination", `{"limit":1}`), func(q Query) bool { return q.Limit == 1 }},
		{"limit 1000 offset max", body("pagination", `{"limit":1000,"offset":1000000}`),
			func(q Query) bool { return q.Limit == 1000 && q.Offset == MaxOffset }},
		{"empty pagination", body("pagination", `{}`), func(q Query) bool { return q.Limit == DefaultLimit }},
		{"time_labels false without time", body("include", `{"time_labels":false}`), nil},
		{"epsilon 10", body("privacy", `{"epsilon":10}`), func(q Query) bool { return q.Epsilon == 10 }},
		{"epsilon 1e-3", body("privacy", `{"epsilon":1e-3}`), func(q Query) bool { return q.Epsilon == MinEpsilon }},
		{"empty purpose", body("privacy", `{"purpose":""}`), func(q Query) bool { return q.Purpose == "" }},
		{"purpose 64 bytes", body("privacy", `{"purpose":"`+strings.Repeat("a", 64)+`"}`), nil},
		{"site with port and path", body("site_id", `"shop.example.co.uk:8080/de"`), nil},
		{"idn site", body("site_id", `"bücher.example"`), nil},
		{"escaped key", `{"site\u005fid":"example.com","metrics":["visitors"],"date_range":"day"}`, nil},
		{"whitespace", "\n {\t\"site_id\" : \"example.com\" ,\"metrics\":[ \"visitors\" ],\"date_range\":\"day\"}\r\n ", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := mustParse(t, tc.body)
			if tc.check != nil && !tc.check(q) {
				t.Errorf("unexpected query %+v", q)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	long := strings.Repeat("x", MaxValueBytes+1)
	tooMany := `["` + strings.Repeat(`v","`, MaxFilterValues) + `v"]`
	leaf := `["is","visit:os",["Linux"]]`
	elevenFilters := "[" + strings.TrimSuffix(strings.Repeat(leaf+",", MaxFilters+1), ",") + "]"
	deep := leaf
	for range maxAndDepth + 1 {
		deep = `["and",[` + deep + `]]`
	}
	for _, tc := range []struct {
		name, body, field, msg string
	}{
		// JSON and top level.
		{"empty body", "", "", "empty body"},
		{"blank body", " \n", "", "empty body"},
		{"syntax", `{"site_id":`, "", "invalid JSON"},
		{"trailing data", body() + ` {}`, "", "invalid JSON"},
		{"array body", `[]`, "", "must be a JSON object"},
		{"null body", `null`, "", "must be a JSON object"},
		{"unknown key", body("date", `"2024-01-01"`), "date", "unknown field"},
		{"key case matters", body("Metrics", `["visitors"]`), "Metrics", "unknown field"},
		{"unknown key even if null", body("extra", `null`), "extra", "unknown field"},
		{"duplicate key", `{"site_id":"a.com","metrics":["visitors"],"metrics":["visits"],"date_range":"day"}`, "metrics", "duplicate"},
		{"duplicate via escape", `{"site_id":"a.com","metrics":["visitors"],"date_range":"day","date\u005frange":"7d"}`, "date_range", "duplicate"},

		// site_id.
		{"site missing", body("site_id", ""), "site_id", "required"},
		{"site null", body("site_id", "null"), "site_id", "required"},
		{"site number", body("site_id", "5"), "site_id", "must be a string, not a number"},
		{"site empty", body("site_id", `""`), "site_id", "empty"},
		{"site space", body("site_id", `"a b.com"`), "site_id", "domain"},
		{"site control", body("site_id", `"a\u0000.com"`), "site_id", "domain"},
		{"site too long", body("site_id", `"`+strings.Repeat("a", 254)+`"`), "site_id", "at most"},

		// metrics.
		{"metrics missing", body("metrics", ""), "metrics", "required"},
		{"metrics string", body("metrics", `"visitors"`), "metrics", "must be an array"},
		{"metrics empty", body("metrics", `[]`), "metrics", "at least one"},
		{"metrics 7", body("metrics", `["visitors","visits","pageviews","events","bounce_rate","views_per_visit","visitors"]`), "metrics", "at most 6"},
		{"metric number", body("metrics", `["visitors",1]`), "metrics[1]", "must be a string"},
		{"metric null", body("metrics", `[null]`), "metrics[0]", "must be a string, not null"},
		{"metric unknown", body("metrics", `["visitors","uniques"]`), "metrics[1]", `unknown metric "uniques"`},
		{"metric plausible only", body("metrics", `["visit_duration"]`), "metrics[0]", `"visit_duration" is not supported`},
		{"metric duplicate", body("metrics", `["visits","visitors","visits"]`), "metrics[2]", "twice"},
		{"metric case", body("metrics", `["Visitors"]`), "metrics[0]", "unknown metric"},

		// dimensions.
		{"dims object", body("dimensions", `{}`), "dimensions", "must be an array"},
		{"dim number", body("dimensions", `[1]`), "dimensions[0]", "must be a string"},
		{"dim unknown", body("dimensions", `["event:foo"]`), "dimensions[0]", `unknown dimension "event:foo"`},
		{"dim plausible only", body("dimensions", `["visit:city"]`), "dimensions[0]", `"visit:city" is not supported`},
		{"dim time:week", body("dimensions", `["time:week"]`), "dimensions[0]", "not supported"},
		{"three dims", body("dimensions", `["time:day","visit:os","visit:browser"]`), "dimensions", "at most 2"},
		{"two time dims", body("dimensions", `["time:day","time:month"]`), "dimensions[1]", "one time dimension"},
		{"two other dims", body("dimensions", `["visit:os","event:page"]`), "dimensions[1]", "other than time"},
		{"dim twice", body("dimensions", `["visit:os","visit:os"]`), "dimensions[1]", "twice"},
		{"props empty name", body("dimensions", `["event:props:"]`), "dimensions[0]", "property name"},
		{"props long name", body("dimensions", `["event:props:`+strings.Repeat("p", 65)+`"]`), "dimensions[0]", "property name"},
		{"props control char", body("dimensions", `["event:props:a\tb"]`), "dimensions[0]", "property name"},
		{"time:hour over 6mo", body("date_range", `"6mo"`, "dimensions", `["time:hour"]`), "dimensions[0]", "at most 31 days"},
		{"time:hour over 32 days", body("date_range", `["2024-01-01","2024-02-01"]`, "dimensions", `["visit:os","time:hour"]`), "dimensions[1]", "at most 31 days"},
		{"time:hour over all", body("date_range", `"all"`, "dimensions", `["time:hour"]`), "dimensions[0]", "at most 31 days"},
		{"bounce_rate by page", body("metrics", `["visitors","bounce_rate"]`, "dimensions", `["event:page"]`), "metrics[1]", `"bounce_rate" cannot be used with dimension "event:page"`},
		{"views_per_visit by prop", body("metrics", `["views_per_visit"]`, "dimensions", `["time:day","event:props:plan"]`), "metrics[0]", `"views_per_visit" cannot be used with dimension "event:props:plan"`},
		{"bounce_rate by goal", body("metrics", `["bounce_rate"]`, "dimensions", `["event:goal"]`), "metrics[0]", "visit metric"},

		// filters.
		{"filters string", body("filters", `"x"`), "filters", "must be an array"},
		{"filter not array", body("filters", `[{}]`), "filters[0]", "must be a filter"},
		{"filter empty", body("filters", `[[]]`), "filters[0]", "must be a filter"},
		{"filter op number", body("filters", `[[1,"event:page",["/"]]]`), "filters[0][0]", "must be a string"},
		{"filter dim number", body("filters", `[["is",1,["/"]]]`), "filters[0][1]", "must be a string"},
		{"filter values string", body("filters", `[["is","event:page","/"]]`), "filters[0][2]", "must be an array"},
		{"filter value number", body("filters", `[["is","event:page",["/",2]]]`), "filters[0][2][1]", "must be a string"},
		{"filter or", body("filters", `[["or",[`+leaf+`,`+leaf+`]]]`), "filters[0][0]", "not supported yet"},
		{"filter not", body("filters", `[["not",`+leaf+`]]`), "filters[0][0]", "not supported yet"},
		{"filter or bare", body("filters", `["or",[`+leaf+`]]`), "filters[0]", "not supported yet"},
		{"filter matches", body("filters", `[["matches","event:page",["^/a"]]]`), "filters[0][0]", `operator "matches" is not supported`},
		{"filter unknown op", body("filters", `[`+leaf+`,["equals","event:page",["/"]]]`), "filters[1][0]", `operator "equals" is not supported`},
		{"filter modifiers", body("filters", `[["is","event:page",["/"],{"case_sensitive":false}]]`), "filters[0][3]", "modifiers"},
		{"filter short", body("filters", `[["is","event:page"]]`), "filters[0]", "[operator, dimension, [values]]"},
		{"filter bare leaf", body("filters", leaf), "filters", "list of filters"},
		{"filter no values", body("filters", `[["is","event:page",[]]]`), "filters[0][2]", "1 to 100"},
		{"filter 101 values", body("filters", `[["is","event:page",`+tooMany+`]]`), "filters[0][2]", "1 to 100"},
		{"filter long value", body("filters", `[["is","event:page",["ok","`+long+`"]]]`), "filters[0][2][1]", "at most 256 bytes"},
		{"11 filters", body("filters", elevenFilters), "filters", "at most 10"},
		{"11 filters via and", body("filters", `["and",`+elevenFilters+`]`), "filters", "at most 10"},
		{"and empty", body("filters", `[["and",[]]]`), "filters[0][1]", "at least one"},
		{"and extra", body("filters", `[["and",[`+leaf+`],[]]]`), "filters[0]", `["and", [filters...]]`},
		{"and not list", body("filters", `[["and",`+`"x"]]`), "filters[0][1]", "must be an array"},
		{"and too deep", body("filters", `[`+deep+`]`), "filters[0][1][0][1][0][1][0][1][0]", "nested too deeply"},
		{"and inner error path", body("filters", `[["and",[`+leaf+`,["is","event:foo",["x"]]]]]`), "filters[0][1][1][1]", "unknown dimension"},
		{"filter on time", body("filters", `[["is","time:day",["2024-01-01"]]]`), "filters[0][1]", "date_range"},
		{"filter unknown dim", body("filters", `[["is","visit:city",["Paris"]]]`), "filters[0][1]", "not supported"},

		// order_by.
		{"order not array", body("order_by", `{"visitors":"desc"}`), "order_by", "must be an array"},
		{"order pair not array", body("order_by", `["visitors"]`), "order_by[0]", "must be a"},
		{"order pair short", body("order_by", `[["visitors"]]`), "order_by[0]", "pair"},
		{"order pair long", body("order_by", `[["visitors","desc","x"]]`), "order_by[0]", "pair"},
		{"order unknown key", body("order_by", `[["visits","desc"]]`), "order_by[0][0]", `"visits" is not a metric or dimension of this query`},
		{"order dim not in query", body("order_by", `[["visit:os","desc"]]`), "order_by[0][0]", "not a metric or dimension"},
		{"order key number", body("order_by", `[[1,"desc"]]`), "order_by[0][0]", "must be a string"},
		{"order dir", body("order_by", `[["visitors","descending"]]`), "order_by[0][1]", `"asc" or "desc"`},
		{"order dir bool", body("order_by", `[["visitors",true]]`), "order_by[0][1]", "must be a string, not a boolean"},
		{"order twice", body("metrics", `["visitors","visits"]`, "order_by", `[["visitors","desc"],["visitors","asc"]]`), "order_by[1][0]", "twice"},
		{"order too many", body("order_by", `[["visitors","desc"],["visitors","asc"]]`), "order_by", "at most 1"},

		// pagination.
		{"pagination array", body("pagination", `[]`), "pagination", "must be an object"},
		{"limit string", body("pagination", `{"limit":"10"}`), "pagination.limit", "must be an integer, not a string"},
		{"limit 0", body("pagination", `{"limit":0}`), "pagination.limit", "from 1 to 1000"},
		{"limit 1001", body("pagination", `{"limit":1001}`), "pagination.limit", "from 1 to 1000"},
		{"limit fraction", body("pagination", `{"limit":1.5}`), "pagination.limit", "integer"},
		{"limit exponent", body("pagination", `{"limit":1e2}`), "pagination.limit", "integer"},
		{"limit huge", body("pagination", `{"limit":99999999999999999999999}`), "pagination.limit", "integer"},
		{"offset negative", body("pagination", `{"offset":-1}`), "pagination.offset", "from 0 to 1000000"},
		{"offset huge", body("pagination", `{"offset":1000001}`), "pagination.offset", "from 0"},
		{"pagination unknown", body("pagination", `{"page":2}`), "pagination.page", "unknown field"},
		{"pagination duplicate", body("pagination", `{"limit":1,"limit":2}`), "pagination.limit", "duplicate"},

		// include.
		{"include array", body("include", `["time_labels"]`), "include", "must be an object"},
		{"time_labels string", body("include", `{"time_labels":"yes"}`), "include.time_labels", "must be a boolean"},
		{"time_labels without time", body("include", `{"time_labels":true}`, "dimensions", `["visit:os"]`), "include.time_labels", "time dimension"},
		{"include imports", body("include", `{"imports":true}`), "include.imports", "not supported"},
		{"include unknown", body("include", `{"totals":true}`), "include.totals", "unknown field"},

		// privacy.
		{"privacy string", body("privacy", `"high"`), "privacy", "must be an object"},
		{"epsilon string", body("privacy", `{"epsilon":"1"}`), "privacy.epsilon", "must be a number, not a string"},
		{"epsilon 0", body("privacy", `{"epsilon":0}`), "privacy.epsilon", "from 0.001 to 10"},
		{"epsilon negative", body("privacy", `{"epsilon":-1}`), "privacy.epsilon", "from 0.001 to 10"},
		{"epsilon tiny", body("privacy", `{"epsilon":1e-300}`), "privacy.epsilon", "from 0.001 to 10"},
		{"epsilon over 10", body("privacy", `{"epsilon":10.000001}`), "privacy.epsilon", "from 0.001 to 10"},
		{"epsilon overflows to Inf", body("privacy", `{"epsilon":1e400}`), "privacy.epsilon", "finite"},
		{"purpose number", body("privacy", `{"purpose":1}`), "privacy.purpose", "must be a string"},
		{"purpose upper", body("privacy", `{"purpose":"Report"}`), "privacy.purpose", "a-z"},
		{"purpose space", body("privacy", `{"purpose":"a b"}`), "privacy.purpose", "a-z"},
		{"purpose long", body("privacy", `{"purpose":"`+strings.Repeat("a", 65)+`"}`), "privacy.purpose", "at most 64"},
		{"privacy unknown", body("privacy", `{"delta":1e-6}`), "privacy.delta", "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			he := parseErr(t, tc.body)
			if he.Field != tc.field || !strings.Contains(he.Msg, tc.msg) {
				t.Errorf("got field %q msg %q; want field %q msg containing %q", he.Field, he.Msg, tc.field, tc.msg)
			}
			if he.Status != 400 {
				t.Errorf("status %d", he.Status)
			}
		})
	}
}

// Identifiers are refused as dimensions and in filters, however spelled.
func TestParseIdentifiers(t *testing.T) {
	for _, d := range []string{
		"visit:user_id", "event:user_id", "visit:ip", "event:pseudonym", "visit:visitor_id",
		"event:props:email", "event:props:E-Mail", "event:props:user_id", "event:props:UserId",
		"event:props:userid", "event:props:ip", "event:props:phone", "event:props:ssn",
		"event:props:name", "event:props:Full Name", "event:props:ip_address", "visit:email",
		"event:session_id", "event:props:customer.id",
	} {
		t.Run(d, func(t *testing.T) {
			he := parseErr(t, body("dimensions", fmt.Sprintf("[%q]", d)))
			if he.Field != "dimensions[0]" || he.Reason != reasonIdentifier || !strings.Contains(he.Msg, "single out") {
				t.Errorf("dimension: %+v", he)
			}
			he = parseErr(t, body("filters", fmt.Sprintf(`[["is","event:page",["/"]],["is_not",%q,["x"]]]`, d)))
			if he.Field != "filters[1][1]" || he.Reason != reasonIdentifier || he.Msg != "filters on identifiers are not allowed" {
				t.Errorf("filter: %+v", he)
			}
		})
	}
}

// The time:hour bound follows the resolved range, so "year" passes in
// January and fails from February on.
func TestParseHourYear(t *testing.T) {
	b := []byte(body("date_range", `"year"`, "dimensions", `["time:hour"]`))
	if _, err := Parse(b, time.Date(2024, 1, 31, 12, 0, 0, 0, time.UTC), testEarliest); err != nil {
		t.Errorf("31 January: %v", err)
	}
	if _, err := Parse(b, time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC), testEarliest); err == nil {
		t.Errorf("1 February: accepted a 32-day range")
	}
}

func TestParseTooLarge(t *testing.T) {
	b := body("site_id", `"`+strings.Repeat("a", MaxBodyBytes)+`"`)
	if e := parseErr(t, b); e.Status != 413 || !strings.Contains(e.Msg, "larger than") {
		t.Errorf("got %d %v", e.Status, e)
	}
}

// Errors quote short names but never long client strings or filter values.
func TestParseEchoes(t *testing.T) {
	secret := "alice@example.com-" + strings.Repeat("s", 300)
	for _, b := range []string{
		body("metrics", fmt.Sprintf("[%q]", secret)),
		body("dimensions", fmt.Sprintf("[%q]", secret)),
		body("dimensions", fmt.Sprintf("[%q]", "event:props:"+secret)),
		body("filters", fmt.Sprintf(`[["is","event:page",[%q]]]`, secret)),
		body("filters", fmt.Sprintf(`[[%q,"event:page",["x"]]]`, secret)),
		body("order_by", fmt.Sprintf(`[[%q,"desc"]]`, secret)),
		body("date_range", fmt.Sprintf("%q", secret)),
		body(secret, "1"),
		body("privacy", fmt.Sprintf(`{%q:1}`, secret)),
		body("privacy", fmt.Sprintf(`{"purpose":%q}`, secret)),
	} {
		he := parseErr(t, b)
		if strings.Contains(he.Msg+he.Field, strings.Repeat("s", maxEcho)) {
			t.Errorf("echo longer than %d bytes: field %q msg %q", maxEcho, he.Field, he.Msg)
		}
		if strings.Contains(he.Field, "s") && len(he.Field) > maxEcho {
			t.Errorf("field of %d bytes", len(he.Field))
		}
	}
	// Filter values are never echoed at all, even short ones.
	he := parseErr(t, body("filters", `[["is","event:page",["bob@example.com",1]]]`))
	if strings.Contains(he.Msg, "bob") {
		t.Errorf("filter value echoed: %q", he.Msg)
	}
}

func TestEcho(t *testing.T) {
	for _, s := range []string{
		"", "short", strings.Repeat("a", 62), strings.Repeat("a", 63), strings.Repeat("é", 40),
		strings.Repeat("\x00", 20), strings.Repeat("\xff", 100), strings.Repeat("日本", 100),
	} {
		q := echo(s)
		if len(q) > maxEcho {
			t.Errorf("echo(%.20q) = %d bytes", s, len(q))
		}
		if full := fmt.Sprintf("%q", s); len(full) <= maxEcho && q != full {
			t.Errorf("echo(%q) = %s, want plain quote", s, q)
		}
	}
	if got := capField(strings.Repeat("é", 100)); len(got) > maxEcho || !strings.HasSuffix(got, "...") {
		t.Errorf("capField: %q", got)
	}
}

// Date ranges at fixed clocks, including month, year and leap-day edges.
func TestParseDateRange(t *testing.T) {
	leap := time.Date(2024, 2, 29, 23, 59, 59, 999999999, time.UTC)
	newYear := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	plainMar1 := time.Date(2023, 3, 1, 0, 30, 0, 0, time.UTC)
	yearEnd := time.Date(2024, 12, 31, 23, 59, 59, 0, time.UTC)
	// 01:00 on 1 March at UTC+5 is still 29 February in UTC.
	east := time.Date(2024, 3, 1, 1, 0, 0, 0, time.FixedZone("UTC+5", 5*3600))
	for _, tc := range []struct {
		now      time.Time
		earliest time.Time
		rng      string
		from, to time.Time
		norm     string
	}{
		{testNow, testEarliest, `"day"`, date(2024, 3, 15), date(2024, 3, 16), "day"},
		{testNow, testEarliest, `"7d"`, date(2024, 3, 9), date(2024, 3, 16), "7d"},
		{testNow, testEarliest, `"30d"`, date(2024, 2, 15), date(2024, 3, 16), "30d"},
		{testNow, testEarliest, `"month"`, date(2024, 3, 1), date(2024, 3, 16), "month"},
		{testNow, testEarliest, `"6mo"`, date(2023, 10, 1), date(2024, 3, 16), "6mo"},
		{testNow, testEarliest, `"12mo"`, date(2023, 4, 1), date(2024, 3, 16), "12mo"},
		{testNow, testEarliest, `"year"`, date(2024, 1, 1), date(2024, 3, 16), "year"},
		{testNow, testEarliest, `"all"`, date(2023, 6, 10), date(2024, 3, 16), "all"},

		{newYear, testEarliest, `"day"`, date(2024, 1, 1), date(2024, 1, 2), "day"},
		{newYear, testEarliest, `"7d"`, date(2023, 12, 26), date(2024, 1, 2), "7d"},
		{newYear, testEarliest, `"30d"`, date(2023, 12, 3), date(2024, 1, 2), "30d"},
		{newYear, testEarliest, `"month"`, date(2024, 1, 1), date(2024, 1, 2), "month"},
		{newYear, testEarliest, `"6mo"`, date(2023, 8, 1), date(2024, 1, 2), "6mo"},
		{newYear, testEarliest, `"12mo"`, date(2023, 2, 1), date(2024, 1, 2), "12mo"},
		{newYear, testEarliest, `"year"`, date(2024, 1, 1), date(2024, 1, 2), "year"},

		{leap, testEarliest, `"day"`, date(2024, 2, 29), date(2024, 3, 1), "day"},
		{leap, testEarliest, `"7d"`, date(2024, 2, 23), date(2024, 3, 1), "7d"},
		{leap, testEarliest, `"30d"`, date(2024, 1, 31), date(2024, 3, 1), "30d"},
		{leap, testEarliest, `"month"`, date(2024, 2, 1), date(2024, 3, 1), "month"},
		{leap, testEarliest, `"6mo"`, date(2023, 9, 1), date(2024, 3, 1), "6mo"},
		{leap, testEarliest, `"12mo"`, date(2023, 3, 1), date(2024, 3, 1), "12mo"},
		{leap, testEarliest, `"year"`, date(2024, 1, 1), date(2024, 3, 1), "year"},
		{east, testEarliest, `"day"`, date(2024, 2, 29), date(2024, 3, 1), "day"},

		{plainMar1, testEarliest, `"7d"`, date(2023, 2, 23), date(2023, 3, 2), "7d"},
		{plainMar1, testEarliest, `"30d"`, date(2023, 1, 31), date(2023, 3, 2), "30d"},
		{plainMar1, testEarliest, `"month"`, date(2023, 3, 1), date(2023, 3, 2), "month"},

		{yearEnd, testEarliest, `"6mo"`, date(2024, 7, 1), date(2025, 1, 1), "6mo"},
		{yearEnd, testEarliest, `"12mo"`, date(2024, 1, 1), date(2025, 1, 1), "12mo"},
		{yearEnd, testEarliest, `"year"`, date(2024, 1, 1), date(2025, 1, 1), "year"},
		{yearEnd, testEarliest, `"month"`, date(2024, 12, 1), date(2025, 1, 1), "month"},

		// "all": earliest clamped to 10 years back; none or future means today.
		{testNow, time.Time{}, `"all"`, date(2024, 3, 15), date(2024, 3, 16), "all"},
		{testNow, date(2024, 3, 20), `"all"`, date(2024, 3, 15), date(2024, 3, 16), "all"},
		{testNow, date(2000, 1, 1), `"all"`, date(2014, 3, 15), date(2024, 3, 16), "all"},
		{leap, date(2000, 1, 1), `"all"`, date(2014, 3, 1), date(2024, 3, 1), "all"},
		{testNow, time.Date(2024, 3, 15, 23, 0, 0, 0, time.UTC), `"all"`, date(2024, 3, 15), date(2024, 3, 16), "all"},
		{testNow, time.Date(2024, 3, 10, 23, 0, 0, 0, time.FixedZone("x", -3600)), `"all"`, date(2024, 3, 11), date(2024, 3, 16), "all"},

		// Explicit ranges: inclusive dates, To is the day after the last.
		{testNow, testEarliest, `["2024-01-01","2024-01-31"]`, date(2024, 1, 1), date(2024, 2, 1), "2024-01-01..2024-01-31"},
		{testNow, testEarliest, `["2024-03-15","2024-03-15"]`, date(2024, 3, 15), date(2024, 3, 16), "2024-03-15..2024-03-15"},
		{testNow, testEarliest, `["2024-03-16","2024-03-16"]`, date(2024, 3, 16), date(2024, 3, 17), "2024-03-16..2024-03-16"},
		{testNow, testEarliest, `["2014-03-15","2014-12-31"]`, date(2014, 3, 15), date(2015, 1, 1), "2014-03-15..2014-12-31"},
		{leap, testEarliest, `["2024-02-01","2024-02-29"]`, date(2024, 2, 1), date(2024, 3, 1), "2024-02-01..2024-02-29"},
		{leap, testEarliest, `["2024-03-01","2024-03-01"]`, date(2024, 3, 1), date(2024, 3, 2), "2024-03-01..2024-03-01"},
		{leap, testEarliest, `["2014-03-01","2014-03-01"]`, date(2014, 3, 1), date(2014, 3, 2), "2014-03-01..2014-03-01"},
		{yearEnd, testEarliest, `["2024-12-01","2025-01-01"]`, date(2024, 12, 1), date(2025, 1, 2), "2024-12-01..2025-01-01"},
	} {
		name := tc.now.Format(time.RFC3339) + " " + tc.rng
		t.Run(name, func(t *testing.T) {
			q, err := Parse([]byte(body("date_range", tc.rng)), tc.now, tc.earliest)
			if err != nil {
				t.Fatal(err)
			}
			if !q.From.Equal(tc.from) || !q.To.Equal(tc.to) || q.Range != tc.norm {
				t.Errorf("got %s..%s %q, want %s..%s %q", q.From.Format(time.DateOnly), q.To.Format(time.DateOnly), q.Range,
					tc.from.Format(time.DateOnly), tc.to.Format(time.DateOnly), tc.norm)
			}
			if q.From.Location() != time.UTC || q.To.Location() != time.UTC {
				t.Errorf("not UTC: %v %v", q.From, q.To)
			}
		})
	}
}

func TestParseDateRangeRejects(t *testing.T) {
	leap := time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		now         time.Time
		rng, field  string
		msgContains string
	}{
		{testNow, "", "date_range", "required"},
		{testNow, "null", "date_range", "required"},
		{testNow, `7`, "date_range", "must be a keyword"},
		{testNow, `{"from":"2024-01-01"}`, "date_range", "not an object"},
		{testNow, `"8d"`, "date_range", `not "8d"`},
		{testNow, `"7D"`, "date_range", "must be"},
		{testNow, `" 7d"`, "date_range", "must be"},
		{testNow, `"today"`, "date_range", "must be"},
		{testNow, `"realtime"`, "date_range", "not supported"},
		{testNow, `"28d"`, "date_range", "not supported"},
		{testNow, `[]`, "date_range", "pair of dates"},
		{testNow, `["2024-01-01"]`, "date_range", "pair of dates"},
		{testNow, `["2024-01-01","2024-01-02","2024-01-03"]`, "date_range", "pair of dates"},
		{testNow, `["2024-01-01",20240102]`, "date_range[1]", "must be a string"},
		{testNow, `["2023-02-29","2023-03-01"]`, "date_range[0]", "calendar date"},
		{testNow, `["2024-01-01","2024-02-30"]`, "date_range[1]", "calendar date"},
		{testNow, `["2024-13-01","2024-01-01"]`, "date_range[0]", "calendar date"},
		{testNow, `["2024-1-01","2024-01-02"]`, "date_range[0]", "calendar date"},
		{testNow, `["2024-01-01T00:00:00Z","2024-01-02"]`, "date_range[0]", "calendar date"},
		{testNow, `[" 2024-01-01","2024-01-02"]`, "date_range[0]", "calendar date"},
		{testNow, `["2024-02-01","2024-01-31"]`, "date_range", "after the last"},
		{testNow, `["2024-03-17","2024-03-17"]`, "date_range", "at most 2024-03-16"},
		{testNow, `["2024-03-01","2024-03-17"]`, "date_range", "at most 2024-03-16"},
		{testNow, `["2014-03-14","2024-01-01"]`, "date_range", "within 10 years"},
		{testNow, `["0001-01-01","2024-01-01"]`, "date_range", "within 10 years"},
		{leap, `["2014-02-28","2014-03-05"]`, "date_range", "from 2014-03-01"},
		{leap, `["2024-03-02","2024-03-02"]`, "date_range", "at most 2024-03-01"},
	} {
		t.Run(tc.rng, func(t *testing.T) {
			e := parseErrAt(t, body("date_range", tc.rng), tc.now)
			if e.Field != tc.field || !strings.Contains(e.Msg, tc.msgContains) {
				t.Errorf("got %v; want field %q msg containing %q", e, tc.field, tc.msgContains)
			}
		})
	}
}
