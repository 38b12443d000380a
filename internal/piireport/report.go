// Package piireport tells site owners which of their incoming fields carry
// what kind of personal data, so they can tighten their field declarations.
//
// The collector calls Observe for every prop of every accepted event with
// the detector's findings for its value. Only counts are kept: per site and
// field, how many values were seen and, per kind of personal data, how many
// looked like it and with what highest confidence. Raw values never reach
// this package, and a field name that itself looks like personal data is
// counted under a placeholder ("(redacted email)"), so neither memory, the
// database nor the report holds any.
//
// Observe only bumps in-memory counters under a sharded mutex and does not
// allocate once a field has been seen; Flush (run periodically by Run) adds
// the counts to the pii_fields table, and Report reads them back with
// advice.
package piireport

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/veil-analytics/veil/internal/pii"
)

// Names under which fields are counted when their own name cannot be kept.
const (
	// OtherFields collects fields past the per-site limit.
	OtherFields = "(other fields)"
	// redactedPrefix starts the placeholder for a field name that looks
	// like personal data: "(redacted email)".
	redactedPrefix = "(redacted "
	redactedOther  = redactedPrefix + "field name)"
)

// Defaults for Config.
const (
	DefaultMaxFields  = 200
	DefaultMaxEntries = 20000
)

// Config wires a Reporter.
type Config struct {
	DB     *sql.DB
	Now    func() time.Time
	Logger *slog.Logger
	// MaxFields bounds the fields stored per site; later fields are
	// counted under OtherFields. Prop names are chosen by whoever sends
	// events, so without a bound they could grow the table without end.
	MaxFields int
	// MaxEntries bounds the (site, field) counters held in memory.
	MaxEntries int
}

const schema = `CREATE TABLE IF NOT EXISTS pii_fields (
	site TEXT NOT NULL, field TEXT NOT NULL,
	kind TEXT NOT NULL, -- '' for the row that counts every value seen
	seen INTEGER NOT NULL DEFAULT 0, hits INTEGER NOT NULL DEFAULT 0,
	max_score REAL NOT NULL DEFAULT 0, last_seen INTEGER NOT NULL,
	PRIMARY KEY (site, field, kind)) WITHOUT ROWID;`

const numShards = 16

// Reporter accumulates observations and stores them.
type Reporter struct {
	cfg     Config
	seed    maphash.Seed
	shards  [numShards]shard
	entries int // counters in memory, guarded by entriesMu
	// entriesMu is taken only when a new counter is created, never on the
	// steady path.
	entriesMu sync.Mutex
	// flushMu serializes Flush and DeleteSite, which own entry.dbField.
	flushMu sync.Mutex
}

type shard struct {
	mu sync.Mutex
	m  map[key]*entry
	_  [48]byte // a cache line each, so cores do not contend on neighbours
}

type key struct{ site, field string }

// entry counts one field of one site since the last flush.
type entry struct {
	seen int64
	// kinds has one slot per kind ever seen; slots outlive flushes so the
	// steady path does not allocate.
	kinds []kindCount
	// dbField is the name the field is stored under once a flush has
	// decided it (the field itself, or OtherFields past the limit).
	dbField string
}

type kindCount struct {
	kind pii.Kind
	hits int64
	max  float64
}

// New creates the pii_fields table if needed and returns a Reporter.
func New(cfg Config) (*Reporter, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxFields <= 0 {
		cfg.MaxFields = DefaultMaxFields
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if _, err := cfg.DB.Exec(schema); err != nil {
		return nil, fmt.Errorf("pii report table: %w", err)
	}
	r := &Reporter{cfg: cfg, seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].m = map[key]*entry{}
	}
	return r, nil
}

// redactedNames holds the placeholder per value kind, so a personal-data
// field name costs no allocation either.
var redactedNames = func() map[pii.Kind]string {
	m := map[pii.Kind]string{}
	for _, k := range []pii.Kind{pii.Email, pii.Phone, pii.CreditCard, pii.IBAN, pii.IPAddress, pii.USSSN, pii.UKNINO} {
		m[k] = redactedPrefix + string(k) + ")"
	}
	return m
}()

// Observe counts one value of field for site, with the findings of the
// detector for that value (none when it found nothing). It keeps no
// reference to its arguments.
func (r *Reporter) Observe(siteID, field string, findings ...pii.Finding) {
	if f, ok := pii.Best(field); ok && f.Score >= pii.DefaultThreshold {
		field = redactedNames[f.Kind]
		if field == "" {
			field = redactedOther
		}
	}
	k := key{siteID, field}
	sh := &r.shards[(maphash.String(r.seed, siteID)^maphash.String(r.seed, field))%numShards]
	sh.mu.Lock()
	e := sh.m[k]
	if e == nil {
		e = r.newEntry(sh, k)
	}
	e.seen++
	for _, f := range findings {
		e.add(f.Kind, 1, f.Score)
	}
	sh.mu.Unlock()
}

// newEntry adds a counter for k to sh (whose lock the caller holds), or
// returns the site's OtherFields counter when memory is at its bound.
func (r *Reporter) newEntry(sh *shard, k key) *entry {
	r.entriesMu.Lock()
	defer r.entriesMu.Unlock()
	if r.entries >= r.cfg.MaxEntries {
		// At most one such counter per site and shard: the bound is
		// exceeded by a handful, never by the number of fields.
		k.field = OtherFields
		if e := sh.m[k]; e != nil {
			return e
		}
	}
	r.entries++
	// Clone: the caller's strings may point into a whole request body.
	k = key{strings.Clone(k.site), strings.Clone(k.field)}
	e := &entry{}
	sh.m[k] = e
	return e
}

func (e *entry) add(kind pii.Kind, hits int64, score float64) {
	for i := range e.kinds {
		if c := &e.kinds[i]; c.kind == kind {
			c.hits += hits
			c.max = max(c.max, score)
			return
		}
	}
	e.kinds = append(e.kinds, kindCount{kind: kind, hits: hits, max: score})
}

// delta is what one entry counted since the last flush.
type delta struct {
	key
	sh    *shard // the entry's shard (OtherFields counters may live in several)
	e     *entry
	seen  int64
	kinds []kindCount
}

// take moves every non-zero counter out of the shards.
func (r *Reporter) take() []delta {
	var out []delta
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if e.seen == 0 {
				continue
			}
			d := delta{key: k, sh: sh, e: e, seen: e.seen}
			for j := range e.kinds {
				if c := &e.kinds[j]; c.hits > 0 {
					d.kinds = append(d.kinds, *c)
					c.hits, c.max = 0, 0
				}
			}
			e.seen = 0
			out = append(out, d)
		}
		sh.mu.Unlock()
	}
	return out
}

// giveBack returns counts a failed flush could not store.
func (r *Reporter) giveBack(ds []delta) {
	for _, d := range ds {
		d.sh.mu.Lock()
		d.e.seen += d.seen
		for _, c := range d.kinds {
			d.e.add(c.kind, c.hits, c.max)
		}
		d.sh.mu.Unlock()
	}
}

// Flush adds the counts observed since the last flush to the database. On
// failure the counts are kept for the next flush.
func (r *Reporter) Flush(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	ds := r.take()
	if len(ds) == 0 {
		return nil
	}
	names, err := r.write(ctx, ds)
	if err != nil {
		r.giveBack(ds)
		return fmt.Errorf("pii report flush: %w", err)
	}
	for i, d := range ds {
		d.e.dbField = names[i]
	}
	return nil
}

const upsert = `INSERT INTO pii_fields (site, field, kind, seen, hits, max_score, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (site, field, kind) DO UPDATE SET seen = seen + excluded.seen, hits = hits + excluded.hits,
	max_score = max(max_score, excluded.max_score), last_seen = max(last_seen, excluded.last_seen)`

// write stores ds in one transaction and returns the name each delta was
// stored under.
func (r *Reporter) write(ctx context.Context, ds []delta) ([]string, error) {
	now := r.cfg.Now().Unix()
	tx, err := r.cfg.DB.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, upsert)
	if err != nil {
		return nil, err
	}
	defer stmt.Close()
	fields := map[string]int{} // stored fields per site, counted once per flush
	names := make([]string, len(ds))
	for i, d := range ds {
		name := d.e.dbField
		if name == "" {
			if name, err = r.place(ctx, tx, d.key, fields); err != nil {
				return nil, err
			}
		}
		names[i] = name
		if _, err := stmt.ExecContext(ctx, d.site, name, "", d.seen, 0, 0, now); err != nil {
			return nil, err
		}
		for _, c := range d.kinds {
			if _, err := stmt.ExecContext(ctx, d.site, name, string(c.kind), 0, c.hits, c.max, now); err != nil {
				return nil, err
			}
		}
	}
	return names, tx.Commit()
}

// place decides the stored name of a field not yet flushed by this
// process: its own name when it is stored already or the site is under its
// limit, OtherFields otherwise.
func (r *Reporter) place(ctx context.Context, tx *sql.Tx, k key, fields map[string]int) (string, error) {
	if k.field == OtherFields {
		return k.field, nil
	}
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM pii_fields WHERE site = ? AND field = ? AND kind = ''`, k.site, k.field).Scan(&one)
	if err == nil {
		return k.field, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	n, ok := fields[k.site]
	if !ok {
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pii_fields WHERE site = ? AND kind = '' AND field != ?`,
			k.site, OtherFields).Scan(&n); err != nil {
			return "", err
		}
	}
	if n >= r.cfg.MaxFields {
		fields[k.site] = n
		return OtherFields, nil
	}
	fields[k.site] = n + 1
	return k.field, nil
}

// Run flushes every interval until ctx ends, then flushes once more so
// counts observed up to shutdown are kept.
func (r *Reporter) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := r.Flush(ctx); err != nil {
				r.cfg.Logger.Error("pii report flush failed", "err", err)
			}
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := r.Flush(fctx); err != nil {
				r.cfg.Logger.Error("pii report final flush failed", "err", err)
			}
			return
		}
	}
}

// DeleteSite forgets everything counted for a site, in memory and stored.
func (r *Reporter) DeleteSite(ctx context.Context, siteID string) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	removed := 0
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		for k := range sh.m {
			if k.site == siteID {
				delete(sh.m, k)
				removed++
			}
		}
		sh.mu.Unlock()
	}
	r.entriesMu.Lock()
	r.entries -= removed
	r.entriesMu.Unlock()
	_, err := r.cfg.DB.ExecContext(ctx, `DELETE FROM pii_fields WHERE site = ?`, siteID)
	return err
}
