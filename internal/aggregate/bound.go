package aggregate

import (
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
var VisitDims = []string{DimEntryPage, DimSource, DimReferrer, DimUTMSource, DimUTMMedium, DimUTMCamp}

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
// (rebuilt from the log after a restart) and is dropped when its day closes.
type unitState struct {
	Pageviews int
	Events    int
	Visits    int
	Hours     []int64
	Unit      map[string]string   // unit dims → value
	Touched   map[string][]string // dim → distinct values counted
	PagePV    map[string]int      // page → pageviews counted
	GoalEv    map[string]int      // goal (or NUL+prop pair) → events counted
	LastSeen  int64               // unix ms
	// The open visit: where its bounce was counted, so a second pageview
	// can take the bounce back from the same partitions.
	VisitHour  int64
	VisitPV    int
	VisitParts []string // "dim\x00value" the visit counted in
	Bounced    bool
}

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
	for _, fd := range FilterDims {
		if fd == dim {
			continue
		}
		k := pairKey{fd, u.Unit[fd], dim, value, day}
		x := d.pairs[k]
		if x == nil {
			x = &delta{}
			d.pairs[k] = x
		}
		f(x)
	}
}

func incVisitors(x *delta)    { x.DayVisitors++ }
func incVisits(x *delta)      { x.Visits++ }
func incPageviews(x *delta)   { x.Pageviews++ }
func incEvents(x *delta)      { x.Events++ }
func incVisitBounce(x *delta) { x.Visits++; x.Bounces++ }
func decBounces(x *delta)     { x.Bounces-- }

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// touch records that u contributes to (dim, value) and reports whether the
// value is new for the day, and whether the contribution is allowed under
// the dimension's cap on distinct values.
func (u *unitState) touch(dim, value string, limit int) (first, ok bool) {
	if u.Touched == nil {
		u.Touched = map[string][]string{}
	}
	vals := u.Touched[dim]
	if contains(vals, value) {
		return false, true
	}
	if len(vals) >= limit {
		return false, false
	}
	u.Touched[dim] = append(vals, value)
	return true, true
}

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
	if isPV && u.Pageviews >= c.Pageviews || !isPV && u.Events >= c.Events {
		return false
	}
	ms := e.Time.UnixMilli()
	hour := e.Time.Truncate(time.Hour).Unix()
	newHour := !containsInt(u.Hours, hour)
	if newHour && len(u.Hours) >= c.Hours {
		return false
	}
	newVisit := u.LastSeen == 0 || ms-u.LastSeen > VisitGap.Milliseconds()
	if newVisit && u.Visits >= c.Visits {
		return false
	}
	firstOfDay := u.LastSeen == 0
	if ms > u.LastSeen {
		u.LastSeen = ms
	}
	if firstOfDay {
		u.Unit = map[string]string{}
		for _, dim := range UnitDims {
			u.Unit[dim] = unitValue(dim, e)
		}
	}
	if newHour {
		u.Hours = append(u.Hours, hour)
		d.at(DimTotal, "", hour).Visitors++
	}
	if firstOfDay {
		d.add(u, DimTotal, "", hour, incVisitors)
		for _, dim := range UnitDims {
			d.add(u, dim, u.Unit[dim], hour, incVisitors)
		}
	}
	if newVisit {
		u.Visits++
		u.VisitHour, u.VisitPV, u.VisitParts, u.Bounced = hour, 0, u.VisitParts[:0], true
		d.add(u, DimTotal, "", hour, incVisitBounce)
		for _, dim := range UnitDims {
			d.add(u, dim, u.Unit[dim], hour, incVisitBounce)
		}
		for _, dim := range VisitDims {
			v := visitValue(dim, e)
			if v == "" {
				continue
			}
			first, ok := u.touch(dim, v, c.VisitValues)
			if !ok {
				continue
			}
			d.add(u, dim, v, hour, incVisitBounce)
			if first {
				d.add(u, dim, v, hour, incVisitors)
			}
			u.VisitParts = append(u.VisitParts, dim+"\x00"+v)
		}
	}
	if isPV {
		u.Pageviews++
		d.add(u, DimTotal, "", hour, incPageviews)
		for _, dim := range UnitDims {
			d.add(u, dim, u.Unit[dim], hour, incPageviews)
		}
		if first, ok := u.touch(DimPage, e.Path, c.Pages); ok {
			if u.PagePV == nil {
				u.PagePV = map[string]int{}
			}
			if u.PagePV[e.Path] < c.PageviewsPerPage {
				u.PagePV[e.Path]++
				d.add(u, DimPage, e.Path, hour, incPageviews)
			}
			if first {
				d.add(u, DimPage, e.Path, hour, incVisitors)
			}
		}
		u.VisitPV++
		if u.VisitPV == 2 && u.Bounced {
			// A second pageview: the visit was not a bounce after all.
			u.Bounced = false
			d.add(u, DimTotal, "", u.VisitHour, decBounces)
			for _, dim := range UnitDims {
				d.add(u, dim, u.Unit[dim], u.VisitHour, decBounces)
			}
			for _, p := range u.VisitParts {
				dim, v := splitPart(p)
				d.add(u, dim, v, u.VisitHour, decBounces)
			}
		}
		return true
	}
	u.Events++
	d.add(u, DimTotal, "", hour, incEvents)
	if first, ok := u.touch(DimGoal, e.Name, c.Goals); ok {
		if u.GoalEv == nil {
			u.GoalEv = map[string]int{}
		}
		if u.GoalEv[e.Name] < c.EventsPerGoal {
			u.GoalEv[e.Name]++
			d.add(u, DimGoal, e.Name, hour, incEvents)
		}
		if first {
			d.add(u, DimGoal, e.Name, hour, incVisitors)
		}
	}
	for _, p := range e.Props {
		pair := p.Key + "\x00" + p.Value
		first, ok := u.touch("props", pair, c.PropValues)
		if !ok {
			continue
		}
		if u.GoalEv == nil {
			u.GoalEv = map[string]int{}
		}
		dim := PropPrefix + p.Key
		if u.GoalEv["\x00"+pair] < c.EventsPerGoal { // goal names never start with NUL
			u.GoalEv["\x00"+pair]++
			d.add(u, dim, p.Value, hour, incEvents)
		}
		if first {
			d.add(u, dim, p.Value, hour, incVisitors)
		}
	}
	return true
}

func splitPart(p string) (string, string) {
	for i := 0; i < len(p); i++ {
		if p[i] == 0 {
			return p[:i], p[i+1:]
		}
	}
	return p, ""
}

func containsInt(s []int64, v int64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
