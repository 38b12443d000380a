package query

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/aggregate"
	"github.com/veil-analytics/veil/internal/dp"
	"github.com/veil-analytics/veil/internal/ledger"
	"github.com/veil-analytics/veil/internal/release"
	"github.com/veil-analytics/veil/internal/statsquery"
	"github.com/veil-analytics/veil/internal/store"
	"github.com/veil-analytics/veil/internal/store/sqlitestore"
)

var day = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

func engine(t *testing.T, b release.Budget) (*Engine, *sqlitestore.DB) {
	t.Helper()
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "veil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := aggregate.New(aggregate.Config{DB: st.SQL(), Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatal(err)
	}
	led, err := ledger.Open(st.SQL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := release.New(release.Config{DB: st.SQL(), Store: st, Ledger: led, Logger: slog.Default()}); err != nil {
		t.Fatal(err)
	}
	return &Engine{DB: st.SQL(), Ledger: led, Caps: aggregate.DefaultCaps,
		Budgets: func(store.Site) release.Budget { return b }, Now: func() time.Time { return day.Add(50 * time.Hour) }}, st
}

func parse(t *testing.T, body string) statsquery.Query {
	t.Helper()
	q, err := statsquery.Parse([]byte(body), day.Add(50*time.Hour), day.AddDate(0, -3, 0))
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// Ad hoc answers are unbiased and their intervals cover the truth 93–97% of
// the time (50,000 noisy values from 200 distinct queries).
func TestAdHocValuesAreUnbiasedAndIntervalsCover(t *testing.T) {
	if testing.Short() {
		t.Skip("statistical test")
	}
	big := release.DefaultBudget
	big.DailyEpsilon = 500 // room for many distinct queries
	e, st := engine(t, big)
	site := store.Site{ID: "s1", Domain: "example.com", Retention: 90 * 24 * time.Hour, Created: day}
	truth := map[string]float64{}
	for i, c := range release.PublicValues(aggregate.DimCountry)[:40] {
		v := float64(100 + 37*i)
		truth[c] = v
		if _, err := st.SQL().Exec(`INSERT INTO agg_pairs (site, fdim, fval, dim, day, value, day_visitors) VALUES ('s1', ?, 'desktop', ?, ?, ?, ?)`,
			aggregate.DimDevice, aggregate.DimCountry, day.Unix(), c, v); err != nil {
			t.Fatal(err)
		}
	}
	covered, n := 0, 0
	var errSum float64
	for i := range 200 {
		q := parse(t, fmt.Sprintf(`{"site_id":"example.com","metrics":["visitors"],"date_range":["2026-11-20","2026-11-20"],"dimensions":["visit:country"],"filters":[["is","visit:device",["desktop"]]],"pagination":{"limit":1000},"privacy":{"epsilon":%.6f}}`, 0.5+float64(i)*1e-6))
		res, err := e.Answer(context.Background(), site, testToken, q)
		if err != nil {
			t.Fatal(err)
		}
		if res.Meta.Source != "ad_hoc" || res.Meta.Cached {
			t.Fatalf("query %d: %+v", i, res.Meta)
		}
		for _, row := range res.Results {
			x, ci := row.Metrics[0], row.Intervals[0]
			tv := truth[row.Dimensions[0]]
			n++
			errSum += x - tv
			if ci[0] <= tv && tv <= ci[1] {
				covered++
			}
		}
	}
	cov := float64(covered) / float64(n)
	if n < 40000 || cov < 0.93 || cov > 0.97 {
		t.Fatalf("coverage %.2f%% over %d values", 100*cov, n)
	}
	sigma := dpSigma(t, 0.5)
	if mean := errSum / float64(n); math.Abs(mean) > 4*sigma/math.Sqrt(float64(n)) {
		t.Fatalf("mean error %.3f over %d values (σ %.1f)", mean, n, sigma)
	}
}

func dpSigma(t *testing.T, eps float64) float64 {
	t.Helper()
	r, err := dp.RhoFromEpsilon(eps, dp.DefaultDelta)
	if err != nil {
		t.Fatal(err)
	}
	return 1 / math.Sqrt(2*r) // country visitors: L2 sensitivity 1, the whole ρ
}

// A page visited by a single unit never appears in an ad hoc answer, and a
// repeated question is answered from the cache for free.
func TestAdHocSelectionAndCache(t *testing.T) {
	e, st := engine(t, release.DefaultBudget)
	site := store.Site{ID: "s1", Domain: "example.com", Retention: 90 * 24 * time.Hour, Created: day}
	for _, row := range []struct {
		page      string
		visitors  int
		pageviews int
	}{{"/popular", 4000, 6000}, {"/only-one-visitor", 1, 2}} {
		st.SQL().Exec(`INSERT INTO agg_pairs (site, fdim, fval, dim, day, value, day_visitors, pageviews) VALUES ('s1', ?, 'DE', ?, ?, ?, ?, ?)`,
			aggregate.DimCountry, aggregate.DimPage, day.Unix(), row.page, row.visitors, row.pageviews)
	}
	body := `{"site_id":"example.com","metrics":["visitors","pageviews"],"date_range":["2026-11-20","2026-11-20"],"dimensions":["event:page"],"filters":[["is","visit:country",["DE"]]]}`
	res, err := e.Answer(context.Background(), site, testToken, parse(t, body))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Results) != 1 || res.Results[0].Dimensions[0] != "/popular" {
		t.Fatalf("results %+v", res.Results)
	}
	spent, _ := e.Ledger.Spent(context.Background(), "s1", "adhoc:")
	again, err := e.Answer(context.Background(), site, testToken, parse(t, body))
	if err != nil || !again.Meta.Cached || again.Results[0].Metrics[0] != res.Results[0].Metrics[0] {
		t.Fatalf("repeat not cached: %+v %v", again.Meta, err)
	}
	// Another page of the same question is the same answer, also free.
	paged := parse(t, body[:len(body)-1]+`,"pagination":{"limit":1,"offset":0}}`)
	p, err := e.Answer(context.Background(), site, testToken, paged)
	if err != nil || !p.Meta.Cached {
		t.Fatalf("paging re-charged: %+v %v", p.Meta, err)
	}
	after, _ := e.Ledger.Spent(context.Background(), "s1", "adhoc:")
	if after["adhoc:day:2026-11-20"] != spent["adhoc:day:2026-11-20"] {
		t.Fatal("a repeated question was charged again")
	}
}

// A site whose unit is the declared user draws every day of a month from
// the month's budget, and its noise grows with the days a user spans.
func TestUserUnitSitesDrawOnTheMonth(t *testing.T) {
	e, st := engine(t, release.UserBudget)
	site := store.Site{ID: "u1", Domain: "app.example", Retention: 90 * 24 * time.Hour, Created: day, UserUnit: true}
	for d := range 3 {
		st.SQL().Exec(`INSERT INTO agg_pairs (site, fdim, fval, dim, day, value, day_visitors) VALUES ('u1', ?, 'desktop', '', ?, '', 500)`, aggregate.DimDevice, day.AddDate(0, 0, -d).Unix())
	}
	one, err := e.Answer(context.Background(), site, testToken, parse(t, `{"site_id":"app.example","metrics":["visitors"],"date_range":["2026-11-20","2026-11-20"],"filters":[["is","visit:device",["desktop"]]],"privacy":{"epsilon":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	three, err := e.Answer(context.Background(), site, testToken, parse(t, `{"site_id":"app.example","metrics":["visitors"],"date_range":["2026-11-18","2026-11-20"],"filters":[["is","visit:device",["desktop"]]],"privacy":{"epsilon":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	width := func(r Result) float64 { return r.Results[0].Intervals[0][1] - r.Results[0].Intervals[0][0] }
	// Three days of cells, each √3 times noisier: the sum's interval is 3× wider.
	if ratio := width(three) / width(one); math.Abs(ratio-3) > 0.05 {
		t.Fatalf("3-day interval %.1f× the 1-day one, want 3×", ratio)
	}
	spent, _ := e.Ledger.Spent(context.Background(), "u1", "")
	rho, _ := dp.RhoFromEpsilon(1, dp.DefaultDelta)
	if len(spent) != 1 || math.Abs(spent["adhoc:period:2026-11"]-2*rho) > 1e-12 {
		t.Fatalf("spent %v, want two charges of %v on the month", spent, rho)
	}
}

var testToken = store.Token{ID: "test", Role: store.RoleAnalyst}

// Ratios come from released days only: today's released hours carry
// pageviews but not visits, so mixing them in would inflate views per visit.
func TestRatiosIgnoreHoursOfUnreleasedDays(t *testing.T) {
	e, st := engine(t, release.DefaultBudget)
	site := store.Site{ID: "s1", Domain: "example.com", Retention: 90 * 24 * time.Hour, Created: day}
	db := st.SQL()
	ins := func(period string, start time.Time, metric string, v float64) {
		if _, err := db.Exec(`INSERT INTO released (site, period, start, dim, value, metric, noisy, sigma) VALUES ('s1', ?, ?, '', '', ?, ?, 1)`, period, start.Unix(), metric, v); err != nil {
			t.Fatal(err)
		}
	}
	ins("day", day, "visits", 100)
	ins("day", day, "pageviews", 250)
	ins("day", day, "visitors", 80)
	db.Exec(`INSERT INTO release_runs (site, period, start, released_at, partitions) VALUES ('s1', 'day', ?, 0, 3)`, day.Unix())
	next := day.Add(24 * time.Hour) // not released as a day: only hours
	ins("hour", next.Add(3*time.Hour), "pageviews", 500)
	ins("hour", next.Add(3*time.Hour), "visitors", 40)
	res, err := e.Answer(context.Background(), site, testToken, parse(t, `{"site_id":"example.com","metrics":["views_per_visit","pageviews"],"date_range":["2026-11-20","2026-11-21"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Results[0].Metrics; math.Abs(got[0]-2.5) > 1e-9 || got[1] != 250 {
		t.Fatalf("views per visit %v, pageviews %v; want 2.5 and 250 from the released day only", got[0], got[1])
	}
	// Without a ratio, the unreleased day's hours fill in.
	res, _ = e.Answer(context.Background(), site, testToken, parse(t, `{"site_id":"example.com","metrics":["pageviews"],"date_range":["2026-11-20","2026-11-21"]}`))
	if got := res.Results[0].Metrics[0]; got != 750 {
		t.Fatalf("pageviews %v, want 750 with today's hours", got)
	}
}

// A filter on a dimension without public values (a page, a source) answers
// totals and time series by summing the matching rows of that dimension.
func TestFilterOnPageSumsMatchingRows(t *testing.T) {
	big := release.DefaultBudget
	big.DailyEpsilon = 50
	e, st := engine(t, big)
	site := store.Site{ID: "s1", Domain: "example.com", Retention: 90 * 24 * time.Hour, Created: day}
	for _, r := range []struct {
		page         string
		visitors, pv int
	}{{"/pricing", 4000, 6000}, {"/pricing/team", 1000, 1500}, {"/blog", 9000, 9500}} {
		if _, err := st.SQL().Exec(`INSERT INTO agg_rollup (site, dim, hour, value, visitors, day_visitors, pageviews) VALUES ('s1', ?, ?, ?, ?, ?, ?)`,
			aggregate.DimPage, day.Unix(), r.page, r.visitors, r.visitors, r.pv); err != nil {
			t.Fatal(err)
		}
	}
	ask := func(filter string) []float64 {
		t.Helper()
		res, err := e.Answer(context.Background(), site, testToken, parse(t, `{"site_id":"example.com","metrics":["visitors","pageviews"],"date_range":["2026-11-20","2026-11-20"],"filters":[`+filter+`],"privacy":{"epsilon":2}}`))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Results) != 1 {
			t.Fatalf("%d rows", len(res.Results))
		}
		return res.Results[0].Metrics
	}
	if m := ask(`["is","event:page",["/pricing"]]`); math.Abs(m[0]-4000) > 60 || math.Abs(m[1]-6000) > 300 {
		t.Fatalf("is /pricing: %v, truth 4000 visitors, 6000 pageviews", m)
	}
	if m := ask(`["contains","event:page",["pricing"]]`); math.Abs(m[0]-5000) > 200 || math.Abs(m[1]-7500) > 300 {
		t.Fatalf("contains pricing: %v, truth 5000 and 7500", m)
	}
	// Breakdowns by a unit dimension under the page filter read the pair
	// cells of each country: DE's and FR's /pricing rows, nothing of /blog.
	for _, r := range []struct {
		country, page string
		visitors, pv  int
	}{{"DE", "/pricing", 3000, 4500}, {"FR", "/pricing", 1000, 1500}, {"DE", "/blog", 9000, 9500}} {
		if _, err := st.SQL().Exec(`INSERT INTO agg_pairs (site, fdim, fval, dim, day, value, day_visitors, pageviews) VALUES ('s1', ?, ?, ?, ?, ?, ?, ?)`,
			aggregate.DimCountry, r.country, aggregate.DimPage, day.Unix(), r.page, r.visitors, r.pv); err != nil {
			t.Fatal(err)
		}
	}
	res, err := e.Answer(context.Background(), site, testToken, parse(t, `{"site_id":"example.com","metrics":["visitors","pageviews"],"date_range":["2026-11-20","2026-11-20"],"dimensions":["visit:country"],"filters":[["is","event:page",["/pricing"]]],"privacy":{"epsilon":2},"pagination":{"limit":1000}}`))
	if err != nil {
		t.Fatal(err)
	}
	truth := map[string][2]float64{"DE": {3000, 4500}, "FR": {1000, 1500}, "US": {0, 0}}
	seen := 0
	for _, row := range res.Results {
		if want, ok := truth[row.Dimensions[0]]; ok {
			seen++
			if math.Abs(row.Metrics[0]-want[0]) > 60 || math.Abs(row.Metrics[1]-want[1]) > 300 {
				t.Fatalf("%s visitors of /pricing: %v, truth %v", row.Dimensions[0], row.Metrics, want)
			}
		}
	}
	if seen != 3 || len(res.Results) < 200 {
		t.Fatalf("country breakdown under a page filter: %d rows, %d of DE, FR and US; every public country is answered", len(res.Results), seen)
	}
	if _, err := e.Answer(context.Background(), site, testToken, parse(t, `{"site_id":"example.com","metrics":["visitors"],"date_range":["2026-11-20","2026-11-20"],"dimensions":["visit:source"],"filters":[["is","event:page",["/pricing"]]]}`)); err == nil || !strings.Contains(err.Error(), "breakdowns by visit:source can be filtered on") {
		t.Fatalf("page filter with a source breakdown: %v", err)
	}
	// One visitor-day moves the filtered total by at most the caps: the
	// noise is calibrated to visitors ≤ 1 per matching page (here 1) and
	// pageviews ≤ the unit's total cap.
	l0, linf, _ := summedSens(aggregate.DefaultCaps, statsquery.Filter{Op: "is", Dim: aggregate.DimPage, Values: []string{"/a"}}, release.Visitors)
	if l0 != 1 || linf != 1 {
		t.Fatalf("visitors sensitivity %d×%v", l0, linf)
	}
	_, linf, _ = summedSens(aggregate.DefaultCaps, statsquery.Filter{Op: "contains", Dim: aggregate.DimPage, Values: []string{"a"}}, release.Visitors)
	if linf != float64(aggregate.DefaultCaps.Pages) {
		t.Fatalf("contains: visitors sensitivity %v, want one per page a unit can view (%d)", linf, aggregate.DefaultCaps.Pages)
	}
}
