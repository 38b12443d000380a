// Package aggregate consumes the event log with a durable consumer, bounds
// each privacy unit's contribution, and keeps exact rollups per site, hour,
// dimension and value in the state store. The exact rollups are never
// exposed: only differentially private releases computed from them are.
//
// Exactly-once: the last stream sequence applied is stored in the same
// transaction as the rollup changes and bounding state, and the log message
// is acknowledged only after that transaction commits. After a crash,
// redelivered messages at or below the stored sequence are skipped; if the
// consumer was lost or is ahead of the store, it is recreated from the
// stored position.
package aggregate

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
	// arrived, the day is closed: its bounding state (pseudonyms) deleted
	// and later events for it dropped.
	Grace time.Duration
	// FetchBatch is how many log messages one transaction applies.
	FetchBatch int
	Registerer prometheus.Registerer
	// Consumer names the durable consumer; default ConsumerName.
	Consumer string
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

// siteAgg is the in-memory state of one site: every open unit-day's
// bounding state, loaded at start and written through on every commit.
type siteAgg struct {
	mu     sync.Mutex // held while applying a batch or closing days
	id     string
	pos    uint64
	units  map[unitKey]*unitState
	closed map[int32]bool
	loaded bool
}

var migrations = []string{`
CREATE TABLE IF NOT EXISTS agg_rollup (
	site TEXT NOT NULL, dim TEXT NOT NULL, hour INTEGER NOT NULL, value TEXT NOT NULL,
	visitors INTEGER NOT NULL DEFAULT 0, day_visitors INTEGER NOT NULL DEFAULT 0,
	visits INTEGER NOT NULL DEFAULT 0, bounces INTEGER NOT NULL DEFAULT 0,
	pageviews INTEGER NOT NULL DEFAULT 0, events INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (site, dim, hour, value)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agg_units (
	site TEXT NOT NULL, day INTEGER NOT NULL, unit BLOB NOT NULL, state BLOB NOT NULL,
	PRIMARY KEY (site, day, unit)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agg_pairs (
	site TEXT NOT NULL, fdim TEXT NOT NULL, fval TEXT NOT NULL, dim TEXT NOT NULL, day INTEGER NOT NULL, value TEXT NOT NULL,
	day_visitors INTEGER NOT NULL DEFAULT 0, visits INTEGER NOT NULL DEFAULT 0, bounces INTEGER NOT NULL DEFAULT 0,
	pageviews INTEGER NOT NULL DEFAULT 0, events INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (site, fdim, fval, dim, day, value)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agg_position (site TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS agg_days (
	site TEXT NOT NULL, day INTEGER NOT NULL, last_event INTEGER NOT NULL,
	events INTEGER NOT NULL DEFAULT 0, closed INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (site, day)) WITHOUT ROWID;`,
}

// New creates the aggregator's tables and returns it.
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
		cfg.FetchBatch = 256
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
			Help: "Events not counted: capped (beyond a contribution bound), late (for a closed day), corrupt."}, []string{"reason"}),
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

// load reads a site's position and open bounding state from the store.
func (a *Aggregator) load(ctx context.Context, s *siteAgg) error {
	s.units, s.closed, s.pos = map[unitKey]*unitState{}, map[int32]bool{}, 0
	err := a.cfg.DB.QueryRowContext(ctx, `SELECT seq FROM agg_position WHERE site=?`, s.id).Scan(&s.pos)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	rows, err := a.cfg.DB.QueryContext(ctx, `SELECT day, unit, state FROM agg_units WHERE site=?`, s.id)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k unitKey
		var unit, state []byte
		if err := rows.Scan(&k.day, &unit, &state); err != nil {
			return err
		}
		copy(k.unit[:], unit)
		u := &unitState{}
		if err := json.Unmarshal(state, u); err != nil {
			return fmt.Errorf("bounding state of site %s: %w", s.id, err)
		}
		s.units[k] = u
	}
	if err := rows.Err(); err != nil {
		return err
	}
	crows, err := a.cfg.DB.QueryContext(ctx, `SELECT day FROM agg_days WHERE site=? AND closed=1`, s.id)
	if err != nil {
		return err
	}
	defer crows.Close()
	for crows.Next() {
		var d int32
		if err := crows.Scan(&d); err != nil {
			return err
		}
		s.closed[d] = true
	}
	s.loaded = true
	return crows.Err()
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
	if s.pos > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, s.pos+1
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
	lastClose := time.Time{}
	for ctx.Err() == nil {
		if now := a.cfg.Now(); now.Sub(lastClose) > time.Minute {
			if err := a.closeDays(ctx, s); err != nil {
				return err
			}
			lastClose = now
		}
		batch, err := cons.Fetch(a.cfg.FetchBatch, jetstream.FetchMaxWait(time.Second))
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
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && ctx.Err() == nil && len(msgs) == 0 {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, jetstream.ErrNoHeartbeat) {
				return err
			}
		}
		if len(msgs) == 0 {
			a.m.lag.Set(0)
			continue
		}
		if err := a.apply(ctx, s, msgs); err != nil {
			s.mu.Lock()
			s.loaded = false // in-memory state may be ahead of the store
			s.mu.Unlock()
			return err
		}
		last := msgs[len(msgs)-1]
		if md, err := last.Metadata(); err == nil {
			a.m.lag.Set(float64(md.NumPending))
		}
		if err := last.Ack(); err != nil {
			a.cfg.Logger.Warn("aggregator: ack failed (will be redelivered and skipped)", "site", s.id, "err", err)
		}
	}
	return nil
}

func dayOf(t time.Time) int32 { return int32(t.Unix() / 86400) }

// apply counts the events of msgs and commits rollups, bounding state and
// position in one transaction.
func (a *Aggregator) apply(ctx context.Context, s *siteAgg, msgs []jetstream.Msg) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := newDeltas()
	dirty := map[unitKey]*unitState{}
	days := map[int32]*dayStat{}
	pos := s.pos
	counted, capped, late, corrupt := 0, 0, 0, 0
	for _, m := range msgs {
		md, err := m.Metadata()
		if err != nil {
			return err
		}
		seq := md.Sequence.Stream
		if seq <= pos {
			continue // applied before a crash; redelivered
		}
		pos = seq
		evs, err := event.DecodeBatch(m.Data())
		if err != nil {
			// A message that cannot be decoded will never decode; count it
			// and move on rather than stall the site forever.
			corrupt++
			a.cfg.Logger.Error("aggregator: undecodable log message skipped", "site", s.id, "seq", seq, "err", err)
			continue
		}
		for i := range evs {
			c := a.count(s, &evs[i], d, dirty, days)
			switch c {
			case countOK:
				counted++
			case countCapped:
				capped++
			case countLate:
				late++
			}
		}
	}
	tx, err := a.cfg.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := writeDeltas(ctx, tx, s.id, d); err != nil {
		return err
	}
	if len(dirty) > 0 {
		st, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO agg_units (site, day, unit, state) VALUES (?,?,?,?)`)
		if err != nil {
			return err
		}
		for k, u := range dirty {
			b, _ := json.Marshal(u)
			if _, err := st.ExecContext(ctx, s.id, k.day, k.unit[:], b); err != nil {
				return err
			}
		}
	}
	for day, ds := range days {
		if _, err := tx.ExecContext(ctx, `INSERT INTO agg_days (site, day, last_event, events) VALUES (?,?,?,?)
			ON CONFLICT (site, day) DO UPDATE SET last_event=max(last_event, excluded.last_event), events=events+excluded.events`,
			s.id, day, ds.last, ds.events); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO agg_position (site, seq) VALUES (?,?) ON CONFLICT (site) DO UPDATE SET seq=excluded.seq`, s.id, pos); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.pos = pos
	a.m.batches.Inc()
	a.m.events.Add(float64(counted))
	a.m.dropped.WithLabelValues("capped").Add(float64(capped))
	a.m.dropped.WithLabelValues("late").Add(float64(late))
	a.m.dropped.WithLabelValues("corrupt").Add(float64(corrupt))
	return nil
}

type dayStat struct{ last, events int64 }

const (
	countOK = iota
	countCapped
	countLate
)

// count applies one event. Events of the anonymous kind (no pseudonym that
// links them) are each their own unit.
func (a *Aggregator) count(s *siteAgg, e *event.Event, d deltas, dirty map[unitKey]*unitState, days map[int32]*dayStat) int {
	day := dayOf(e.Time)
	if s.closed[day] {
		return countLate
	}
	ds := days[day]
	if ds == nil {
		ds = &dayStat{}
		days[day] = ds
	}
	ds.events++
	// Record arrival time (not event time): a day closes only after events
	// for it have stopped arriving for the grace period.
	if now := a.cfg.Now().UnixMilli(); now > ds.last {
		ds.last = now
	}
	if e.Unit == event.UnitEvent {
		if a.cfg.Caps.apply(&unitState{}, e, d) {
			return countOK
		}
		return countCapped
	}
	k := unitKey{day: day, unit: e.Pseudonym}
	u := s.units[k]
	if u == nil {
		u = &unitState{}
		s.units[k] = u
	}
	if !a.cfg.Caps.apply(u, e, d) {
		return countCapped
	}
	dirty[k] = u
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
	for k, x := range d.cells {
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
	for k, x := range d.pairs {
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
// new events for Grace: its bounding state — the only place pseudonyms are
// kept after ingestion — is deleted, and later events for it are dropped.
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
		tx, err := a.cfg.DB.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM agg_units WHERE site=? AND day=?`, s.id, day); err != nil {
			tx.Rollback()
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE agg_days SET closed=1 WHERE site=? AND day=?`, s.id, day); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		for k := range s.units {
			if k.day == day {
				delete(s.units, k)
			}
		}
		s.closed[day] = true
		a.cfg.Logger.Info("aggregator: day closed, bounding state deleted", "site", s.id, "day", time.Unix(int64(day)*86400, 0).UTC().Format(time.DateOnly))
	}
	return nil
}
