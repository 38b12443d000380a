package eventlog

import (
	"context"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/store"
)

// A data subject's export holds exactly their events, and erasure removes
// them from the files on disk while every other event stays.
func TestUserExportAndErasure(t *testing.T) {
	dir := t.TempDir()
	l := openEmbedded(t, dir)
	defer l.Close()
	ctx := context.Background()
	if err := l.EnsureSite(ctx, store.Site{ID: "s1", Retention: time.Hour}); err != nil {
		t.Fatal(err)
	}
	alice := ev("s1", "/alice-marker-"+randomID(t), event.UnitUser)
	var others []event.Event
	for i := range 50 {
		unit := event.UnitVisitorDay
		if i%2 == 0 {
			unit = event.UnitUser
		}
		others = append(others, ev("s1", "/other", unit))
	}
	// Alice's events arrive interleaved with everyone else's, in shared
	// group commits.
	for i := range 5 {
		a := alice
		a.Time = a.Time.Add(time.Duration(i) * time.Second)
		if err := l.Append(ctx, "s1", append([]event.Event{a}, others[i*10:i*10+10]...)); err != nil {
			t.Fatal(err)
		}
	}
	var got []event.Event
	if err := l.UserEvents(ctx, "s1", alice.Pseudonym, func(e event.Event) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("export has %d events, want alice's 5", len(got))
	}
	for _, e := range got {
		if e.Pseudonym != alice.Pseudonym || e.Path != alice.Path {
			t.Fatalf("export holds another unit's event: %+v", e)
		}
	}
	if !dirContains(t, dir, alice.Path) {
		t.Fatal("marker not on disk before erasure; the test would prove nothing")
	}
	erased, err := l.EraseUser(ctx, "s1", alice.Pseudonym)
	if err != nil || len(erased) != 5 {
		t.Fatalf("erased %d, %v", len(erased), err)
	}
	for i, x := range erased {
		if x.Event.Path != alice.Path || x.Seq == 0 || i > 0 && x.Seq < erased[i-1].Seq {
			t.Fatalf("erased event %d: seq %d, %+v", i, x.Seq, x.Event)
		}
	}
	if dirContains(t, dir, alice.Path) || dirContains(t, dir, alice.Pseudonym.String()) {
		t.Fatal("erased user's events still on disk")
	}
	if total, paths := count(t, l, "s1"); total != 50 || paths["/other"] != 50 {
		t.Fatalf("erasure touched other events: %d %v", total, paths)
	}
	got = nil
	l.UserEvents(ctx, "s1", alice.Pseudonym, func(e event.Event) error { got = append(got, e); return nil })
	if len(got) != 0 {
		t.Fatalf("export after erasure: %d events", len(got))
	}
}

// Retention by event time on Veil's clock: events older than the cutoff
// are removed from disk, newer ones stay.
func TestPurgeBeforeRemovesOldEvents(t *testing.T) {
	dir := t.TempDir()
	l := openEmbedded(t, dir)
	defer l.Close()
	ctx := context.Background()
	l.EnsureSite(ctx, store.Site{ID: "s1", Retention: time.Hour})
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	old := "/old-marker-" + randomID(t)
	for i := range 20 {
		e := ev("s1", old, event.UnitVisitorDay)
		e.Time = base.Add(time.Duration(i) * time.Hour)
		if err := l.Append(ctx, "s1", []event.Event{e}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		e := ev("s1", "/new", event.UnitVisitorDay)
		e.Time = base.Add(48*time.Hour + time.Duration(i)*time.Hour)
		l.Append(ctx, "s1", []event.Event{e})
	}
	n, err := l.PurgeBefore(ctx, "s1", base.Add(24*time.Hour))
	if err != nil || n != 20 {
		t.Fatalf("purged %d, %v", n, err)
	}
	if total, paths := count(t, l, "s1"); total != 10 || paths["/new"] != 10 {
		t.Fatalf("left %d %v", total, paths)
	}
	if dirContains(t, dir, old) {
		t.Fatal("purged events still on disk")
	}
	if n, err := l.PurgeBefore(ctx, "s1", base.Add(24*time.Hour)); err != nil || n != 0 {
		t.Fatalf("second purge: %d, %v", n, err)
	}
}
