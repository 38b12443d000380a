package release

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/aggregate"
	"github.com/veil-analytics/veil/internal/store"
)

// Released values are unbiased and their 95% intervals cover the truth
// 93–97% of the time, over many independent releases of known data.
func TestReleasedValuesAreUnbiasedAndIntervalsCover(t *testing.T) {
	if testing.Short() {
		t.Skip("statistical test")
	}
	e := setup(t)
	ctx := context.Background()
	const trials = 300
	// Many cells per release so each series has thousands of samples and the
	// coverage check is not flaky: 300 totals, 6,000 pages, 6,000 countries.
	countries := PublicValues(aggregate.DimCountry)[:20]
	type stat struct {
		covered, n    int
		errSum, sigma float64
	}
	stats := map[string]*stat{"visitors": {}, "pageviews": {}, "country": {}}
	for i := range trials {
		id := fmt.Sprintf("s%d", i)
		s := store.Site{ID: id, Domain: id + ".example", Retention: 90 * 24 * time.Hour, Created: day}
		e.st.CreateSite(ctx, s)
		e.db.Exec(`INSERT INTO agg_days (site, day, last_event, events, closed) VALUES (?, ?, 0, 1, 1)`, id, day.Unix()/86400)
		e.cell(t, id, aggregate.DimTotal, "", day.Add(10*time.Hour), 5000, 9000)
		for k := range 20 {
			e.cell(t, id, aggregate.DimPage, fmt.Sprintf("/p%d", k), day, 700+int64(k), 800+int64(k))
			e.cell(t, id, aggregate.DimCountry, countries[k], day, 1200+int64(k), 0)
		}
		if err := e.rel.ReleaseDue(ctx, s); err != nil {
			t.Fatal(err)
		}
		check := func(name, dim, value, metric string, truth float64) {
			var noisy, sigma float64
			if err := e.db.QueryRow(`SELECT noisy, sigma FROM released WHERE site=? AND period='day' AND dim=? AND value=? AND metric=?`,
				id, dim, value, metric).Scan(&noisy, &sigma); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			st := stats[name]
			st.n++
			st.errSum += noisy - truth
			st.sigma = sigma
			if math.Abs(noisy-truth) <= 1.959963984540054*sigma {
				st.covered++
			}
		}
		check("visitors", aggregate.DimTotal, "", Visitors, 5000)
		for k := range 20 {
			check("pageviews", aggregate.DimPage, fmt.Sprintf("/p%d", k), Pageviews, 800+float64(k))
			check("country", aggregate.DimCountry, countries[k], Visitors, 1200+float64(k))
		}
	}
	for name, st := range stats {
		cov := float64(st.covered) / float64(st.n)
		mean := st.errSum / float64(st.n)
		// With n samples the coverage estimate has sd √(.95·.05/n): the
		// 93–97% band is ±7 sd for the 6,000-sample series; the 300 totals
		// get a ±4.5 sd band around 95%.
		lo, hi := 0.93, 0.97
		if st.n < 5000 {
			sd := math.Sqrt(0.95 * 0.05 / float64(st.n))
			lo, hi = 0.95-4.5*sd, 0.95+4.5*sd
		}
		if cov < lo || cov > hi {
			t.Errorf("%s: 95%% intervals covered the truth in %.1f%% of %d releases", name, 100*cov, st.n)
		}
		if math.Abs(mean) > 4*st.sigma/math.Sqrt(float64(st.n)) {
			t.Errorf("%s: mean error %.2f, more than 4 standard errors (σ=%.1f)", name, mean, st.sigma)
		}
		t.Logf("%s: coverage %.1f%%, mean error %.2f (σ %.1f)", name, 100*cov, mean, st.sigma)
	}
}
