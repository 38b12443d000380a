package pseudo

import (
	"bytes"
	"context"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/keys"
	"github.com/veil-analytics/veil/internal/store/sqlitestore"
)

type clock struct{ t atomic.Pointer[time.Time] }

func (c *clock) now() time.Time      { return *c.t.Load() }
func (c *clock) set(t time.Time)     { c.t.Store(&t) }
func (c *clock) add(d time.Duration) { c.set(c.now().Add(d)) }

func setup(t *testing.T) (*Pseudonymizer, *sqlitestore.DB, *clock) {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlitestore.Open(filepath.Join(dir, "veil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &clock{}
	c.set(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))
	p := newP(t, st, dir)
	p.now = c.now
	return p, st, c
}

func newP(t *testing.T, st *sqlitestore.DB, dir string) *Pseudonymizer {
	t.Helper()
	ring, _, err := keys.Open(context.Background(), st.SQL(), "", dir, true)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(st, ring, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	ip = netip.MustParseAddr("203.0.113.7")
	ua = "Mozilla/5.0 Firefox/120.0"
)

func TestVisitorPseudonymIsPerDayAndSite(t *testing.T) {
	ctx := context.Background()
	p, _, c := setup(t)
	a, v, err := p.Visitor(ctx, "s1", ip, ua, c.now())
	if err != nil {
		t.Fatal(err)
	}
	if v != 20261122 {
		t.Errorf("key version = %d, want the day 20261122", v)
	}
	b, _, _ := p.Visitor(ctx, "s1", ip, ua, c.now().Add(time.Hour))
	if a != b {
		t.Error("same visitor on the same day got two pseudonyms")
	}
	other, _, _ := p.Visitor(ctx, "s2", ip, ua, c.now())
	if other == a {
		t.Error("two sites share a visitor pseudonym: cross-site tracking")
	}
	mapped, _, _ := p.Visitor(ctx, "s1", netip.MustParseAddr("::ffff:203.0.113.7"), ua, c.now())
	if mapped != a {
		t.Error("IPv4-mapped address changed the pseudonym")
	}
	c.add(24 * time.Hour)
	next, _, _ := p.Visitor(ctx, "s1", ip, ua, c.now())
	if next == a {
		t.Error("pseudonym did not change at UTC midnight")
	}
}

// After 48 hours a day's salt is gone: neither the store nor memory can
// recompute that day's pseudonyms.
func TestSaltDestroyedAfter48Hours(t *testing.T) {
	ctx := context.Background()
	p, st, c := setup(t)
	p.now = c.now
	day0 := c.now()
	first, _, _ := p.Visitor(ctx, "s1", ip, ua, day0)

	c.set(time.Date(2026, 11, 23, 23, 59, 0, 0, time.UTC)) // under 48h since day0 began
	if n, err := p.Rotate(ctx); err != nil || n != 0 {
		t.Fatalf("Rotate before 48h destroyed %d salts (err %v)", n, err)
	}
	if again, _, _ := p.Visitor(ctx, "s1", ip, ua, day0); again != first {
		t.Fatal("yesterday's salt changed before 48h")
	}

	c.set(time.Date(2026, 11, 24, 0, 0, 1, 0, time.UTC)) // 48h after day0 began
	if n, err := p.Rotate(ctx); err != nil || n != 1 {
		t.Fatalf("Rotate at 48h destroyed %d salts (err %v), want 1", n, err)
	}
	var count int
	if err := st.SQL().QueryRow(`SELECT count(*) FROM salts WHERE day = '2026-11-22'`).Scan(&count); err != nil || count != 0 {
		t.Fatalf("salt of 2026-11-22 still stored (%d, %v)", count, err)
	}
	if late, _, _ := p.Visitor(ctx, "s1", ip, ua, day0); late == first {
		t.Fatal("a destroyed day's pseudonym could be recomputed")
	}
	// The late event's salt is ephemeral: it must not be written back.
	if err := st.SQL().QueryRow(`SELECT count(*) FROM salts WHERE day = '2026-11-22'`).Scan(&count); err != nil || count != 0 {
		t.Fatalf("a destroyed day's salt was recreated on disk")
	}
}

func TestUserPseudonym(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlitestore.Open(filepath.Join(dir, "veil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p := newP(t, st, dir)
	a, v, err := p.User(ctx, "s1", "user-42")
	if err != nil || v == 0 {
		t.Fatal(v, err)
	}
	// A second process sharing the store derives the same pseudonym.
	p2 := newP(t, st, dir)
	b, _, _ := p2.User(ctx, "s1", "user-42")
	if a != b {
		t.Error("user pseudonym not stable across processes")
	}
	if c, _, _ := p.User(ctx, "s2", "user-42"); c == a {
		t.Error("user pseudonym shared across sites")
	}
	if d, _, _ := p.User(ctx, "s1", "user-43"); d == a {
		t.Error("two users share a pseudonym")
	}
}

// A key rotation is visible (new version, new pseudonym) and every older
// pseudonym stays computable for data subject requests; subject references
// do not change.
func TestRotationVersionsUserPseudonyms(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlitestore.Open(filepath.Join(dir, "veil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ring, _, err := keys.Open(ctx, st.SQL(), "", dir, true)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(st, ring, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	old, v1, _ := p.User(ctx, "s1", "user-42")
	ref1, _ := p.Subject("s1", "user:user-42")
	if _, err := ring.Rotate(ctx, keys.Pseudonym); err != nil {
		t.Fatal(err)
	}
	cur, v2, _ := p.User(ctx, "s1", "user-42")
	if v2 == v1 || cur == old {
		t.Fatalf("rotation not visible: v%d %x -> v%d %x", v1, old, v2, cur)
	}
	all, err := p.UserPseudonyms("s1", "user-42")
	if err != nil || len(all) != 2 || all[0] != cur || all[1] != old {
		t.Fatalf("pseudonyms under all versions: %x, %v", all, err)
	}
	if ref2, _ := p.Subject("s1", "user:user-42"); ref2 != ref1 || ref1 == "" {
		t.Fatalf("subject reference changed with the rotation: %s -> %s", ref1, ref2)
	}
}

// Salts are stored encrypted: the raw salt never reaches the database.
func TestSaltsAreEncryptedAtRest(t *testing.T) {
	p, st, c := setup(t)
	p.now = c.now
	if _, _, err := p.Visitor(context.Background(), "s1", ip, ua, c.now()); err != nil {
		t.Fatal(err)
	}
	var stored []byte
	if err := st.SQL().QueryRow(`SELECT salt FROM salts WHERE day = '2026-11-22'`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	k := p.salts["2026-11-22"]
	p.mu.Unlock()
	raw, err := p.saltAEAD.Decrypt(stored, []byte("veil.salt.2026-11-22"))
	if err != nil || len(raw) != 32 || bytes.Contains(stored, raw) || k == nil {
		t.Fatalf("salt not stored encrypted: %v", err)
	}
}
