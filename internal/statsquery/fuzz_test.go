package statsquery

import (
	"errors"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/httpx"
)

// Seeds live in testdata/fuzz/FuzzParse/.

func midnightUTC(t time.Time) bool {
	return t.Location() == time.UTC && t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(body()))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := Parse(b, testNow, testEarliest)
		if err != nil {
			var he *httpx.Error
			if !errors.As(err, &he) {
				t.Fatalf("error %T %v is not an *httpx.Error", err, err)
			}
			checkErrShape(t, he)
			return
		}
		if !q.From.Before(q.To) || !midnightUTC(q.From) || !midnightUTC(q.To) {
			t.Fatalf("range %v .. %v", q.From, q.To)
		}
		if q.To.After(time.Date(2024, 3, 17, 0, 0, 0, 0, time.UTC)) || q.From.Before(time.Date(2014, 3, 15, 0, 0, 0, 0, time.UTC)) {
			t.Fatalf("range %v .. %v outside the allowed window", q.From, q.To)
		}
		if len(q.Metrics) < 1 || len(q.Metrics) > MaxMetrics {
			t.Fatalf("%d metrics", len(q.Metrics))
		}
		if q.Limit < 1 || q.Limit > MaxLimit || q.Offset < 0 || q.Offset > MaxOffset {
			t.Fatalf("limit %d offset %d", q.Limit, q.Offset)
		}
		if q.Epsilon != 0 && !(q.Epsilon > 0 && q.Epsilon <= MaxEpsilon) {
			t.Fatalf("epsilon %v", q.Epsilon)
		}
		if len(q.Dimensions) > MaxDimensions || len(q.Filters) > MaxFilters {
			t.Fatalf("%d dimensions, %d filters", len(q.Dimensions), len(q.Filters))
		}
		split := 0
		for _, d := range []string{q.TimeDim(), q.BreakdownDim()} {
			if d != "" {
				split++
			}
		}
		if split != len(q.Dimensions) {
			t.Fatalf("dimensions %q split as %q / %q", q.Dimensions, q.TimeDim(), q.BreakdownDim())
		}
		for _, fl := range q.Filters {
			if len(fl.Values) < 1 || len(fl.Values) > MaxFilterValues || !supportedOps[fl.Op] || isIdentifierDim(fl.Dim) {
				t.Fatalf("filter %+v", fl)
			}
			for _, v := range fl.Values {
				if len(v) > MaxValueBytes {
					t.Fatalf("value of %d bytes", len(v))
				}
			}
		}
		for _, d := range q.Dimensions {
			if isIdentifierDim(d) {
				t.Fatalf("identifier dimension %q", d)
			}
		}
		k := q.Key()
		if k != q.Key() {
			t.Fatalf("Key is not deterministic")
		}
		// Re-encoding the normalized query must parse to the same key.
		q2, err := Parse(encode(q), testNow, testEarliest)
		if err != nil {
			t.Fatalf("re-encoded query rejected: %v\n%s", err, encode(q))
		}
		if k2 := q2.Key(); k2 != k {
			t.Fatalf("round trip changed the key:\n%s\n%s", k, k2)
		}
	})
}
