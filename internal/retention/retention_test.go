package retention

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/veil-analytics/veil/internal/audit"
	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/eventlog"
	"github.com/veil-analytics/veil/internal/store"
	"github.com/veil-analytics/veil/internal/store/sqlitestore"
	"github.com/veil-analytics/veil/internal/vault"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type recorder struct {
	mu      sync.Mutex
	entries []audit.Entry
}

func (r *recorder) Record(_ context.Context, e audit.Entry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = append(r.entries, e)
	return nil
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func marker(prefix string) string {
	var b [4]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func onDisk(t *testing.T, dir string, needle []byte) bool {
	t.Helper()
	found := false
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		found = found || bytes.Contains(b, needle)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestCutoffIsDayAligned(t *testing.T) {
	now := time.Date(2026, 4, 1, 0, 30, 0, 0, time.FixedZone("CEST", 2*3600))
	if got, want := Cutoff(now, 30*24*time.Hour), time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("cutoff %v, want %v", got, want)
	}
	if got := Cutoff(time.Date(2026, 4, 1, 23, 59, 0, 0, time.UTC), 24*time.Hour); !got.Equal(time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("cutoff %v", got)
	}
}

// Known values go in, the clock moves past the retention, and one run
// removes them from the files on disk while newer data and sites with a
// longer retention keep theirs.
func TestPurgeRemovesExpiredBytesFromDisk(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlitestore.Open(filepath.Join(dir, "veil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := eventlog.Open(ctx, eventlog.Config{Dir: filepath.Join(dir, "nats"), SyncInterval: time.Second}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		t.Fatal(err)
	}
	master, err := aead.New(h)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	v, err := vault.New(ctx, st.SQL(), master, rec, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	short := store.Site{ID: "short", Domain: "a.example", Retention: 30 * 24 * time.Hour}
	long := store.Site{ID: "long", Domain: "b.example", Retention: 90 * 24 * time.Hour}
	for _, s := range []store.Site{short, long} {
		if err := l.EnsureSite(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	ingest := func(site, path string, n int) []string {
		t.Helper()
		var evs []event.Event
		var toks []string
		for i := range n {
			e := event.Event{SiteID: site, Name: "pageview", Host: "example.com", Path: path, ScrollDepth: -1,
				Unit: event.UnitUser, Time: clk.now().Add(time.Duration(i-n) * time.Hour)}
			rand.Read(e.Pseudonym[:])
			evs = append(evs, e)
			tok, err := v.Tokenize(ctx, site, "user:"+e.Pseudonym.String(), "email", marker("value-")+"@example.com")
			if err != nil {
				t.Fatal(err)
			}
			toks = append(toks, tok)
		}
		if err := l.Append(ctx, site, evs); err != nil {
			t.Fatal(err)
		}
		return toks
	}
	oldShort, oldLong := marker("/old-short-"), marker("/old-long-")
	oldShortToks := ingest("short", oldShort, 6) // 2026-03-01 06:00 to 11:00
	oldLongToks := ingest("long", oldLong, 4)

	var extraCutoffs []time.Time
	reg := prometheus.NewRegistry()
	p, err := New(Config{
		Sites: func(context.Context) ([]store.Site, error) { return []store.Site{short, long}, nil },
		Log:   l, Vault: v, Audit: rec, Logger: quiet, Now: clk.now,
		Extra: []Target{{Name: "rollups", Purge: func(_ context.Context, site string, cutoff time.Time) (int, error) {
			extraCutoffs = append(extraCutoffs, cutoff)
			return 0, nil
		}}},
	}, reg)
	if err != nil {
		t.Fatal(err)
	}

	// 30 days after the oldest event, but its day is not over 30 days ago:
	// the day is kept whole.
	clk.set(time.Date(2026, 3, 31, 11, 0, 0, 0, time.UTC))
	newShort := marker("/new-short-")
	newShortToks := ingest("short", newShort, 3)
	reps, err := p.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reps {
		for k, n := range r.Removed {
			if n != 0 {
				t.Fatalf("site %s: %d %s removed before their day expired", r.Site, n, k)
			}
		}
	}
	if len(rec.entries) != 0 {
		t.Fatalf("audit entries for a run that removed nothing: %+v", rec.entries)
	}

	// The bytes are on disk, so the checks after the purge can fail.
	for _, s := range append([]string{oldShort, oldLong, newShort}, oldShortToks...) {
		if !onDisk(t, dir, []byte(s)) {
			t.Fatalf("%s not on disk before the purge; the test would prove nothing", s)
		}
	}

	clk.set(time.Date(2026, 4, 1, 0, 30, 0, 0, time.UTC))
	reps, err = p.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantCutoff := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	if len(reps) != 2 || reps[0].Site != "short" || !reps[0].Cutoff.Equal(wantCutoff) ||
		reps[0].Removed["events"] != 6 || reps[0].Removed["vault_values"] != 6 || reps[0].Removed["rollups"] != 0 {
		t.Fatalf("reports: %+v", reps)
	}
	if n := reps[1].Removed["events"] + reps[1].Removed["vault_values"]; n != 0 || !reps[1].Cutoff.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("site with 90-day retention lost data: %+v", reps[1])
	}
	if got := extraCutoffs[len(extraCutoffs)-2]; !got.Equal(wantCutoff) {
		t.Fatalf("extra target got cutoff %v", got)
	}

	for _, s := range append([]string{oldShort}, oldShortToks...) {
		if onDisk(t, dir, []byte(s)) {
			t.Errorf("%s still on disk after the purge", s)
		}
	}
	for _, s := range append(append([]string{oldLong, newShort}, oldLongToks...), newShortToks...) {
		if !onDisk(t, dir, []byte(s)) {
			t.Errorf("%s (within retention) was removed", s)
		}
	}
	if _, err := v.Detokenize(ctx, oldShortToks[0], "test", "check"); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("expired token: %v, want not found", err)
	}
	if val, err := v.Detokenize(ctx, newShortToks[0], "test", "check"); err != nil || !strings.HasSuffix(val, "@example.com") {
		t.Errorf("token within retention: %q %v", val, err)
	}

	if len(rec.entries) < 1 || rec.entries[0].Action != "retention.purge" || rec.entries[0].Target != "short" ||
		rec.entries[0].Detail["events"] != "6" || rec.entries[0].Detail["vault_values"] != "6" {
		t.Fatalf("audit: %+v", rec.entries)
	}
	if got := metric(t, reg, "veil_retention_purged_total", "events"); got != 6 {
		t.Errorf("veil_retention_purged_total{kind=events} = %v", got)
	}
	if got := metric(t, reg, "veil_retention_last_run_timestamp_seconds", ""); got != float64(clk.now().Unix()) {
		t.Errorf("last run %v", got)
	}

	// Nothing left to do: a second run removes and records nothing.
	n := len(rec.entries)
	reps, err = p.RunOnce(ctx)
	if err != nil || reps[0].Removed["events"] != 0 || reps[0].Removed["vault_values"] != 0 || len(rec.entries) != n {
		t.Fatalf("second run: %+v %v", reps, err)
	}
}

// metric reads one series (by its kind label, "" for none) from reg.
// (prometheus/testutil is not in the module graph.)
func metric(t *testing.T, reg *prometheus.Registry, name, kind string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			k := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" {
					k = l.GetValue()
				}
			}
			if k != kind {
				continue
			}
			if m.Counter != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no series %s{kind=%q}", name, kind)
	return 0
}

type fixed struct {
	n   int
	err error
}

func (f fixed) PurgeBefore(context.Context, string, time.Time) (int, error) { return f.n, f.err }

// One failing target does not stop the others or other sites; the failure
// is reported, counted, and keeps the last-run timestamp from advancing.
func TestFailureDoesNotStopOthers(t *testing.T) {
	rec := &recorder{}
	now := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	reg := prometheus.NewRegistry()
	sites := []store.Site{{ID: "a", Retention: 24 * time.Hour}, {ID: "b", Retention: 24 * time.Hour}}
	p, err := New(Config{Sites: func(context.Context) ([]store.Site, error) { return sites, nil },
		Log: fixed{err: errors.New("stream unavailable")}, Vault: fixed{n: 2}, Audit: rec, Logger: quiet,
		Now: func() time.Time { return now }}, reg)
	if err != nil {
		t.Fatal(err)
	}
	reps, err := p.RunOnce(context.Background())
	if err == nil || !strings.Contains(err.Error(), "stream unavailable") {
		t.Fatalf("error not reported: %v", err)
	}
	if len(reps) != 2 || reps[1].Removed["vault_values"] != 2 || len(rec.entries) != 2 {
		t.Fatalf("other targets and sites not purged: %+v, %d audit entries", reps, len(rec.entries))
	}
	if got := metric(t, reg, "veil_retention_failures_total", "events"); got != 2 {
		t.Errorf("failures = %v", got)
	}
	if got := metric(t, reg, "veil_retention_last_run_timestamp_seconds", ""); got != 0 {
		t.Errorf("last successful run advanced on failure: %v", got)
	}
	if _, err := New(Config{Sites: p.sites, Audit: rec, Extra: []Target{{Name: "events"}}}, prometheus.NewRegistry()); err == nil {
		t.Error("a target without a purge function was accepted")
	}
}
