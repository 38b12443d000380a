package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"
)

// QueryConfig describes a query latency run.
type QueryConfig struct {
	URL        string
	Token      string
	Site       string
	Iterations int
	// AdHoc runs the ad hoc query (top pages filtered by one country over
	// 30 days) instead of the dashboard set; each iteration uses a distinct
	// tiny ε so nothing is answered from the cache.
	AdHoc bool
}

// QueryResult holds per-query latency percentiles in milliseconds.
type QueryResult struct {
	Query  string  `json:"query"`
	N      int     `json:"n"`
	P50ms  float64 `json:"p50_ms"`
	P99ms  float64 `json:"p99_ms"`
	Errors int     `json:"errors"`
	First  string  `json:"first_error,omitempty"`
}

// DashboardQueries is what a site dashboard asks for on first paint.
func DashboardQueries(site string) map[string]string {
	q := func(body string) string { return fmt.Sprintf(`{"site_id":%q,%s}`, site, body) }
	return map[string]string{
		"visitors+pageviews by day, 90d": q(`"metrics":["visitors","pageviews"],"date_range":"all","dimensions":["time:day"]`),
		"top 100 pages, 30d":             q(`"metrics":["visitors","pageviews"],"date_range":"30d","dimensions":["event:page"],"pagination":{"limit":100}`),
		"sources, 30d":                   q(`"metrics":["visitors"],"date_range":"30d","dimensions":["visit:source"]`),
		"countries, 30d":                 q(`"metrics":["visitors"],"date_range":"30d","dimensions":["visit:country"]`),
		"devices, 30d":                   q(`"metrics":["visitors"],"date_range":"30d","dimensions":["visit:device"]`),
		"totals, 30d":                    q(`"metrics":["visitors","visits","pageviews","bounce_rate"],"date_range":"30d"`),
	}
}

// RunQueries measures query latency against a running server.
func RunQueries(ctx context.Context, cfg QueryConfig) ([]QueryResult, error) {
	client := &http.Client{Timeout: 60 * time.Second}
	queries := DashboardQueries(cfg.Site)
	if cfg.AdHoc {
		queries = map[string]string{"ad hoc: top pages where country=US, 30d": ""}
	} else {
		queries["baseline: GET /healthz"] = ""
	}
	var out []QueryResult
	names := make([]string, 0, len(queries))
	for n := range queries {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		res := QueryResult{Query: name}
		var lat []time.Duration
		for i := range cfg.Iterations {
			body := queries[name]
			if cfg.AdHoc {
				body = fmt.Sprintf(`{"site_id":%q,"metrics":["visitors","pageviews"],"date_range":"30d","dimensions":["event:page"],"filters":[["is","visit:country",["US"]]],"privacy":{"epsilon":%.6f,"purpose":"analytics"}}`,
					cfg.Site, 0.01+float64(i)*1e-6)
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL+"/api/v2/query", bytes.NewReader([]byte(body)))
			if body == "" && !cfg.AdHoc {
				req, _ = http.NewRequestWithContext(ctx, http.MethodGet, cfg.URL+"/healthz", nil)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+cfg.Token)
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				return nil, err
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			d := time.Since(t0)
			if resp.StatusCode != http.StatusOK {
				res.Errors++
				if res.First == "" {
					res.First = fmt.Sprintf("HTTP %d: %.200s", resp.StatusCode, msg)
				}
				continue
			}
			lat = append(lat, d)
		}
		slices.Sort(lat)
		res.N = len(lat)
		if len(lat) > 0 {
			res.P50ms = float64(lat[len(lat)/2]) / 1e6
			res.P99ms = float64(lat[min(len(lat)-1, len(lat)*99/100)]) / 1e6
		}
		out = append(out, res)
	}
	return out, nil
}
