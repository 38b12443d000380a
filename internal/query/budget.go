package query

import (
	"context"
	"math"
	"strings"
	"time"

	"github.com/veil-analytics/veil/internal/dp"
	"github.com/veil-analytics/veil/internal/store"
)

// PeriodBudget is how much of one budget period (a day, or a month for
// user-unit sites) has been spent. ε figures are each converted from ρ at
// the site's δ; ρ adds up under composition, ε does not.
type PeriodBudget struct {
	Period            string  `json:"day"`
	ReleasedRho       float64 `json:"released_rho"`
	ReleasedEpsilon   float64 `json:"released_epsilon"`
	AdHocRhoSpent     float64 `json:"adhoc_rho_spent"`
	AdHocEpsilonSpent float64 `json:"adhoc_epsilon_spent"`
	AdHocEpsilonLeft  float64 `json:"adhoc_epsilon_left"`
	AdHocEpsilonTotal float64 `json:"adhoc_epsilon_total"`
	TotalEpsilonSpent float64 `json:"total_epsilon_spent"`
}

// BudgetReport is a site's budget over a range of days.
type BudgetReport struct {
	SiteID       string         `json:"site_id"`
	PrivacyUnit  string         `json:"privacy_unit"`
	Period       string         `json:"period"` // "day" or "month"
	DailyEpsilon float64        `json:"epsilon_per_period"`
	Delta        float64        `json:"delta"`
	Days         []PeriodBudget `json:"days"`
}

// MaxBudgetDays bounds the range of one budget report.
const MaxBudgetDays = 400

// Budget reports what has been spent of site's budgets for the days in
// [from, to) (midnight UTC).
func (e *Engine) Budget(ctx context.Context, site store.Site, from, to time.Time) (BudgetReport, error) {
	b := e.Budgets(site)
	rep := BudgetReport{SiteID: site.ID, PrivacyUnit: baseMeta(site).PrivacyUnit, Period: "day",
		DailyEpsilon: b.DailyEpsilon, Delta: b.Delta, Days: []PeriodBudget{}}
	if b.PerPeriod {
		rep.Period = "month"
	}
	spent, err := e.Ledger.Spent(ctx, site.ID, "")
	if err != nil {
		return rep, err
	}
	adTotal := dp.EpsilonFromRho(b.AdHocRho(), b.Delta)
	seen := map[string]bool{}
	for _, d := range dayList(from, to) {
		rk, ak := b.ReleaseKey(d), b.AdHocKey(d)
		if seen[ak] {
			continue
		}
		seen[ak] = true
		r, a := spent[rk], spent[ak]
		rep.Days = append(rep.Days, PeriodBudget{
			Period:            strings.TrimPrefix(strings.TrimPrefix(ak, "adhoc:day:"), "adhoc:period:"),
			ReleasedRho:       r,
			ReleasedEpsilon:   dp.EpsilonFromRho(r, b.Delta),
			AdHocRhoSpent:     a,
			AdHocEpsilonSpent: dp.EpsilonFromRho(a, b.Delta),
			AdHocEpsilonLeft:  dp.EpsilonFromRho(math.Max(b.AdHocRho()-a, 0), b.Delta),
			AdHocEpsilonTotal: adTotal,
			TotalEpsilonSpent: dp.EpsilonFromRho(r+a, b.Delta),
		})
	}
	return rep, nil
}

// ReleaseRun is one release: a closed hour's totals or a closed day's
// totals and breakdowns, with what the day's releases cost.
type ReleaseRun struct {
	Period     string    `json:"period"` // "hour" or "day"
	Start      time.Time `json:"start"`
	ReleasedAt time.Time `json:"released_at"`
	Values     int       `json:"values"`
	// For days: the ρ the day's releases charge to the ledger line
	// BudgetKey, and what that line holds now.
	Rho       float64 `json:"rho,omitempty"`
	BudgetKey string  `json:"budget_key,omitempty"`
	KeySpent  float64 `json:"budget_key_spent,omitempty"`
}

// Releases lists a site's releases, oldest first.
func (e *Engine) Releases(ctx context.Context, site store.Site) ([]ReleaseRun, error) {
	rows, err := e.DB.QueryContext(ctx, `SELECT period, start, released_at, partitions FROM release_runs WHERE site=? ORDER BY start, period`, site.ID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	spent, err := e.Ledger.Spent(ctx, site.ID, "release:")
	if err != nil {
		return nil, err
	}
	b := e.Budgets(site)
	out := []ReleaseRun{}
	for rows.Next() {
		var r ReleaseRun
		var start, at int64
		if err := rows.Scan(&r.Period, &start, &at, &r.Values); err != nil {
			return nil, err
		}
		r.Start, r.ReleasedAt = time.Unix(start, 0).UTC(), time.Unix(at, 0).UTC()
		if r.Period == "day" {
			r.Rho, r.BudgetKey = b.ReleaseRho(), b.ReleaseKey(r.Start)
			r.KeySpent = spent[r.BudgetKey]
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
