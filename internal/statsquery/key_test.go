package statsquery

import (
	"strings"
	"testing"
	"time"
)

func keyOf(t *testing.T, b string) string {
	t.Helper()
	return mustParse(t, b).Key()
}

// Semantically identical queries share a key.
func TestKeyEqual(t *testing.T) {
	base := `{"site_id":"example.com","metrics":["visitors","pageviews"],"date_range":"7d",
		"dimensions":["visit:os"],"filters":[["is","event:page",["/a","/b"]],["is_not","visit:os",["Linux"]]]}`
	for _, tc := range []struct{ name, a, b string }{
		{"whitespace and key order", base,
			"{\n  \"filters\" : [ [\"is\", \"event:page\", [\"/a\", \"/b\"]], [\"is_not\", \"visit:os\", [\"Linux\"]] ],\n" +
				"  \"dimensions\":[\"visit:os\"], \"date_range\":\"7d\",\t\"metrics\":[\"visitors\",\"pageviews\"], \"site_id\":\"example.com\"\n}\n"},
		{"filter value order and repeats", base,
			`{"site_id":"example.com","metrics":["visitors","pageviews"],"date_range":"7d","dimensions":["visit:os"],
			"filters":[["is","event:page",["/b","/a","/b"]],["is_not","visit:os",["Linux","Linux"]]]}`},
		{"filter order", base,
			`{"site_id":"example.com","metrics":["visitors","pageviews"],"date_range":"7d","dimensions":["visit:os"],
			"filters":[["is_not","visit:os",["Linux"]],["is","event:page",["/a","/b"]]]}`},
		{"and form", base,
			`{"site_id":"example.com","metrics":["visitors","pageviews"],"date_range":"7d","dimensions":["visit:os"],
			"filters":["and",[["is_not","visit:os",["Linux"]],["and",[["is","event:page",["/a","/b"]]]]]]}`},
		{"repeated filter", base,
			`{"site_id":"example.com","metrics":["visitors","pageviews"],"date_range":"7d","dimensions":["visit:os"],
			"filters":[["is","event:page",["/a","/b"]],["is_not","visit:os",["Linux"]],["is","event:page",["/b","/a"]]]}`},
		{"other site", base, strings.Replace(base, "example.com", "other.org", 1)},
		{"keyword vs dates", base, strings.Replace(base, `"7d"`, `["2024-03-09","2024-03-15"]`, 1)},
		{"explicit defaults", base, strings.Replace(base, `"dimensions"`,
			`"pagination":{"limit":100,"offset":0},"include":{"time_labels":false},"privacy":{"epsilon":null},"order_by":null,"dimensions"`, 1)},
		{"purpose", base, strings.Replace(base, `"dimensions"`, `"privacy":{"purpose":"audit"},"dimensions"`, 1)},
		{"epsilon spelling", body("privacy", `{"epsilon":1}`), body("privacy", `{"epsilon":1.0e0}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if a, b := keyOf(t, tc.a), keyOf(t, tc.b); a != b {
				t.Errorf("keys differ:\n%s\n%s", a, b)
			}
		})
	}
}

// Queries that can answer differently get different keys.
func TestKeyDiffers(t *testing.T) {
	base := body("dimensions", `["time:day","visit:os"]`, "filters", `[["is","event:page",["/a","/b"]]]`)
	variants := map[string]string{
		"base":            base,
		"metric order":    body("metrics", `["visits","visitors"]`),
		"metric order 2":  body("metrics", `["visitors","visits"]`),
		"other metric":    body("metrics", `["pageviews"]`),
		"plain":           body(),
		"range":           body("date_range", `"30d"`),
		"dates":           body("date_range", `["2024-03-09","2024-03-14"]`),
		"dimension order": body("dimensions", `["visit:os","time:day"]`, "filters", `[["is","event:page",["/a","/b"]]]`),
		"time only":       body("dimensions", `["time:day"]`, "filters", `[["is","event:page",["/a","/b"]]]`),
		"op":              body("dimensions", `["time:day","visit:os"]`, "filters", `[["is_not","event:page",["/a","/b"]]]`),
		"contains":        body("dimensions", `["time:day","visit:os"]`, "filters", `[["contains","event:page",["/a","/b"]]]`),
		"filter dim":      body("dimensions", `["time:day","visit:os"]`, "filters", `[["is","visit:entry_page",["/a","/b"]]]`),
		"fewer values":    body("dimensions", `["time:day","visit:os"]`, "filters", `[["is","event:page",["/a"]]]`),
		"joined values":   body("dimensions", `["time:day","visit:os"]`, "filters", `[["is","event:page",["/a\" \"/b"]]]`),
		"split filters":   body("dimensions", `["time:day","visit:os"]`, "filters", `[["is","event:page",["/a"]],["is","event:page",["/b"]]]`),
		"order desc":      body("order_by", `[["visitors","desc"]]`),
		"order asc":       body("order_by", `[["visitors","asc"]]`),
		"limit":           body("pagination", `{"limit":10}`),
		"offset":          body("pagination", `{"offset":100}`),
		"time labels":     body("dimensions", `["time:day"]`, "include", `{"time_labels":true}`),
		"time no labels":  body("dimensions", `["time:day"]`),
		"epsilon":         body("privacy", `{"epsilon":1}`),
		"epsilon 2":       body("privacy", `{"epsilon":2}`),
	}
	seen := map[string]string{}
	for name, b := range variants {
		k := keyOf(t, b)
		if prev, ok := seen[k]; ok {
			t.Errorf("%q and %q share key %s", name, prev, k)
		}
		seen[k] = name
	}
	// The same relative range on another day is another answer.
	b := []byte(body())
	q1, _ := Parse(b, testNow, testEarliest)
	q2, _ := Parse(b, testNow.Add(24*time.Hour), testEarliest)
	if q1.Key() == q2.Key() {
		t.Errorf("7d on two days share a key")
	}
}

// Key must not rely on Parse's normalization or alias its slices.
func TestKeyHandBuilt(t *testing.T) {
	q := mustParse(t, body("filters", `[["is","event:page",["/a","/b"]],["is","visit:os",["Mac"]]]`))
	vals := []string{"/b", "/a", "/b"}
	h := q
	h.Filters = []Filter{{Op: "is", Dim: "visit:os", Values: []string{"Mac"}}, {Op: "is", Dim: "event:page", Values: vals}}
	if q.Key() != h.Key() {
		t.Errorf("hand-built key differs:\n%s\n%s", q.Key(), h.Key())
	}
	if vals[0] != "/b" || len(vals) != 3 {
		t.Errorf("Key modified the caller's values: %q", vals)
	}
	if h.Key() != h.Key() {
		t.Errorf("Key is not deterministic")
	}
	if strings.Contains(q.Key(), "example.com") {
		t.Errorf("key holds the site: %s", q.Key())
	}
}
