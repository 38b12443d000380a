package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/auth"
	"github.com/veil-analytics/veil/internal/store"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

type queryEnv struct {
	*running
	clock   *fakeClock
	site    store.Site
	viewer  string
	analyst string
	truth   map[string]int // day -> visitors (units)
	pv      int
}

// startWithData ingests known traffic for two past days through the real
// pipeline, lets the aggregator catch up, closes the days and releases them.
func startWithData(t *testing.T) *queryEnv {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
	dir := t.TempDir()
	// The site's policy raises the per-query and per-role ε limits, so
	// the tests can reach the privacy budget itself.
	os.MkdirAll(PolicyDir(dir), 0o700)
	os.WriteFile(filepath.Join(PolicyDir(dir), "example.rego"), []byte("package veil.site[\"example.com\"]\n\nloosen.max_epsilon_per_query := 5\n\nloosen.max_epsilon_per_role_day := 1000\n"), 0o600)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := Open(context.Background(), Config{DataDir: dir, Now: clock.Now, Lineage: "file:" + filepath.Join(dir, "lineage.ndjson")}, logger)
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	r := &running{app: a, url: "http://" + ln.Addr().String(), logs: &lockedBuffer{}, dir: dir}
	r.stop = func() { cancel(); <-done; a.Close() }
	t.Cleanup(r.stop)
	r.admin, _, _ = auth.NewToken(context.Background(), a.Store, "admin", store.RoleAdmin, nil, time.Now())
	r.ingest, _, _ = auth.NewToken(context.Background(), a.Store, "ingest", store.RoleIngest, nil, time.Now())
	viewer, _, _ := auth.NewToken(context.Background(), a.Store, "viewer", store.RoleViewer, nil, time.Now())
	analyst, _, _ := auth.NewToken(context.Background(), a.Store, "analyst", store.RoleAnalyst, nil, time.Now())
	res := r.do(t, "POST", "/api/v1/sites", r.admin, "application/json", []byte(`{"domain":"example.com","retention_days":90}`), nil)
	if res.status != 201 {
		t.Fatalf("site: %d %s", res.status, res.body)
	}
	s, _ := a.Store.SiteByDomain(context.Background(), "example.com")
	e := &queryEnv{running: r, clock: clock, site: s, viewer: viewer, analyst: analyst, truth: map[string]int{}}

	rng := rand.New(rand.NewPCG(9, 9))
	countries := []string{"DE", "FR", "US"}
	for _, day := range []time.Time{time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)} {
		var lines []string
		units := 3000
		for u := range units {
			ts := day.Add(time.Duration(rng.IntN(20*3600)) * time.Second)
			for k := range 2 {
				page := fmt.Sprintf("/page-%d", int(math.Min(40, math.Floor(1/rng.Float64()))))
				lines = append(lines, fmt.Sprintf(`{"site":"example.com","name":"pageview","url":"https://example.com%s","user_id":"u-%s-%d","ip":"%d.0.0.1","user_agent":"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0","timestamp":%q}`,
					page, day.Format("0102"), u, 1+u%200, ts.Add(time.Duration(k)*time.Minute).Format(time.RFC3339)))
				e.pv++
			}
			_ = countries
		}
		e.truth[day.Format(time.DateOnly)] = units
		for i := 0; i < len(lines); i += 1000 {
			body := strings.Join(lines[i:min(i+1000, len(lines))], "\n")
			res := r.do(t, "POST", "/api/v1/events", r.ingest, "application/x-ndjson", []byte(body), nil)
			if res.status != 202 || !strings.Contains(string(res.body), `"rejected":[]`) {
				t.Fatalf("ingest: %d %s", res.status, res.body)
			}
		}
	}
	waitAggregated(t, a, s.ID)
	clock.Set(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	if err := a.Agg.CloseDays(context.Background(), s.ID); err != nil {
		t.Fatal(err)
	}
	if err := a.Releaser.ReleaseDue(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return e
}

type apiResult struct {
	Results []struct {
		Dimensions []string
		Metrics    []float64
		CI         [][2]float64 `json:"ci95"`
	}
	Meta struct {
		Source       string
		Cached       bool
		EpsilonSpent float64 `json:"epsilon_spent"`
		Budget       []struct {
			Day         string
			EpsilonLeft float64 `json:"epsilon_left"`
		}
	}
}

func (e *queryEnv) query(t *testing.T, token, body string) (int, apiResult, string) {
	t.Helper()
	res := e.do(t, "POST", "/api/v2/query", token, "application/json", []byte(body), nil)
	var out apiResult
	json.Unmarshal(res.body, &out)
	return res.status, out, string(res.body)
}

func TestQueriesFromReleasesAreFreeAndAccurate(t *testing.T) {
	e := startWithData(t)
	status, res, raw := e.query(t, e.viewer, `{"site_id":"example.com","metrics":["visitors","pageviews"],"date_range":["2026-11-20","2026-11-21"],"dimensions":["time:day"]}`)
	if status != 200 || res.Meta.Source != "released" || res.Meta.EpsilonSpent != 0 {
		t.Fatalf("%d %s", status, raw)
	}
	if len(res.Results) != 2 {
		t.Fatalf("want two days: %s", raw)
	}
	var sum float64
	for _, row := range res.Results {
		want := float64(e.truth[row.Dimensions[0]])
		if got := row.Metrics[0]; math.Abs(got-want) > 100 || row.CI[0][0] > got || row.CI[0][1] < got {
			t.Errorf("day %s visitors %v (ci %v), truth %v", row.Dimensions[0], got, row.CI[0], want)
		}
		sum += row.Metrics[0]
	}
	// A range answer is the sum of its released days.
	_, total, raw2 := e.query(t, e.viewer, `{"site_id":"example.com","metrics":["visitors"],"date_range":["2026-11-20","2026-11-21"]}`)
	if len(total.Results) != 1 || math.Abs(total.Results[0].Metrics[0]-sum) > 0.02 {
		t.Fatalf("range total %s != sum of days %v", raw2, sum)
	}
	// Breakdowns come from releases too.
	_, pages, raw3 := e.query(t, e.viewer, `{"site_id":"example.com","metrics":["visitors","pageviews"],"date_range":["2026-11-20","2026-11-21"],"dimensions":["event:page"],"pagination":{"limit":5}}`)
	if pages.Meta.Source != "released" || len(pages.Results) == 0 || pages.Results[0].Dimensions[0] != "/page-1" {
		t.Fatalf("pages: %s", raw3)
	}
	spent, _ := e.app.Ledger.Spent(context.Background(), e.site.ID, "adhoc:")
	if len(spent) != 0 {
		t.Fatalf("released queries charged ad hoc budget: %v", spent)
	}
}

func TestAdHocQueriesChargeOnceAndStopAtTheBudget(t *testing.T) {
	e := startWithData(t)
	q := `{"site_id":"example.com","metrics":["visitors"],"date_range":["2026-11-20","2026-11-20"],"filters":[["is","visit:browser",["Firefox"]]],"privacy":{"epsilon":0.5,"purpose":"analytics"}}`
	status, res, raw := e.query(t, e.analyst, q)
	if status != 200 || res.Meta.Source != "ad_hoc" || res.Meta.EpsilonSpent != 0.5 || len(res.Meta.Budget) != 1 {
		t.Fatalf("%d %s", status, raw)
	}
	if got := res.Results[0].Metrics[0]; math.Abs(got-3000) > 150 {
		t.Fatalf("filtered visitors %v, truth 3000", got)
	}
	left := res.Meta.Budget[0].EpsilonLeft
	// The same query again is free.
	_, again, raw2 := e.query(t, e.analyst, q)
	if !again.Meta.Cached || again.Meta.EpsilonSpent != 0 || again.Results[0].Metrics[0] != res.Results[0].Metrics[0] {
		t.Fatalf("repeat: %s", raw2)
	}
	spent, _ := e.app.Ledger.Spent(context.Background(), e.site.ID, "adhoc:")
	// Different queries spend until the day's ad hoc budget is gone; the
	// refused query is not charged.
	refused := ""
	for i := range 50 {
		body := strings.Replace(q, `"epsilon":0.5`, fmt.Sprintf(`"epsilon":1.%02d`, i), 1)
		status, _, raw := e.query(t, e.analyst, body)
		if status == 403 {
			refused = raw
			break
		}
		if status != 200 {
			t.Fatalf("query %d: %d %s", i, status, raw)
		}
	}
	if !strings.Contains(refused, "2026-11-20") || !strings.Contains(refused, "budget") {
		t.Fatalf("exhausted budget not reported with the day: %q (left after first query: %v)", refused, left)
	}
	after, _ := e.app.Ledger.Spent(context.Background(), e.site.ID, "adhoc:")
	if after["adhoc:day:2026-11-20"] > e.app.Query.Budgets(e.site).AdHocRho()*(1+1e-9) {
		t.Fatalf("overspent: %v", after)
	}
	if after["adhoc:day:2026-11-20"] <= spent["adhoc:day:2026-11-20"] {
		t.Fatalf("later queries charged nothing")
	}
	// Released answers still work after the ad hoc budget is gone.
	if status, res, raw := e.query(t, e.viewer, `{"site_id":"example.com","metrics":["visitors"],"date_range":["2026-11-20","2026-11-20"]}`); status != 200 || res.Meta.Source != "released" {
		t.Fatalf("released after exhaustion: %d %s", status, raw)
	}
}

func TestQueryBadInput(t *testing.T) {
	e := startWithData(t)
	cases := []struct {
		token, body string
		status      int
	}{
		{e.viewer, `{"site_id":"example.com","metrics":["nope"],"date_range":"7d"}`, 400},
		{e.viewer, `{"site_id":"example.com","metrics":["visitors"],"date_range":"7d","dimensions":["visit:ip"]}`, 400},
		{e.viewer, `{"site_id":"nope.example","metrics":["visitors"],"date_range":"7d"}`, 404},
		{e.viewer, `{"site_id":"example.com","metrics":["visitors"],"date_range":["2026-11-25","2026-11-20"]}`, 400},
		{e.viewer, `{"site_id":"example.com","metrics":["visitors"],"date_range":"7d","privacy":{"epsilon":-1}}`, 400},
		{e.viewer, `{"site_id":"example.com","metrics":["visitors"],"date_range":"7d","dimensions":["time:hour","event:page"]}`, 400},
		{e.ingest, `{"site_id":"example.com","metrics":["visitors"],"date_range":"7d"}`, 403},
		{"", `{"site_id":"example.com","metrics":["visitors"],"date_range":"7d"}`, 401},
	}
	for i, c := range cases {
		status, _, raw := e.query(t, c.token, c.body)
		if status != c.status || !strings.Contains(raw, `"error"`) {
			t.Errorf("case %d: %d %s, want %d", i, status, raw, c.status)
		}
	}
	if spent, _ := e.app.Ledger.Spent(context.Background(), e.site.ID, "adhoc:"); len(spent) != 0 {
		t.Fatalf("bad queries charged budget: %v", spent)
	}
	_ = http.StatusOK
}

// The dashboard asks what a query would cost before running it; asking must
// charge nothing and must tell the truth about the cost and what is left.
func TestPreviewChargesNothingAndMatchesTheCharge(t *testing.T) {
	e := startWithData(t)
	q := `{"site_id":"example.com","metrics":["visitors"],"date_range":["2026-11-20","2026-11-21"],"filters":[["is","visit:browser",["Firefox"]]],"privacy":{"epsilon":0.5,"purpose":"analytics"%s}}`
	preview := func() map[string]any {
		res := e.do(t, "POST", "/api/v2/query", e.analyst, "application/json", []byte(fmt.Sprintf(q, `,"preview":true`)), nil)
		if res.status != 200 {
			t.Fatalf("preview: %d %s", res.status, res.body)
		}
		var out struct {
			Results []any
			Meta    map[string]any
		}
		json.Unmarshal(res.body, &out)
		if len(out.Results) != 0 || out.Meta["preview"] != true {
			t.Fatalf("preview answered: %s", res.body)
		}
		return out.Meta
	}
	m := preview()
	if m["source"] != "ad_hoc" || m["epsilon_cost"] != 0.5 || m["cached"] == true || m["would_exceed"] == true {
		t.Fatalf("preview meta: %v", m)
	}
	if b, _ := m["budget"].([]any); len(b) != 2 {
		t.Fatalf("preview budget per day: %v", m)
	}
	if spent, _ := e.app.Ledger.Spent(context.Background(), e.site.ID, "adhoc:"); len(spent) != 0 {
		t.Fatalf("preview charged: %v", spent)
	}
	status, res, raw := e.query(t, e.analyst, fmt.Sprintf(q, ""))
	if status != 200 || res.Meta.EpsilonSpent != 0.5 {
		t.Fatalf("%d %s", status, raw)
	}
	// After running, the same question is free, and the preview says so.
	if m := preview(); m["cached"] != true || m["epsilon_cost"] != nil {
		t.Fatalf("preview after run: %v", m)
	}
	// Released questions are free.
	res2 := e.do(t, "POST", "/api/v2/query", e.viewer, "application/json", []byte(`{"site_id":"example.com","metrics":["visitors"],"date_range":"7d","privacy":{"preview":true}}`), nil)
	if !strings.Contains(string(res2.body), `"source":"released"`) || strings.Contains(string(res2.body), "epsilon_cost") {
		t.Fatalf("released preview: %s", res2.body)
	}
	// A query the budget cannot pay for is flagged.
	big := strings.Replace(fmt.Sprintf(q, `,"preview":true`), `"epsilon":0.5`, `"epsilon":5`, 1)
	res3 := e.do(t, "POST", "/api/v2/query", e.analyst, "application/json", []byte(big), nil)
	if !strings.Contains(string(res3.body), `"would_exceed":true`) {
		t.Fatalf("over-budget preview: %s", res3.body)
	}

	// The budget report shows the ad hoc charge on both days and the
	// release charge of each released day.
	rep := e.do(t, "GET", "/api/v1/sites/example.com/budget?from=2026-11-20&to=2026-11-21", e.viewer, "", nil, nil)
	var br struct {
		Days []struct {
			Day               string
			ReleasedEpsilon   float64 `json:"released_epsilon"`
			AdHocEpsilonSpent float64 `json:"adhoc_epsilon_spent"`
			AdHocEpsilonLeft  float64 `json:"adhoc_epsilon_left"`
		}
	}
	if err := json.Unmarshal(rep.body, &br); err != nil || rep.status != 200 || len(br.Days) != 2 {
		t.Fatalf("budget: %d %s", rep.status, rep.body)
	}
	for _, d := range br.Days {
		if d.ReleasedEpsilon <= 0 || math.Abs(d.AdHocEpsilonSpent-0.5) > 1e-6 || d.AdHocEpsilonLeft <= 0 {
			t.Errorf("budget day %+v", d)
		}
	}
	for _, bad := range []string{"?from=2026-13-01", "?from=2026-11-21&to=2026-11-20", "?from=2020-01-01&to=2026-11-20"} {
		if r := e.do(t, "GET", "/api/v1/sites/example.com/budget"+bad, e.viewer, "", nil, nil); r.status != 400 || !strings.Contains(string(r.body), `"error"`) {
			t.Errorf("budget%s: %d %s", bad, r.status, r.body)
		}
	}
	if r := e.do(t, "GET", "/api/v1/sites/example.com/budget", e.ingest, "", nil, nil); r.status != 403 {
		t.Errorf("ingest token read the budget: %d", r.status)
	}
}

func TestMeAndSiteSettings(t *testing.T) {
	e := startWithData(t)
	scoped, _, _ := auth.NewToken(context.Background(), e.app.Store, "other", store.RoleViewer, []string{"nosuchsite"}, time.Now())
	for tok, want := range map[string]int{e.viewer: 1, scoped: 0} {
		res := e.do(t, "GET", "/api/v1/me", tok, "", nil, nil)
		var me struct {
			Role  string
			Sites []struct{ Domain string }
		}
		if json.Unmarshal(res.body, &me) != nil || res.status != 200 || me.Role != "viewer" || len(me.Sites) != want {
			t.Errorf("me: %d %s", res.status, res.body)
		}
	}
	res := e.do(t, "PATCH", "/api/v1/sites/example.com", e.admin, "application/json", []byte(`{"daily_epsilon":1.5,"allowed_props":["plan","ab_*"]}`), nil)
	if res.status != 200 || !strings.Contains(string(res.body), `"daily_epsilon":1.5`) || !strings.Contains(string(res.body), `"allowed_props":["plan","ab_*"]`) {
		t.Fatalf("patch: %d %s", res.status, res.body)
	}
	s, _ := e.app.Store.SiteByDomain(context.Background(), "example.com")
	if b := e.app.Query.Budgets(s); b.DailyEpsilon != 1.5 {
		t.Fatalf("site budget not applied: %+v", b)
	}
	for _, bad := range []string{`{"daily_epsilon":50}`, `{"daily_epsilon":-1}`, `{"allowed_props":["a b"]}`} {
		if r := e.do(t, "PATCH", "/api/v1/sites/example.com", e.admin, "application/json", []byte(bad), nil); r.status != 400 {
			t.Errorf("%s: %d %s", bad, r.status, r.body)
		}
	}
	// Props the site does not allow are not stored.
	e.clock.Set(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	body := `{"site":"example.com","name":"Signup","url":"https://example.com/","ip":"9.9.9.9","user_agent":"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0","props":{"plan":"pro","ab_test":"b","secret_prop":"zzqx-unique"}}`
	if r := e.do(t, "POST", "/api/v1/events", e.ingest, "application/x-ndjson", []byte(body), nil); r.status != 202 {
		t.Fatalf("ingest: %d %s", r.status, r.body)
	}
	var got []string
	for _, ev := range e.events(t, e.site.ID) {
		if ev.Name == "Signup" {
			for _, p := range ev.Props {
				got = append(got, p.Key)
			}
		}
	}
	slices.Sort(got)
	if strings.Join(got, ",") != "ab_test,plan" {
		t.Fatalf("stored props %v, want plan and ab_test only", got)
	}
}

// A client that goes away mid-query (a dashboard navigating off) is not a
// server error: the answer is 499 and nothing is logged as an error.
func TestCanceledQueryIsNotAServerError(t *testing.T) {
	r := start(t, t.TempDir())
	r.addSite(t, "example.com")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, "POST", "/api/v2/query", strings.NewReader(`{"site_id":"example.com","metrics":["visitors"],"date_range":"7d"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+r.admin)
	rec := httptest.NewRecorder()
	r.app.Handler.ServeHTTP(rec, req)
	if rec.Code != 499 {
		t.Fatalf("canceled query answered %d %s", rec.Code, rec.Body)
	}
	if strings.Contains(r.logs.String(), `"level":"ERROR"`) {
		t.Fatalf("a canceled request was logged as an error: %s", r.logs.String())
	}
}
