package statsquery

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/httpx"
)

// Fixed clocks: mid-month in a leap year, and a first day with data.
var (
	testNow      = time.Date(2024, 3, 15, 13, 45, 0, 0, time.UTC)
	testEarliest = time.Date(2023, 6, 10, 8, 0, 0, 0, time.UTC)
)

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// body builds a query from a valid base; each kv pair sets a top-level key
// to raw JSON, and a value of "" removes the key.
func body(kv ...string) string {
	m := map[string]string{
		"site_id":    `"example.com"`,
		"metrics":    `["visitors"]`,
		"date_range": `"7d"`,
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(m, kv[i])
		} else {
			m[kv[i]] = kv[i+1]
		}
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + k + `":` + m[k])
	}
	b.WriteByte('}')
	return b.String()
}

func mustParse(t *testing.T, b string) Query {
	t.Helper()
	q, err := Parse([]byte(b), testNow, testEarliest)
	if err != nil {
		t.Fatalf("Parse(%s): %v", b, err)
	}
	return q
}

// parseErr parses b, which must fail with a well-formed client error.
func parseErr(t *testing.T, b string) *httpx.Error {
	t.Helper()
	return parseErrAt(t, b, testNow)
}

// parseErrAt is parseErr with now as the clock.
func parseErrAt(t *testing.T, b string, now time.Time) *httpx.Error {
	t.Helper()
	_, err := Parse([]byte(b), now, testEarliest)
	if err == nil {
		t.Fatalf("Parse(%.200s) succeeded, want an error", b)
	}
	var he *httpx.Error
	if !errors.As(err, &he) {
		t.Fatalf("Parse(%.200s): %T %v, want *httpx.Error", b, err, err)
	}
	checkErrShape(t, he)
	return he
}

// checkErrShape asserts what holds for every client error: a 4xx status, a
// message, and bounded echoes.
func checkErrShape(t testing.TB, he *httpx.Error) {
	t.Helper()
	if he.Status != 400 && he.Status != 413 {
		t.Errorf("status %d, want 400 or 413 (%v)", he.Status, he)
	}
	if he.Msg == "" || he.Reason == "" {
		t.Errorf("empty message or reason: %+v", he)
	}
	if len(he.Msg) > 320 {
		t.Errorf("message of %d bytes: %.100s", len(he.Msg), he.Msg)
	}
	if len(he.Field) > 160 {
		t.Errorf("field of %d bytes: %.100s", len(he.Field), he.Field)
	}
}

// encode renders q back into a request body, for round-trip checks.
func encode(q Query) []byte {
	m := map[string]any{"site_id": q.SiteID, "metrics": q.Metrics}
	if a, b, ok := strings.Cut(q.Range, ".."); ok {
		m["date_range"] = []string{a, b}
	} else {
		m["date_range"] = q.Range
	}
	if len(q.Dimensions) > 0 {
		m["dimensions"] = q.Dimensions
	}
	if len(q.Filters) > 0 {
		fs := make([]any, len(q.Filters))
		for i, f := range q.Filters {
			fs[i] = []any{f.Op, f.Dim, f.Values}
		}
		m["filters"] = fs
	}
	if len(q.OrderBy) > 0 {
		os := make([]any, len(q.OrderBy))
		for i, o := range q.OrderBy {
			dir := "asc"
			if o.Desc {
				dir = "desc"
			}
			os[i] = []string{o.Key, dir}
		}
		m["order_by"] = os
	}
	m["pagination"] = map[string]int{"limit": q.Limit, "offset": q.Offset}
	m["include"] = map[string]bool{"time_labels": q.Include.TimeLabels}
	priv := map[string]any{"purpose": q.Purpose}
	if q.Epsilon != 0 {
		priv["epsilon"] = q.Epsilon
	}
	m["privacy"] = priv
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}
