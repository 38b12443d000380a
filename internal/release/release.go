package release

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veil-analytics/veil/internal/aggregate"
	"github.com/veil-analytics/veil/internal/audit"
	"github.com/veil-analytics/veil/internal/dp"
	"github.com/veil-analytics/veil/internal/ledger"
	"github.com/veil-analytics/veil/internal/store"
)

// HourGrace is how long after an hour ends its totals are released.
const HourGrace = 5 * time.Minute

// Alpha is the level of every published interval: 95%.
const Alpha = 0.05

var schema = `
CREATE TABLE IF NOT EXISTS released (
	site TEXT NOT NULL, period TEXT NOT NULL, start INTEGER NOT NULL, dim TEXT NOT NULL, value TEXT NOT NULL,
	metric TEXT NOT NULL, noisy REAL NOT NULL, sigma REAL NOT NULL,
	PRIMARY KEY (site, period, dim, metric, start, value)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS release_runs (
	site TEXT NOT NULL, period TEXT NOT NULL, start INTEGER NOT NULL, released_at INTEGER NOT NULL,
	partitions INTEGER NOT NULL,
	PRIMARY KEY (site, period, start)) WITHOUT ROWID;`

// Budgets gives a site's budget (sites may configure their own).
type Budgets func(store.Site) Budget

// Config wires a Releaser.
type Config struct {
	DB     *sql.DB
	Store  store.Store
	Ledger *ledger.Ledger
	Caps   aggregate.Caps
	// CapsFor returns a site's contribution bounds; nil uses Caps.
	CapsFor  func(store.Site) aggregate.Caps
	Budgets  Budgets
	Logger   *slog.Logger
	Now      func() time.Time
	Registry prometheus.Registerer
	// Audit records every publication before it commits; nil records
	// nothing.
	Audit audit.Recorder
	// OnRelease, when set, is told about every committed publication.
	OnRelease func(siteID, period string, start time.Time)
}

// Releaser publishes closed hours and days.
type Releaser struct {
	cfg      Config
	released *prometheus.CounterVec
	spent    prometheus.Counter
}

// New creates the release tables.
func New(cfg Config) (*Releaser, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Caps == (aggregate.Caps{}) {
		cfg.Caps = aggregate.DefaultCaps
	}
	if cfg.Budgets == nil {
		cfg.Budgets = func(store.Site) Budget { return DefaultBudget }
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if _, err := cfg.DB.Exec(schema); err != nil {
		return nil, fmt.Errorf("release tables: %w", err)
	}
	r := &Releaser{cfg: cfg,
		released: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "veil_releases_total", Help: "DP releases published, by period (hour or day)."}, []string{"period"}),
		spent:    prometheus.NewCounter(prometheus.CounterOpts{Name: "veil_release_rho_total", Help: "Privacy budget (rho, zCDP) charged by releases, summed over sites and days."}),
	}
	cfg.Registry.MustRegister(r.released, r.spent)
	return r, nil
}

// LedgerBudget returns the budget function the ledger checks lines against.
func LedgerBudget(b Budget) func(string) float64 {
	return func(key string) float64 {
		switch {
		case strings.HasPrefix(key, "release:"):
			return b.ReleaseBudget()
		case strings.HasPrefix(key, "adhoc:"):
			return b.AdHocRho()
		}
		return 0
	}
}

// Run releases what is due every interval until ctx ends.
func (r *Releaser) Run(ctx context.Context, interval time.Duration) {
	for {
		sites, err := r.cfg.Store.Sites(ctx)
		if err == nil {
			for _, s := range sites {
				if err := r.ReleaseDue(ctx, s); err != nil && ctx.Err() == nil {
					r.cfg.Logger.Error("release failed", "site", s.ID, "err", err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

func dayStart(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }

// ReleaseDue releases every closed hour and every closed day of a site
// that has not been released yet.
func (r *Releaser) ReleaseDue(ctx context.Context, s store.Site) error {
	now := r.cfg.Now().UTC()
	// Hours from the first data (or site creation) up to the last closed one.
	first, err := r.firstData(ctx, s)
	if err != nil {
		return err
	}
	lastHour, err := r.lastRun(ctx, s.ID, "hour")
	if err != nil {
		return err
	}
	from := first.Truncate(time.Hour)
	if !lastHour.IsZero() {
		from = lastHour.Add(time.Hour)
	}
	for h := from; !h.Add(time.Hour + HourGrace).After(now); h = h.Add(time.Hour) {
		if err := r.releaseHour(ctx, s, h); err != nil {
			return err
		}
	}
	// Days: closed by the aggregator (its bounding state is final), or
	// past and without any data at all.
	closed, err := r.closedDays(ctx, s.ID)
	if err != nil {
		return err
	}
	lastDay, err := r.lastRun(ctx, s.ID, "day")
	if err != nil {
		return err
	}
	for d := dayStart(first); d.Before(dayStart(now)); d = d.Add(24 * time.Hour) {
		if !lastDay.IsZero() && !d.After(lastDay) {
			continue
		}
		st, known := closed[d.Unix()]
		if known && !st {
			break // the aggregator may still count events of this day
		}
		if !known && now.Before(d.Add(24*time.Hour+2*time.Hour)) {
			break // no data yet; give late events time before releasing zeros
		}
		if err := r.releaseDay(ctx, s, d); err != nil {
			return err
		}
	}
	return nil
}

func (r *Releaser) firstData(ctx context.Context, s store.Site) (time.Time, error) {
	var day sql.NullInt64
	if err := r.cfg.DB.QueryRowContext(ctx, `SELECT min(day) FROM agg_days WHERE site=?`, s.ID).Scan(&day); err != nil {
		return time.Time{}, err
	}
	first := s.Created.UTC()
	if day.Valid {
		if d := time.Unix(day.Int64*86400, 0).UTC(); d.Before(first) {
			first = d
		}
	}
	return first, nil
}

func (r *Releaser) lastRun(ctx context.Context, site, period string) (time.Time, error) {
	var start sql.NullInt64
	if err := r.cfg.DB.QueryRowContext(ctx, `SELECT max(start) FROM release_runs WHERE site=? AND period=?`, site, period).Scan(&start); err != nil {
		return time.Time{}, err
	}
	if !start.Valid {
		return time.Time{}, nil
	}
	return time.Unix(start.Int64, 0).UTC(), nil
}

// closedDays maps day starts (unix) to whether the aggregator closed them.
func (r *Releaser) closedDays(ctx context.Context, site string) (map[int64]bool, error) {
	rows, err := r.cfg.DB.QueryContext(ctx, `SELECT day, closed FROM agg_days WHERE site=?`, site)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]bool{}
	for rows.Next() {
		var day int64
		var closed bool
		if err := rows.Scan(&day, &closed); err != nil {
			return nil, err
		}
		out[day*86400] = closed
	}
	return out, rows.Err()
}

// charge pays for a day's releases once; a repeat (after a crash between
// charging and publishing) finds the cached charge and pays nothing.
func (r *Releaser) charge(ctx context.Context, s store.Site, day time.Time) error {
	b := r.cfg.Budgets(s)
	rc, err := r.cfg.Ledger.Commit(ctx, ledger.Charge{
		SiteID: s.ID, QueryKey: "release:" + day.Format(time.DateOnly),
		Lines: []ledger.Line{{Key: b.ReleaseKey(day), Rho: b.ReleaseRho()}},
		Actor: "pipeline", Purpose: "analytics", Kind: ledger.KindRelease, Answer: []byte("charged"),
		Budget: LedgerBudget(b),
	})
	if err != nil {
		return err
	}
	if !rc.Cached {
		r.spent.Add(b.ReleaseRho())
	}
	return nil
}

type cell struct {
	value string
	x     float64
	units int64 // distinct units, for selection
}

// releaseHour publishes the site totals of hour h.
func (r *Releaser) releaseHour(ctx context.Context, s store.Site, h time.Time) error {
	if err := r.charge(ctx, s, dayStart(h)); err != nil {
		return err
	}
	rows, err := aggregate.ReadRollup(ctx, r.cfg.DB, s.ID, aggregate.DimTotal, h, h.Add(time.Hour))
	if err != nil {
		return err
	}
	var tot aggregate.Row
	for _, row := range rows {
		tot.Visitors += row.Visitors
		tot.Pageviews += row.Pageviews
	}
	items := Plan(r.caps(s))
	rho := ItemRho(items, r.cfg.Budgets(s))
	var out []releasedRow
	for i, it := range items {
		if it.Period != "hour" {
			continue
		}
		g := dp.Gaussian{L0: it.L0, LInf: it.LInf, Rho: rho[i]}
		x := float64(tot.Pageviews)
		if it.Metric == Visitors {
			x = float64(tot.Visitors)
		}
		out = append(out, releasedRow{dim: it.Dim, value: "", metric: it.Metric, noisy: g.AddNoise(x), sigma: g.Sigma()})
	}
	return r.write(ctx, s.ID, "hour", h, out)
}

type releasedRow struct {
	dim, value, metric string
	noisy, sigma       float64
}

// dayCells sums a day's rollup rows of dim per value.
func (r *Releaser) dayCells(ctx context.Context, site, dim string, day time.Time) (map[string]aggregate.Row, error) {
	var rows []aggregate.Row
	var err error
	if dim == aggregate.PropPrefix {
		rows, err = aggregate.ReadRollupPrefix(ctx, r.cfg.DB, site, dim, day, day.Add(24*time.Hour))
	} else {
		rows, err = aggregate.ReadRollup(ctx, r.cfg.DB, site, dim, day, day.Add(24*time.Hour))
	}
	if err != nil {
		return nil, err
	}
	out := map[string]aggregate.Row{}
	for _, row := range rows {
		key := row.Value
		if dim == aggregate.PropPrefix {
			key = row.Dim + "\x00" + row.Value
		}
		acc := out[key]
		acc.Dim, acc.Value = row.Dim, row.Value
		acc.DayVisitors += row.DayVisitors
		acc.Visits += row.Visits
		acc.Bounces += row.Bounces
		acc.Pageviews += row.Pageviews
		acc.Events += row.Events
		out[key] = acc
	}
	return out, nil
}

// releaseDay publishes a day's totals and breakdowns.
func (r *Releaser) releaseDay(ctx context.Context, s store.Site, day time.Time) error {
	if err := r.charge(ctx, s, day); err != nil {
		return err
	}
	b := r.cfg.Budgets(s)
	items := Plan(r.caps(s))
	rho := ItemRho(items, b)
	// Items of one dimension share the partitions its selector keeps.
	byDim := map[string][]int{}
	var dims []string
	for i, it := range items {
		if it.Period != "day" {
			continue
		}
		if _, ok := byDim[it.Dim]; !ok {
			dims = append(dims, it.Dim)
		}
		byDim[it.Dim] = append(byDim[it.Dim], i)
	}
	var out []releasedRow
	for _, dim := range dims {
		cells, err := r.dayCells(ctx, s.ID, dim, day)
		if err != nil {
			return err
		}
		var keys []string
		if OpenEnded(dim) {
			for k := range cells {
				keys = append(keys, k)
			}
		} else {
			keys = PublicValues(dim) // every value, present or not
		}
		sort.Strings(keys)
		kept := map[string]bool{}
		for _, i := range byDim[dim] {
			it := items[i]
			if !it.Select {
				continue
			}
			sel := dp.Selector{L0: it.L0, Rho: rho[i], Delta: b.SelectionDelta}
			for _, k := range keys {
				noisy, keep := sel.Keep(cells[k].DayVisitors)
				if keep {
					kept[k] = true
					dimName, value := splitKey(dim, k)
					out = append(out, releasedRow{dim: dimName, value: value, metric: Visitors, noisy: noisy, sigma: sel.Gaussian().Sigma()})
				}
			}
		}
		for _, i := range byDim[dim] {
			it := items[i]
			if it.Select {
				continue
			}
			g := dp.Gaussian{L0: it.L0, LInf: it.LInf, Rho: rho[i]}
			for _, k := range keys {
				if OpenEnded(dim) && !kept[k] {
					continue
				}
				dimName, value := splitKey(dim, k)
				out = append(out, releasedRow{dim: dimName, value: value, metric: it.Metric, noisy: g.AddNoise(cells[k].Metric(it.Metric)), sigma: g.Sigma()})
			}
		}
	}
	return r.write(ctx, s.ID, "day", day, out)
}

func splitKey(dim, k string) (string, string) {
	if dim == aggregate.PropPrefix {
		if i := strings.IndexByte(k, 0); i >= 0 {
			return k[:i], k[i+1:]
		}
	}
	return dim, k
}

// write stores one period's release in a single transaction, so a period
// is either wholly published or not at all.
func (r *Releaser) write(ctx context.Context, site, period string, start time.Time, rows []releasedRow) error {
	tx, err := r.cfg.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var exists int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM release_runs WHERE site=? AND period=? AND start=?`, site, period, start.Unix()).Scan(&exists); err != nil {
		return err
	}
	if exists > 0 {
		return nil // released already: never publish a second noisy copy
	}
	st, err := tx.PrepareContext(ctx, `INSERT INTO released (site, period, start, dim, value, metric, noisy, sigma) VALUES (?,?,?,?,?,?,?,?)`)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, row := range rows {
		if math.IsNaN(row.noisy) || math.IsInf(row.noisy, 0) {
			return errors.New("release: non-finite noisy value")
		}
		if _, err := st.ExecContext(ctx, site, period, start.Unix(), row.dim, row.value, row.metric, row.noisy, row.sigma); err != nil {
			return err
		}
	}
	// What a release cost is in the ledger (one charge per day covers its
	// hours); the run records only that the period was published.
	if _, err := tx.ExecContext(ctx, `INSERT INTO release_runs (site, period, start, released_at, partitions) VALUES (?,?,?,?,?)`,
		site, period, start.Unix(), r.cfg.Now().Unix(), len(rows)); err != nil {
		return err
	}
	// The audit entry is durable before the release is: a crash between
	// the two leaves an entry for a release that is then retried, never a
	// publication without one.
	if r.cfg.Audit != nil {
		// Its cost is the ledger's charge for the day (release:day:...).
		detail := map[string]string{"period": period, "start": start.UTC().Format(time.RFC3339), "values": strconv.Itoa(len(rows)),
			"mechanism": "gaussian"}
		if err := r.cfg.Audit.Record(ctx, audit.Entry{Time: r.cfg.Now().UTC(), Actor: "system", Action: "dp.release", Target: site, Detail: detail}); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	r.released.WithLabelValues(period).Inc()
	if r.cfg.OnRelease != nil {
		r.cfg.OnRelease(site, period, start)
	}
	return nil
}

func (r *Releaser) caps(s store.Site) aggregate.Caps {
	if r.cfg.CapsFor != nil {
		return r.cfg.CapsFor(s)
	}
	return r.cfg.Caps
}
