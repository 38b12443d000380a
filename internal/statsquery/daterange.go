package statsquery

import (
	"encoding/json"
	"fmt"
	"time"
)

// MaxYears bounds how far back a date range may reach; older data is past
// any retention Veil keeps, and the bound keeps time:day series finite.
const MaxYears = 10

// plausibleOnlyRanges are Plausible date_range keywords Veil does not answer.
var plausibleOnlyRanges = map[string]bool{"realtime": true, "24h": true, "28d": true, "91d": true, "custom": true}

// day returns the UTC midnight starting t's UTC day.
func day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// parseDateRange resolves date_range against now: from is inclusive and to
// exclusive, both UTC midnights. norm is the range as given, normalized.
//
// Keywords end today (UTC). "all" starts at earliest's day, clamped to at
// most MaxYears back; a zero earliest, or one after today (no data yet, or a
// skewed clock), gives today alone so the range is never empty.
func parseDateRange(raw json.RawMessage, now, earliest time.Time) (from, to time.Time, norm string, err error) {
	today := day(now)
	to = today.AddDate(0, 0, 1)
	// AddDate normalizes: ten years before 2024-02-29 is 2014-03-01.
	minDay := today.AddDate(-MaxYears, 0, 0)
	y, m, _ := today.Date()

	switch kind(raw) {
	case '"':
		s, err := decodeString(raw, "date_range")
		if err != nil {
			return from, to, "", err
		}
		switch s {
		case "day":
			from = today
		case "7d":
			from = today.AddDate(0, 0, -6)
		case "30d":
			from = today.AddDate(0, 0, -29)
		case "month":
			from = time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
		case "6mo":
			// time.Date normalizes month 0 and below into earlier years.
			from = time.Date(y, m-5, 1, 0, 0, 0, 0, time.UTC)
		case "12mo":
			from = time.Date(y, m-11, 1, 0, 0, 0, 0, time.UTC)
		case "year":
			from = time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
		case "all":
			from = today
			if e := day(earliest); !earliest.IsZero() && !e.After(today) {
				from = e
				if e.Before(minDay) {
					from = minDay
				}
			}
		default:
			if plausibleOnlyRanges[s] {
				return from, to, "", bad(reasonUnsupport, "date_range", "%s is not supported", echo(s))
			}
			return from, to, "", bad(reasonDateRange, "date_range",
				`must be "day", "7d", "30d", "month", "6mo", "12mo", "year", "all" or ["YYYY-MM-DD", "YYYY-MM-DD"], not %s`, echo(s))
		}
		return from, to, s, nil

	case '[':
		arr, err := decodeArray(raw, "date_range", "a string or a pair of dates")
		if err != nil {
			return from, to, "", err
		}
		if len(arr) != 2 {
			return from, to, "", bad(reasonDateRange, "date_range", `must be a pair of dates ["YYYY-MM-DD", "YYYY-MM-DD"]`)
		}
		var days [2]time.Time
		for i, r := range arr {
			field := fmt.Sprintf("date_range[%d]", i)
			s, err := decodeString(r, field)
			if err != nil {
				return from, to, "", err
			}
			// The length check refuses what time.Parse tolerates around the
			// layout; Parse itself refuses 2023-02-29 and 2024-13-01.
			t, perr := time.Parse(time.DateOnly, s)
			if len(s) != len(time.DateOnly) || perr != nil {
				return from, to, "", bad(reasonDateRange, field, "must be a calendar date YYYY-MM-DD")
			}
			days[i] = t
		}
		first, last := days[0], days[1]
		tomorrow := today.AddDate(0, 0, 1)
		switch {
		case first.After(last):
			return from, to, "", bad(reasonDateRange, "date_range", "the first date is after the last")
		case first.Before(minDay):
			return from, to, "", bad(reasonDateRange, "date_range", "dates must be within %d years of today (from %s)", MaxYears, minDay.Format(time.DateOnly))
		case last.After(tomorrow):
			// Tomorrow is allowed: it is already today east of UTC.
			return from, to, "", bad(reasonDateRange, "date_range", "the last date must be at most %s (tomorrow, UTC)", tomorrow.Format(time.DateOnly))
		}
		return first, last.AddDate(0, 0, 1), first.Format(time.DateOnly) + ".." + last.Format(time.DateOnly), nil

	default:
		return from, to, "", typeErr("date_range", `a keyword like "7d" or a pair of dates`, raw)
	}
}
