package query

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
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
		res, err := e.Answer(context.Background(), site, "test", q)
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
	res, err := e.Answer(context.Background(), site, "test", parse(t, body))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Results) != 1 || res.Results[0].Dimensions[0] != "/popular" {
		t.Fatalf("results %+v", res.Results)
	}
	spent, _ := e.Ledger.Spent(context.Background(), "s1", "adhoc:")
	again, err := e.Answer(context.Background(), site, "test", parse(t, body))
	if err != nil || !again.Meta.Cached || again.Results[0].Metrics[0] != res.Results[0].Metrics[0] {
		t.Fatalf("repeat not cached: %+v %v", again.Meta, err)
	}
	// Another page of the same question is the same answer, also free.
	paged := parse(t, body[:len(body)-1]+`,"pagination":{"limit":1,"offset":0}}`)
	p, err := e.Answer(context.Background(), site, "test", paged)
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
	one, err := e.Answer(context.Background(), site, "test", parse(t, `{"site_id":"app.example","metrics":["visitors"],"date_range":["2026-11-20","2026-11-20"],"filters":[["is","visit:device",["desktop"]]],"privacy":{"epsilon":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	three, err := e.Answer(context.Background(), site, "test", parse(t, `{"site_id":"app.example","metrics":["visitors"],"date_range":["2026-11-18","2026-11-20"],"filters":[["is","visit:device",["desktop"]]],"privacy":{"epsilon":1}}`))
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
