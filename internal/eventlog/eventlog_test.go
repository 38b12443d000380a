package eventlog

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openEmbedded(t *testing.T, dir string) *Log {
	t.Helper()
	l, err := Open(context.Background(), Config{Dir: dir, SyncInterval: time.Second}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func randomID(t *testing.T) string {
	var b [4]byte
	rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:])
}

func ev(site, path string, unit event.Unit) event.Event {
	e := event.Event{SiteID: site, Name: "pageview", Host: "example.com", Path: path, Unit: unit,
		Time: time.Now().UTC().Truncate(time.Millisecond), ScrollDepth: -1}
	rand.Read(e.Pseudonym[:])
	return e
}

func count(t *testing.T, l *Log, site string) (n int, paths map[string]int) {
	t.Helper()
	paths = map[string]int{}
	err := l.Scan(context.Background(), site, func(_ uint64, evs []event.Event) error {
		for _, e := range evs {
			n++
			paths[e.Path]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, paths
}

// appendConcurrently appends n events from many goroutines, as concurrent
// HTTP requests would, and checks every one is acknowledged.
func appendConcurrently(t *testing.T, l *Log, site string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unit := event.UnitVisitorDay
			if i%3 == 0 {
				unit = event.UnitUser
			}
			errs <- l.Append(context.Background(), site, []event.Event{ev(site, "/p"+string(rune('a'+i%26)), unit)})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestAppendScanAndRestart(t *testing.T) {
	dir := t.TempDir()
	l := openEmbedded(t, dir)
	site := store.Site{ID: "s1", Retention: time.Hour}
	if err := l.EnsureSite(context.Background(), site); err != nil {
		t.Fatal(err)
	}
	appendConcurrently(t, l, "s1", 500)
	if n, _ := count(t, l, "s1"); n != 500 {
		t.Fatalf("scanned %d events, want 500", n)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(context.Background(), "s1", []event.Event{ev("s1", "/x", event.UnitVisitorDay)}); err != ErrClosed {
		t.Fatalf("append after close: %v", err)
	}

	// Every acknowledged event survives a restart.
	l2 := openEmbedded(t, dir)
	defer l2.Close()
	if n, _ := count(t, l2, "s1"); n != 500 {
		t.Fatalf("after restart: %d events, want 500", n)
	}
}

func TestSubjectsSeparateUsers(t *testing.T) {
	u := ev("s1", "/", event.UnitUser)
	if got := Subject("s1", &u); got != "veil.ev.s1.u."+u.Pseudonym.String() {
		t.Errorf("user subject = %s", got)
	}
	v := ev("s1", "/", event.UnitVisitorDay)
	if got := Subject("s1", &v); got != "veil.ev.s1.a" {
		t.Errorf("visitor subject = %s", got)
	}
}

func TestLargeAppendSplitsMessages(t *testing.T) {
	l := openEmbedded(t, t.TempDir())
	defer l.Close()
	l.cfg.MaxBatchBytes = 4096
	l.EnsureSite(context.Background(), store.Site{ID: "s1", Retention: time.Hour})
	evs := make([]event.Event, 300)
	for i := range evs {
		evs[i] = ev("s1", "/a-fairly-long-path/to/make/messages/bigger", event.UnitVisitorDay)
	}
	if err := l.Append(context.Background(), "s1", evs); err != nil {
		t.Fatal(err)
	}
	msgs := 0
	n := 0
	l.Scan(context.Background(), "s1", func(_ uint64, evs []event.Event) error { msgs++; n += len(evs); return nil })
	if n != 300 || msgs < 2 {
		t.Fatalf("got %d events in %d messages, want 300 in several", n, msgs)
	}
}

// Retention is enforced by the log itself: once MaxAge passes, the events
// are gone from the files on disk, not just hidden.
func TestRetentionRemovesBytesFromDisk(t *testing.T) {
	dir := t.TempDir()
	l := openEmbedded(t, dir)
	defer l.Close()
	ctx := context.Background()
	if err := l.EnsureSite(ctx, store.Site{ID: "s1", Retention: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	marker := "/retention-marker-" + randomID(t)
	if err := l.Append(ctx, "s1", []event.Event{ev("s1", marker, event.UnitVisitorDay)}); err != nil {
		t.Fatal(err)
	}
	if !dirContains(t, dir, marker) {
		t.Fatal("marker not on disk after append; the test would prove nothing")
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if n, _ := count(t, l, "s1"); n == 0 && !dirContains(t, dir, marker) {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatal("expired event still on disk 20s after its retention")
}

func dirContains(t *testing.T, dir, s string) bool {
	t.Helper()
	found := false
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(s)) {
			found = true
		}
		return nil
	})
	return found
}

// TestExternalNATS runs the same path against a real NATS server; CI sets
// VEIL_TEST_NATS_URL and makes sure the server is up.
func TestExternalNATS(t *testing.T) {
	url := os.Getenv("VEIL_TEST_NATS_URL")
	if url == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must set VEIL_TEST_NATS_URL to a NATS server with JetStream")
		}
		t.Skip("VEIL_TEST_NATS_URL not set: no external NATS server configured")
	}
	ctx := context.Background()
	l, err := Open(ctx, Config{URL: url}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Embedded() {
		t.Fatal("external URL gave an embedded server")
	}
	id := randomID(t)
	if err := l.EnsureSite(ctx, store.Site{ID: id, Retention: time.Hour}); err != nil {
		t.Fatal(err)
	}
	defer l.RemoveSite(ctx, id)
	appendConcurrently(t, l, id, 200)
	if n, _ := count(t, l, id); n != 200 {
		t.Fatalf("scanned %d events from external NATS, want 200", n)
	}
	// Per-user export and erasure work on the older server too.
	u := ev(id, "/u", event.UnitUser)
	if err := l.Append(ctx, id, []event.Event{u, u}); err != nil {
		t.Fatal(err)
	}
	got := 0
	if err := l.UserEvents(ctx, id, u.Pseudonym, func(event.Event) error { got++; return nil }); err != nil || got != 2 {
		t.Fatalf("user export on external NATS: %d, %v", got, err)
	}
	if erased, err := l.EraseUser(ctx, id, u.Pseudonym); err != nil || len(erased) != 2 {
		t.Fatalf("user erasure on external NATS: %d, %v", len(erased), err)
	}
	if n, _ := count(t, l, id); n != 200 {
		t.Fatalf("%d events after erasing one user, want 200", n)
	}
}
