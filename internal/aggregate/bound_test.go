package aggregate

import (
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/event"
)

var t0 = time.Date(2026, 11, 20, 10, 5, 0, 0, time.UTC)

func pv(path string, at time.Time) *event.Event {
	return &event.Event{Name: "pageview", Path: path, Time: at, Unit: event.UnitVisitorDay, Country: "DE", Browser: "Firefox", OS: "Linux", Device: "desktop", Source: "Google"}
}

func sum(d deltas, dim, value string) delta {
	var s delta
	for k, x := range d.cells {
		if k.dim == dim && k.value == value {
			s.Visitors += x.Visitors
			s.DayVisitors += x.DayVisitors
			s.Visits += x.Visits
			s.Bounces += x.Bounces
			s.Pageviews += x.Pageviews
			s.Events += x.Events
		}
	}
	return s
}

// One unit sending 10,000 pageviews moves every cell by at most its cap:
// this is what makes the sensitivities data-independent.
func TestOneUnitIsBoundedByCaps(t *testing.T) {
	c := DefaultCaps
	u := &unitState{}
	d := newDeltas()
	for i := range 10000 {
		at := t0.Add(time.Duration(i) * 7 * time.Second)
		c.apply(u, pv("/p"+string(rune('a'+i%40)), at), d)
		if i%3 == 0 {
			e := pv("/x", at)
			e.Name, e.Props = "signup", []event.Prop{{Key: "plan", Value: string(rune('a' + i%20))}}
			c.apply(u, e, d)
		}
	}
	tot := sum(d, DimTotal, "")
	if tot.Pageviews != int64(c.Pageviews) || tot.Events != int64(c.Events) || tot.DayVisitors != 1 || tot.Visits > int64(c.Visits) {
		t.Fatalf("totals %+v exceed caps %+v", tot, c)
	}
	hours := map[int64]bool{}
	pages := 0
	for k, x := range d.cells {
		if k.dim == DimTotal && x.Visitors > 0 {
			hours[k.hour] = true
		}
		if k.dim == DimPage {
			if x.Pageviews > int64(c.PageviewsPerPage) {
				t.Errorf("page %s got %d pageviews", k.value, x.Pageviews)
			}
			pages++
		}
		if x.DayVisitors > 1 || x.Visitors > 1 {
			t.Errorf("cell %+v counts the unit more than once", k)
		}
	}
	if len(hours) > c.Hours || pages > c.Pages {
		t.Fatalf("unit reached %d hours and %d pages", len(hours), pages)
	}
	if got := sum(d, DimGoal, "signup"); got.Events > int64(c.EventsPerGoal) {
		t.Fatalf("goal events %d > %d", got.Events, c.EventsPerGoal)
	}
}

func TestVisitsAndBounces(t *testing.T) {
	c := DefaultCaps
	u := &unitState{}
	d := newDeltas()
	c.apply(u, pv("/a", t0), d)                    // visit 1: bounce so far
	c.apply(u, pv("/b", t0.Add(5*time.Minute)), d) // same visit: no longer a bounce
	c.apply(u, pv("/c", t0.Add(2*time.Hour)), d)   // visit 2 after 30 min gap: bounce
	tot := sum(d, DimTotal, "")
	if tot.Visits != 2 || tot.Bounces != 1 || tot.Pageviews != 3 || tot.DayVisitors != 1 {
		t.Fatalf("totals %+v", tot)
	}
	if e := sum(d, DimEntryPage, "/a"); e.Visits != 1 || e.Bounces != 0 {
		t.Fatalf("entry /a %+v", e)
	}
	if e := sum(d, DimEntryPage, "/c"); e.Visits != 1 || e.Bounces != 1 {
		t.Fatalf("entry /c %+v", e)
	}
	if s := sum(d, DimSource, "Google"); s.Visits != 2 || s.DayVisitors != 1 {
		t.Fatalf("source %+v", s)
	}
	if cty := sum(d, DimCountry, "DE"); cty.DayVisitors != 1 || cty.Pageviews != 3 || cty.Visits != 2 {
		t.Fatalf("country %+v", cty)
	}
}

// Pair cells restricted to each country add up to the unrestricted cells.
func TestPairCellsPartitionByUnitDimension(t *testing.T) {
	c := DefaultCaps
	d := newDeltas()
	for i, cty := range []string{"DE", "DE", "FR"} {
		u := &unitState{}
		for j := range 3 {
			e := pv("/p"+string(rune('a'+j)), t0.Add(time.Duration(i*7+j)*time.Minute))
			e.Country = cty
			c.apply(u, e, d)
		}
	}
	byCountry := map[string]int64{}
	var pvs int64
	for k, x := range d.pairs {
		if k.fdim == DimCountry && k.dim == DimPage {
			byCountry[k.fval] += x.Pageviews
		}
		if k.fdim == DimCountry && k.dim == DimTotal && k.fval == "DE" && x.DayVisitors != 0 && x.DayVisitors != 2 {
			t.Errorf("DE visitors %d", x.DayVisitors)
		}
	}
	for k, x := range d.cells {
		if k.dim == DimPage {
			pvs += x.Pageviews
		}
	}
	if byCountry["DE"] != 6 || byCountry["FR"] != 3 || byCountry["DE"]+byCountry["FR"] != pvs {
		t.Fatalf("pairs by country %v, page pageviews %d", byCountry, pvs)
	}
}
