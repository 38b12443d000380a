package release

import (
	"math"
	"testing"

	"github.com/veil-analytics/veil/internal/aggregate"
)

// referencePageShare is the share of pageviews of the 10th most popular of
// 200 pages under Zipf(1) popularity: (1/10)/H(200). README's utility table
// uses the same traffic model: 2.5 pageviews per visitor.
var referencePageShare = 0.1 / 5.878

// halfWidth is the 95% interval half-width of a released item.
func halfWidth(t *testing.T, period, dim, metric string) float64 {
	t.Helper()
	items := Plan(aggregate.DefaultCaps)
	rho := ItemRho(items, DefaultBudget)
	for i, it := range items {
		if it.Period == period && it.Dim == dim && it.Metric == metric {
			return 1.959963984540054 * it.Sensitivity() / math.Sqrt(2*rho[i])
		}
	}
	t.Fatalf("no item %s %s %s", period, dim, metric)
	return 0
}

// The defaults must give a site with 10,000 visitors a day its daily
// visitors within ±2% and its top 10 pages' daily pageviews within ±10%.
func TestDefaultsMeetUtilityTargets(t *testing.T) {
	const visitors = 10000
	if hw := halfWidth(t, "day", aggregate.DimTotal, Visitors); hw > 0.02*visitors {
		t.Errorf("daily visitors ±%.0f, want within ±%.0f", hw, 0.02*visitors)
	}
	tenth := 2.5 * visitors * referencePageShare
	if hw := halfWidth(t, "day", aggregate.DimPage, Pageviews); hw > 0.10*tenth {
		t.Errorf("10th page pageviews ±%.0f of %.0f, want within ±10%%", hw, tenth)
	}
	b := DefaultBudget
	if b.ReleaseRho()+b.AdHocRho() > b.DailyRho()*(1+1e-12) {
		t.Error("release and ad hoc shares exceed the daily budget")
	}
}
