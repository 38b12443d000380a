package aggregate

import (
	"context"
	"path/filepath"
	"testing"
	"time"
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
		db.Exec(`INSERT INTO agg_pairs (site, fdim, fval, dim, day, value, day_visitors) VALUES ('s', 'visit:country', 'DE', 'event:page', ?, '/', 5)`, dayOf(day(d)))
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
