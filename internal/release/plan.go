// Package release publishes the standard dashboard numbers once, as time
// buckets close, with differential privacy: each closed hour's site totals
// and each closed UTC day's totals and breakdowns by every single
// dimension. Any dashboard range is then post-processing of these releases:
// free, consistent (a week is the sum of its days) and impossible to
// exhaust. Questions the releases cannot answer are ad hoc queries
// (package query), charged to the ledger.
package release

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/veil-analytics/veil/internal/aggregate"
	"github.com/veil-analytics/veil/internal/dp"
)

// Metrics a release or query can carry.
const (
	Visitors  = "visitors"
	Visits    = "visits"
	Pageviews = "pageviews"
	Events    = "events"
	Bounces   = "bounces"
)

// Budget is a site's privacy budget per unit-day.
type Budget struct {
	// DailyEpsilon is the total ε per unit-day, reported at Delta, for the
	// day's releases and ad hoc queries together.
	DailyEpsilon float64
	Delta        float64
	// ReleaseShare of the day's ρ funds the pipeline's releases; the rest
	// is for ad hoc queries.
	ReleaseShare float64
	// SelectionDelta is the δ of each partition selection.
	SelectionDelta float64
	// PerPeriod is for sites whose privacy unit is the declared user, who
	// contributes on many days: DailyEpsilon is then the budget per user per
	// calendar month, and a day's releases and ad hoc queries draw on the
	// month (sequential composition) instead of on their own day.
	PerPeriod bool
}

// PeriodDays is how many daily releases a monthly release budget must fund.
const PeriodDays = 31

// UserBudget is the default for sites whose unit is the declared user:
// ε = 8 per user per calendar month at δ = 1e-6.
var UserBudget = Budget{DailyEpsilon: 8, Delta: dp.DefaultDelta, ReleaseShare: 2.0 / 3, SelectionDelta: 1e-8, PerPeriod: true}

// DefaultBudget is what a new site gets: ε = 3 per visitor-day at δ = 1e-6,
// two thirds of it for the releases (see the utility table in README).
var DefaultBudget = Budget{DailyEpsilon: 3, Delta: dp.DefaultDelta, ReleaseShare: 2.0 / 3, SelectionDelta: 1e-8}

// rhoMemo caches ε→ρ conversions: the inversion is a numeric search, and
// budgets are few and fixed.
var rhoMemo sync.Map // [2]float64{eps, delta} -> float64

// DailyRho is the total budget in ρ-zCDP of the budget's period: a day, or a
// month for PerPeriod budgets.
func (b Budget) DailyRho() float64 {
	key := [2]float64{b.DailyEpsilon, b.Delta}
	if v, ok := rhoMemo.Load(key); ok {
		return v.(float64)
	}
	r, err := dp.RhoFromEpsilon(b.DailyEpsilon, b.Delta)
	if err != nil {
		return 0
	}
	rhoMemo.Store(key, r)
	return r
}

// ReleaseRho is what one day's releases spend.
func (b Budget) ReleaseRho() float64 {
	if b.PerPeriod {
		return b.DailyRho() * b.ReleaseShare / PeriodDays
	}
	return b.DailyRho() * b.ReleaseShare
}

// ReleaseBudget is the ledger budget of a release line: the day's share, or
// the month's (which funds up to PeriodDays daily releases).
func (b Budget) ReleaseBudget() float64 { return b.DailyRho() * b.ReleaseShare }

// AdHocRho is the ledger budget of an ad hoc line (per day, or per month).
func (b Budget) AdHocRho() float64 { return b.DailyRho() * (1 - b.ReleaseShare) }

// ReleaseKey names the ledger line a day's releases draw on. Visitor-days
// on different days are disjoint units, so each day has its own budget
// (parallel composition); a user-level site's days share their month's.
// Releases and ad hoc queries have separate lines so queries can never eat
// the releases' share.
func (b Budget) ReleaseKey(day time.Time) string { return "release:" + b.period(day) }

// AdHocKey names the ledger line ad hoc queries over day draw on.
func (b Budget) AdHocKey(day time.Time) string { return "adhoc:" + b.period(day) }

func (b Budget) period(day time.Time) string {
	if b.PerPeriod {
		return "period:" + day.UTC().Format("2006-01")
	}
	return "day:" + day.UTC().Format(time.DateOnly)
}

// Validate checks a budget.
func (b Budget) Validate() error {
	if err := dp.ValidateEpsilon(b.DailyEpsilon); err != nil {
		return fmt.Errorf("daily epsilon: %w", err)
	}
	if !(b.ReleaseShare > 0 && b.ReleaseShare < 1) {
		return fmt.Errorf("release share must be between 0 and 1")
	}
	if !(b.Delta > 0 && b.Delta < 1e-3) || !(b.SelectionDelta > 0 && b.SelectionDelta < 1e-3) {
		return fmt.Errorf("deltas must be in (0, 1e-3)")
	}
	return nil
}

// Item is one released series: a metric of a dimension over hours or days.
type Item struct {
	Period string // "hour" or "day"
	Dim    string
	Metric string
	// L0 and LInf bound one unit-day's contribution to the series: at most
	// L0 partitions, at most LInf in each. Both follow from the caps.
	L0   int64
	LInf float64
	// Weight is the item's share of the release budget.
	Weight float64
	// Select marks the visitors item of an open-ended dimension: its noisy
	// unit counts also decide which partitions are released at all.
	Select bool
}

// Sensitivity is the item's L2 sensitivity.
func (it Item) Sensitivity() float64 { return math.Sqrt(float64(it.L0)) * it.LInf }

// Sens returns (L0, LInf) of metric on dim for one unit-day under caps; the
// same numbers serve releases and ad hoc queries.
func Sens(c aggregate.Caps, dim, metric string) (int64, float64, error) {
	visitDim := dim == aggregate.DimEntryPage || dim == aggregate.DimSource || dim == aggregate.DimReferrer ||
		dim == aggregate.DimUTMSource || dim == aggregate.DimUTMMedium || dim == aggregate.DimUTMCamp
	unitDim := dim == aggregate.DimCountry || dim == aggregate.DimBrowser || dim == aggregate.DimOS || dim == aggregate.DimDevice
	props := strings.HasPrefix(dim, aggregate.PropPrefix)
	switch {
	case dim == aggregate.DimTotal || unitDim:
		// One partition per unit-day (the unit's value).
		switch metric {
		case Visitors:
			return 1, 1, nil
		case Pageviews:
			return 1, float64(c.Pageviews), nil
		case Visits, Bounces:
			return 1, float64(c.Visits), nil
		case Events:
			return 1, float64(c.Events), nil
		}
	case dim == aggregate.DimPage:
		switch metric {
		case Visitors:
			return int64(c.Pages), 1, nil
		case Pageviews:
			return int64(c.Pages), float64(c.PageviewsPerPage), nil
		}
	case visitDim:
		switch metric {
		case Visitors:
			return int64(c.VisitValues), 1, nil
		case Visits, Bounces:
			// At most Visits visits spread over the values: the L2 norm is
			// largest when they all fall on one value.
			return 1, float64(c.Visits), nil
		}
	case dim == aggregate.DimGoal:
		switch metric {
		case Visitors:
			return int64(c.Goals), 1, nil
		case Events:
			return int64(c.Goals), float64(c.EventsPerGoal), nil
		}
	case props:
		// All prop keys share one cap on (key, value) pairs per unit-day.
		switch metric {
		case Visitors:
			return int64(c.PropValues), 1, nil
		case Events:
			return int64(c.PropValues), float64(c.EventsPerGoal), nil
		}
	}
	return 0, 0, fmt.Errorf("metric %s is not available for %s", metric, dimName(dim))
}

func dimName(dim string) string {
	if dim == "" {
		return "site totals"
	}
	return dim
}

// OpenEnded reports whether dim's values are not known in advance, so its
// partitions must pass DP selection.
func OpenEnded(dim string) bool {
	switch dim {
	case aggregate.DimTotal, aggregate.DimCountry, aggregate.DimBrowser, aggregate.DimOS, aggregate.DimDevice:
		return false
	}
	return true
}

// Plan lists the released series and their budget shares. The weights were
// chosen for the utility targets in README: pages' pageviews and the daily
// totals get the largest shares.
func Plan(c aggregate.Caps) []Item {
	type spec struct {
		period, dim, metric string
		w                   float64
	}
	specs := []spec{
		{"day", aggregate.DimTotal, Visitors, 2}, {"day", aggregate.DimTotal, Pageviews, 4},
		{"day", aggregate.DimTotal, Visits, 2}, {"day", aggregate.DimTotal, Bounces, 2}, {"day", aggregate.DimTotal, Events, 1},
		{"hour", aggregate.DimTotal, Visitors, 2}, {"hour", aggregate.DimTotal, Pageviews, 4},
		{"day", aggregate.DimPage, Visitors, 3}, {"day", aggregate.DimPage, Pageviews, 16},
		{"day", aggregate.DimEntryPage, Visitors, 1}, {"day", aggregate.DimEntryPage, Visits, 1}, {"day", aggregate.DimEntryPage, Bounces, 1},
		{"day", aggregate.DimSource, Visitors, 2}, {"day", aggregate.DimReferrer, Visitors, 1},
		{"day", aggregate.DimUTMSource, Visitors, 1}, {"day", aggregate.DimUTMMedium, Visitors, 1}, {"day", aggregate.DimUTMCamp, Visitors, 1},
		{"day", aggregate.DimCountry, Visitors, 1}, {"day", aggregate.DimBrowser, Visitors, 1},
		{"day", aggregate.DimOS, Visitors, 1}, {"day", aggregate.DimDevice, Visitors, 1},
		{"day", aggregate.DimGoal, Visitors, 1}, {"day", aggregate.DimGoal, Events, 1},
		{"day", aggregate.PropPrefix, Visitors, 1}, {"day", aggregate.PropPrefix, Events, 1},
	}
	var items []Item
	for _, s := range specs {
		l0, linf, err := Sens(c, s.dim, s.metric)
		if err != nil {
			panic(err) // the table above is static
		}
		if s.period == "hour" && s.metric == Visitors {
			l0 = int64(c.Hours) // a unit-day is in at most Hours hours
		}
		items = append(items, Item{Period: s.period, Dim: s.dim, Metric: s.metric, L0: l0, LInf: linf, Weight: s.w,
			Select: s.metric == Visitors && OpenEnded(s.dim)})
	}
	return items
}

// ItemRho is the ρ each item of a plan spends per day under budget b.
func ItemRho(items []Item, b Budget) map[int]float64 {
	var total float64
	for _, it := range items {
		total += it.Weight
	}
	out := map[int]float64{}
	for i, it := range items {
		out[i] = b.ReleaseRho() * it.Weight / total
	}
	return out
}
