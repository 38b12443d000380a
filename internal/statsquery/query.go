// Package statsquery parses and validates the body of POST /api/v2/query (the
// shape of Plausible's Stats API v2) into a normalized Query.
//
// Validation is strict on purpose: every answer Veil gives is differentially
// private and spends privacy budget, so a query Veil would misread (an unknown
// key silently ignored, an "or" it cannot honour, a filter modifier it would
// drop) is refused with a 400 naming the JSON path instead of being answered
// approximately. Dimensions that identify people are refused outright:
// grouping or filtering by an identifier singles individuals out, which is not
// an aggregate no matter how much noise is added.
//
// Error messages never echo filter values (they may be personal data); short
// names such as an unknown metric are quoted, capped at 64 bytes.
package statsquery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/veil-analytics/veil/internal/httpx"
)

// Metric names an aggregate Veil can answer.
type Metric string

// The metrics Veil answers.
const (
	Visitors      Metric = "visitors"
	Visits        Metric = "visits"
	Pageviews     Metric = "pageviews"
	Events        Metric = "events"
	BounceRate    Metric = "bounce_rate"
	ViewsPerVisit Metric = "views_per_visit"
)

var knownMetrics = map[Metric]bool{
	Visitors: true, Visits: true, Pageviews: true, Events: true,
	BounceRate: true, ViewsPerVisit: true,
}

// plausibleOnlyMetrics are Plausible metrics Veil does not answer; naming them
// lets the error say "not supported" rather than "unknown".
var plausibleOnlyMetrics = map[string]bool{
	"visit_duration": true, "conversion_rate": true, "group_conversion_rate": true,
	"percentage": true, "average_revenue": true, "total_revenue": true,
	"scroll_depth": true, "time_on_page": true, "exit_rate": true,
}

// IsVisitMetric reports whether m is computed per visit, so that it has no
// meaning for groups of events (an event:* dimension).
func (m Metric) IsVisitMetric() bool { return m == BounceRate || m == ViewsPerVisit }

// Filter is one condition; a query's filters are ANDed. Values are ORed within
// a filter, so Parse sorts and deduplicates them.
type Filter struct {
	Op     string // "is", "is_not", "contains", "contains_not"
	Dim    string
	Values []string
}

// Order is one sort key of the results.
type Order struct {
	Key  string // a metric or a dimension of the query
	Desc bool
}

// Include holds the "include" options.
type Include struct {
	TimeLabels bool
}

// Query is a validated, normalized stats query.
type Query struct {
	SiteID     string    // "site_id" as given (a domain)
	Metrics    []Metric  // 1..MaxMetrics, no duplicates, in the order given
	From, To   time.Time // UTC midnights; From inclusive, To exclusive
	Range      string    // "7d", "all", … or "2024-01-01..2024-01-31"
	Dimensions []string  // at most one time:* and one other, in the order given
	Filters    []Filter  // flat AND
	OrderBy    []Order
	Limit      int // 1..MaxLimit, DefaultLimit when not given
	Offset     int // 0..MaxOffset
	Include    Include
	Epsilon    float64 // 0: the default; else in [MinEpsilon, MaxEpsilon]
	Purpose    string  // "" when not given
	// Preview asks what answering would cost, without answering or
	// charging anything.
	Preview bool
	// MinCohort hides rows whose noisy visitors are below it; the query
	// policy sets it, never the request.
	MinCohort int
}

// Limits of a query.
const (
	// MaxBodyBytes bounds the body Parse accepts; HTTP handlers should cap
	// their reader at the same size.
	MaxBodyBytes     = 1 << 20
	MaxMetrics       = 6
	MaxDimensions    = 2
	MaxFilters       = 10
	MaxFilterValues  = 100
	MaxValueBytes    = 256
	MaxPropNameBytes = 64
	DefaultLimit     = 100
	MaxLimit         = 1000
	// MaxOffset keeps offset+limit far from overflow; no DP answer has
	// anywhere near a million released rows.
	MaxOffset = 1_000_000
	// MinEpsilon refuses budgets so small that the answer is pure noise and
	// that DP libraries reject (google/differential-privacy needs ε ≥ 2⁻⁵⁰).
	MinEpsilon      = 1e-3
	MaxEpsilon      = 10
	MaxPurposeBytes = 64
	// MaxHourDays is the longest date range time:hour may be used with.
	MaxHourDays = 31
	// maxAndDepth bounds nesting of ["and", [...]] expressions.
	maxAndDepth = 4
	maxSiteID   = 253
)

// Reasons (httpx.Error.Reason) Parse uses; they label metrics, not messages.
const (
	reasonJSON       = "invalid_json"
	reasonTooLarge   = "too_large"
	reasonType       = "invalid_type"
	reasonUnknownKey = "unknown_field"
	reasonDupKey     = "duplicate_field"
	reasonMissing    = "missing_field"
	reasonInvalid    = "invalid_query"
	reasonUnsupport  = "unsupported"
	reasonIdentifier = "identifier"
	reasonDateRange  = "invalid_date_range"
)

func bad(reason, field, format string, args ...any) *httpx.Error {
	return httpx.Errorf(http.StatusBadRequest, reason, field, format, args...)
}

var topKeys = map[string]bool{
	"site_id": true, "metrics": true, "date_range": true, "dimensions": true,
	"filters": true, "order_by": true, "pagination": true, "include": true,
	"privacy": true,
}

// Parse validates body and returns the normalized query. now is the clock for
// relative date ranges and earliest the first day with data, which bounds
// "all"; both are taken in UTC. Every client error is an *httpx.Error with
// status 400 (413 for an oversized body) naming the offending JSON path.
//
// A JSON null counts as an absent key, as clients commonly send it for
// options they do not set.
func Parse(body []byte, now, earliest time.Time) (Query, error) {
	if len(body) > MaxBodyBytes {
		return Query{}, httpx.Errorf(http.StatusRequestEntityTooLarge, reasonTooLarge, "", "request body larger than %d bytes", MaxBodyBytes)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return Query{}, bad(reasonJSON, "", "empty body")
	}
	// Validate the whole body first (including trailing data), so syntax
	// errors report an offset into the body rather than into a sub-value.
	var whole json.RawMessage
	if err := json.Unmarshal(body, &whole); err != nil {
		return Query{}, httpx.JSONError(err)
	}
	if kind(whole) != '{' {
		return Query{}, bad(reasonJSON, "", "body must be a JSON object, not %s", kindName(whole))
	}
	members, err := decodeObject(whole, "")
	if err != nil {
		return Query{}, err
	}
	raw := make(map[string]json.RawMessage, len(members))
	for _, m := range members {
		if !topKeys[m.key] {
			return Query{}, bad(reasonUnknownKey, capField(m.key), "unknown field")
		}
		if kind(m.val) != 'n' {
			raw[m.key] = m.val
		}
	}

	q := Query{Limit: DefaultLimit}
	if q.SiteID, err = parseSiteID(raw["site_id"]); err != nil {
		return Query{}, err
	}
	if q.Metrics, err = parseMetrics(raw["metrics"]); err != nil {
		return Query{}, err
	}
	if raw["date_range"] == nil {
		return Query{}, bad(reasonMissing, "date_range", "is required")
	}
	if q.From, q.To, q.Range, err = parseDateRange(raw["date_range"], now, earliest); err != nil {
		return Query{}, err
	}
	if r := raw["dimensions"]; r != nil {
		if q.Dimensions, err = parseDimensions(r, q.To.Sub(q.From)); err != nil {
			return Query{}, err
		}
	}
	if err := checkVisitMetrics(q.Metrics, q.Dimensions); err != nil {
		return Query{}, err
	}
	if r := raw["filters"]; r != nil {
		if q.Filters, err = parseFilters(r); err != nil {
			return Query{}, err
		}
	}
	if r := raw["order_by"]; r != nil {
		if q.OrderBy, err = parseOrderBy(r, q.Metrics, q.Dimensions); err != nil {
			return Query{}, err
		}
	}
	if r := raw["pagination"]; r != nil {
		if q.Limit, q.Offset, err = parsePagination(r); err != nil {
			return Query{}, err
		}
	}
	if r := raw["include"]; r != nil {
		if q.Include, err = parseInclude(r, q.TimeDim() != ""); err != nil {
			return Query{}, err
		}
	}
	if r := raw["privacy"]; r != nil {
		if q.Epsilon, q.Purpose, q.Preview, err = parsePrivacy(r); err != nil {
			return Query{}, err
		}
	}
	return q, nil
}

// TimeDim returns the query's time:* dimension, or "".
func (q Query) TimeDim() string {
	for _, d := range q.Dimensions {
		if isTimeDim(d) {
			return d
		}
	}
	return ""
}

// BreakdownDim returns the query's non-time dimension, or "".
func (q Query) BreakdownDim() string {
	for _, d := range q.Dimensions {
		if !isTimeDim(d) {
			return d
		}
	}
	return ""
}

// parseSiteID accepts what Plausible accepts as a site domain: letters,
// digits and - . / : (a domain, optionally with a port or path).
func parseSiteID(raw json.RawMessage) (string, error) {
	if raw == nil {
		return "", bad(reasonMissing, "site_id", "is required")
	}
	s, err := decodeString(raw, "site_id")
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", bad(reasonInvalid, "site_id", "must not be empty")
	}
	if len(s) > maxSiteID {
		return "", bad(reasonInvalid, "site_id", "must be at most %d bytes", maxSiteID)
	}
	for _, r := range s {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("-./:", r)) {
			return "", bad(reasonInvalid, "site_id", "must be a domain (letters, digits and - . / : only)")
		}
	}
	return s, nil
}

func parseMetrics(raw json.RawMessage) ([]Metric, error) {
	if raw == nil {
		return nil, bad(reasonMissing, "metrics", "is required")
	}
	arr, err := decodeArray(raw, "metrics", "an array of metric names")
	if err != nil {
		return nil, err
	}
	if len(arr) == 0 {
		return nil, bad(reasonInvalid, "metrics", "at least one metric is required")
	}
	if len(arr) > MaxMetrics {
		return nil, bad(reasonInvalid, "metrics", "at most %d metrics are allowed", MaxMetrics)
	}
	out := make([]Metric, 0, len(arr))
	for i, r := range arr {
		field := fmt.Sprintf("metrics[%d]", i)
		s, err := decodeString(r, field)
		if err != nil {
			return nil, err
		}
		m := Metric(s)
		switch {
		case plausibleOnlyMetrics[s]:
			return nil, bad(reasonUnsupport, field, "metric %s is not supported", echo(s))
		case !knownMetrics[m]:
			return nil, bad(reasonInvalid, field, "unknown metric %s", echo(s))
		case slices.Contains(out, m):
			return nil, bad(reasonInvalid, field, "metric %s is listed twice", echo(s))
		}
		out = append(out, m)
	}
	return out, nil
}

// checkVisitMetrics refuses per-visit metrics grouped by an event dimension:
// a visit spans many pages and goals, so the figure would have no meaning.
func checkVisitMetrics(ms []Metric, dims []string) error {
	for _, d := range dims {
		if !strings.HasPrefix(d, "event:") {
			continue
		}
		for i, m := range ms {
			if m.IsVisitMetric() {
				return bad(reasonInvalid, fmt.Sprintf("metrics[%d]", i),
					"metric %s cannot be used with dimension %s: it is a visit metric and has no value per event",
					echo(string(m)), echo(d))
			}
		}
	}
	return nil
}

func parseOrderBy(raw json.RawMessage, ms []Metric, dims []string) ([]Order, error) {
	arr, err := decodeArray(raw, "order_by", `an array of [key, "asc"|"desc"] pairs`)
	if err != nil {
		return nil, err
	}
	if len(arr) > len(ms)+len(dims) {
		return nil, bad(reasonInvalid, "order_by", "at most %d sort keys (one per metric or dimension)", len(ms)+len(dims))
	}
	var out []Order
	for i, el := range arr {
		field := fmt.Sprintf("order_by[%d]", i)
		pair, err := decodeArray(el, field, `a [key, "asc"|"desc"] pair`)
		if err != nil {
			return nil, err
		}
		if len(pair) != 2 {
			return nil, bad(reasonInvalid, field, `must be a [key, "asc"|"desc"] pair`)
		}
		key, err := decodeString(pair[0], field+"[0]")
		if err != nil {
			return nil, err
		}
		if !slices.Contains(ms, Metric(key)) && !slices.Contains(dims, key) {
			return nil, bad(reasonInvalid, field+"[0]", "%s is not a metric or dimension of this query", echo(key))
		}
		if slices.ContainsFunc(out, func(o Order) bool { return o.Key == key }) {
			return nil, bad(reasonInvalid, field+"[0]", "%s is listed twice", echo(key))
		}
		dir, err := decodeString(pair[1], field+"[1]")
		if err != nil {
			return nil, err
		}
		if dir != "asc" && dir != "desc" {
			return nil, bad(reasonInvalid, field+"[1]", `must be "asc" or "desc"`)
		}
		out = append(out, Order{Key: key, Desc: dir == "desc"})
	}
	return out, nil
}

func parsePagination(raw json.RawMessage) (limit, offset int, err error) {
	members, err := decodeObject(raw, "pagination")
	if err != nil {
		return 0, 0, err
	}
	limit = DefaultLimit
	for _, m := range members {
		field := "pagination." + m.key
		switch m.key {
		case "limit":
			if kind(m.val) == 'n' {
				continue
			}
			if limit, err = decodeInt(m.val, field, 1, MaxLimit); err != nil {
				return 0, 0, err
			}
		case "offset":
			if kind(m.val) == 'n' {
				continue
			}
			if offset, err = decodeInt(m.val, field, 0, MaxOffset); err != nil {
				return 0, 0, err
			}
		default:
			return 0, 0, bad(reasonUnknownKey, capField(field), "unknown field")
		}
	}
	return limit, offset, nil
}

// plausibleOnlyIncludes are Plausible include options Veil does not answer.
var plausibleOnlyIncludes = map[string]bool{"imports": true, "total_rows": true, "comparisons": true}

func parseInclude(raw json.RawMessage, hasTime bool) (Include, error) {
	members, err := decodeObject(raw, "include")
	if err != nil {
		return Include{}, err
	}
	var inc Include
	for _, m := range members {
		field := "include." + m.key
		switch {
		case m.key == "time_labels":
			if kind(m.val) == 'n' {
				continue
			}
			if inc.TimeLabels, err = decodeBool(m.val, field); err != nil {
				return Include{}, err
			}
			if inc.TimeLabels && !hasTime {
				return Include{}, bad(reasonInvalid, field, "needs a time dimension (time:hour, time:day or time:month)")
			}
		case plausibleOnlyIncludes[m.key]:
			return Include{}, bad(reasonUnsupport, field, "is not supported")
		default:
			return Include{}, bad(reasonUnknownKey, capField(field), "unknown field")
		}
	}
	return inc, nil
}

// parsePrivacy reads Veil's extension {"epsilon": x, "purpose": "..."}.
func parsePrivacy(raw json.RawMessage) (eps float64, purpose string, preview bool, err error) {
	members, err := decodeObject(raw, "privacy")
	if err != nil {
		return 0, "", false, err
	}
	for _, m := range members {
		field := "privacy." + m.key
		switch m.key {
		case "epsilon":
			if kind(m.val) == 'n' {
				continue
			}
			f, err := decodeFloat(m.val, field)
			if err != nil {
				return 0, "", false, err
			}
			// !(f >= Min) also catches NaN, though JSON cannot carry one;
			// decodeFloat already refused numbers that overflow to ±Inf.
			if !(f >= MinEpsilon && f <= MaxEpsilon) {
				return 0, "", false, bad(reasonInvalid, field, "must be from %g to %d (omit it for the default)", MinEpsilon, MaxEpsilon)
			}
			eps = f
		case "purpose":
			if kind(m.val) == 'n' {
				continue
			}
			s, err := decodeString(m.val, field)
			if err != nil {
				return 0, "", false, err
			}
			if len(s) > MaxPurposeBytes || strings.IndexFunc(s, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-')
			}) >= 0 {
				return 0, "", false, bad(reasonInvalid, field, "must be at most %d bytes of a-z, 0-9, _ and -", MaxPurposeBytes)
			}
			purpose = s
		case "preview":
			if preview, err = decodeBool(m.val, field); err != nil {
				return 0, "", false, err
			}
		default:
			return 0, "", false, bad(reasonUnknownKey, capField(field), "unknown field")
		}
	}
	return eps, purpose, preview, nil
}
