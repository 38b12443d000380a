package aggregate

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/event"
)

// BenchmarkBoundingStateBytes reports the heap one unit-day's bounding
// state holds, for a demo-like mix: 1–3 visits of 1–8 pageviews over 300
// pages, sources, referrers, some campaigns and goals with a prop. A
// backfill holds this for every unit of every open day, so it sets the
// aggregator's memory.
func BenchmarkBoundingStateBytes(b *testing.B) {
	const units = 50000
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	r := rand.New(rand.NewPCG(7, 8))
	sources := []string{"Google", "Bing", "DuckDuckGo", "Twitter", "Hacker News", "Newsletter", "GitHub", "", "", ""}
	var evs [][]event.Event
	for u := range units {
		var p event.Pseudonym
		copy(p[:], fmt.Sprintf("unit-%011d", u))
		var es []event.Event
		t := day.Add(time.Duration(r.IntN(20*60)) * time.Minute)
		for range 1 + r.IntN(3) {
			src := sources[r.IntN(len(sources))]
			e := event.Event{Name: "pageview", Unit: event.UnitVisitorDay, Pseudonym: p, Country: "DE", Browser: "Firefox", OS: "Linux", Device: "desktop",
				Source: src, ScrollDepth: -1}
			if src != "" {
				e.Referrer = "www." + src + ".example"
			}
			if r.IntN(5) == 0 {
				e.UTMSource, e.UTMMedium, e.UTMCamp = "newsletter", "email", fmt.Sprintf("spring-%d", r.IntN(4))
			}
			for range 1 + r.IntN(8) {
				e.Path = fmt.Sprintf("/docs/section-%d/page-%d", r.IntN(30), r.IntN(10))
				e.Time = t
				es = append(es, e)
				t = t.Add(time.Duration(1+r.IntN(4)) * time.Minute)
			}
			if r.IntN(4) == 0 {
				g := e
				g.Name, g.Props = "Signup", []event.Prop{{Key: "plan", Value: []string{"free", "pro", "team"}[r.IntN(3)]}}
				es = append(es, g)
			}
			t = t.Add(time.Duration(40+r.IntN(120)) * time.Minute)
		}
		evs = append(evs, es)
	}
	b.ResetTimer()
	var perUnit float64
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := &siteAgg{units: map[unitKey]*unitState{}, caps: DefaultCaps}
		a := &Aggregator{}
		d := newDeltas()
		for _, es := range evs {
			for i := range es {
				// A fresh string per event, as decoding a log message makes.
				e := es[i]
				e.Path, e.Source, e.Referrer = string([]byte(e.Path)), string([]byte(e.Source)), string([]byte(e.Referrer))
				a.bound(s, &e, d)
			}
			if len(d.cells) > 10000 {
				d = newDeltas()
			}
		}
		d = newDeltas()
		runtime.GC()
		runtime.ReadMemStats(&after)
		perUnit = float64(after.HeapAlloc-before.HeapAlloc) / float64(len(s.units))
		runtime.KeepAlive(s)
	}
	b.ReportMetric(perUnit, "B/unit-day")
}
