// Package aggregate consumes the event log with a durable consumer, bounds
// each privacy unit's contribution, and keeps exact rollups per site,
// dimension and value (per hour for site totals, per day otherwise) in the
// state store. The exact rollups are never exposed: only differentially
// private releases computed from them are.
//
// Exactly-once: the last stream sequence applied is stored in the same
// transaction as the rollup changes, and the log message is acknowledged
// only after that transaction commits; after a crash, redelivered messages
// at or below the stored sequence are skipped, and the consumer is
// recreated at the stored position. Bounding state (what each pseudonymous
// unit contributed to its open day) lives only in memory: after a restart it
// is rebuilt by replaying the open days' events from the log, which is
// deterministic in log order.
package aggregate

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/eventlog"
	"github.com/veil-analytics/veil/internal/store"
)

// ConsumerName is the durable consumer every aggregator shares.
const ConsumerName = "veil-aggregator"

// Config wires an Aggregator.
type Config struct {
	JS     jetstream.JetStream
	DB     *sql.DB
	Store  store.Store
	Caps   Caps
	Logger *slog.Logger
	Now    func() time.Time
	// Grace is how long after a UTC day ends, and after its last event
	// arrived, the day is closed: its bounding state dropped and later
	// events for it not counted.
	Grace time.Duration
	// FetchBatch is how many log messages one fetch returns.
	FetchBatch int
	// CommitEvents and CommitEvery bound the work of one transaction.
	CommitEvents int
	CommitEvery  time.Duration
	Registerer   prometheus.Registerer
	// Consumer names the durable consumer; default ConsumerName.
	Consumer string
	// CapsFor returns a site's contribution bounds; nil uses Caps for all.
	CapsFor func(store.Site) Caps
	// OnDayClosed, when set, is told about every day the aggregator
	// closes (lineage reports the day's ingestion and aggregation runs).
	OnDayClosed func(siteID string, day time.Time)
}

// Aggregator maintains the rollups.
type Aggregator struct {
	cfg Config
	m   metrics

	mu    sync.Mutex
	sites map[string]*siteAgg
}

type metrics struct {
	events  prometheus.Counter
	dropped *prometheus.CounterVec
	batches prometheus.Counter
	lag     prometheus.Gauge
}

// siteAgg is the in-memory state of one site: the bounding state of every
// open unit-day and the work not yet committed.
type siteAgg struct {
	mu     sync.Mutex // held while counting, committing or closing days
	id     string
	pos    uint64 // last sequence committed
	caps   Caps
	units  map[unitKey]*unitState
	closed map[int32]bool
	loaded bool
	// erased holds units erased while the consumer may still hold some of
	// their deleted messages in flight: their events in messages up to the
	// sequence given are not counted.
	erased map[event.Pseudonym]uint64

	// Uncommitted work: the deltas of messages up to pendPos.
	pend       deltas
	pendDays   map[int32]*dayStat
	pendPos    uint64
	pendEvents int
	pendCount  [4]int // by countOK, countCapped, countLate, countErased
	pendCorr   int
	pendSince  time.Time
}

type dayStat struct {
	last, events int64
	firstSeq     uint64
}

const (
	countOK = iota
	countCapped
	countLate
	countErased
)

var migrations = []string{`
CREATE TABLE IF NOT EXISTS agg_rollup (
	site TEXT NOT NULL, dim TEXT NOT NULL, hour INTEGER NOT NULL, value TEXT NOT NULL,
	visitors INTEGER NOT NULL DEFAULT 0, day_visitors INTEGER NOT NULL DEFAULT 0,
	visits INTEGER NOT NULL DEFAULT 0, bounces INTEGER NOT NULL DEFAULT 0,
	pageviews INTEGER NOT NULL DEFAULT 0, events INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (site, dim, hour, value)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agg_pairs (
	site TEXT NOT NULL, fdim TEXT NOT NULL, fval TEXT NOT NULL, dim TEXT NOT NULL, day INTEGER NOT NULL, value TEXT NOT NULL,
	day_visitors INTEGER NOT NULL DEFAULT 0, visits INTEGER NOT NULL DEFAULT 0, bounces INTEGER NOT NULL DEFAULT 0,
	pageviews INTEGER NOT NULL DEFAULT 0, events INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (site, fdim, fval, dim, day, value)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agg_position (site TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS agg_days (
	site TEXT NOT NULL, day INTEGER NOT NULL, last_event INTEGER NOT NULL,
	events INTEGER NOT NULL DEFAULT 0, closed INTEGER NOT NULL DEFAULT 0,
	first_seq INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (site, day)) WITHOUT ROWID;`,
}

func New(cfg Config) (*Aggregator, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Caps == (Caps{}) {
		cfg.Caps = DefaultCaps
	}
	if cfg.Grace == 0 {
		cfg.Grace = time.Hour
	}
	if cfg.Consumer == "" {
		cfg.Consumer = ConsumerName
	}
	if cfg.FetchBatch == 0 {
		cfg.FetchBatch = 64
	}
	if cfg.CommitEvents == 0 {
		cfg.CommitEvents = 500000
	}
	if cfg.CommitEvery == 0 {
		cfg.CommitEvery = 2 * time.Second
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	for _, m := range migrations {
		if _, err := cfg.DB.Exec(m); err != nil {
			return nil, fmt.Errorf("aggregator tables: %w", err)
		}
	}
	a := &Aggregator{cfg: cfg, sites: map[string]*siteAgg{}}
	a.m = metrics{
		events: prometheus.NewCounter(prometheus.CounterOpts{Name: "veil_aggregate_events_total", Help: "Events applied to rollups."}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "veil_aggregate_dropped_total",
			Help: "Events not counted: capped (beyond a contribution bound), late (for a closed day), erased (of a data subject erased while they were in flight), corrupt."}, []string{"reason"}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{Name: "veil_aggregate_batches_total", Help: "Transactions committed by the aggregator."}),
		lag:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "veil_aggregate_lag_messages", Help: "Log messages not yet aggregated, summed over sites, as of the last fetch."}),
	}
	cfg.Registerer.MustRegister(a.m.events, a.m.dropped, a.m.batches, a.m.lag)
	return a, nil
}

// Run aggregates every site until ctx ends, picking up new sites as they
// appear.
func (a *Aggregator) Run(ctx context.Context) error {
	running := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	defer func() {
		for _, cancel := range running {
			cancel()
		}
		wg.Wait()
	}()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		sites, err := a.cfg.Store.Sites(ctx)
		if err != nil && ctx.Err() == nil {
			a.cfg.Logger.Error("aggregator: list sites", "err", err)
		}
		live := map[string]bool{}
		for _, s := range sites {
			live[s.ID] = true
			if _, ok := running[s.ID]; ok {
				continue
			}
			sctx, cancel := context.WithCancel(ctx)
			running[s.ID] = cancel
			wg.Add(1)
			go func(id string) {
				defer wg.Done()
				a.runSite(sctx, id)
			}(s.ID)
		}
		for id, cancel := range running {
			if !live[id] {
				cancel()
				delete(running, id)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// runSite consumes one site's stream, retrying after errors.
func (a *Aggregator) runSite(ctx context.Context, siteID string) {
	for ctx.Err() == nil {
		err := a.consume(ctx, siteID)
		if err == nil || ctx.Err() != nil {
			return
		}
		a.cfg.Logger.Warn("aggregator: retrying", "site", siteID, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}

func (a *Aggregator) site(ctx context.Context, siteID string) (*siteAgg, error) {
	a.mu.Lock()
	s := a.sites[siteID]
	if s == nil {
		s = &siteAgg{id: siteID}
		a.sites[siteID] = s
	}
	a.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.loaded {
		if err := a.load(ctx, s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// load reads a site's position from the store and rebuilds the bounding
// state of its open days by replaying their events from the log. The state
// is never written anywhere: the log already holds the pseudonymous events,
// and a second copy of who contributed what would only be more to erase.
func (a *Aggregator) load(ctx context.Context, s *siteAgg) error {
	s.units, s.closed, s.pos = map[unitKey]*unitState{}, map[int32]bool{}, 0
	s.caps = a.cfg.Caps
	if a.cfg.CapsFor != nil {
		st, err := a.cfg.Store.SiteByID(ctx, s.id)
		if err != nil {
			return fmt.Errorf("aggregator: site %s: %w", s.id, err)
		}
		s.caps = a.cfg.CapsFor(st)
	}
	s.pend, s.pendDays, s.pendEvents, s.pendCount, s.pendCorr = newDeltas(), map[int32]*dayStat{}, 0, [4]int{}, 0
	err := a.cfg.DB.QueryRowContext(ctx, `SELECT seq FROM agg_position WHERE site=?`, s.id).Scan(&s.pos)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	s.pendPos = s.pos
	rows, err := a.cfg.DB.QueryContext(ctx, `SELECT day, closed, first_seq FROM agg_days WHERE site=?`, s.id)
	if err != nil {
		return err
	}
	var first uint64
	for rows.Next() {
		var d int32
		var closed bool
		var fs uint64
		if err := rows.Scan(&d, &closed, &fs); err != nil {
			rows.Close()
			return err
		}
		if closed {
			s.closed[d] = true
		} else if fs > 0 && (first == 0 || fs < first) {
			first = fs
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if first > 0 && first <= s.pos {
		if err := a.replay(ctx, s, first); err != nil {
			return fmt.Errorf("rebuild bounding state: %w", err)
		}
	}
	s.loaded = true
	return nil
}

// replay re-applies the events of messages first..s.pos to the bounding
// state of open days and discards the deltas, which are already committed.
func (a *Aggregator) replay(ctx context.Context, s *siteAgg, first uint64) error {
	stream, err := a.cfg.JS.Stream(ctx, eventlog.StreamName(s.id))
	if err != nil {
		return err
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: first})
	if err != nil {
		return err
	}
	scratch := newDeltas()
	for {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return err
			}
			if md.Sequence.Stream > s.pos {
				return nil
			}
			if evs, err := event.DecodeBatch(m.Data()); err == nil {
				for i := range evs {
					if !s.closed[dayOf(evs[i].Time)] {
						a.bound(s, &evs[i], scratch)
					}
				}
				if len(scratch.cells)+len(scratch.pairs) > 100000 {
					scratch = newDeltas()
				}
			}
			if md.Sequence.Stream == s.pos {
				return nil
			}
		}
		if n == 0 {
			return nil // the rest expired from the log meanwhile
		}
	}
}

// consumer returns the site's durable consumer, positioned after the last
// sequence the store has applied. One aggregator consumes a site at a time.
func (a *Aggregator) consumer(ctx context.Context, s *siteAgg) (jetstream.Consumer, error) {
	stream, err := a.cfg.JS.Stream(ctx, eventlog.StreamName(s.id))
	if err != nil {
		return nil, err
	}
	cfg := jetstream.ConsumerConfig{
		Durable: a.cfg.Consumer, AckPolicy: jetstream.AckAllPolicy, AckWait: 2 * time.Minute,
		MaxAckPending: 100000, DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	s.mu.Lock()
	pos := s.pos
	s.mu.Unlock()
	if pos > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, pos+1
	}
	// The store is the truth. A consumer left by a previous run may have
	// acknowledged past what the store applied, or hold messages delivered
	// to a process that died (redelivered only after AckWait); starting a
	// fresh one at the stored position avoids both.
	if err := stream.DeleteConsumer(ctx, a.cfg.Consumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, err
	}
	return stream.CreateOrUpdateConsumer(ctx, cfg)
}

func (a *Aggregator) consume(ctx context.Context, siteID string) error {
	s, err := a.site(ctx, siteID)
	if err != nil {
		return err
	}
	cons, err := a.consumer(ctx, s)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		s.mu.Lock()
		s.loaded = false // memory is ahead of the store: rebuild on retry
		s.mu.Unlock()
		return err
	}
	var lastClose time.Time
	var lastMsg jetstream.Msg
	for ctx.Err() == nil {
		// Check for days to close a few times per grace period (at least
		// every 10 s): during a chronological backfill, open days hold
		// bounding state in memory until they close.
		if now := a.cfg.Now(); now.Sub(lastClose) > min(10*time.Second, max(a.cfg.Grace/2, time.Second)) {
			if err := a.closeDays(ctx, s); err != nil {
				return fail(err)
			}
			lastClose = now
		}
		batch, err := cons.Fetch(a.cfg.FetchBatch, jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if len(msgs) > 0 {
			a.accumulate(s, msgs)
			lastMsg = msgs[len(msgs)-1]
			if md, err := lastMsg.Metadata(); err == nil {
				a.m.lag.Set(float64(md.NumPending))
			}
		} else {
			a.m.lag.Set(0)
		}
		// Commit when enough work piled up, when it waited long enough, or
		// when the log is drained: most events update cells other events
		// of the same batch touched, so big transactions write far fewer
		// rows per event.
		if a.commitDue(s, len(msgs) == 0) {
			if err := a.commit(ctx, s); err != nil {
				return fail(err)
			}
			if err := lastMsg.Ack(); err != nil {
				a.cfg.Logger.Warn("aggregator: ack failed (will be redelivered and skipped)", "site", s.id, "err", err)
			}
		}
	}
	return nil
}

// commitDue reports whether the site's pending work should be committed
// now. It locks: an erasure (EraseUnit) commits from another goroutine.
func (a *Aggregator) commitDue(s *siteAgg, drained bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pendPos > s.pos && (drained || s.pendEvents >= a.cfg.CommitEvents || time.Since(s.pendSince) >= a.cfg.CommitEvery)
}

func dayOf(t time.Time) int32 { return int32(t.Unix() / 86400) }

// accumulate counts the events of msgs into the site's pending deltas.
func (a *Aggregator) accumulate(s *siteAgg, msgs []jetstream.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pendPos == s.pos {
		s.pendSince = time.Now()
	}
	for p, horizon := range s.erased {
		if s.pendPos >= horizon {
			delete(s.erased, p)
		}
	}
	for _, m := range msgs {
		md, err := m.Metadata()
		if err != nil {
			continue
		}
		seq := md.Sequence.Stream
		if seq <= s.pendPos {
			continue // applied before a crash; redelivered
		}
		s.pendPos = seq
		evs, err := event.DecodeBatch(m.Data())
		if err != nil {
			// A message that cannot be decoded never will; count it and
			// move on rather than stall the site forever.
			s.pendCorr++
			a.cfg.Logger.Error("aggregator: undecodable log message skipped", "site", s.id, "seq", seq, "err", err)
			continue
		}
		now := a.cfg.Now().UnixMilli()
		for i := range evs {
			e := &evs[i]
			if len(s.erased) > 0 && seq <= s.erased[e.Pseudonym] && e.Unit != event.UnitEvent {
				s.pendCount[countErased]++
				continue
			}
			day := dayOf(e.Time)
			if s.closed[day] {
				s.pendCount[countLate]++
				continue
			}
			ds := s.pendDays[day]
			if ds == nil {
				ds = &dayStat{firstSeq: seq}
				s.pendDays[day] = ds
			}
			ds.events++
			// Arrival time, not event time: a day closes only after its
			// events stopped arriving for the grace period.
			ds.last = max(ds.last, now)
			s.pendEvents++
			s.pendCount[a.bound(s, e, s.pend)]++
		}
	}
}

// commit writes the pending deltas, day statistics and position in one
// transaction.
func (a *Aggregator) commit(ctx context.Context, s *siteAgg) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return a.commitLocked(ctx, s)
}

func (a *Aggregator) commitLocked(ctx context.Context, s *siteAgg) error {
	tx, err := a.cfg.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := writeDeltas(ctx, tx, s.id, s.pend); err != nil {
		return err
	}
	for day, ds := range s.pendDays {
		if _, err := tx.ExecContext(ctx, `INSERT INTO agg_days (site, day, last_event, events, first_seq) VALUES (?,?,?,?,?)
			ON CONFLICT (site, day) DO UPDATE SET last_event=max(last_event, excluded.last_event), events=events+excluded.events,
			first_seq=CASE WHEN first_seq=0 THEN excluded.first_seq ELSE min(first_seq, excluded.first_seq) END`,
			s.id, day, ds.last, ds.events, ds.firstSeq); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO agg_position (site, seq) VALUES (?,?) ON CONFLICT (site) DO UPDATE SET seq=excluded.seq`, s.id, s.pendPos); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.pos = s.pendPos
	a.m.batches.Inc()
	a.m.events.Add(float64(s.pendCount[countOK]))
	a.m.dropped.WithLabelValues("capped").Add(float64(s.pendCount[countCapped]))
	a.m.dropped.WithLabelValues("late").Add(float64(s.pendCount[countLate]))
	a.m.dropped.WithLabelValues("erased").Add(float64(s.pendCount[countErased]))
	a.m.dropped.WithLabelValues("corrupt").Add(float64(s.pendCorr))
	s.pend, s.pendDays, s.pendEvents, s.pendCount, s.pendCorr = newDeltas(), map[int32]*dayStat{}, 0, [4]int{}, 0
	return nil
}

// bound applies one event to its unit-day's state and adds what it counts
// to d. Anonymous events (no pseudonym links them) are each their own unit.
func (a *Aggregator) bound(s *siteAgg, e *event.Event, d deltas) int {
	if e.Unit == event.UnitEvent {
		if s.caps.apply(&unitState{}, e, d) {
			return countOK
		}
		return countCapped
	}
	k := unitKey{day: dayOf(e.Time), unit: e.Pseudonym}
	u := s.units[k]
	if u == nil {
		u = &unitState{}
		s.units[k] = u
	}
	if !s.caps.apply(u, e, d) {
		return countCapped
	}
	return countOK
}

func writeDeltas(ctx context.Context, tx *sql.Tx, site string, d deltas) error {
	st, err := tx.PrepareContext(ctx, `INSERT INTO agg_rollup (site, dim, hour, value, visitors, day_visitors, visits, bounces, pageviews, events)
		VALUES (?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (site, dim, hour, value) DO UPDATE SET
		visitors=visitors+excluded.visitors, day_visitors=day_visitors+excluded.day_visitors,
		visits=visits+excluded.visits, bounces=bounces+excluded.bounces,
		pageviews=pageviews+excluded.pageviews, events=events+excluded.events`)
	if err != nil {
		return err
	}
	defer st.Close()
	// Writing in key order keeps the B-tree pages hot.
	keys := make([]rollKey, 0, len(d.cells))
	for k := range d.cells {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b rollKey) int {
		return cmp.Or(cmp.Compare(a.dim, b.dim), cmp.Compare(a.hour, b.hour), cmp.Compare(a.value, b.value))
	})
	for _, k := range keys {
		x := d.cells[k]
		if *x == (delta{}) {
			continue
		}
		if _, err := st.ExecContext(ctx, site, k.dim, k.hour, k.value, x.Visitors, x.DayVisitors, x.Visits, x.Bounces, x.Pageviews, x.Events); err != nil {
			return err
		}
	}
	pt, err := tx.PrepareContext(ctx, `INSERT INTO agg_pairs (site, fdim, fval, dim, day, value, day_visitors, visits, bounces, pageviews, events)
		VALUES (?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (site, fdim, fval, dim, day, value) DO UPDATE SET
		day_visitors=day_visitors+excluded.day_visitors, visits=visits+excluded.visits, bounces=bounces+excluded.bounces,
		pageviews=pageviews+excluded.pageviews, events=events+excluded.events`)
	if err != nil {
		return err
	}
	defer pt.Close()
	pkeys := make([]pairKey, 0, len(d.pairs))
	for k := range d.pairs {
		pkeys = append(pkeys, k)
	}
	slices.SortFunc(pkeys, func(a, b pairKey) int {
		return cmp.Or(cmp.Compare(a.fdim, b.fdim), cmp.Compare(a.fval, b.fval), cmp.Compare(a.dim, b.dim), cmp.Compare(a.day, b.day), cmp.Compare(a.value, b.value))
	})
	for _, k := range pkeys {
		x := d.pairs[k]
		if *x == (delta{}) {
			continue
		}
		if _, err := pt.ExecContext(ctx, site, k.fdim, k.fval, k.dim, k.day, k.value, x.DayVisitors, x.Visits, x.Bounces, x.Pageviews, x.Events); err != nil {
			return err
		}
	}
	return nil
}

// CloseDays closes the site's due days now (the run loop does it every
// minute); tests and operators use it.
func (a *Aggregator) CloseDays(ctx context.Context, siteID string) error {
	s, err := a.site(ctx, siteID)
	if err != nil {
		return err
	}
	return a.closeDays(ctx, s)
}

// closeDays closes every day that ended more than Grace ago and has had no
// new events for Grace: its bounding state — the last place the aggregator
// holds pseudonyms — is dropped, and later events for it are not counted.
func (a *Aggregator) closeDays(ctx context.Context, s *siteAgg) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := a.cfg.Now()
	grace := a.cfg.Grace
	rows, err := a.cfg.DB.QueryContext(ctx, `SELECT day FROM agg_days WHERE site=? AND closed=0 AND (day+1)*86400000 + ? < ? AND last_event + ? < ?`,
		s.id, grace.Milliseconds(), now.UnixMilli(), grace.Milliseconds(), now.UnixMilli())
	if err != nil {
		return err
	}
	var days []int32
	for rows.Next() {
		var d int32
		if err := rows.Scan(&d); err != nil {
			rows.Close()
			return err
		}
		days = append(days, d)
	}
	rows.Close()
	for _, day := range days {
		if s.pendDays[day] != nil {
			continue // uncommitted events of the day: close it next time
		}
		if _, err := a.cfg.DB.ExecContext(ctx, `UPDATE agg_days SET closed=1 WHERE site=? AND day=?`, s.id, day); err != nil {
			return err
		}
		for k := range s.units {
			if k.day == day {
				delete(s.units, k)
			}
		}
		s.closed[day] = true
		a.cfg.Logger.Info("aggregator: day closed, bounding state dropped", "site", s.id, "day", time.Unix(int64(day)*86400, 0).UTC().Format(time.DateOnly))
		if a.cfg.OnDayClosed != nil {
			a.cfg.OnDayClosed(s.id, time.Unix(int64(day)*86400, 0).UTC())
		}
	}
	return nil
}
