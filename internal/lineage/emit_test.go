package lineage

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func testEvent(i int) RunEvent {
	in := ingestion()
	in.Site = fmt.Sprintf("site%d", i)
	return testSource.IngestionEvent(Start, NewRunID(), testTime, in)
}

func TestFileEmitterWritesNDJSON(t *testing.T) {
	for _, fsync := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "lineage.ndjson")
		e, err := NewFileEmitter(path, fsync)
		if err != nil {
			t.Fatal(err)
		}
		const writers, each = 5, 20
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					if err := e.Emit(context.Background(), testEvent(w*each+i)); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		bad := testEvent(0)
		bad.Run.RunID = ""
		if err := e.Emit(context.Background(), bad); err == nil {
			t.Error("invalid event accepted")
		}
		if err := e.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := e.Emit(context.Background(), testEvent(0)); err == nil {
			t.Error("Emit after Close succeeded")
		}

		f, _ := os.Open(path)
		sc := bufio.NewScanner(f)
		sites := map[string]bool{}
		for sc.Scan() {
			var ev RunEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
			if err := ev.Validate(); err != nil {
				t.Fatal(err)
			}
			sites[ev.Job.Name] = true
		}
		f.Close()
		if len(sites) != writers*each {
			t.Fatalf("fsync=%v: %d distinct events in the file, want %d", fsync, len(sites), writers*each)
		}
	}
}

// lineageServer is an httptest server that answers with the statuses in
// plan, one per request, then 201 Created as Marquez does.
type lineageServer struct {
	*httptest.Server
	mu     sync.Mutex
	plan   []int
	bodies [][]byte
	auth   []string
	calls  atomic.Int64
}

func newLineageServer(t *testing.T, plan ...int) *lineageServer {
	s := &lineageServer{plan: plan}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		if r.Method != http.MethodPost || r.URL.Path != "/api/v1/lineage" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s (%s)", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		status := http.StatusCreated
		if len(s.plan) > 0 {
			status, s.plan = s.plan[0], s.plan[1:]
		}
		if status == http.StatusCreated {
			s.bodies = append(s.bodies, body)
			s.auth = append(s.auth, r.Header.Get("Authorization"))
		}
		s.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(s.Close)
	return s
}

func newHTTP(t *testing.T, cfg HTTPConfig) *HTTPEmitter {
	t.Helper()
	if cfg.Backoff == 0 {
		cfg.Backoff = time.Millisecond
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	e, err := NewHTTPEmitter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func closeWithin(t *testing.T, e Emitter, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return e.Close(ctx)
}

func TestHTTPEmitterPosts(t *testing.T) {
	srv := newLineageServer(t)
	reg := prometheus.NewRegistry()
	e := newHTTP(t, HTTPConfig{URL: srv.URL + "/api/v1/lineage", Registerer: reg,
		Header: http.Header{"Authorization": {"Bearer t0ken"}}})
	for i := range 3 {
		if err := e.Emit(context.Background(), testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := closeWithin(t, e, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := e.Stats(); got != (HTTPStats{Sent: 3}) {
		t.Fatalf("stats %+v", got)
	}
	if len(srv.bodies) != 3 {
		t.Fatalf("server got %d events", len(srv.bodies))
	}
	for i, b := range srv.bodies {
		var ev RunEvent
		if err := json.Unmarshal(b, &ev); err != nil || ev.Job.Name != fmt.Sprintf("veil.ingest.site%d", i) {
			t.Fatalf("event %d: %s, %v", i, b, err)
		}
		if srv.auth[i] != "Bearer t0ken" {
			t.Fatalf("Authorization %q", srv.auth[i])
		}
	}
	if got := counter(t, reg, "veil_lineage_events_sent_total"); got != 3 {
		t.Fatalf("veil_lineage_events_sent_total = %v", got)
	}
	if err := e.Emit(context.Background(), testEvent(9)); !errors.Is(err, ErrDropped) {
		t.Fatalf("Emit after Close: %v", err)
	}
}

func TestHTTPEmitterRetries(t *testing.T) {
	cases := []struct {
		name string
		plan []int
		want HTTPStats
	}{
		{"server errors then success", []int{503, 500}, HTTPStats{Sent: 1, Retries: 2}},
		{"rate limited then success", []int{429}, HTTPStats{Sent: 1, Retries: 1}},
		{"rejected event is not retried", []int{400}, HTTPStats{Failed: 1}},
		{"gives up after MaxRetries", []int{500, 500, 500, 500}, HTTPStats{Failed: 1, Retries: 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := newLineageServer(t, c.plan...)
			e := newHTTP(t, HTTPConfig{URL: srv.URL + "/api/v1/lineage", MaxRetries: 2})
			if err := e.Emit(context.Background(), testEvent(0)); err != nil {
				t.Fatal(err)
			}
			if err := closeWithin(t, e, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			if got := e.Stats(); got != c.want {
				t.Fatalf("stats %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestHTTPEmitterDropsWhenServerDownAndQueueFull(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/api/v1/lineage"
	srv.Close() // connections are now refused
	reg := prometheus.NewRegistry()
	e := newHTTP(t, HTTPConfig{URL: url, QueueSize: 2, Backoff: time.Hour, Registerer: reg})
	ctx := context.Background()

	// The worker takes the first event and waits to retry it...
	if err := e.Emit(ctx, testEvent(0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(e.queue) == 0 })
	// ...two more fill the queue, and the rest are dropped at once.
	for i := 1; i <= 2; i++ {
		if err := e.Emit(ctx, testEvent(i)); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	start := time.Now()
	for i := 3; i < 6; i++ {
		if err := e.Emit(ctx, testEvent(i)); !errors.Is(err, ErrDropped) {
			t.Fatalf("event %d with a full queue: %v", i, err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Emit blocked for %v with a full queue", d)
	}
	if got := e.Stats().Dropped; got != 3 {
		t.Fatalf("dropped %d, want 3", got)
	}

	// Shutdown cannot wait an hour: what is left is counted as dropped.
	if err := closeWithin(t, e, 50*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v", err)
	}
	if got := e.Stats(); got.Dropped != 6 || got.Sent != 0 {
		t.Fatalf("stats after Close %+v, want all 6 dropped", got)
	}
	if got := counter(t, reg, "veil_lineage_events_dropped_total"); got != 6 {
		t.Fatalf("veil_lineage_events_dropped_total = %v", got)
	}
}

func TestParse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.ndjson")
	good := []struct {
		config string
		check  func(Emitter) bool
	}{
		{"", func(e Emitter) bool { return e == Discard }},
		{"file:" + path, func(e Emitter) bool { _, ok := e.(*FileEmitter); return ok }},
		{"http://127.0.0.1:5000/api/v1/lineage", func(e Emitter) bool { _, ok := e.(*HTTPEmitter); return ok }},
		{"https://lineage.example.com/api/v1/lineage", func(e Emitter) bool { _, ok := e.(*HTTPEmitter); return ok }},
	}
	for _, c := range good {
		e, err := Parse(c.config, nil)
		if err != nil || !c.check(e) {
			t.Errorf("Parse(%q) = %T, %v", c.config, e, err)
			continue
		}
		if err := closeWithin(t, e, time.Second); err != nil {
			t.Error(err)
		}
	}
	for _, bad := range []string{"kafka://broker:9092/lineage", "ftp://x", "file:", "marquez", "http://", "https:///api", "file:" + filepath.Join(path, "no", "such", "dir")} {
		if e, err := Parse(bad, nil); err == nil {
			t.Errorf("Parse(%q) = %T, want an error", bad, e)
		}
	}
	if _, err := Parse("kafka://broker:9092/lineage", nil); err == nil || !strings.Contains(err.Error(), `unknown destination "kafka"`) {
		t.Errorf("unknown scheme error: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
	}
}

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}
