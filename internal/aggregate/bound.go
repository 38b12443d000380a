package aggregate

import (
	"hash/maphash"
	"math/bits"
	"strings"
	"sync"
	"time"

	"github.com/veil-analytics/veil/internal/event"
)

// Dimension names, as the query API spells them.
const (
	DimTotal     = ""
	DimPage      = "event:page"
	DimEntryPage = "visit:entry_page"
	DimSource    = "visit:source"
	DimReferrer  = "visit:referrer"
	DimUTMSource = "visit:utm_source"
	DimUTMMedium = "visit:utm_medium"
	DimUTMCamp   = "visit:utm_campaign"
	DimCountry   = "visit:country"
	DimBrowser   = "visit:browser"
	DimOS        = "visit:os"
	DimDevice    = "visit:device"
	DimGoal      = "event:goal"
	PropPrefix   = "event:props:"
)

// VisitDims are attributes of a visit, taken from its first event.
var VisitDims = visitDims[:]

var visitDims = [...]string{DimEntryPage, DimSource, DimReferrer, DimUTMSource, DimUTMMedium, DimUTMCamp}

// UnitDims are attributes of a unit-day, taken from its first event.
var UnitDims = []string{DimCountry, DimBrowser, DimOS, DimDevice}

// VisitGap ends a visit after this much inactivity.
const VisitGap = 30 * time.Minute

// Caps bound what one privacy unit (a visitor-day, or a user's day) can
// contribute. Every DP sensitivity in Veil follows from these numbers and
// never from the data.
type Caps struct {
	Pageviews        int // pageviews counted per unit-day
	Events           int // custom events counted per unit-day
	Visits           int // visits per unit-day
	Hours            int // distinct hours a unit-day contributes to
	Pages            int // distinct pages per unit-day (event:page)
	PageviewsPerPage int // pageviews per page per unit-day
	VisitValues      int // distinct values per visit dimension per unit-day
	Goals            int // distinct goals (custom event names) per unit-day
	EventsPerGoal    int // events per goal, and per prop value, per unit-day
	PropValues       int // distinct (prop key, value) pairs per unit-day
}

// DefaultCaps are chosen so typical visitors are not cut (most view a
// handful of pages in one or two visits) while keeping sensitivities small.
var DefaultCaps = Caps{
	Pageviews: 20, Events: 20, Visits: 4, Hours: 6,
	Pages: 6, PageviewsPerPage: 2, VisitValues: 3,
	Goals: 5, EventsPerGoal: 3, PropValues: 5,
}

// unitKey identifies a unit-day.
type unitKey struct {
	day  int32 // days since the Unix epoch, UTC
	unit event.Pseudonym
}

// unitState is the bounding state of one unit-day. It lives only in memory
// (rebuilt from the log after a restart) and is dropped when its day
// closes. It is kept compact — counters, a bitmask of hours and hashes of
// the values counted — because a backfill holds many days open at once.
type unitState struct {
	pageviews, events, visits uint8
	visitPV                   uint8
	bounced                   bool
	visitHour                 uint8     // hour of the day where the open visit's bounce was counted
	visitCounted              uint8     // bit i: the open visit was counted in VisitDims[i]
	hours                     uint32    // bit h: the unit contributed to hour h of its day
	seen                      uint32    // 1 + ms into the day of the latest event; 0: none yet
	unit                      [4]uint32 // interned ids of the UnitDims values
	touched                   []touch
	// The open visit's values of the visit dimensions it was counted in, so
	// a second pageview can take its bounce back: one string, value i
	// ending at visitEnds[i]. Dropped once the bounce is taken back.
	visitVals string
	visitEnds [len(visitDims)]uint32
}

// touch records a (dimension, value) a unit counted in, by a 32-bit hash,
// with how much it contributed there (pageviews per page, events per goal or
// prop). Two values of one unit-day colliding would share one record: the
// unit then counts less, never more, so the bounds hold.
type touch struct {
	h   uint32
	dim uint8
	n   uint8
}

// setVisit keeps the open visit's counted values.
func (u *unitState) setVisit(vals *[len(visitDims)]string) {
	n := 0
	for _, v := range vals {
		n += len(v)
	}
	var b strings.Builder
	b.Grow(n)
	for i, v := range vals {
		b.WriteString(v)
		u.visitEnds[i] = uint32(b.Len())
	}
	u.visitVals = b.String()
}

// visitVal returns the open visit's value of VisitDims[i].
func (u *unitState) visitVal(i int) string {
	var start uint32
	if i > 0 {
		start = u.visitEnds[i-1]
	}
	return u.visitVals[start:u.visitEnds[i]]
}

// Dimension ids for touch records.
const (
	tPage uint8 = iota
	tGoal
	tProp
	tVisit // + index in VisitDims
)

var seed = maphash.MakeSeed()

func hashValue(v string) uint32 { return uint32(maphash.String(seed, v)) }

// touch finds or adds the record of (dim, value); ok is false when the
// value is new and the unit already has limit values in dim.
func (u *unitState) touch(dim uint8, value string, limit int) (t *touch, first, ok bool) {
	h := hashValue(value)
	n := 0
	for i := range u.touched {
		if u.touched[i].dim == dim {
			if u.touched[i].h == h {
				return &u.touched[i], false, true
			}
			n++
		}
	}
	if n >= limit {
		return nil, false, false
	}
	if u.touched == nil {
		u.touched = make([]touch, 0, 4)
	}
	u.touched = append(u.touched, touch{h: h, dim: dim})
	return &u.touched[len(u.touched)-1], true, true
}

// interner maps unit dimension values (country, browser, OS, device: small
// closed sets) to ids, so a unit holds 4 bytes per value instead of a string
// header and the memory of the event it came from.
type interner struct {
	mu   sync.Mutex
	ids  map[string]uint32
	strs []string
}

func (in *interner) id(s string) uint32 {
	in.mu.Lock()
	defer in.mu.Unlock()
	if v, ok := in.ids[s]; ok {
		return v
	}
	if in.ids == nil {
		in.ids = map[string]uint32{}
	}
	s = strings.Clone(s)
	in.ids[s] = uint32(len(in.strs))
	in.strs = append(in.strs, s)
	return in.ids[s]
}

func (in *interner) str(id uint32) string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.strs[id]
}

var interned interner

// rollKey is one exact rollup cell.
type rollKey struct {
	dim, value string
	hour       int64 // unix seconds of the hour's start
}

// delta is what a batch adds to one rollup cell. Visitors counts distinct
// units within the hour; DayVisitors counts a unit in the hour of its first
// contribution to the cell's value that day, so summing DayVisitors over a
// day gives that day's distinct units.
type delta struct {
	Visitors, DayVisitors, Visits, Bounces, Pageviews, Events int64
}

// pairKey is a rollup cell restricted to one value of a unit dimension
// (FilterDims), by day: it answers filtered queries such as "top pages for
// visitors from DE". Unit dimensions have one value per unit-day, so the
// restriction keeps each unit's bounded contribution intact.
type pairKey struct {
	fdim, fval string
	dim, value string
	day        int64 // unix seconds of the day's start
}

// FilterDims are the dimensions ad hoc queries can filter on.
var FilterDims = UnitDims

type deltas struct {
	cells map[rollKey]*delta
	pairs map[pairKey]*delta
}

func newDeltas() deltas {
	return deltas{cells: map[rollKey]*delta{}, pairs: map[pairKey]*delta{}}
}

// at returns the cell of (dim, value) for the hour. Only site totals are kept
// per hour (for the hourly releases); every other dimension is kept per day,
// which is all its releases and queries need and keeps the number of rows
// written per event small.
func (d deltas) at(dim, value string, hour int64) *delta {
	if dim != DimTotal {
		hour -= hour % 86400
	}
	k := rollKey{dim, value, hour}
	x := d.cells[k]
	if x == nil {
		x = &delta{}
		d.cells[k] = x
	}
	return x
}

// add applies f to the cell (dim, value, hour) and to its pair cells for
// the unit's filter values.
func (d deltas) add(u *unitState, dim, value string, hour int64, f func(*delta)) {
	f(d.at(dim, value, hour))
	day := hour - hour%86400
	for i, fd := range FilterDims {
		if fd == dim {
			continue
		}
		k := pairKey{fd, interned.str(u.unit[i]), dim, value, day}
		x := d.pairs[k]
		if x == nil {
			x = &delta{}
			d.pairs[k] = x
		}
		f(x)
	}
}

func (x *delta) negate() {
	*x = delta{-x.Visitors, -x.DayVisitors, -x.Visits, -x.Bounces, -x.Pageviews, -x.Events}
}

func incVisitors(x *delta)    { x.DayVisitors++ }
func incVisits(x *delta)      { x.Visits++ }
func incPageviews(x *delta)   { x.Pageviews++ }
func incEvents(x *delta)      { x.Events++ }
func incVisitBounce(x *delta) { x.Visits++; x.Bounces++ }
func decBounces(x *delta)     { x.Bounces-- }

func visitValue(dim string, e *event.Event) string {
	switch dim {
	case DimEntryPage:
		return e.Path
	case DimSource:
		if e.Source == "" {
			return "Direct / None"
		}
		return e.Source
	case DimReferrer:
		if e.Referrer == "" {
			return "Direct / None"
		}
		return e.Referrer
	case DimUTMSource:
		return e.UTMSource
	case DimUTMMedium:
		return e.UTMMedium
	case DimUTMCamp:
		return e.UTMCamp
	}
	return ""
}

func unitValue(dim string, e *event.Event) string {
	v := ""
	switch dim {
	case DimCountry:
		v = e.Country
	case DimBrowser:
		v = e.Browser
	case DimOS:
		v = e.OS
	case DimDevice:
		v = e.Device
	}
	if v == "" {
		return "unknown"
	}
	return v
}

// apply bounds one event's contribution through u and adds it to d. Events
// beyond a cap are not counted at all (the cap is what makes sensitivity
// data-independent). It reports whether anything was counted.
func (c Caps) apply(u *unitState, e *event.Event, d deltas) bool {
	isPV := e.Name == "pageview"
	if e.Name == "engagement" {
		return false // engagement timing is not aggregated yet
	}
	if isPV && int(u.pageviews) >= c.Pageviews || !isPV && int(u.events) >= c.Events {
		return false
	}
	// A unit-day's events all fall on one UTC day: times are kept as
	// offsets into it.
	ms := e.Time.UnixMilli()
	day := ms - ms%86400000
	at := uint32(ms-day) + 1
	hour := e.Time.Truncate(time.Hour).Unix()
	hourOfDay := uint8((hour % 86400) / 3600)
	bit := uint32(1) << hourOfDay
	newHour := u.hours&bit == 0
	if newHour && bits.OnesCount32(u.hours) >= c.Hours {
		return false
	}
	newVisit := u.seen == 0 || int64(at)-int64(u.seen) > VisitGap.Milliseconds()
	if newVisit && int(u.visits) >= c.Visits {
		return false
	}
	firstOfDay := u.seen == 0
	if at > u.seen {
		u.seen = at
	}
	if firstOfDay {
		for i, dim := range UnitDims {
			u.unit[i] = interned.id(unitValue(dim, e))
		}
	}
	if newHour {
		u.hours |= bit
		d.at(DimTotal, "", hour).Visitors++
	}
	if firstOfDay {
		d.add(u, DimTotal, "", hour, incVisitors)
		for i, dim := range UnitDims {
			d.add(u, dim, interned.str(u.unit[i]), hour, incVisitors)
		}
	}
	if newVisit {
		u.visits++
		u.visitHour, u.visitPV, u.visitCounted, u.bounced = hourOfDay, 0, 0, true
		d.add(u, DimTotal, "", hour, incVisitBounce)
		for i, dim := range UnitDims {
			d.add(u, dim, interned.str(u.unit[i]), hour, incVisitBounce)
		}
		var vals [len(visitDims)]string
		for i, dim := range VisitDims {
			v := visitValue(dim, e)
			if v == "" {
				continue
			}
			_, first, ok := u.touch(tVisit+uint8(i), v, c.VisitValues)
			if !ok {
				continue
			}
			d.add(u, dim, v, hour, incVisitBounce)
			if first {
				d.add(u, dim, v, hour, incVisitors)
			}
			vals[i] = v
			u.visitCounted |= 1 << i
		}
		u.setVisit(&vals)
	}
	if isPV {
		u.pageviews++
		d.add(u, DimTotal, "", hour, incPageviews)
		for i, dim := range UnitDims {
			d.add(u, dim, interned.str(u.unit[i]), hour, incPageviews)
		}
		if t, first, ok := u.touch(tPage, e.Path, c.Pages); ok {
			if int(t.n) < c.PageviewsPerPage {
				t.n++
				d.add(u, DimPage, e.Path, hour, incPageviews)
			}
			if first {
				d.add(u, DimPage, e.Path, hour, incVisitors)
			}
		}
		u.visitPV++
		if u.visitPV == 2 && u.bounced {
			// A second pageview: the visit was not a bounce after all.
			u.bounced = false
			vh := day/1000 + int64(u.visitHour)*3600
			d.add(u, DimTotal, "", vh, decBounces)
			for i, dim := range UnitDims {
				d.add(u, dim, interned.str(u.unit[i]), vh, decBounces)
			}
			for i, dim := range VisitDims {
				if u.visitCounted&(1<<i) != 0 {
					d.add(u, dim, u.visitVal(i), vh, decBounces)
				}
			}
			u.visitVals, u.visitCounted = "", 0
		}
		return true
	}
	u.events++
	d.add(u, DimTotal, "", hour, incEvents)
	if t, first, ok := u.touch(tGoal, e.Name, c.Goals); ok {
		if int(t.n) < c.EventsPerGoal {
			t.n++
			d.add(u, DimGoal, e.Name, hour, incEvents)
		}
		if first {
			d.add(u, DimGoal, e.Name, hour, incVisitors)
		}
	}
	for _, p := range e.Props {
		t, first, ok := u.touch(tProp, p.Key+"\x00"+p.Value, c.PropValues)
		if !ok {
			continue
		}
		dim := PropPrefix + p.Key
		if int(t.n) < c.EventsPerGoal {
			t.n++
			d.add(u, dim, p.Value, hour, incEvents)
		}
		if first {
			d.add(u, dim, p.Value, hour, incVisitors)
		}
	}
	return true
}
