package aggregate

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/eventlog"
	"github.com/veil-analytics/veil/internal/store"
	"github.com/veil-analytics/veil/internal/store/sqlitestore"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestMain doubles as the aggregator child process of the crash test.
func TestMain(m *testing.M) {
	if url := os.Getenv("VEIL_AGG_CHILD_NATS"); url != "" {
		runChild(url, os.Getenv("VEIL_AGG_CHILD_DB"))
		return
	}
	os.Exit(m.Run())
}

func runChild(url, dbPath string) {
	ctx := context.Background()
	st, err := sqlitestore.Open(dbPath)
	if err != nil {
		panic(err)
	}
	lg, err := eventlog.Open(ctx, eventlog.Config{URL: url}, quiet)
	if err != nil {
		panic(err)
	}
	a, err := New(Config{JS: lg.JetStream(), DB: st.SQL(), Store: st, Logger: quiet, FetchBatch: 3, CommitEvents: 40, CommitEvery: 20 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	a.Run(ctx) // until killed
}

// natsServer runs a JetStream server on a loopback port, standing in for
// the external NATS a separate `veil aggregate` worker talks to.
func natsServer(t *testing.T) string {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(srv.Shutdown)
	return srv.ClientURL()
}

const units = 3000

// input is a deterministic stream of events for one day: units visitor-days,
// each within every cap, so exact totals are known.
func input(site string) ([][]event.Event, int) {
	r := rand.New(rand.NewPCG(1, 2))
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	var all []event.Event
	for u := range units {
		var p event.Pseudonym
		copy(p[:], fmt.Sprintf("unit-%011d", u))
		start := day.Add(time.Duration(r.IntN(22*60)) * time.Minute)
		for i := range 1 + r.IntN(8) {
			e := event.Event{SiteID: site, Name: "pageview", Path: "/p" + strconv.Itoa(i), Unit: event.UnitVisitorDay, Pseudonym: p,
				Time: start.Add(time.Duration(i) * time.Minute), Country: []string{"DE", "FR", "US"}[u%3], Browser: "Firefox", OS: "Linux", Device: "desktop", ScrollDepth: -1}
			all = append(all, e)
		}
	}
	var msgs [][]event.Event
	for len(all) > 0 {
		n := min(len(all), 1+r.IntN(9))
		msgs = append(msgs, all[:n])
		all = all[n:]
	}
	total := 0
	for _, m := range msgs {
		total += len(m)
	}
	return msgs, total
}

func openDB(t *testing.T, path string) *sqlitestore.DB {
	t.Helper()
	st, err := sqlitestore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func allRows(t *testing.T, db *sql.DB, site string) []Row {
	t.Helper()
	var out []Row
	for _, dim := range append(append([]string{DimTotal, DimPage}, VisitDims...), UnitDims...) {
		rows, err := ReadRollup(context.Background(), db, site, dim, time.Unix(0, 0), time.Unix(1<<40, 0))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rows...)
	}
	return out
}

func waitPosition(t *testing.T, db *sql.DB, site string, want uint64, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if p, _ := Position(context.Background(), db, site); p >= want {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// The aggregator process is SIGKILLed again and again mid-stream; after it
// finally catches up, its rollups equal those of an aggregator that never
// crashed, and the totals equal the input: nothing lost, nothing counted
// twice.
func TestKilledAggregatorNeitherLosesNorDoubleCounts(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	ctx := context.Background()
	url := natsServer(t)
	lg, err := eventlog.Open(ctx, eventlog.Config{URL: url}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	site := store.Site{ID: "s1", Domain: "example.com", Retention: 365 * 24 * time.Hour, Created: time.Now()}
	if err := lg.EnsureSite(ctx, site); err != nil {
		t.Fatal(err)
	}
	msgs, total := input(site.ID)
	for _, m := range msgs {
		if err := lg.Append(ctx, site.ID, m); err != nil {
			t.Fatal(err)
		}
	}
	info, _ := lg.JetStream().Stream(ctx, eventlog.StreamName(site.ID))
	last := info.CachedInfo().State.LastSeq

	dir := t.TempDir()
	crashDB := filepath.Join(dir, "crash.db")
	st := openDB(t, crashDB)
	if err := st.CreateSite(ctx, site); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	kills, midStream := 0, 0
	for attempt := 0; attempt < 13; attempt++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "VEIL_AGG_CHILD_NATS="+url, "VEIL_AGG_CHILD_DB="+crashDB)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wait := time.Duration(80+r.IntN(250)) * time.Millisecond
		if attempt == 12 {
			wait = 60 * time.Second // the last run may finish
		}
		done := waitPosition(t, st.SQL(), site.ID, last, wait)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if done {
			break
		}
		kills++
		if p, _ := Position(ctx, st.SQL(), site.ID); p > 0 && p < last {
			midStream++
		}
	}
	if p, _ := Position(ctx, st.SQL(), site.ID); p != last {
		t.Fatalf("aggregator reached position %d of %d after %d kills", p, last, kills)
	}
	if midStream == 0 {
		t.Fatal("no kill landed mid-stream after a commit; the run proves nothing")
	}

	// Reference: the same stream aggregated once, without crashes.
	ref := openDB(t, filepath.Join(dir, "ref.db"))
	ref.CreateSite(ctx, site)
	a, err := New(Config{JS: lg.JetStream(), DB: ref.SQL(), Store: ref, Logger: quiet, Consumer: "reference"})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	go a.Run(rctx)
	if !waitPosition(t, ref.SQL(), site.ID, last, 30*time.Second) {
		t.Fatal("reference aggregator did not catch up")
	}
	cancel()

	got, want := allRows(t, st.SQL(), site.ID), allRows(t, ref.SQL(), site.ID)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rollups after %d kills differ from the reference (%d vs %d rows)", kills, len(got), len(want))
	}
	var pvs, visitors int64
	for _, row := range got {
		if row.Dim == DimTotal {
			pvs += row.Pageviews
			visitors += row.DayVisitors
		}
	}
	if pvs != int64(total) || visitors != units {
		t.Fatalf("totals: %d pageviews (want %d), %d visitors (want %d)", pvs, total, visitors, units)
	}
	t.Logf("%d events, %d messages, %d kills (%d after partial progress)", total, last, kills, midStream)
}
