package aggregate

import (
	"context"
	"database/sql"
	"time"

	"github.com/veil-analytics/veil/internal/event"
)

// ForgetUnit drops the bounding state of unit p on every open day of a
// site (an erased data subject), returning how many unit-days it held. The
// rollups keep their counts: they are aggregates that no longer link to
// the unit. A restart rebuilds bounding state from the log, where the
// erased unit's events are gone too.
func (a *Aggregator) ForgetUnit(siteID string, p event.Pseudonym) int {
	a.mu.Lock()
	s := a.sites[siteID]
	a.mu.Unlock()
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k := range s.units {
		if k.unit == p {
			delete(s.units, k)
			n++
		}
	}
	return n
}

// PurgeBefore deletes a site's exact rollups of hours and days before
// cutoff (retention): released, noisy values stay in their own table.
func PurgeBefore(ctx context.Context, db *sql.DB, siteID string, cutoff time.Time) (int, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	n := 0
	day := dayOf(cutoff)
	for _, q := range []struct {
		sql string
		arg int64
	}{
		{`DELETE FROM agg_rollup WHERE site=? AND hour < ?`, cutoff.Unix()},
		{`DELETE FROM agg_pairs WHERE site=? AND day < ?`, int64(day)},
		{`DELETE FROM agg_days WHERE site=? AND day < ? AND closed=1`, int64(day)},
	} {
		res, err := tx.ExecContext(ctx, q.sql, siteID, q.arg)
		if err != nil {
			return 0, err
		}
		m, _ := res.RowsAffected()
		n += int(m)
	}
	return n, tx.Commit()
}
