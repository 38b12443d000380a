package aggregate

import (
	"context"
	"database/sql"
	"math"
	"time"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/eventlog"
)

// UnitErasure is what EraseUnit took out of the aggregation.
type UnitErasure struct {
	// UnitDays is the unit-days of bounding state dropped.
	UnitDays int
	// Events is the erased events that had been counted in the exact
	// rollups of days not yet closed, and Cells the rollup cells their
	// contribution was taken back from.
	Events, Cells int
}

// EraseUnit removes an erased data subject, unit p, from a site's
// aggregation. erase must delete p's events from the log and return them in
// log order; it runs while the site's counting is paused, after everything
// counted so far is committed, so the position tells exactly which of the
// events the rollups hold. Their bounded contribution to days not yet
// closed is recomputed — p's bounding depends only on p's own events, in
// log order — and subtracted, cells left empty are deleted (secure_delete
// zeroes them in the file), and p's bounding state is dropped. A day
// erased before it closes is released as if p had never been there.
// Closed days keep their counts: their releases may already be public, and
// the DP guarantee is what covers them.
//
// Messages the consumer fetched before erase deleted them are skipped when
// they arrive. If erase fails, nothing is subtracted: the rollups may keep
// p's contribution to open days (bounded by the caps), never lose anyone
// else's.
func (a *Aggregator) EraseUnit(ctx context.Context, siteID string, p event.Pseudonym, erase func(context.Context) ([]eventlog.Erased, error)) (UnitErasure, error) {
	var out UnitErasure
	s, err := a.site(ctx, siteID)
	if err != nil {
		return out, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pendPos > s.pos {
		if err := a.commitLocked(ctx, s); err != nil {
			return out, err
		}
	}
	erased, err := erase(ctx)
	if err != nil {
		return out, err
	}
	// Anything of p's the consumer still holds was fetched before the
	// erasure ended, so its sequence is at most the stream's last one now.
	horizon := uint64(math.MaxUint64)
	if st, err := a.cfg.JS.Stream(ctx, eventlog.StreamName(siteID)); err == nil {
		if info, err := st.Info(ctx); err == nil {
			horizon = info.State.LastSeq
		}
	}
	if horizon > s.pendPos {
		if s.erased == nil {
			s.erased = map[event.Pseudonym]uint64{}
		}
		s.erased[p] = horizon
	}
	for k := range s.units {
		if k.unit == p {
			delete(s.units, k)
			out.UnitDays++
		}
	}

	byDay := map[int32][]*event.Event{}
	for i := range erased {
		e := &erased[i].Event
		day := dayOf(e.Time)
		if erased[i].Seq > s.pos || e.Pseudonym != p || e.Unit == event.UnitEvent || s.closed[day] {
			continue
		}
		byDay[day] = append(byDay[day], e)
		out.Events++
	}
	if len(byDay) == 0 {
		return out, nil
	}
	d := newDeltas()
	for _, evs := range byDay {
		u := &unitState{}
		for _, e := range evs {
			s.caps.apply(u, e, d)
		}
	}
	for _, x := range d.cells {
		x.negate()
	}
	for _, x := range d.pairs {
		x.negate()
	}
	tx, err := a.cfg.DB.BeginTx(ctx, nil)
	if err != nil {
		return out, err
	}
	defer tx.Rollback()
	if err := writeDeltas(ctx, tx, s.id, d); err != nil {
		return out, err
	}
	const empty = `visits=0 AND bounces=0 AND pageviews=0 AND events=0 AND day_visitors=0`
	for k := range d.cells {
		if _, err := tx.ExecContext(ctx, `DELETE FROM agg_rollup WHERE site=? AND dim=? AND hour=? AND value=? AND visitors=0 AND `+empty,
			s.id, k.dim, k.hour, k.value); err != nil {
			return out, err
		}
	}
	for k := range d.pairs {
		if _, err := tx.ExecContext(ctx, `DELETE FROM agg_pairs WHERE site=? AND fdim=? AND fval=? AND dim=? AND day=? AND value=? AND `+empty,
			s.id, k.fdim, k.fval, k.dim, k.day, k.value); err != nil {
			return out, err
		}
	}
	if err := tx.Commit(); err != nil {
		return out, err
	}
	out.Cells = len(d.cells) + len(d.pairs)
	// The deleted cells' old pages may still sit in the write-ahead log.
	if _, err := a.cfg.DB.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		a.cfg.Logger.Warn("aggregator: WAL checkpoint after an erasure failed", "site", s.id, "err", err)
	}
	return out, nil
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
		{`DELETE FROM agg_pairs WHERE site=? AND day < ?`, int64(day) * 86400}, // the day's first second
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
