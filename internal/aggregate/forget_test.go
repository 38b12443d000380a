package aggregate

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/eventlog"
	"github.com/veil-analytics/veil/internal/store"
)

func TestPurgeBeforeDropsOnlyOldExactRollups(t *testing.T) {
	st := openDB(t, filepath.Join(t.TempDir(), "veil.db"))
	if _, err := New(Config{DB: st.SQL(), Store: st}); err != nil {
		t.Fatal(err)
	}
	db := st.SQL()
	day := func(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }
	for _, d := range []int{1, 2, 20} {
		db.Exec(`INSERT INTO agg_rollup (site, dim, hour, value, visitors) VALUES ('s', '', ?, '', 5)`, day(d).Unix())
		db.Exec(`INSERT INTO agg_pairs (site, fdim, fval, dim, day, value, day_visitors) VALUES ('s', 'visit:country', 'DE', 'event:page', ?, '/', 5)`, day(d).Unix())
		db.Exec(`INSERT INTO agg_rollup (site, dim, hour, value, visitors) VALUES ('other', '', ?, '', 5)`, day(d).Unix())
	}
	n, err := PurgeBefore(context.Background(), db, "s", day(10))
	if err != nil || n != 4 {
		t.Fatalf("purged %d rows, %v; want 2 rollups and 2 pairs", n, err)
	}
	var left, other int
	db.QueryRow(`SELECT count(*) FROM agg_rollup WHERE site='s'`).Scan(&left)
	db.QueryRow(`SELECT count(*) FROM agg_rollup WHERE site='other'`).Scan(&other)
	if left != 1 || other != 3 {
		t.Fatalf("left %d rows of the site and %d of another site", left, other)
	}
}

// Erasing a unit takes exactly its bounded contribution back from the
// rollups of open days: site s1 (everyone plus alice, whose events exceed
// several caps) ends up with the same rollups and pair cells as site s2,
// which never saw alice, and alice's own pages are gone from the database.
// Her events after the erasure count again.
func TestEraseUnitTakesItsContributionBack(t *testing.T) {
	ctx := context.Background()
	lg, err := eventlog.Open(ctx, eventlog.Config{URL: natsServer(t)}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	st := openDB(t, filepath.Join(t.TempDir(), "veil.db"))
	with, without := store.Site{ID: "s1", Domain: "a.example", Retention: 365 * 24 * time.Hour, Created: time.Now()}, store.Site{ID: "s2", Domain: "b.example", Retention: 365 * 24 * time.Hour, Created: time.Now()}
	var alice event.Pseudonym
	copy(alice[:], "alice-pseudonym!")
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	aliceEvent := func(i int, name, path string) event.Event {
		e := event.Event{SiteID: with.ID, Name: name, Path: path, Unit: event.UnitUser, Pseudonym: alice,
			Time: day.Add(time.Duration(i%2)*24*time.Hour + time.Duration(i)*7*time.Minute), Country: "NL", Browser: "Safari", OS: "macOS", Device: "mobile", Source: "Newsletter", ScrollDepth: -1}
		if name != "pageview" {
			e.Props = []event.Prop{{Key: "plan", Value: "alice-plan"}}
		}
		return e
	}
	msgs, _ := input(with.ID)
	for _, site := range []store.Site{with, without} {
		if err := lg.EnsureSite(ctx, site); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateSite(ctx, site); err != nil {
			t.Fatal(err)
		}
		for i, m := range msgs {
			evs := slices.Clone(m)
			for j := range evs {
				evs[j].SiteID = site.ID
			}
			if err := lg.Append(ctx, site.ID, evs); err != nil {
				t.Fatal(err)
			}
			if site.ID == with.ID && i%40 == 0 && i < 40*30 {
				k := i / 40
				// 30 events over two days: more pages, pageviews per page,
				// goals and visits than the caps allow, one shared page.
				paths := []string{"/alice-page-" + strconv.Itoa(k%9), "/p0"}
				names := []string{"pageview", "pageview", "pageview", "Signup"}
				if err := lg.Append(ctx, with.ID, []event.Event{aliceEvent(k, names[k%4], paths[k%2])}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	last := func(site string) uint64 {
		s, _ := lg.JetStream().Stream(ctx, eventlog.StreamName(site))
		info, _ := s.Info(ctx)
		return info.State.LastSeq
	}
	a, err := New(Config{JS: lg.JetStream(), DB: st.SQL(), Store: st, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go a.Run(rctx)
	for _, site := range []string{with.ID, without.ID} {
		if !waitPosition(t, st.SQL(), site, last(site), 30*time.Second) {
			t.Fatalf("site %s not aggregated", site)
		}
	}
	pairs := func(site string) []string {
		rows, err := st.SQL().Query(`SELECT fdim, fval, dim, day, value, day_visitors, visits, bounces, pageviews, events FROM agg_pairs WHERE site=? ORDER BY 1,2,3,4,5`, site)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var v [10]any
			ptrs := make([]any, len(v))
			for i := range v {
				ptrs[i] = &v[i]
			}
			rows.Scan(ptrs...)
			out = append(out, fmt.Sprint(v))
		}
		return out
	}
	alicePages := func() int {
		var n int
		st.SQL().QueryRow(`SELECT (SELECT count(*) FROM agg_rollup WHERE value LIKE '/alice%' OR value='alice-plan') + (SELECT count(*) FROM agg_pairs WHERE value LIKE '/alice%' OR fval='NL')`).Scan(&n)
		return n
	}
	if reflect.DeepEqual(allRows(t, st.SQL(), with.ID), allRows(t, st.SQL(), without.ID)) || alicePages() == 0 {
		t.Fatal("alice's events were not counted; the test would prove nothing")
	}

	// Other units keep arriving, at both sites, while alice is erased.
	more := make(chan error, 1)
	go func() {
		for i, m := range msgs[:300] {
			for _, site := range []string{with.ID, without.ID} {
				evs := slices.Clone(m)
				for j := range evs {
					evs[j].SiteID = site
					evs[j].Pseudonym[0] ^= 0xff // new units
				}
				if err := lg.Append(ctx, site, evs); err != nil {
					more <- fmt.Errorf("append %d: %w", i, err)
					return
				}
			}
		}
		more <- nil
	}()
	got, err := a.EraseUnit(ctx, with.ID, alice, func(ctx context.Context) ([]eventlog.Erased, error) {
		return lg.EraseUser(ctx, with.ID, alice)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-more; err != nil {
		t.Fatal(err)
	}
	for _, site := range []string{with.ID, without.ID} {
		if !waitPosition(t, st.SQL(), site, last(site), 30*time.Second) {
			t.Fatalf("site %s not aggregated after the erasure", site)
		}
	}
	if got.Events != 30 || got.UnitDays != 2 || got.Cells == 0 {
		t.Fatalf("erasure: %+v, want 30 events over 2 unit-days", got)
	}
	if g, w := allRows(t, st.SQL(), with.ID), allRows(t, st.SQL(), without.ID); !reflect.DeepEqual(g, w) {
		t.Fatalf("rollups after erasure differ from a site that never saw the unit (%d vs %d rows)", len(g), len(w))
	}
	if g, w := pairs(with.ID), pairs(without.ID); !reflect.DeepEqual(g, w) {
		t.Fatalf("pair cells after erasure differ (%d vs %d rows)", len(g), len(w))
	}
	if n := alicePages(); n != 0 {
		t.Fatalf("%d cells of alice's pages or values left", n)
	}

	// Alice comes back after the erasure: that is new data, counted.
	if err := lg.Append(ctx, with.ID, []event.Event{aliceEvent(0, "pageview", "/alice-new")}); err != nil {
		t.Fatal(err)
	}
	if !waitPosition(t, st.SQL(), with.ID, last(with.ID), 30*time.Second) {
		t.Fatal("new event not aggregated")
	}
	var pv int
	st.SQL().QueryRow(`SELECT pageviews FROM agg_rollup WHERE site=? AND value='/alice-new'`, with.ID).Scan(&pv)
	if pv != 1 {
		t.Fatalf("a pageview after the erasure counted %d times", pv)
	}
}

// fakeMsg is a log message as the consumer hands it over.
type fakeMsg struct {
	jetstream.Msg
	seq  uint64
	data []byte
}

func (m fakeMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: m.seq}}, nil
}
func (m fakeMsg) Data() []byte { return m.data }

// Messages of an erased unit that the consumer fetched before the erasure
// deleted them are not counted; the unit's messages after the erasure are,
// and the skip entry goes once the consumer has passed it.
func TestInFlightMessagesOfAnErasedUnitAreSkipped(t *testing.T) {
	var alice, bob event.Pseudonym
	copy(alice[:], "alice-pseudonym!")
	copy(bob[:], "bob---pseudonym!")
	day := time.Now().UTC().Truncate(time.Hour)
	msg := func(seq uint64, p event.Pseudonym, path string) jetstream.Msg {
		e := event.Event{Name: "pageview", Path: path, Unit: event.UnitUser, Pseudonym: p, Time: day, Country: "NL", ScrollDepth: -1}
		return fakeMsg{seq: seq, data: event.AppendBatch(nil, []event.Event{e})}
	}
	a := &Aggregator{cfg: Config{Now: time.Now, Logger: quiet}}
	s := &siteAgg{units: map[unitKey]*unitState{}, closed: map[int32]bool{}, caps: DefaultCaps, pend: newDeltas(), pendDays: map[int32]*dayStat{},
		pos: 4, pendPos: 4, erased: map[event.Pseudonym]uint64{alice: 7}}
	a.accumulate(s, []jetstream.Msg{msg(5, alice, "/in-flight"), msg(6, bob, "/bob"), msg(8, alice, "/after")})
	pv := func(path string) int64 {
		if x := s.pend.cells[rollKey{DimPage, path, day.Unix() - day.Unix()%86400}]; x != nil {
			return x.Pageviews
		}
		return 0
	}
	if pv("/in-flight") != 0 || pv("/bob") != 1 || pv("/after") != 1 || s.pendCount[countErased] != 1 {
		t.Fatalf("pageviews: in flight %d, bob %d, after %d; %d skipped", pv("/in-flight"), pv("/bob"), pv("/after"), s.pendCount[countErased])
	}
	a.accumulate(s, nil)
	if len(s.erased) != 0 {
		t.Fatal("the skip entry outlived the erasure's horizon")
	}
}
