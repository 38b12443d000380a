package statsquery

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// keyVersion changes whenever the key's layout or Parse's normalization
// does, so stale cache entries can never match.
const keyVersion = "sq1"

// Key returns a canonical string of everything that determines the answer
// except the site, for caching identical queries. Queries that differ only in
// spelling get the same key: JSON whitespace and key order, filter order,
// filter value order and repeats, "7d" versus the same explicit dates (the
// resolved From/To are keyed, not Range). This matters beyond speed: if
// rephrasing a query bought a fresh noise draw, averaging the draws would
// erode the privacy guarantee.
//
// Metric and dimension order are kept because they shape the response rows;
// Purpose is left out because it selects whose budget pays, not the answer.
// Strings are quoted with strconv.Quote so no value can forge a separator.
// The key embeds filter values verbatim: do not log it.
func (q Query) Key() string {
	var b strings.Builder
	b.WriteString(keyVersion)
	b.WriteString("|m=")
	for i, m := range q.Metrics {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(string(m)))
	}
	b.WriteString("|r=")
	b.WriteString(q.From.UTC().Format(time.RFC3339))
	b.WriteString("..")
	b.WriteString(q.To.UTC().Format(time.RFC3339))
	b.WriteString("|d=")
	for i, d := range q.Dimensions {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(d))
	}
	b.WriteString("|f=")
	for i, f := range canonicalFilters(q.Filters) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(f)
	}
	b.WriteString("|o=")
	for i, o := range q.OrderBy {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(o.Key))
		if o.Desc {
			b.WriteString(" desc")
		} else {
			b.WriteString(" asc")
		}
	}
	b.WriteString("|p=")
	b.WriteString(strconv.Itoa(q.Limit))
	b.WriteByte('+')
	b.WriteString(strconv.Itoa(q.Offset))
	b.WriteString("|tl=")
	b.WriteString(strconv.FormatBool(q.Include.TimeLabels))
	b.WriteString("|eps=")
	if q.Epsilon == 0 {
		b.WriteString("default")
	} else {
		b.WriteString(strconv.FormatFloat(q.Epsilon, 'g', -1, 64))
	}
	return b.String()
}

// canonicalFilters renders each filter with sorted, deduplicated values and
// returns them sorted and deduplicated: the filters are ANDed and the values
// ORed, so neither order nor repeats change the answer. It works on copies
// and does not rely on Parse's normalization, so hand-built queries key the
// same way.
func canonicalFilters(fs []Filter) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		vals := slices.Clone(f.Values)
		slices.Sort(vals)
		vals = slices.Compact(vals)
		var b strings.Builder
		b.WriteByte('[')
		b.WriteString(strconv.Quote(f.Op))
		b.WriteByte(' ')
		b.WriteString(strconv.Quote(f.Dim))
		for _, v := range vals {
			b.WriteByte(' ')
			b.WriteString(strconv.Quote(v))
		}
		b.WriteByte(']')
		out = append(out, b.String())
	}
	slices.Sort(out)
	return slices.Compact(out)
}
