package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/store/sqlitestore"
)

const (
	site = "site-1"
	dayA = "day:2026-11-22"
	dayB = "day:2026-11-23"
)

// openStore opens a state store the way Veil does and returns its handle.
func openStore(t testing.TB, path string) *sql.DB {
	t.Helper()
	st, err := sqlitestore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st.SQL()
}

// openRaw opens path without _txlock=immediate, so transactions start with a
// plain deferred BEGIN: the ledger must not rely on the DSN for its lock.
func openRaw(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newLedger(t testing.TB, db *sql.DB) *Ledger {
	t.Helper()
	l, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func setup(t testing.TB) (*Ledger, *sql.DB, string) {
	path := filepath.Join(t.TempDir(), "veil.db")
	db := openStore(t, path)
	return newLedger(t, db), db, path
}

func budgets(m map[string]float64) func(string) float64 {
	return func(k string) float64 { return m[k] }
}

func charge(qk string, rho float64, budget float64, keys ...string) Charge {
	c := Charge{SiteID: site, QueryKey: qk, Actor: "tok_test", Purpose: "test", Kind: KindQuery,
		Answer: []byte("answer " + qk), Budget: func(string) float64 { return budget }}
	for _, k := range keys {
		c.Lines = append(c.Lines, Line{Key: k, Rho: rho})
	}
	return c
}

func spent(t testing.TB, l *Ledger, prefix string) map[string]float64 {
	t.Helper()
	s, err := l.Spent(context.Background(), site, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCommitReceiptAndReads(t *testing.T) {
	l, _, _ := setup(t)
	ctx := context.Background()
	before := time.Now().UTC()
	r, err := l.Commit(ctx, Charge{
		SiteID: site, QueryKey: "q1", Actor: "tok_1", Purpose: "weekly report", Kind: KindRelease,
		Lines:  []Line{{dayA, 0.25}, {dayB, 0.5}},
		Answer: []byte("42"),
		Budget: budgets(map[string]float64{dayA: 1, dayB: 2}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Cached || string(r.Answer) != "42" || r.ChargeID == 0 || r.ChargedAt.Before(before.Add(-time.Second)) {
		t.Fatalf("receipt %+v", r)
	}
	if r.Spent[dayA] != 0.25 || r.Spent[dayB] != 0.5 || r.Remaining[dayA] != 0.75 || r.Remaining[dayB] != 1.5 {
		t.Fatalf("receipt spent %v remaining %v", r.Spent, r.Remaining)
	}
	if got := spent(t, l, ""); len(got) != 2 || got[dayA] != 0.25 || got[dayB] != 0.5 {
		t.Fatalf("Spent = %v", got)
	}
	if a, ok, err := l.Cached(ctx, site, "q1"); err != nil || !ok || string(a) != "42" {
		t.Fatalf("Cached = %q %v %v", a, ok, err)
	}
	if _, ok, err := l.Cached(ctx, site, "q2"); err != nil || ok {
		t.Fatalf("Cached(q2) = %v %v", ok, err)
	}
	if _, ok, _ := l.Cached(ctx, "other-site", "q1"); ok {
		t.Fatal("cache leaks across sites")
	}
	h, err := l.History(ctx, site, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := Entry{ID: r.ChargeID, ChargedAt: r.ChargedAt, Kind: KindRelease, Actor: "tok_1", Purpose: "weekly report",
		QueryKey: "q1", Lines: []Line{{dayA, 0.25}, {dayB, 0.5}}}
	if len(h) != 1 || fmt.Sprint(h[0]) != fmt.Sprint(want) {
		t.Fatalf("History = %+v, want %+v", h, want)
	}
}

func TestPeriodKeysAndSpentPrefix(t *testing.T) {
	l, _, _ := setup(t)
	ctx := context.Background()
	for i, c := range []Charge{
		charge("a", 0.1, 1, "day:2026-11-22", "day:2026-11-23"),
		charge("b", 0.2, 1, "period:2026-11"),
		charge("c", 0.3, 1, "period:2026-12", "day:2026-12-01"),
	} {
		if _, err := l.Commit(ctx, c); err != nil {
			t.Fatal(i, err)
		}
	}
	if got := spent(t, l, "period:"); len(got) != 2 || got["period:2026-11"] != 0.2 || got["period:2026-12"] != 0.3 {
		t.Fatalf("period: %v", got)
	}
	if got := spent(t, l, "day:2026-11"); len(got) != 2 {
		t.Fatalf("day:2026-11: %v", got)
	}
	if got := spent(t, l, ""); len(got) != 5 {
		t.Fatalf("all: %v", got)
	}
	if got := spent(t, l, "DAY:"); len(got) != 0 {
		t.Fatalf("prefix match must be case-sensitive: %v", got)
	}
	if got, _ := l.Spent(ctx, "other", ""); len(got) != 0 {
		t.Fatalf("other site: %v", got)
	}
}

func TestPrefixEnd(t *testing.T) {
	for p, want := range map[string]string{"day:": "day;", "a\xff": "b", "": "", "\xff\xff": ""} {
		got, ok := prefixEnd(p)
		if got != want || ok != (want != "") {
			t.Errorf("prefixEnd(%q) = %q %v", p, got, ok)
		}
	}
}

func TestExceededError(t *testing.T) {
	l, _, _ := setup(t)
	ctx := context.Background()
	if _, err := l.Commit(ctx, charge("q1", 0.75, 1, dayA)); err != nil {
		t.Fatal(err)
	}
	_, err := l.Commit(ctx, charge("q2", 0.5, 1, dayA))
	var ex *ExceededError
	if !errors.As(err, &ex) {
		t.Fatalf("err = %v, want *ExceededError", err)
	}
	if ex.Key != dayA || ex.Requested != 0.5 || ex.Remaining != 0.25 {
		t.Fatalf("%+v", ex)
	}
	if msg := err.Error(); !strings.Contains(msg, dayA) || !strings.Contains(msg, "remaining ρ=0.25") || !strings.Contains(msg, "requested ρ=0.5") {
		t.Fatalf("message %q does not name the key and what remains", msg)
	}
	if _, ok, _ := l.Cached(ctx, site, "q2"); ok {
		t.Fatal("refused answer was cached")
	}
	if h, _ := l.History(ctx, site, 0); len(h) != 1 {
		t.Fatalf("refused charge recorded: %+v", h)
	}
	// What remains can still be spent, exactly.
	if _, err := l.Commit(ctx, charge("q3", 0.25, 1, dayA)); err != nil {
		t.Fatal(err)
	}
	// A zero budget admits nothing.
	_, err = l.Commit(ctx, charge("q4", 1e-12, 0, dayB))
	if !errors.As(err, &ex) || ex.Key != dayB || ex.Remaining != 0 {
		t.Fatalf("zero budget: %v", err)
	}
}

func TestMultiLineAllOrNothing(t *testing.T) {
	l, _, _ := setup(t)
	ctx := context.Background()
	b := budgets(map[string]float64{dayA: 1, dayB: 0.1, "day:2026-11-24": 0.05})
	c := Charge{SiteID: site, QueryKey: "q", Kind: KindQuery, Budget: b,
		Lines: []Line{{dayA, 0.2}, {dayB, 0.2}, {"day:2026-11-24", 0.2}}}
	_, err := l.Commit(ctx, c)
	var ex *ExceededError
	if !errors.As(err, &ex) || ex.Key != dayB || ex.Remaining != 0.1 {
		t.Fatalf("err = %v, want the first failing key %s", err, dayB)
	}
	if got := spent(t, l, ""); len(got) != 0 {
		t.Fatalf("partial charge: %v", got)
	}
}

func TestDuplicateKeysAreSummed(t *testing.T) {
	l, _, _ := setup(t)
	ctx := context.Background()
	c := Charge{SiteID: site, QueryKey: "q", Kind: KindQuery, Budget: budgets(map[string]float64{dayA: 1, dayB: 1}),
		Lines: []Line{{dayA, 0.25}, {dayB, 0.125}, {dayA, 0.5}}}
	r, err := l.Commit(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Spent[dayA] != 0.75 || len(r.Spent) != 2 {
		t.Fatalf("receipt %v", r.Spent)
	}
	h, _ := l.History(ctx, site, 0)
	if len(h) != 1 || fmt.Sprint(h[0].Lines) != fmt.Sprint([]Line{{dayA, 0.75}, {dayB, 0.125}}) {
		t.Fatalf("history %+v", h)
	}
	// Each duplicate fits on its own but not their sum: refused, as a whole.
	c.QueryKey = "q2"
	c.Lines = []Line{{dayA, 0.2}, {dayA, 0.2}}
	_, err = l.Commit(ctx, c)
	var ex *ExceededError
	if !errors.As(err, &ex) || ex.Requested != 0.4 || math.Abs(ex.Remaining-0.25) > 1e-15 {
		t.Fatalf("err = %v", err)
	}
}

func TestToleranceAdmitsExactBudget(t *testing.T) {
	l, _, _ := setup(t)
	ctx := context.Background()
	// 0.1 added seven times is 0.7000000000000001 > 0.7 in float64.
	for i := range 7 {
		if _, err := l.Commit(ctx, charge(fmt.Sprint(i), 0.1, 0.7, dayA)); err != nil {
			t.Fatalf("charge %d: %v", i, err)
		}
	}
	if _, err := l.Commit(ctx, charge("8", 1e-6, 0.7, dayA)); err == nil {
		t.Fatal("charged beyond the budget")
	}
}

func TestValidationChargesNothing(t *testing.T) {
	l, _, _ := setup(t)
	ctx := context.Background()
	ok := charge("q", 0.1, 1, dayA)
	// Cache q, to check that validation also applies to cached queries.
	if _, err := l.Commit(ctx, ok); err != nil {
		t.Fatal(err)
	}
	with := func(f func(*Charge)) Charge {
		c := ok
		c.QueryKey = "fresh"
		c.Lines = append([]Line(nil), ok.Lines...)
		f(&c)
		return c
	}
	cases := map[string]Charge{
		"NaN":           with(func(c *Charge) { c.Lines[0].Rho = math.NaN() }),
		"+Inf":          with(func(c *Charge) { c.Lines[0].Rho = math.Inf(1) }),
		"-Inf":          with(func(c *Charge) { c.Lines[0].Rho = math.Inf(-1) }),
		"zero":          with(func(c *Charge) { c.Lines[0].Rho = 0 }),
		"negative":      with(func(c *Charge) { c.Lines[0].Rho = -0.1 }),
		"one bad line":  with(func(c *Charge) { c.Lines = append(c.Lines, Line{dayB, math.NaN()}) }),
		"sum overflows": with(func(c *Charge) { c.Lines = []Line{{dayA, math.MaxFloat64}, {dayA, math.MaxFloat64}} }),
		"no lines":      with(func(c *Charge) { c.Lines = nil }),
		"empty key":     with(func(c *Charge) { c.Lines[0].Key = "" }),
		"no site":       with(func(c *Charge) { c.SiteID = "" }),
		"no query key":  with(func(c *Charge) { c.QueryKey = "" }),
		"no budget":     with(func(c *Charge) { c.Budget = nil }),
		"NaN budget":    with(func(c *Charge) { c.Budget = func(string) float64 { return math.NaN() } }),
		"Inf budget":    with(func(c *Charge) { c.Budget = func(string) float64 { return math.Inf(1) } }),
		"neg budget":    with(func(c *Charge) { c.Budget = func(string) float64 { return -1 } }),
		"cached, NaN":   with(func(c *Charge) { c.QueryKey = "q"; c.Lines[0].Rho = math.NaN() }),
	}
	for name, c := range cases {
		r, err := l.Commit(ctx, c)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
			continue
		}
		if r.Answer != nil {
			t.Errorf("%s: answer released with an error", name)
		}
		t.Logf("%s: %v", name, err)
	}
	if got := spent(t, l, ""); len(got) != 1 || got[dayA] != 0.1 {
		t.Fatalf("Spent = %v", got)
	}
	if h, _ := l.History(ctx, site, 0); len(h) != 1 {
		t.Fatalf("History has %d entries", len(h))
	}
	if _, ok, _ := l.Cached(ctx, site, "fresh"); ok {
		t.Fatal("invalid charge cached its answer")
	}
}

func TestCacheMakesRepeatsFree(t *testing.T) {
	l, _, _ := setup(t)
	ctx := context.Background()
	first, err := l.Commit(ctx, charge("q", 0.4, 1, dayA))
	if err != nil {
		t.Fatal(err)
	}
	c := charge("q", 0.4, 1, dayA)
	c.Answer = []byte("a different noisy answer")
	for range 3 {
		r, err := l.Commit(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Cached || string(r.Answer) != "answer q" || r.ChargeID != first.ChargeID || !r.ChargedAt.Equal(first.ChargedAt) {
			t.Fatalf("repeat receipt %+v", r)
		}
		if r.Spent[dayA] != 0.4 || math.Abs(r.Remaining[dayA]-0.6) > 1e-15 {
			t.Fatalf("repeat receipt spent %v remaining %v", r.Spent, r.Remaining)
		}
	}
	// Even with the budget exhausted, a cached answer is free.
	if _, err := l.Commit(ctx, charge("fill", 0.6, 1, dayA)); err != nil {
		t.Fatal(err)
	}
	if r, err := l.Commit(ctx, c); err != nil || !r.Cached {
		t.Fatalf("cached after exhaustion: %v %v", r, err)
	}
	if got := spent(t, l, ""); got[dayA] != 1 {
		t.Fatalf("Spent = %v", got)
	}
}

func TestConcurrentIdenticalQueriesChargeOnce(t *testing.T) {
	l, _, _ := setup(t)
	ctx := context.Background()
	const n = 64
	var wg sync.WaitGroup
	receipts := make([]Receipt, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			c := charge("same", 0.01, 1, dayA, dayB)
			c.Answer = fmt.Appendf(nil, "answer from %d", i)
			<-start
			receipts[i], errs[i] = l.Commit(ctx, c)
		})
	}
	close(start)
	wg.Wait()
	var charged int
	var winner string
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !receipts[i].Cached {
			charged++
			winner = string(receipts[i].Answer)
		}
	}
	if charged != 1 {
		t.Fatalf("%d charges, want 1", charged)
	}
	for i := range n {
		if string(receipts[i].Answer) != winner {
			t.Fatalf("goroutine %d got %q, the charged answer is %q", i, receipts[i].Answer, winner)
		}
	}
	if got := spent(t, l, ""); got[dayA] != 0.01 || got[dayB] != 0.01 {
		t.Fatalf("Spent = %v", got)
	}
	if h, _ := l.History(ctx, site, 0); len(h) != 1 {
		t.Fatalf("History has %d entries", len(h))
	}
}

// race runs n goroutines, each committing one distinct query charging rho to
// dayA, spread over the ledgers, and returns their receipts and how many
// were refused.
func race(t *testing.T, ls []*Ledger, n int, rho, budget float64) (ok []Receipt, refused int) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		start = make(chan struct{})
	)
	for i := range n {
		wg.Go(func() {
			<-start
			r, err := ls[i%len(ls)].Commit(context.Background(), charge(fmt.Sprint("q", i), rho, budget, dayA))
			mu.Lock()
			defer mu.Unlock()
			var ex *ExceededError
			switch {
			case errors.As(err, &ex):
				refused++
			case err != nil:
				t.Error(err)
			default:
				ok = append(ok, r)
			}
		})
	}
	close(start)
	wg.Wait()
	return ok, refused
}

// checkRace checks that exactly want charges of rho went through and that
// each saw a distinct, never overspent total.
func checkRace(t *testing.T, l *Ledger, ok []Receipt, refused, want int, budget float64) {
	t.Helper()
	if len(ok) != want || refused+len(ok) != 64 {
		t.Fatalf("%d succeeded and %d were refused; want %d to succeed", len(ok), refused, want)
	}
	seen := map[float64]bool{}
	for _, r := range ok {
		s := r.Spent[dayA]
		if s > budget*(1+RelTolerance) {
			t.Fatalf("receipt shows ρ=%v spent of %v", s, budget)
		}
		if seen[s] {
			t.Fatalf("two charges saw the same total %v: not serialized", s)
		}
		seen[s] = true
	}
	if s := spent(t, l, "")[dayA]; s > budget*(1+RelTolerance) || math.Abs(s-budget) > 1e-12 {
		t.Fatalf("spent %v of %v", s, budget)
	}
}

func TestConcurrentCommitsNeverOverspend(t *testing.T) {
	l, _, _ := setup(t)
	// 0.7 admits exactly seven charges of 0.1 (within the tolerance).
	ok, refused := race(t, []*Ledger{l}, 64, 0.1, 0.7)
	checkRace(t, l, ok, refused, 7, 0.7)
}

func TestTwoHandlesNeverOverspend(t *testing.T) {
	// Two *sql.DB on one file behave like two processes: they share
	// nothing but the file and its locks. One is configured like the
	// state store, the other with deferred transactions.
	_, _, path := setup(t)
	l1 := newLedger(t, openStore(t, path))
	l2 := newLedger(t, openRaw(t, path))
	ok, refused := race(t, []*Ledger{l1, l2}, 64, 0.05, 1)
	checkRace(t, l2, ok, refused, 20, 1)
}

func TestHistoryNewestFirstWithLimit(t *testing.T) {
	l, _, _ := setup(t)
	ctx := context.Background()
	for i := range 5 {
		if _, err := l.Commit(ctx, charge(fmt.Sprint("q", i), 0.01, 1, dayA, dayB)); err != nil {
			t.Fatal(err)
		}
	}
	h, err := l.History(ctx, site, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 3 || h[0].QueryKey != "q4" || h[2].QueryKey != "q2" {
		t.Fatalf("History(3) = %+v", h)
	}
	for _, e := range h {
		if len(e.Lines) != 2 || e.Lines[0].Key != dayA || e.Lines[1].Key != dayB {
			t.Fatalf("lines %+v", e.Lines)
		}
	}
	if all, _ := l.History(ctx, site, 0); len(all) != 5 {
		t.Fatalf("History(0) has %d entries", len(all))
	}
	if none, _ := l.History(ctx, "other", 0); len(none) != 0 {
		t.Fatalf("other site: %+v", none)
	}
}

func TestForgetCacheKeepsSpent(t *testing.T) {
	l, _, _ := setup(t)
	ctx := context.Background()
	if _, err := l.Commit(ctx, charge("q", 0.3, 1, dayA)); err != nil {
		t.Fatal(err)
	}
	if n, err := l.ForgetCache(ctx, site, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("forgot %d, %v", n, err)
	}
	if n, err := l.ForgetCache(ctx, "other", time.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("forgot %d of another site, %v", n, err)
	}
	if n, err := l.ForgetCache(ctx, "", time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("forgot %d, %v", n, err)
	}
	if _, ok, _ := l.Cached(ctx, site, "q"); ok {
		t.Fatal("still cached")
	}
	// Asked again, the query is paid for again.
	r, err := l.Commit(ctx, charge("q", 0.3, 1, dayA))
	if err != nil || r.Cached || r.Spent[dayA] != 0.6 {
		t.Fatalf("%+v %v", r, err)
	}
	if n, err := l.ForgetCache(ctx, "", time.Time{}); err != nil || n != 0 {
		t.Fatalf("zero time forgot %d, %v", n, err)
	}
}

func TestSpentIsAppendOnly(t *testing.T) {
	l, db, _ := setup(t)
	ctx := context.Background()
	if _, err := l.Commit(ctx, charge("q", 0.3, 1, dayA)); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DELETE FROM ledger_lines`,
		`UPDATE ledger_lines SET rho = 0.0001`,
		`DELETE FROM ledger_charges`,
		`UPDATE ledger_charges SET actor = 'x'`,
	} {
		if _, err := db.ExecContext(ctx, q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v", q, err)
		}
	}
	if got := spent(t, l, ""); got[dayA] != 0.3 {
		t.Fatalf("Spent = %v", got)
	}
}

func TestOpenIsIdempotentAndConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "veil.db")
	dbs := []*sql.DB{openStore(t, path), openRaw(t, path), openRaw(t, path)}
	var storeVersion int
	if err := dbs[0].QueryRow(`PRAGMA user_version`).Scan(&storeVersion); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, db := range dbs {
		wg.Go(func() {
			for range 3 {
				if _, err := Open(db); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	var v int
	if err := dbs[0].QueryRow(`SELECT version FROM ledger_schema`).Scan(&v); err != nil || v != len(migrations) {
		t.Fatalf("version %d, %v", v, err)
	}
	// The state store's own schema version is untouched.
	if err := dbs[0].QueryRow(`PRAGMA user_version`).Scan(&v); err != nil || v != storeVersion {
		t.Fatalf("user_version %d, %v", v, err)
	}
	if _, err := dbs[0].Exec(`UPDATE ledger_schema SET version = 99`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dbs[0]); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema: %v", err)
	}
}

func TestSynchronousLevelIsRestored(t *testing.T) {
	db := openRaw(t, filepath.Join(t.TempDir(), "veil.db"))
	db.SetMaxOpenConns(1) // so the PRAGMA below sees the connection Commit used
	l := newLedger(t, db)
	if _, err := l.Commit(context.Background(), charge("q", 0.1, 1, dayA)); err != nil {
		t.Fatal(err)
	}
	var level int
	if err := db.QueryRow(`PRAGMA synchronous`).Scan(&level); err != nil || level != 1 {
		t.Fatalf("synchronous = %d, %v; want NORMAL (1) restored", level, err)
	}
}

func TestCanceledContextChargesNothing(t *testing.T) {
	l, _, _ := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Commit(ctx, charge("q", 0.1, 1, dayA)); err == nil {
		t.Fatal("commit with a canceled context succeeded")
	}
	if got := spent(t, l, ""); len(got) != 0 {
		t.Fatalf("Spent = %v", got)
	}
}
