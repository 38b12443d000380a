// Package query answers Stats API v2 queries with differential privacy.
//
// Two tiers. A query the pipeline's releases can answer (site totals by day,
// month or hour; one breakdown by a released metric; no filters) is
// post-processing of released values: free, and says so in meta. Anything
// else is an ad hoc query: fresh Gaussian noise on the exact bounded
// rollups, calibrated to the same contribution caps, charged to the ledger
// for every day it reads (visitor-days of different days are disjoint, so
// each day pays once), and cached so an identical repeat is free.
package query

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/veil-analytics/veil/internal/aggregate"
	"github.com/veil-analytics/veil/internal/audit"
	"github.com/veil-analytics/veil/internal/dp"
	"github.com/veil-analytics/veil/internal/httpx"
	"github.com/veil-analytics/veil/internal/ledger"
	"github.com/veil-analytics/veil/internal/policy"
	"github.com/veil-analytics/veil/internal/release"
	"github.com/veil-analytics/veil/internal/statsquery"
	"github.com/veil-analytics/veil/internal/store"
)

// DefaultEpsilon is what an ad hoc query spends when it names no ε.
const DefaultEpsilon = 0.3

// Engine answers queries.
type Engine struct {
	DB     *sql.DB
	Ledger *ledger.Ledger
	Caps   aggregate.Caps
	// CapsFor returns a site's contribution bounds; nil uses Caps.
	CapsFor func(store.Site) aggregate.Caps
	Budgets release.Budgets
	Now     func() time.Time
	// Policy decides every query; nil allows everything.
	Policy Decider
	// Audit records policy denials and every charged ad hoc answer; nil
	// records nothing.
	Audit audit.Recorder
}

// Row is one result row: dimension values, then metric values in the order
// asked, each with its 95% interval.
type Row struct {
	Dimensions []string     `json:"dimensions"`
	Metrics    []float64    `json:"metrics"`
	Intervals  [][2]float64 `json:"ci95"`
}

// DayBudget is what is left of one day's ad hoc budget.
type DayBudget struct {
	Day         string  `json:"day"`
	RhoLeft     float64 `json:"rho_left"`
	EpsilonLeft float64 `json:"epsilon_left"`
}

// Meta explains how an answer was made and what it cost.
type Meta struct {
	Source       string      `json:"source"` // "released" or "ad_hoc"
	Cached       bool        `json:"cached"`
	Cost         string      `json:"cost"`
	EpsilonSpent float64     `json:"epsilon_spent"`
	RhoSpent     float64     `json:"rho_spent"`
	Delta        float64     `json:"delta"`
	Mechanism    string      `json:"mechanism"`
	PrivacyUnit  string      `json:"privacy_unit"`
	Composition  string      `json:"composition"`
	Interval     string      `json:"interval"`
	Budget       []DayBudget `json:"budget,omitempty"`
	Notes        []string    `json:"notes,omitempty"`
	// A preview answers nothing and charges nothing: it says what the
	// query would cost (EpsilonCost per day or month) and whether a budget
	// would be exceeded.
	Preview     bool    `json:"preview,omitempty"`
	EpsilonCost float64 `json:"epsilon_cost,omitempty"`
	WouldExceed bool    `json:"would_exceed,omitempty"`
	// Policy is what the query policy decided and applied.
	Policy     *PolicyMeta `json:"policy,omitempty"`
	hiddenRows int
}

// PolicyMeta reports the query policy's constraints in an answer.
type PolicyMeta struct {
	MinCohort            int      `json:"min_cohort"`
	MaxEpsilonPerQuery   float64  `json:"max_epsilon_per_query"`
	MaxEpsilonPerRoleDay float64  `json:"max_epsilon_per_role_day"`
	Purpose              string   `json:"purpose,omitempty"`
	Reasons              []string `json:"reasons,omitempty"`
	HiddenRows           int      `json:"hidden_rows,omitempty"`
}

// Result is the answer in the Stats API v2 shape.
type Result struct {
	Results []Row            `json:"results"`
	Meta    Meta             `json:"meta"`
	Query   statsquery.Query `json:"query"`
}

func badq(field, format string, args ...any) error {
	return httpx.Errorf(http.StatusBadRequest, "unsupported", field, format, args...)
}

// metricFields maps API metrics to the rollup metrics they are built from.
func baseMetrics(m statsquery.Metric) []string {
	switch m {
	case statsquery.BounceRate:
		return []string{release.Bounces, release.Visits}
	case statsquery.ViewsPerVisit:
		return []string{release.Pageviews, release.Visits}
	}
	return []string{string(m)}
}

// Answer answers q for site on behalf of tok, as the query policy allows.
func (e *Engine) Answer(ctx context.Context, site store.Site, tok store.Token, q statsquery.Query) (Result, error) {
	if q.To.After(e.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)) {
		return Result{}, badq("date_range", "the range ends in the future")
	}
	tier := policy.TierAdHoc
	if releasable(q) {
		tier = policy.TierReleased
	} else if _, err := e.planAdHoc(site, q); err != nil {
		return Result{}, err // a question Veil cannot answer is a 400 whoever asks
	}
	d, err := e.decide(ctx, site, tok, q, tier)
	if err != nil {
		return Result{}, err
	}
	if d != nil {
		q.MinCohort = d.MinCohort
	}
	var res Result
	switch {
	case q.Preview:
		res, err = e.preview(ctx, site, q)
	case tier == policy.TierReleased:
		res, err = e.fromReleases(ctx, site, q)
	default:
		res, err = e.adHoc(ctx, site, tok, q, d)
	}
	if err == nil && d != nil {
		res.Meta.Policy = policyMeta(d, q.Purpose)
		res.Meta.Policy.HiddenRows = res.Meta.hiddenRows
	}
	return res, err
}

// releasable reports whether releases answer q.
func releasable(q statsquery.Query) bool {
	if len(q.Filters) > 0 {
		return false
	}
	dim := q.BreakdownDim()
	if q.TimeDim() == "time:hour" {
		if dim != "" {
			return false
		}
		for _, m := range q.Metrics {
			if m != statsquery.Visitors && m != statsquery.Pageviews {
				return false
			}
		}
		return true
	}
	for _, m := range q.Metrics {
		for _, b := range baseMetrics(m) {
			if !released(dim, b) {
				return false
			}
		}
	}
	return true
}

func planDim(dim string) string {
	if strings.HasPrefix(dim, aggregate.PropPrefix) {
		return aggregate.PropPrefix
	}
	return dim
}

func released(dim, metric string) bool {
	for _, it := range release.Plan(aggregate.DefaultCaps) {
		if it.Period == "day" && it.Dim == planDim(dim) && it.Metric == metric {
			return true
		}
	}
	return false
}

func baseMeta(site store.Site) Meta {
	unit := "visitor-day"
	if site.UserUnit {
		unit = "user (per day of data)"
	}
	return Meta{
		Delta:       dp.DefaultDelta,
		Mechanism:   "Gaussian noise (zCDP), Gaussian-threshold partition selection for open-ended dimensions; google/differential-privacy samplers",
		PrivacyUnit: unit,
		Composition: "parallel across days (each day's units are disjoint); sequential within a day",
		Interval:    "ci95 is the 95% interval of the privacy noise around each value (not sampling error)",
	}
}

type acc struct {
	x    map[string]float64 // base metric -> sum
	vari map[string]float64
}

func newAcc() *acc { return &acc{x: map[string]float64{}, vari: map[string]float64{}} }

func bucketOf(timeDim string, t time.Time) string {
	switch timeDim {
	case "time:day":
		return t.UTC().Format(time.DateOnly)
	case "time:month":
		return t.UTC().Format("2006-01")
	case "time:hour":
		return t.UTC().Format("2006-01-02 15:00:00")
	}
	return ""
}

// fromReleases sums released values: post-processing, no budget.
func (e *Engine) fromReleases(ctx context.Context, site store.Site, q statsquery.Query) (Result, error) {
	meta := baseMeta(site)
	meta.Source, meta.Cost = "released", "free: post-processing of values already released"
	dim := q.BreakdownDim()
	period := "day"
	if q.TimeDim() == "time:hour" {
		period = "hour"
	}
	groups := map[[2]string]*acc{}
	var order [][2]string
	add := func(bucket, value, metric string, noisy, sigma float64) {
		k := [2]string{bucket, value}
		a := groups[k]
		if a == nil {
			a = newAcc()
			groups[k] = a
			order = append(order, k)
		}
		a.x[metric] += noisy
		a.vari[metric] += sigma * sigma
	}
	// Only the metrics asked for: the key is (site, period, dim, metric,
	// start, value), so naming them lets SQLite seek to the range instead
	// of reading every metric of every day.
	args := []any{site.ID, period, dim, q.From.Unix(), q.To.Unix()}
	var bases []string
	for _, m := range q.Metrics {
		for _, b := range baseMetrics(m) {
			if !slices.Contains(bases, b) {
				bases = append(bases, b)
				args = append(args, b)
			}
		}
	}
	if len(bases) == 0 {
		return Result{}, badq("metrics", "at least one metric is required")
	}
	in := "?" + strings.Repeat(",?", len(bases)-1)
	// Without a time dimension, SQLite sums per value; the variance of a
	// sum of independent noises is the sum of their variances.
	sqlq := `SELECT start, value, metric, noisy, sigma*sigma FROM released
		WHERE site=? AND period=? AND dim=? AND start>=? AND start<? AND metric IN (` + in + `)`
	if q.TimeDim() == "" {
		sqlq = `SELECT 0, value, metric, sum(noisy), sum(sigma*sigma) FROM released
		WHERE site=? AND period=? AND dim=? AND start>=? AND start<? AND metric IN (` + in + `) GROUP BY value, metric`
	}
	rows, err := e.DB.QueryContext(ctx, sqlq, args...)
	if err != nil {
		return Result{}, err
	}
	for rows.Next() {
		var start int64
		var value, metric string
		var noisy, variance float64
		if err := rows.Scan(&start, &value, &metric, &noisy, &variance); err != nil {
			rows.Close()
			return Result{}, err
		}
		add(bucketOf(q.TimeDim(), time.Unix(start, 0)), value, metric, noisy, math.Sqrt(variance))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Result{}, err
	}
	releasedDays := map[int64]bool{}
	drows, err := e.DB.QueryContext(ctx, `SELECT start FROM release_runs WHERE site=? AND period='day' AND start>=? AND start<?`, site.ID, q.From.Unix(), q.To.Unix())
	if err != nil {
		return Result{}, err
	}
	for drows.Next() {
		var start int64
		if err := drows.Scan(&start); err != nil {
			drows.Close()
			return Result{}, err
		}
		releasedDays[start] = true
	}
	drows.Close()
	days := int(q.To.Sub(q.From).Hours() / 24)
	if period == "day" {
		var missing []time.Time
		for d := q.From; d.Before(q.To); d = d.Add(24 * time.Hour) {
			if !releasedDays[d.Unix()] {
				missing = append(missing, d)
			}
		}
		ratio := slices.ContainsFunc(q.Metrics, func(m statsquery.Metric) bool {
			return m == statsquery.BounceRate || m == statsquery.ViewsPerVisit
		})
		if ratio && len(missing) > 0 {
			// Hours carry pageviews but not visits: mixing them in would
			// skew pageviews per visit, so ratios use released days only.
			meta.Notes = append(meta.Notes, "ratios (bounce rate, views per visit) use released days only, so days not released yet are left out of this answer")
		}
		if len(missing) > 0 && dim == "" && !ratio {
			// Live data: days not yet released show their released hours
			// (visitors and pageviews), so today fills in hour by hour.
			n, err := e.addHours(ctx, site.ID, missing, add, q.TimeDim())
			if err != nil {
				return Result{}, err
			}
			if n > 0 {
				meta.Notes = append(meta.Notes, "days not yet released show the sum of their released hours: visitors and pageviews only, a visitor counted once per hour; the open hour is not shown")
			}
		}
		if len(missing) > 0 {
			meta.Notes = append(meta.Notes, fmt.Sprintf("%d of %d days in the range are not released yet (a day's breakdowns are released after it closes)", len(missing), days))
		}
	} else {
		meta.Notes = append(meta.Notes, "hours are released a few minutes after they close; the open hour is not shown; hourly visitors count a visitor once per hour")
	}
	if OpenEndedDim(dim) {
		meta.Notes = append(meta.Notes, "values seen by too few visitors on a day are not released for that day (DP partition selection)")
	}
	res := Result{Meta: meta, Query: q, Results: []Row{}}
	for _, k := range order {
		res.Results = append(res.Results, makeRow(q, k, groups[k]))
	}
	finish(&res, q)
	return res, nil
}

// addHours adds the released hourly totals of days to the accumulator and
// returns how many hours it found.
func (e *Engine) addHours(ctx context.Context, site string, days []time.Time, add func(bucket, value, metric string, noisy, sigma float64), timeDim string) (int, error) {
	n := 0
	for _, d := range days {
		rows, err := e.DB.QueryContext(ctx, `SELECT start, metric, noisy, sigma FROM released
			WHERE site=? AND period='hour' AND dim='' AND start>=? AND start<?`, site, d.Unix(), d.Add(24*time.Hour).Unix())
		if err != nil {
			return n, err
		}
		for rows.Next() {
			var start int64
			var metric string
			var noisy, sigma float64
			if err := rows.Scan(&start, &metric, &noisy, &sigma); err != nil {
				rows.Close()
				return n, err
			}
			add(bucketOf(timeDim, time.Unix(start, 0)), "", metric, noisy, sigma)
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// OpenEndedDim reports whether a query dimension's values pass selection.
func OpenEndedDim(dim string) bool { return dim != "" && release.OpenEnded(planDim(dim)) }

// makeRow turns accumulated base metrics into the query's metrics with
// intervals (ratios by the delta method).
func makeRow(q statsquery.Query, k [2]string, a *acc) Row {
	var row Row
	if q.TimeDim() != "" {
		row.Dimensions = append(row.Dimensions, k[0])
	}
	if q.BreakdownDim() != "" {
		row.Dimensions = append(row.Dimensions, k[1])
	}
	// Keep the dimension order of the query.
	if len(q.Dimensions) == 2 && !strings.HasPrefix(q.Dimensions[0], "time:") {
		row.Dimensions[0], row.Dimensions[1] = row.Dimensions[1], row.Dimensions[0]
	}
	const z = 1.959963984540054
	for _, m := range q.Metrics {
		var v, sd float64
		switch m {
		case statsquery.BounceRate, statsquery.ViewsPerVisit:
			num, den := release.Bounces, release.Visits
			scale := 100.0
			if m == statsquery.ViewsPerVisit {
				num, scale = release.Pageviews, 1
			}
			a1, b1 := a.x[num], a.x[den]
			if b1 > 0 && a1 >= 0 {
				v = scale * a1 / b1
				sd = scale * math.Sqrt(a.vari[num]/(b1*b1)+a1*a1*a.vari[den]/(b1*b1*b1*b1))
			} else {
				v, sd = math.NaN(), math.Inf(1)
			}
		default:
			v, sd = a.x[string(m)], math.Sqrt(a.vari[string(m)])
		}
		row.Metrics = append(row.Metrics, round(v))
		row.Intervals = append(row.Intervals, [2]float64{round(v - z*sd), round(v + z*sd)})
	}
	return row
}

func round(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return math.Round(x*100) / 100
}

// finish sorts and paginates results.
func finish(res *Result, q statsquery.Query) {
	idx := func(key string) (int, bool) {
		for i, m := range q.Metrics {
			if string(m) == key {
				return i, true
			}
		}
		return 0, false
	}
	dimIdx := func(key string) int {
		for i, d := range q.Dimensions {
			if d == key {
				return i
			}
		}
		return 0
	}
	// The policy's minimum cohort applies to noisy values: hiding rows is
	// post-processing and costs no privacy.
	if vi, ok := idx(string(statsquery.Visitors)); ok && q.MinCohort > 0 {
		kept := res.Results[:0]
		for _, r := range res.Results {
			if r.Metrics[vi] >= float64(q.MinCohort) {
				kept = append(kept, r)
			}
		}
		res.Meta.hiddenRows = len(res.Results) - len(kept)
		res.Results = kept
	}
	orders := q.OrderBy
	if len(orders) == 0 {
		if q.TimeDim() != "" {
			orders = []statsquery.Order{{Key: q.TimeDim()}}
		} else {
			orders = []statsquery.Order{{Key: string(q.Metrics[0]), Desc: true}}
		}
	}
	sort.SliceStable(res.Results, func(i, j int) bool {
		a, b := res.Results[i], res.Results[j]
		for _, o := range orders {
			var less, greater bool
			if mi, ok := idx(o.Key); ok {
				less, greater = a.Metrics[mi] < b.Metrics[mi], a.Metrics[mi] > b.Metrics[mi]
			} else {
				di := dimIdx(o.Key)
				less, greater = a.Dimensions[di] < b.Dimensions[di], a.Dimensions[di] > b.Dimensions[di]
			}
			if o.Desc {
				less, greater = greater, less
			}
			if less != greater {
				return less
			}
		}
		return false
	})
	lo := min(q.Offset, len(res.Results))
	hi := min(lo+q.Limit, len(res.Results))
	res.Results = res.Results[lo:hi]
}

func dayList(from, to time.Time) []time.Time {
	var out []time.Time
	for d := from; d.Before(to); d = d.Add(24 * time.Hour) {
		out = append(out, d)
	}
	return out
}

// adHoc answers with fresh noise and charges the ledger.
// adHocPlan is what an ad hoc query will do and cost, decided before any
// data is read.
type adHocPlan struct {
	key      string // ledger cache key: the question without order and paging
	fdim     string
	fvals    []string
	eps, rho float64
	lines    []ledger.Line // one per budget the range draws on
	budget   release.Budget
	// summed is a filter on a dimension without public values (pages,
	// sources, ...): the answer sums the matching values of that
	// dimension's rollup, so it has no breakdown.
	summed *statsquery.Filter
}

func (e *Engine) planAdHoc(site store.Site, q statsquery.Query) (adHocPlan, error) {
	// Sorting and paging do not change the noisy answer: the cache holds
	// every row, so another page or order of the same question is free and
	// consistent (and cannot buy a fresh draw to average against).
	whole := q
	whole.OrderBy, whole.Limit, whole.Offset = nil, statsquery.MaxLimit, 0
	p := adHocPlan{key: "q:" + whole.Key(), budget: e.Budgets(site)}
	if q.TimeDim() == "time:hour" {
		return p, badq("dimensions", "hourly answers come from releases (site totals of visitors and pageviews, without filters); other hourly questions are not supported yet: use time:day")
	}
	for i, f := range q.Filters {
		field := fmt.Sprintf("filters[%d]", i)
		if p.fdim != "" {
			return p, badq(field, "only one filter is supported yet")
		}
		if !contains(aggregate.FilterDims, f.Dim) {
			if bd := q.BreakdownDim(); bd != "" && !contains(aggregate.FilterDims, bd) {
				return p, badq(field, "a filter on %s answers totals, time series and breakdowns by %s for now; breakdowns by %s can be filtered on %s",
					f.Dim, strings.Join(aggregate.FilterDims, ", "), bd, strings.Join(aggregate.FilterDims, ", "))
			}
			if strings.HasPrefix(f.Dim, "time:") {
				return p, badq(field, "use date_range to limit time")
			}
			p.fdim, p.summed = f.Dim, &q.Filters[i]
			continue
		}
		vals, err := filterValues(f)
		if err != nil {
			return p, badq(field, "%v", err)
		}
		p.fdim, p.fvals = f.Dim, vals
	}
	if p.fdim != "" && p.fdim == q.BreakdownDim() {
		return p, badq("filters[0]", "filtering on the breakdown dimension itself is not supported yet")
	}
	p.eps = q.Epsilon
	if p.eps == 0 {
		p.eps = DefaultEpsilon
	}
	var err error
	if p.rho, err = dp.RhoFromEpsilon(p.eps, dp.DefaultDelta); err != nil {
		return p, badq("privacy.epsilon", "%v", err)
	}
	// Each day for visitor-days, each month for users (a month's days
	// share one budget).
	seen := map[string]bool{}
	for _, d := range dayList(q.From, q.To) {
		if k := p.budget.AdHocKey(d); !seen[k] {
			seen[k] = true
			p.lines = append(p.lines, ledger.Line{Key: k, Rho: p.rho})
		}
	}
	return p, nil
}

// budgetLeft lists what is left of each budget in lines after spent.
func budgetLeft(b release.Budget, lines []ledger.Line, spent map[string]float64) []DayBudget {
	if len(lines) > 31 {
		return nil
	}
	var out []DayBudget
	for _, l := range lines {
		left := b.AdHocRho() - spent[l.Key]
		out = append(out, DayBudget{Day: strings.TrimPrefix(strings.TrimPrefix(l.Key, "adhoc:day:"), "adhoc:period:"),
			RhoLeft: left, EpsilonLeft: dp.EpsilonFromRho(math.Max(left, 0), dp.DefaultDelta)})
	}
	return out
}

// preview says what answering q would cost, charging nothing.
func (e *Engine) preview(ctx context.Context, site store.Site, q statsquery.Query) (Result, error) {
	res := Result{Query: q, Results: []Row{}, Meta: baseMeta(site)}
	res.Meta.Preview = true
	if releasable(q) {
		res.Meta.Source, res.Meta.Cost = "released", "free: post-processing of values already released"
		return res, nil
	}
	p, err := e.planAdHoc(site, q)
	if err != nil {
		return Result{}, err
	}
	res.Meta.Source = "ad_hoc"
	if _, ok, err := e.Ledger.Cached(ctx, site.ID, p.key); err != nil {
		return Result{}, err
	} else if ok {
		res.Meta.Cached, res.Meta.Cost = true, "free: identical to an earlier query, answered from the cache"
		return res, nil
	}
	spent, err := e.Ledger.Spent(ctx, site.ID, "adhoc:")
	if err != nil {
		return Result{}, err
	}
	res.Meta.EpsilonCost = p.eps
	res.Meta.Cost = costText(site, p, len(dayList(q.From, q.To)))
	for _, l := range p.lines {
		if !ledger.Fits(spent[l.Key], l.Rho, p.budget.AdHocRho()) {
			res.Meta.WouldExceed = true
		}
	}
	res.Meta.Budget = budgetLeft(p.budget, p.lines, spent)
	return res, nil
}

func costText(site store.Site, p adHocPlan, days int) string {
	if site.UserUnit {
		return fmt.Sprintf("ε = %.3g (ρ = %.3g) charged to the month(s) of the range: a user contributes on every day", p.eps, p.rho)
	}
	return fmt.Sprintf("ε = %.3g (ρ = %.3g) charged to each of the %d days in the range", p.eps, p.rho, days)
}

func (e *Engine) adHoc(ctx context.Context, site store.Site, tok store.Token, q statsquery.Query, d *policy.Decision) (Result, error) {
	p, err := e.planAdHoc(site, q)
	if err != nil {
		return Result{}, err
	}
	key := p.key
	fromCache := func(b []byte) (Result, bool) {
		var res Result
		if json.Unmarshal(b, &res) != nil {
			return Result{}, false
		}
		res.Meta.Cached, res.Meta.Cost = true, "free: identical to an earlier query, answered from the cache"
		res.Meta.EpsilonSpent, res.Meta.RhoSpent, res.Query = 0, 0, q
		finish(&res, q)
		return res, true
	}
	if cached, ok, err := e.Ledger.Cached(ctx, site.ID, key); err != nil {
		return Result{}, err
	} else if ok {
		if res, ok := fromCache(cached); ok {
			return res, nil
		}
	}
	dim := q.BreakdownDim()
	fdim, fvals, eps, rho := p.fdim, p.fvals, p.eps, p.rho
	// Base metrics and their sensitivities; the query's ρ is split evenly
	// over them (plus selection for open-ended dimensions).
	var bases []string
	for _, m := range q.Metrics {
		for _, b := range baseMetrics(m) {
			if !contains(bases, b) {
				bases = append(bases, b)
			}
		}
	}
	sdim := dim
	if strings.HasPrefix(sdim, aggregate.PropPrefix) {
		sdim = aggregate.PropPrefix
	}
	parts := len(bases)
	open := OpenEndedDim(dim)
	if open && !contains(bases, release.Visitors) {
		parts++ // selection needs its own share when visitors are not asked
	}
	share := rho / float64(parts)
	// Noise is added to each (day, value) cell. A visitor-day is in one
	// day's cells only; a declared user contributes on every day of the
	// range, each day bounded by the caps, so it reaches n times as many
	// cells (L2 sensitivity grows by √n).
	days := int64(len(dayList(q.From, q.To)))
	l0Mul := int64(1)
	if site.UserUnit {
		l0Mul = days
	}
	mech := map[string]dp.Gaussian{}
	for _, b := range bases {
		l0, linf, err := release.Sens(e.caps(site), sdim, b)
		if err != nil {
			return Result{}, badq("metrics", "%v", err)
		}
		if p.summed != nil {
			if l0, linf, err = summedSens(e.caps(site), *p.summed, b); err != nil {
				return Result{}, badq("metrics", "%v", err)
			}
		}
		mech[b] = dp.Gaussian{L0: l0 * l0Mul, LInf: linf, Rho: share}
	}
	selL0, _, _ := release.Sens(e.caps(site), sdim, release.Visitors)
	selL0 *= l0Mul

	// Exact bounded cells, per (time bucket, value).
	var cells []exactCell
	switch {
	case p.summed != nil && dim != "":
		cells, err = e.transposedCells(ctx, site, q, *p.summed)
	case p.summed != nil:
		cells, err = e.summedCells(ctx, site, q, *p.summed)
	default:
		cells, err = e.exact(ctx, site, q, fdim, fvals)
	}
	if err != nil {
		return Result{}, err
	}
	// Selection works per day: a value is released for a day only when its
	// noisy count of that day's units passes the threshold.
	groups := map[[2]string]*acc{}
	var order [][2]string
	budget := p.budget
	for _, c := range cells {
		if open {
			sel := dp.Selector{L0: selL0, Rho: share, Delta: budget.SelectionDelta}
			noisy, keep := sel.Keep(c.row.DayVisitors)
			if !keep {
				continue
			}
			c.noisyVisitors, c.hasVisitors = noisy, true
		}
		k := [2]string{bucketOf(q.TimeDim(), c.day), c.row.Value}
		a := groups[k]
		if a == nil {
			a = newAcc()
			groups[k] = a
			order = append(order, k)
		}
		for _, b := range bases {
			g := mech[b]
			var v float64
			if b == release.Visitors && c.hasVisitors {
				v = c.noisyVisitors
			} else {
				v = g.AddNoise(c.row.Metric(b))
			}
			a.x[b] += v
			a.vari[b] += g.Sigma() * g.Sigma()
		}
	}
	meta := baseMeta(site)
	meta.Source = "ad_hoc"
	meta.EpsilonSpent, meta.RhoSpent = eps, rho
	meta.Cost = costText(site, p, int(days))
	if open {
		meta.Notes = append(meta.Notes, "values seen by too few visitors on a day are not included for that day (DP partition selection)")
	}
	res := Result{Meta: meta, Query: q, Results: []Row{}}
	for _, k := range order {
		res.Results = append(res.Results, makeRow(q, k, groups[k]))
	}
	answer, err := json.Marshal(res)
	if err != nil {
		return Result{}, err
	}
	lines, budgetOf := p.lines, release.LedgerBudget(budget)
	if d != nil {
		// The role's daily ε limit is charged with the budget, atomically.
		for _, day := range dayList(q.From, q.To) {
			lines = append(lines, ledger.Line{Key: roleKey(tok.Role, day), Rho: eps})
		}
		budgetOf = func(k string) float64 {
			if strings.HasPrefix(k, "policy:role:") {
				return d.MaxEpsilonPerRoleDay
			}
			return release.LedgerBudget(budget)(k)
		}
	}
	rc, err := e.Ledger.Commit(ctx, ledger.Charge{
		SiteID: site.ID, QueryKey: key, Lines: lines, Actor: tok.ID, Purpose: q.Purpose,
		Kind: ledger.KindQuery, Answer: answer, Budget: budgetOf,
	})
	var ex *ledger.ExceededError
	if errors.As(err, &ex) && strings.HasPrefix(ex.Key, "policy:role:") {
		return Result{}, httpx.Errorf(http.StatusForbidden, "policy_denied", "privacy.epsilon",
			"denied by the query policy (epsilon_exceeds_role_day_max): role %s may spend ε %.3g per day of data on this site; %.3g is left for %s; nothing was charged",
			tok.Role, d.MaxEpsilonPerRoleDay, ex.Remaining, strings.TrimPrefix(ex.Key, "policy:role:"+string(tok.Role)+":"))
	}
	if errors.As(err, &ex) {
		return Result{}, httpx.Errorf(http.StatusForbidden, "budget_exhausted", "privacy.epsilon",
			"the ad hoc privacy budget of %s is exhausted: this query needs ρ = %.4g, ρ = %.4g is left (ε ≈ %.3g); nothing was charged. Released numbers stay available for free",
			strings.TrimPrefix(strings.TrimPrefix(ex.Key, "adhoc:day:"), "adhoc:period:"), ex.Requested, math.Max(ex.Remaining, 0), dp.EpsilonFromRho(math.Max(ex.Remaining, 0), dp.DefaultDelta))
	}
	if err != nil {
		return Result{}, err
	}
	if rc.Cached { // an identical query won the race: return its answer
		if cached, ok := fromCache(rc.Answer); ok {
			return cached, nil
		}
	}
	if e.Audit != nil && !rc.Cached {
		// A fresh DP answer is a release: who asked, for what, at what ε.
		if err := e.Audit.Record(ctx, audit.Entry{Time: e.Now().UTC(), Actor: tok.ID, Action: "dp.release.adhoc", Target: site.ID,
			Reason: q.Purpose, Detail: map[string]string{"query": key, "epsilon": strconv.FormatFloat(eps, 'g', 6, 64),
				"rho": strconv.FormatFloat(rho, 'g', 6, 64), "days": strconv.Itoa(int(days)), "role": string(tok.Role)}}); err != nil {
			return Result{}, err
		}
	}
	finish(&res, q)
	res.Meta.Budget = budgetLeft(budget, p.lines, rc.Spent)
	return res, nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// filterValues resolves a filter on a unit dimension to the public values
// it selects.
func filterValues(f statsquery.Filter) ([]string, error) {
	if !contains(aggregate.FilterDims, f.Dim) {
		return nil, fmt.Errorf("filters on %s are not supported yet; filter on one of %s", f.Dim, strings.Join(aggregate.FilterDims, ", "))
	}
	var out []string
	for _, v := range release.PublicValues(f.Dim) {
		if filterMatch(f, v) {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the filter matches no value")
	}
	return out, nil
}

// summedSens bounds what one unit adds to a total filtered on f's
// dimension, which sums that dimension's rows over the matching values. Each
// pageview, visit or event has one value of the dimension, so the sum over
// any set of values stays within the unit's total caps; a unit counts as a
// visitor once per value, so visitors are bounded by how many values match
// (at most as many as a unit-day can contribute to).
func summedSens(c aggregate.Caps, f statsquery.Filter, metric string) (int64, float64, error) {
	l0f, _, err := release.Sens(c, planDim(f.Dim), release.Visitors)
	if err != nil {
		return 0, 0, err
	}
	if metric == release.Visitors {
		k := l0f
		if f.Op == "is" && int64(len(f.Values)) < k {
			k = int64(len(f.Values))
		}
		return 1, float64(k), nil
	}
	_, linf, err := release.Sens(c, aggregate.DimTotal, metric)
	return 1, linf, err
}

// filterMatch reports whether value v passes f.
func filterMatch(f statsquery.Filter, v string) bool {
	match := false
	for _, want := range f.Values {
		switch f.Op {
		case "is", "is_not":
			match = match || strings.EqualFold(v, want)
		case "contains", "contains_not":
			match = match || strings.Contains(strings.ToLower(v), strings.ToLower(want))
		}
	}
	if strings.HasSuffix(f.Op, "_not") {
		return !match
	}
	return match
}

// transposedCells answers a breakdown by a unit dimension (country,
// browser, OS, device) under a filter f on another dimension, such as a
// page or a source: the pair cells restricted to each unit value hold that
// dimension's rows, so each unit value's cell sums the rows whose value
// passes f. A unit-day has one value of a unit dimension, so it adds to
// one cell per day, within the bound summedSens gives; every public value
// is answered (no selection).
func (e *Engine) transposedCells(ctx context.Context, site store.Site, q statsquery.Query, f statsquery.Filter) ([]exactCell, error) {
	dim := q.BreakdownDim()
	pub := release.PublicValues(planDim(dim))
	var out []exactCell
	for _, d := range dayList(q.From, q.To) {
		rows, err := aggregate.ReadPairRows(ctx, e.DB, site.ID, dim, pub, f.Dim, d, d.Add(24*time.Hour))
		if err != nil {
			return nil, err
		}
		sum := map[string]*aggregate.Row{}
		for _, v := range pub {
			sum[v] = &aggregate.Row{Dim: dim, Value: v}
		}
		for _, r := range rows {
			if s := sum[r.FVal]; s != nil && filterMatch(f, r.Value) {
				s.Add(r.Row)
			}
		}
		for _, v := range pub {
			out = append(out, exactCell{day: d, row: *sum[v]})
		}
	}
	return out, nil
}

// summedCells sums, per day, the rollup rows of f's dimension whose value
// passes f: one cell per day, whatever the data (no selection needed).
func (e *Engine) summedCells(ctx context.Context, site store.Site, q statsquery.Query, f statsquery.Filter) ([]exactCell, error) {
	var out []exactCell
	for _, d := range dayList(q.From, q.To) {
		rows, err := aggregate.ReadRollup(ctx, e.DB, site.ID, f.Dim, d, d.Add(24*time.Hour))
		if err != nil {
			return nil, err
		}
		sum := aggregate.Row{Dim: f.Dim}
		for _, r := range rows {
			if filterMatch(f, r.Value) {
				sum.Add(r)
			}
		}
		out = append(out, exactCell{day: d, row: sum})
	}
	return out, nil
}

type exactCell struct {
	day           time.Time
	row           aggregate.Row
	noisyVisitors float64
	hasVisitors   bool
}

// exact reads bounded exact cells per day and value.
func (e *Engine) exact(ctx context.Context, site store.Site, q statsquery.Query, fdim string, fvals []string) ([]exactCell, error) {
	dim := q.BreakdownDim()
	var out []exactCell
	for _, d := range dayList(q.From, q.To) {
		var rows []aggregate.Row
		var err error
		if fdim != "" {
			rows, err = aggregate.ReadPairs(ctx, e.DB, site.ID, fdim, fvals, dim, d, d.Add(24*time.Hour))
		} else {
			rows, err = aggregate.ReadRollup(ctx, e.DB, site.ID, dim, d, d.Add(24*time.Hour))
		}
		if err != nil {
			return nil, err
		}
		sum := map[string]*aggregate.Row{}
		var vals []string
		for _, r := range rows {
			s := sum[r.Value]
			if s == nil {
				s = &aggregate.Row{Dim: r.Dim, Value: r.Value}
				sum[r.Value] = s
				vals = append(vals, r.Value)
			}
			s.Add(r)
		}
		if !OpenEndedDim(dim) {
			// Closed dimensions answer every public value, present or not.
			pub := release.PublicValues(planDim(dim))
			for _, v := range pub {
				if sum[v] == nil {
					sum[v] = &aggregate.Row{Dim: dim, Value: v}
					vals = append(vals, v)
				}
			}
			vals = pub
		}
		for _, v := range vals {
			out = append(out, exactCell{day: d, row: *sum[v]})
		}
	}
	return out, nil
}

func (e *Engine) caps(s store.Site) aggregate.Caps {
	if e.CapsFor != nil {
		return e.CapsFor(s)
	}
	return e.Caps
}
