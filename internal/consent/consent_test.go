package consent

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/store"
	"github.com/veil-analytics/veil/internal/store/sqlitestore"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// hmacRef stands in for the Tink PRF the server uses.
func hmacRef(siteID, subject string) string {
	m := hmac.New(sha256.New, []byte("test key"))
	fmt.Fprintf(m, "%d:%s%d:%s", len(siteID), siteID, len(subject), subject)
	return hex.EncodeToString(m.Sum(nil))
}

func openDB(t testing.TB) *sql.DB {
	t.Helper()
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "veil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st.SQL()
}

func newRegistry(t testing.TB, db *sql.DB, c *clock) *Registry {
	t.Helper()
	r, err := New(context.Background(), db, hmacRef, c.now)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var allPurposes = store.Site{ID: "s1", Domain: "example.com", Purposes: store.AllPurposes}

func allowed(t *testing.T, r *Registry, site store.Site, user, purpose string) bool {
	t.Helper()
	ok, err := r.AllowedUser(context.Background(), site, user, purpose)
	if err != nil {
		t.Fatal(err)
	}
	ok2, err := r.Allowed(context.Background(), site, r.UserRef(site.ID, user), purpose)
	if err != nil || ok2 != ok {
		t.Fatalf("Allowed and AllowedUser disagree for %s: %v %v (%v)", purpose, ok, ok2, err)
	}
	return ok
}

func TestDefaultsPerPurpose(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	r := newRegistry(t, openDB(t), c)
	// Without any record: analytics runs on legitimate interest, the other
	// purposes need a grant.
	want := map[string]bool{store.PurposeAnalytics: true, store.PurposePersonalization: false, store.PurposeModelTraining: false}
	for p, w := range want {
		if got := allowed(t, r, allPurposes, "alice", p); got != w {
			t.Errorf("%s without a record: %v, want %v", p, got, w)
		}
	}
	// Another user's records do not change alice's defaults.
	if err := r.Set(context.Background(), allPurposes, r.UserRef("s1", "bob"), map[string]bool{"personalization": true, "analytics": false}, "test"); err != nil {
		t.Fatal(err)
	}
	for p, w := range want {
		if got := allowed(t, r, allPurposes, "alice", p); got != w {
			t.Errorf("%s without a record, with other records on the site: %v, want %v", p, got, w)
		}
	}
	if !allowed(t, r, allPurposes, "bob", "personalization") || allowed(t, r, allPurposes, "bob", "analytics") {
		t.Error("bob's own records are not applied")
	}
	if _, err := r.AllowedUser(context.Background(), allPurposes, "alice", "marketing"); err == nil {
		t.Error("an unknown purpose must be an error")
	}
}

func TestGrantAndWithdrawal(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	r := newRegistry(t, openDB(t), c)
	ctx := context.Background()
	ref := r.UserRef("s1", "alice")
	if err := r.Set(ctx, allPurposes, ref, map[string]bool{"personalization": true, "model_training": true}, "token:t1"); err != nil {
		t.Fatal(err)
	}
	if !allowed(t, r, allPurposes, "alice", "personalization") || !allowed(t, r, allPurposes, "alice", "model_training") {
		t.Fatal("granted purposes not allowed")
	}
	// Withdrawal stops new use immediately (the cache is invalidated), and
	// leaves the other purposes as they were.
	c.advance(time.Minute)
	if err := r.Set(ctx, allPurposes, ref, map[string]bool{"personalization": false, "analytics": false}, "token:t1"); err != nil {
		t.Fatal(err)
	}
	if allowed(t, r, allPurposes, "alice", "personalization") || allowed(t, r, allPurposes, "alice", "analytics") {
		t.Fatal("withdrawn purposes still allowed")
	}
	if !allowed(t, r, allPurposes, "alice", "model_training") {
		t.Fatal("a purpose not named in the withdrawal changed")
	}
	got, err := r.Get(ctx, "s1", ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got["personalization"].Granted || !got["personalization"].Updated.Equal(c.now()) || got["personalization"].Source != "token:t1" {
		t.Fatalf("state: %+v", got)
	}
}

func TestPurposeNotDeclaredBySite(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	r := newRegistry(t, openDB(t), c)
	analyticsOnly := store.Site{ID: "s2", Domain: "b.example"}
	ref := r.UserRef("s2", "alice")
	err := r.Set(context.Background(), analyticsOnly, ref, map[string]bool{"personalization": true}, "test")
	if err == nil {
		t.Fatal("a purpose the site does not declare was recorded")
	}
	// Even a grant recorded while the site declared the purpose is not
	// honoured once the site stops declaring it.
	withP := analyticsOnly
	withP.Purposes = []string{"analytics", "personalization"}
	if err := r.Set(context.Background(), withP, ref, map[string]bool{"personalization": true}, "test"); err != nil {
		t.Fatal(err)
	}
	if !allowed(t, r, withP, "alice", "personalization") {
		t.Fatal("granted and declared purpose not allowed")
	}
	if allowed(t, r, analyticsOnly, "alice", "personalization") {
		t.Fatal("a purpose the site no longer declares is allowed")
	}
	if err := r.Set(context.Background(), analyticsOnly, ref, map[string]bool{"ads": true, "bogus key!": true}, "test"); err == nil {
		t.Fatal("unknown purposes accepted")
	}
}

// A change made through another Registry on the same database (another
// process) reaches this one within CacheTTL, and not before: the cache
// really answers from memory.
func TestCacheAcrossProcesses(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	db := openDB(t)
	server, cli := newRegistry(t, db, c), newRegistry(t, db, c)
	if !allowed(t, server, allPurposes, "alice", "analytics") {
		t.Fatal("default")
	}
	if err := cli.Set(context.Background(), allPurposes, cli.UserRef("s1", "alice"), map[string]bool{"analytics": false}, "cli"); err != nil {
		t.Fatal(err)
	}
	if !allowed(t, server, allPurposes, "alice", "analytics") {
		t.Fatal("the cache did not answer: every call reads the database")
	}
	c.advance(CacheTTL)
	if allowed(t, server, allPurposes, "alice", "analytics") {
		t.Fatal("another process's withdrawal not seen after CacheTTL")
	}
}

func TestEraseKeepsWithdrawals(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	r := newRegistry(t, openDB(t), c)
	ctx := context.Background()
	ref := r.UserRef("s1", "alice")
	if err := r.Set(ctx, allPurposes, ref, map[string]bool{"analytics": false, "personalization": true, "model_training": true}, "test"); err != nil {
		t.Fatal(err)
	}
	allowed(t, r, allPurposes, "alice", "personalization") // cache it
	removed, kept, err := r.Erase(ctx, "s1", ref)
	if err != nil || removed != 2 || kept != 1 {
		t.Fatalf("erase: removed %d kept %d, %v", removed, kept, err)
	}
	if allowed(t, r, allPurposes, "alice", "personalization") || allowed(t, r, allPurposes, "alice", "model_training") {
		t.Fatal("a grant survived erasure")
	}
	if allowed(t, r, allPurposes, "alice", "analytics") {
		t.Fatal("the withdrawal of analytics was forgotten by erasure")
	}
	if removed, kept, err := r.Erase(ctx, "s1", ref); err != nil || removed != 0 || kept != 1 {
		t.Fatalf("second erase: removed %d kept %d, %v", removed, kept, err)
	}
}

// Ingestion asks on every event of a declared user. Sites without consent
// records (most) must cost next to nothing; sites with records answer from
// the cache.
func BenchmarkAllowedUser(b *testing.B) {
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	db := openDB(b)
	r := newRegistry(b, db, c)
	ctx := context.Background()
	withRecords := store.Site{ID: "s2", Domain: "b.example", Purposes: store.AllPurposes}
	if err := r.Set(ctx, withRecords, r.UserRef("s2", "someone"), map[string]bool{"analytics": false}, "bench"); err != nil {
		b.Fatal(err)
	}
	users := make([]string, 1000)
	for i := range users {
		users[i] = fmt.Sprintf("user-%d", i)
	}
	run := func(b *testing.B, site store.Site) {
		for i := range users { // warm the cache, as steady ingestion does
			r.AllowedUser(ctx, site, users[i], "analytics")
		}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if ok, err := r.AllowedUser(ctx, site, users[i%len(users)], "analytics"); err != nil || !ok {
					b.Fatal(ok, err)
				}
				i++
			}
		})
	}
	b.Run("site-without-records", func(b *testing.B) { run(b, allPurposes) })
	b.Run("site-with-records-cached", func(b *testing.B) { run(b, withRecords) })
	// Baseline measured in the same run: what hashing the user id alone
	// costs (the cached path must hash to find the subject).
	b.Run("baseline-hash-only", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			r.UserRef("s2", users[i%len(users)])
		}
	})
}
