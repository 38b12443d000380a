package aggregate

import (
	"context"
	"database/sql"
	"time"
)

// Row is one exact rollup cell. Rows never leave the server: the release
// and query layers add noise to them first.
type Row struct {
	Dim, Value                                                string
	Hour                                                      int64
	Visitors, DayVisitors, Visits, Bounces, Pageviews, Events int64
}

// Metric returns the row's value of a metric as the release and query layers
// name it; visitors are distinct per day (DayVisitors).
func (r Row) Metric(name string) float64 {
	switch name {
	case "visitors":
		return float64(r.DayVisitors)
	case "visits":
		return float64(r.Visits)
	case "bounces":
		return float64(r.Bounces)
	case "pageviews":
		return float64(r.Pageviews)
	case "events":
		return float64(r.Events)
	}
	return 0
}

// Add adds o's counts to r.
func (r *Row) Add(o Row) {
	r.Visitors += o.Visitors
	r.DayVisitors += o.DayVisitors
	r.Visits += o.Visits
	r.Bounces += o.Bounces
	r.Pageviews += o.Pageviews
	r.Events += o.Events
}

// scanRows reads rows of (dim, value, hour, visitors, day_visitors, visits,
// bounces, pageviews, events).
func scanRows(rows *sql.Rows, err error) ([]Row, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Row
	for rows.Next() {
		var r Row
		if err := rows.Scan(&r.Dim, &r.Value, &r.Hour, &r.Visitors, &r.DayVisitors, &r.Visits, &r.Bounces, &r.Pageviews, &r.Events); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ReadRollup returns a site's rollup cells of dim for hours in [from, to).
func ReadRollup(ctx context.Context, db *sql.DB, site, dim string, from, to time.Time) ([]Row, error) {
	return scanRows(db.QueryContext(ctx, `SELECT dim, value, hour, visitors, day_visitors, visits, bounces, pageviews, events
		FROM agg_rollup WHERE site=? AND dim=? AND hour>=? AND hour<? ORDER BY hour, value`,
		site, dim, from.Unix(), to.Unix()))
}

// Position returns the last log sequence applied for a site.
func Position(ctx context.Context, db *sql.DB, site string) (uint64, error) {
	var seq uint64
	err := db.QueryRowContext(ctx, `SELECT seq FROM agg_position WHERE site=?`, site).Scan(&seq)
	if err == sql.ErrNoRows {
		return 0, nil
	}
	return seq, err
}

// ReadPairs returns a site's rollup cells of dim restricted to the unit
// dimension fdim having one of fvals, summed per day and value, for days
// in [from, to). The Row's Hour holds the day's start.
func ReadPairs(ctx context.Context, db *sql.DB, site, fdim string, fvals []string, dim string, from, to time.Time) ([]Row, error) {
	q, args := pairQuery(`dim, value, day, 0, sum(day_visitors), sum(visits), sum(bounces), sum(pageviews), sum(events)`, site, fdim, fvals, dim, from, to)
	return scanRows(db.QueryContext(ctx, q+` GROUP BY day, value ORDER BY day, value`, args...))
}

// pairQuery selects cols from the pair cells of dim restricted to fvals of
// fdim on days in [from, to).
func pairQuery(cols, site, fdim string, fvals []string, dim string, from, to time.Time) (string, []any) {
	q := `SELECT ` + cols + ` FROM agg_pairs WHERE site=? AND fdim=? AND dim=? AND day>=? AND day<? AND fval IN (`
	args := []any{site, fdim, dim, from.Unix(), to.Unix()}
	for i, v := range fvals {
		if i > 0 {
			q += ","
		}
		q += "?"
		args = append(args, v)
	}
	return q + ")", args
}

// ReadRollupPrefix is ReadRollup for every dimension starting with prefix
// (all custom prop keys at once).
func ReadRollupPrefix(ctx context.Context, db *sql.DB, site, prefix string, from, to time.Time) ([]Row, error) {
	return scanRows(db.QueryContext(ctx, `SELECT dim, value, hour, visitors, day_visitors, visits, bounces, pageviews, events
		FROM agg_rollup WHERE site=? AND dim>=? AND dim<? AND hour>=? AND hour<? ORDER BY dim, hour, value`,
		site, prefix, prefix+"\xff", from.Unix(), to.Unix()))
}

// PairRow is a pair cell: Row restricted to the unit dimension's value FVal.
type PairRow struct {
	FVal string
	Row
}

// ReadPairRows returns a site's cells of dim restricted to each of fvals of
// the unit dimension fdim, per day in [from, to), one row per (fval, day,
// value) without summing over fval. The Row's Hour holds the day's start.
func ReadPairRows(ctx context.Context, db *sql.DB, site, fdim string, fvals []string, dim string, from, to time.Time) ([]PairRow, error) {
	q, args := pairQuery(`fval, dim, value, day, day_visitors, visits, bounces, pageviews, events`, site, fdim, fvals, dim, from, to)
	rows, err := db.QueryContext(ctx, q+` ORDER BY day, fval, value`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []PairRow
	for rows.Next() {
		var r PairRow
		if err := rows.Scan(&r.FVal, &r.Dim, &r.Value, &r.Hour, &r.DayVisitors, &r.Visits, &r.Bounces, &r.Pageviews, &r.Events); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
