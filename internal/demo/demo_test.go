package demo

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/auth"
	"github.com/veil-analytics/veil/internal/store"
	"github.com/veil-analytics/veil/internal/store/sqlitestore"
)

// batchSink stands in for the batch API and keeps what it receives.
type batchSink struct {
	mu      sync.Mutex
	batches [][]event
	tokens  []store.Token
}

func (b *batchSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var evs []event
	if r.URL.Path != "/api/v1/events" || json.NewDecoder(r.Body).Decode(&evs) != nil {
		http.Error(w, "bad", 400)
		return
	}
	tok, _ := auth.FromContext(r.Context())
	b.mu.Lock()
	b.batches = append(b.batches, evs)
	b.tokens = append(b.tokens, tok)
	b.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, `{"accepted":1,"rejected":[]}`)
}

func TestBackfillShapesRealisticTraffic(t *testing.T) {
	st, err := sqlitestore.Open(t.TempDir() + "/veil.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 22, 15, 30, 0, 0, time.UTC) // a Sunday
	sink := &batchSink{}
	ctx := context.Background()
	_, err = start(ctx, Config{Store: st, Handler: sink, EnsureSite: func(context.Context, store.Site) error { return nil },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }, VisitorsPerDay: 1000, BackfillDays: 14, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	s, err := st.SiteByDomain(context.Background(), Domain)
	if err != nil {
		t.Fatal(err)
	}
	perDay := map[string]map[string]bool{} // day -> visitors (ip+ua)
	var last int64
	names := map[string]int{}
	for i, b := range sink.batches {
		if len(b) > 5000 {
			t.Fatalf("batch of %d events; the API takes 5,000", len(b))
		}
		if tok := sink.tokens[i]; tok.Role != store.RoleIngest || len(tok.Sites) != 1 || tok.Sites[0] != s.ID {
			t.Fatalf("demo sent with token %+v, want an ingest token for the demo site only", tok)
		}
		for _, e := range b {
			ts := time.UnixMilli(e.Timestamp).UTC()
			if e.Timestamp < last-int64(time.Hour/time.Millisecond) || ts.After(now) || ts.Before(now.AddDate(0, 0, -15)) {
				t.Fatalf("event at %v out of order or outside the backfill window", ts)
			}
			last = max(last, e.Timestamp)
			d := ts.Format(time.DateOnly)
			if perDay[d] == nil {
				perDay[d] = map[string]bool{}
			}
			perDay[d][e.IP+e.UserAgent] = true
			names[e.Name]++
		}
	}
	// A weekday and a weekend day of the window: weekday ≈ 1,000 visitors
	// (plus growth), weekend ≈ 60% of that.
	wd, we := len(perDay["2026-11-18"]), len(perDay["2026-11-15"])
	if wd < 850 || wd > 1400 || we > wd*3/4 || we < wd*2/5 {
		t.Fatalf("visitors weekday %d, weekend %d", wd, we)
	}
	if names["pageview"] < 20000 || names["Signup"] == 0 || names["Download"] == 0 {
		t.Fatalf("event mix %v", names)
	}
	// A second start does not backfill again.
	before := len(sink.batches)
	if _, err := start(ctx, Config{Store: st, Handler: sink, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }}); err != nil {
		t.Fatal(err)
	}
	if len(sink.batches) != before {
		t.Fatalf("restart backfilled again")
	}
}
