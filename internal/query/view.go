package query

import (
	"encoding/json"
	"time"

	"github.com/veil-analytics/veil/internal/statsquery"
)

// queryView is the query echoed back in the request's own vocabulary, with
// the resolved date range.
type queryView struct {
	SiteID     string      `json:"site_id"`
	Metrics    []string    `json:"metrics"`
	DateRange  [2]string   `json:"date_range"`
	Dimensions []string    `json:"dimensions"`
	Filters    [][]any     `json:"filters"`
	OrderBy    [][2]string `json:"order_by,omitempty"`
	Pagination struct {
		Limit  int `json:"limit"`
		Offset int `json:"offset"`
	} `json:"pagination"`
}

// MarshalJSON writes the Stats API shape of the query.
func (r Result) MarshalJSON() ([]byte, error) {
	q := r.Query
	v := queryView{SiteID: q.SiteID, Dimensions: q.Dimensions, Filters: [][]any{}}
	if v.Dimensions == nil {
		v.Dimensions = []string{}
	}
	for _, m := range q.Metrics {
		v.Metrics = append(v.Metrics, string(m))
	}
	v.DateRange = [2]string{q.From.Format(time.DateOnly), q.To.Add(-24 * time.Hour).Format(time.DateOnly)}
	for _, f := range q.Filters {
		v.Filters = append(v.Filters, []any{f.Op, f.Dim, f.Values})
	}
	for _, o := range q.OrderBy {
		dir := "asc"
		if o.Desc {
			dir = "desc"
		}
		v.OrderBy = append(v.OrderBy, [2]string{o.Key, dir})
	}
	v.Pagination.Limit, v.Pagination.Offset = q.Limit, q.Offset
	type plain struct {
		Results []Row     `json:"results"`
		Meta    Meta      `json:"meta"`
		Query   queryView `json:"query"`
	}
	return json.Marshal(plain{Results: r.Results, Meta: r.Meta, Query: v})
}

// UnmarshalJSON reads a cached answer; the query is restored by the caller.
func (r *Result) UnmarshalJSON(b []byte) error {
	var plain struct {
		Results []Row `json:"results"`
		Meta    Meta  `json:"meta"`
	}
	if err := json.Unmarshal(b, &plain); err != nil {
		return err
	}
	r.Results, r.Meta, r.Query = plain.Results, plain.Meta, statsquery.Query{}
	return nil
}
