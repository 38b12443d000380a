// Package ledger records every bit of privacy budget Veil spends and makes
// sure it is never overspent.
//
// Privacy is accounted in ρ-zCDP, where ρ adds up under composition. A charge
// draws on one or more budgets, each named by an opaque budget key chosen by
// the caller: "day:2026-11-22" for cookieless sites, whose privacy units
// (visitor-days) are disjoint across days, so a query over 30 days charges
// each of the 30 day budgets once (parallel composition); "period:2026-11"
// for sites whose unit is a declared user and whose queries compose
// sequentially within a period. The ledger only ever adds ρ per (site, key)
// and compares it with the budget the caller supplies for that key.
//
// Guarantees:
//
//   - Never overspent. Commit checks spent+ρ ≤ budget for every line and
//     records the lines in one SQLite write transaction that holds the
//     database's write lock from its first statement, and it computes spent
//     inside that transaction from the recorded lines (never from a counter
//     in memory). Commits from any number of goroutines, *sql.DB handles or
//     processes sharing the file are therefore serialized, and each sees
//     every charge committed before it.
//   - Durable before the answer leaves. The charge lines and the noisy answer
//     are written in the same transaction, committed with
//     PRAGMA synchronous=FULL (the WAL is fsynced at commit) before Commit
//     returns, so an answer a caller has seen is always paid for, even if
//     the process or machine dies right after. A crash before the commit
//     leaves neither the charge nor the answer.
//   - Repeats are free. The answer is cached under (site, query key); a
//     repeated identical query returns the cached noisy answer and charges
//     nothing, which costs no privacy because it releases nothing new
//     (post-processing). The check happens under the write lock, so racing
//     identical queries are charged exactly once.
//   - Append-only. Triggers forbid UPDATE and DELETE on charges and lines;
//     ForgetCache drops cached answers, never spent budget.
//
// If Commit returns an error, the caller must not release the answer. The
// charge has then not been recorded, except in the rare case of an I/O error
// during COMMIT itself, where it may have been: that wastes budget but can
// never overspend it.
//
// The *sql.DB given to Open must be a file-backed modernc.org/sqlite database
// (ideally the state store's, see sqlitestore.DB.SQL) with a busy_timeout so
// that writers wait for each other rather than fail; WAL mode is recommended.
// The ledger does not depend on _txlock=immediate: it takes the write lock
// itself.
package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"
)

// Kinds of charge.
const (
	KindRelease = "release" // scheduled pipeline release
	KindQuery   = "query"   // ad hoc query
)

// RelTolerance is the relative slack allowed when comparing spent+ρ with a
// budget: a line fits if spent+ρ ≤ budget·(1+RelTolerance). Without it a
// budget of 0.7 would not admit seven charges of 0.1, because in binary
// floating point 0.1+…+0.1 (seven times) is 0.7000000000000001. The slack is
// many orders of magnitude below any meaningful ρ (at most 1e-9 of the
// budget overall, since the check is against the total), and far above the
// rounding error of the sum (SQLite sums REAL values with compensated
// summation).
const RelTolerance = 1e-9

// ErrInvalid is wrapped by the errors Commit returns for malformed charges.
// Nothing is charged when it is returned.
var ErrInvalid = errors.New("ledger: invalid charge")

// Ledger is the privacy budget ledger. It is safe for concurrent use.
type Ledger struct {
	db *sql.DB
}

// Line is one budget a query draws on.
type Line struct {
	Key string  // budget key, e.g. "day:2026-11-22" or "period:2026-11"
	Rho float64 // ρ charged to it; finite and > 0
}

// Charge is a request to pay for, and cache, one noisy answer.
type Charge struct {
	SiteID   string
	QueryKey string // canonical hash of the query; identical repeated queries hit the cache
	// Lines are the budgets drawn on. Lines with the same key are summed
	// into one (ρ composes additively), keeping the first one's position.
	Lines   []Line
	Actor   string // token id or account; never personal data of data subjects
	Purpose string
	Kind    string // KindRelease or KindQuery
	Answer  []byte // the noisy answer, cached in the same transaction as the charge
	// Budget returns the total ρ available for a budget key (the site's
	// configured budget, or the release or ad hoc share of it). It must be
	// finite and ≥ 0. It is called before the ledger touches the database.
	Budget func(key string) float64
}

// Receipt describes a committed (or cached) charge.
type Receipt struct {
	Cached    bool               // the answer came from the cache and nothing was charged
	Answer    []byte             // the answer to release
	ChargeID  int64              // the charge that paid for Answer
	Spent     map[string]float64 // ρ spent per key of the charge, after it
	Remaining map[string]float64 // budget minus Spent per key, never negative
	ChargedAt time.Time          // when Answer was paid for (the original charge if Cached)
}

// Entry is one charge in a site's history.
type Entry struct {
	ID        int64
	ChargedAt time.Time
	Kind      string
	Actor     string
	Purpose   string
	QueryKey  string
	Lines     []Line
}

// ExceededError reports a charge refused because a budget would be
// overspent. Nothing was charged.
type ExceededError struct {
	Key       string  // the first budget key (in the charge's order) that does not fit
	Requested float64 // ρ the charge asked of Key
	Remaining float64 // ρ left under Key, never negative
}

func (e *ExceededError) Error() string {
	return fmt.Sprintf("ledger: privacy budget %q exceeded: requested ρ=%g, remaining ρ=%g", e.Key, e.Requested, e.Remaining)
}

// Open creates the ledger's tables in db, all named ledger_*, and returns the
// ledger. It is idempotent and safe to call concurrently from several
// processes.
func Open(db *sql.DB) (*Ledger, error) {
	if err := migrate(context.Background(), db); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	return &Ledger{db: db}, nil
}

// line is a validated, merged line with its budget.
type line struct {
	key    string
	rho    float64
	budget float64
}

// prepare validates c and merges its lines. It is pure: a charge it rejects
// cannot have touched the database.
func prepare(c Charge) ([]line, error) {
	if c.SiteID == "" {
		return nil, fmt.Errorf("%w: empty site id", ErrInvalid)
	}
	if c.QueryKey == "" {
		return nil, fmt.Errorf("%w: empty query key", ErrInvalid)
	}
	if len(c.Lines) == 0 {
		return nil, fmt.Errorf("%w: no budget lines", ErrInvalid)
	}
	if c.Budget == nil {
		return nil, fmt.Errorf("%w: no budget function", ErrInvalid)
	}
	var out []line
	index := make(map[string]int, len(c.Lines))
	for i, ln := range c.Lines {
		if ln.Key == "" {
			return nil, fmt.Errorf("%w: line %d: empty budget key", ErrInvalid, i)
		}
		if math.IsNaN(ln.Rho) || math.IsInf(ln.Rho, 0) || ln.Rho <= 0 {
			return nil, fmt.Errorf("%w: line %d (%q): ρ must be finite and > 0, got %v", ErrInvalid, i, ln.Key, ln.Rho)
		}
		if j, ok := index[ln.Key]; ok {
			out[j].rho += ln.Rho
			continue
		}
		index[ln.Key] = len(out)
		out = append(out, line{key: ln.Key, rho: ln.Rho})
	}
	for i := range out {
		if math.IsInf(out[i].rho, 0) {
			return nil, fmt.Errorf("%w: budget key %q: total ρ overflows", ErrInvalid, out[i].key)
		}
		b := c.Budget(out[i].key)
		if math.IsNaN(b) || math.IsInf(b, 0) || b < 0 {
			return nil, fmt.Errorf("%w: budget key %q: budget must be finite and ≥ 0, got %v", ErrInvalid, out[i].key, b)
		}
		out[i].budget = b
	}
	return out, nil
}

// Fits reports whether charging rho on top of spent stays within budget.
func Fits(spent, rho, budget float64) bool {
	return spent+rho <= budget*(1+RelTolerance)
}

func remaining(spent, budget float64) float64 {
	return math.Max(0, budget-spent)
}

// queryer is what *sql.Tx and *sql.Conn have in common.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// spentOn sums the ρ recorded under one key. TOTAL is 0.0 when there is
// nothing; the (site_id, budget_key, rho) index covers the scan.
func spentOn(ctx context.Context, q queryer, siteID, key string) (float64, error) {
	var s float64
	err := q.QueryRowContext(ctx, `SELECT TOTAL(rho) FROM ledger_lines WHERE site_id = ? AND budget_key = ?`, siteID, key).Scan(&s)
	return s, err
}

// cachedAnswer looks up a cached answer; ok is false when there is none.
func cachedAnswer(ctx context.Context, q queryer, siteID, queryKey string) (answer []byte, chargeID int64, at time.Time, ok bool, err error) {
	var created int64
	err = q.QueryRowContext(ctx, `SELECT answer, charge_id, created FROM ledger_cache WHERE site_id = ? AND query_key = ?`,
		siteID, queryKey).Scan(&answer, &chargeID, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, time.Time{}, false, nil
	}
	if err != nil {
		return nil, 0, time.Time{}, false, err
	}
	if answer == nil {
		answer = []byte{}
	}
	return answer, chargeID, time.Unix(0, created).UTC(), true, nil
}

// cachedReceipt builds the receipt of a cache hit, reading through q.
func cachedReceipt(ctx context.Context, q queryer, siteID, queryKey string, lines []line) (Receipt, bool, error) {
	answer, id, at, ok, err := cachedAnswer(ctx, q, siteID, queryKey)
	if err != nil || !ok {
		return Receipt{}, false, err
	}
	r := Receipt{Cached: true, Answer: answer, ChargeID: id, ChargedAt: at,
		Spent: make(map[string]float64, len(lines)), Remaining: make(map[string]float64, len(lines))}
	for _, ln := range lines {
		s, err := spentOn(ctx, q, siteID, ln.key)
		if err != nil {
			return Receipt{}, false, err
		}
		r.Spent[ln.key] = s
		r.Remaining[ln.key] = remaining(s, ln.budget)
	}
	return r, true, nil
}

// Commit pays for and caches c.Answer, atomically.
//
// If c.QueryKey already has a cached answer for c.SiteID, Commit returns it
// with Cached set and charges nothing (c.Answer is discarded). Otherwise it
// checks, for every line, that spent+ρ ≤ budget (within RelTolerance); if
// all fit it records the charge, its lines and the answer in one
// transaction, durably, before returning. If a line does not fit it returns
// an *ExceededError for the first such line and writes nothing. Malformed
// charges are rejected with an error wrapping ErrInvalid, also before
// anything is written, even if the query is cached.
func (l *Ledger) Commit(ctx context.Context, c Charge) (Receipt, error) {
	lines, err := prepare(c)
	if err != nil {
		return Receipt{}, err
	}
	// Fast path: a cache hit needs no write lock. A read-only transaction
	// (a plain deferred BEGIN, even with _txlock=immediate) gives the
	// receipt one consistent snapshot.
	tx, err := l.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Receipt{}, fmt.Errorf("ledger: %w", err)
	}
	r, ok, err := cachedReceipt(ctx, tx, c.SiteID, c.QueryKey, lines)
	tx.Rollback()
	if err != nil {
		return Receipt{}, fmt.Errorf("ledger: %w", err)
	}
	if ok {
		return r, nil
	}
	r, err = l.charge(ctx, c, lines)
	var ex *ExceededError
	if err != nil && !errors.As(err, &ex) {
		err = fmt.Errorf("ledger: %w", err)
	}
	return r, err
}

func (l *Ledger) charge(ctx context.Context, c Charge, lines []line) (Receipt, error) {
	// One connection for the whole charge: the synchronous level is a
	// per-connection setting and must be raised outside the transaction.
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return Receipt{}, err
	}
	defer conn.Close()
	restore, err := syncFull(ctx, conn)
	if err != nil {
		return Receipt{}, err
	}
	defer restore()

	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return Receipt{}, err
	}
	defer tx.Rollback() // no-op after Commit

	// The first statement writes, so the transaction holds the write lock
	// before it reads anything: this is what serializes commits, and, with
	// a plain deferred BEGIN, it avoids SQLITE_BUSY_SNAPSHOT (a reader
	// that later tries to write after another writer committed), because a
	// transaction's first lock is waited for under busy_timeout.
	if _, err := tx.ExecContext(ctx, `INSERT INTO ledger_sites (site_id, charges, last_charged) VALUES (?, 0, 0)
		ON CONFLICT (site_id) DO NOTHING`, c.SiteID); err != nil {
		return Receipt{}, err
	}

	// Another commit of the same query may have won the race since the
	// fast path looked.
	if r, ok, err := cachedReceipt(ctx, tx, c.SiteID, c.QueryKey, lines); err != nil || ok {
		return r, err
	}

	spent := make([]float64, len(lines))
	for i, ln := range lines {
		s, err := spentOn(ctx, tx, c.SiteID, ln.key)
		if err != nil {
			return Receipt{}, err
		}
		if !Fits(s, ln.rho, ln.budget) {
			return Receipt{}, &ExceededError{Key: ln.key, Requested: ln.rho, Remaining: remaining(s, ln.budget)}
		}
		spent[i] = s
	}

	now := time.Now().UTC()
	res, err := tx.ExecContext(ctx, `INSERT INTO ledger_charges (site_id, query_key, kind, actor, purpose, charged_at)
		VALUES (?, ?, ?, ?, ?, ?)`, c.SiteID, c.QueryKey, c.Kind, c.Actor, c.Purpose, now.UnixNano())
	if err != nil {
		return Receipt{}, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return Receipt{}, err
	}
	for i, ln := range lines {
		if _, err := tx.ExecContext(ctx, `INSERT INTO ledger_lines (charge_id, pos, site_id, budget_key, rho) VALUES (?, ?, ?, ?, ?)`,
			id, i, c.SiteID, ln.key, ln.rho); err != nil {
			return Receipt{}, err
		}
	}
	answer := c.Answer
	if answer == nil {
		answer = []byte{}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO ledger_cache (site_id, query_key, answer, charge_id, created) VALUES (?, ?, ?, ?, ?)`,
		c.SiteID, c.QueryKey, answer, id, now.UnixNano()); err != nil {
		return Receipt{}, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE ledger_sites SET charges = charges + 1, last_charged = ? WHERE site_id = ?`,
		now.UnixNano(), c.SiteID); err != nil {
		return Receipt{}, err
	}

	r := Receipt{Answer: answer, ChargeID: id, ChargedAt: now,
		Spent: make(map[string]float64, len(lines)), Remaining: make(map[string]float64, len(lines))}
	for _, ln := range lines {
		// Re-read rather than add in Go, so the receipt agrees to the last
		// bit with what Spent reports.
		s, err := spentOn(ctx, tx, c.SiteID, ln.key)
		if err != nil {
			return Receipt{}, err
		}
		r.Spent[ln.key] = s
		r.Remaining[ln.key] = remaining(s, ln.budget)
	}
	if err := tx.Commit(); err != nil {
		return Receipt{}, err
	}
	return r, nil
}

// syncFull raises the connection's synchronous level to FULL, so that the
// next commit fsyncs the write-ahead log (NORMAL, which the state store uses,
// survives a process crash but may lose the latest commits on power loss).
// restore puts the previous level back for the connection's other users.
func syncFull(ctx context.Context, conn *sql.Conn) (restore func(), err error) {
	var level int
	if err := conn.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&level); err != nil {
		return nil, err
	}
	const full = 2
	if level >= full {
		return func() {}, nil
	}
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = FULL`); err != nil {
		return nil, err
	}
	return func() {
		// Failing here only leaves the connection more durable than asked.
		conn.ExecContext(context.Background(), fmt.Sprintf(`PRAGMA synchronous = %d`, level))
	}, nil
}

// Cached returns the cached answer of a query without charging anything.
func (l *Ledger) Cached(ctx context.Context, siteID, queryKey string) ([]byte, bool, error) {
	answer, _, _, ok, err := cachedAnswer(ctx, l.db, siteID, queryKey)
	if err != nil {
		return nil, false, fmt.Errorf("ledger: %w", err)
	}
	return answer, ok, nil
}

// Spent returns the ρ spent per budget key of a site, for all keys or, if
// keyPrefix is not empty, for the keys that start with it.
func (l *Ledger) Spent(ctx context.Context, siteID, keyPrefix string) (map[string]float64, error) {
	q := `SELECT budget_key, TOTAL(rho) FROM ledger_lines WHERE site_id = ? AND budget_key >= ?`
	args := []any{siteID, keyPrefix}
	// A range rather than LIKE (case-insensitive, with wildcards) keeps the
	// match exact and on the index.
	if hi, ok := prefixEnd(keyPrefix); ok {
		q += ` AND budget_key < ?`
		args = append(args, hi)
	}
	rows, err := l.db.QueryContext(ctx, q+` GROUP BY budget_key`, args...)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	defer rows.Close()
	out := make(map[string]float64)
	for rows.Next() {
		var k string
		var s float64
		if err := rows.Scan(&k, &s); err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
		out[k] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	return out, nil
}

// prefixEnd returns the smallest string greater than every string with
// prefix p (bytewise, as SQLite's BINARY collation compares), or false if
// there is none.
func prefixEnd(p string) (string, bool) {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

// History lists a site's charges, newest first, at most limit of them
// (all if limit ≤ 0).
func (l *Ledger) History(ctx context.Context, siteID string, limit int) ([]Entry, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	// One statement, so charges and their lines come from one snapshot.
	rows, err := l.db.QueryContext(ctx, `SELECT c.id, c.charged_at, c.kind, c.actor, c.purpose, c.query_key, l.budget_key, l.rho
		FROM (SELECT * FROM ledger_charges WHERE site_id = ? ORDER BY id DESC LIMIT ?) AS c
		JOIN ledger_lines AS l ON l.charge_id = c.id
		ORDER BY c.id DESC, l.pos`, siteID, limit)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var at int64
		var ln Line
		if err := rows.Scan(&e.ID, &at, &e.Kind, &e.Actor, &e.Purpose, &e.QueryKey, &ln.Key, &ln.Rho); err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
		if n := len(out); n > 0 && out[n-1].ID == e.ID {
			out[n-1].Lines = append(out[n-1].Lines, ln)
			continue
		}
		e.ChargedAt = time.Unix(0, at).UTC()
		e.Lines = []Line{ln}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	return out, nil
}

// unixNano is t.UnixNano clamped to int64, which only covers 1678–2262.
func unixNano(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// ForgetCache drops the cached answers created before the given time, for one
// site or, if siteID is empty, for all sites, and returns how many it
// dropped. A forgotten query is charged again if it is asked again. Spent
// budget is never forgotten.
func (l *Ledger) ForgetCache(ctx context.Context, siteID string, before time.Time) (int64, error) {
	q := `DELETE FROM ledger_cache WHERE created < ?`
	args := []any{unixNano(before)}
	if siteID != "" {
		q += ` AND site_id = ?`
		args = append(args, siteID)
	}
	res, err := l.db.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("ledger: forget cache: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("ledger: forget cache: %w", err)
	}
	return n, nil
}
