package release

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/aggregate"
	"github.com/veil-analytics/veil/internal/ledger"
	"github.com/veil-analytics/veil/internal/store"
	"github.com/veil-analytics/veil/internal/store/sqlitestore"
)

var day = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

type env struct {
	db  *sql.DB
	st  *sqlitestore.DB
	led *ledger.Ledger
	rel *Releaser
	now time.Time
}

func setup(t *testing.T) *env {
	t.Helper()
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "veil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := aggregate.New(aggregate.Config{DB: st.SQL(), Store: st, Logger: slog.Default()}); err != nil {
		t.Fatal(err)
	}
	led, err := ledger.Open(st.SQL())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{db: st.SQL(), st: st, led: led, now: day.Add(30 * time.Hour)}
	e.rel, err = New(Config{DB: st.SQL(), Store: st, Ledger: led, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return e.now }})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) cell(t *testing.T, site, dim, value string, hour time.Time, dayVisitors, pageviews int64) {
	t.Helper()
	_, err := e.db.Exec(`INSERT INTO agg_rollup (site, dim, hour, value, visitors, day_visitors, pageviews) VALUES (?,?,?,?,?,?,?)`,
		site, dim, hour.Unix(), value, dayVisitors, dayVisitors, pageviews)
	if err != nil {
		t.Fatal(err)
	}
}

func released(t *testing.T, db *sql.DB, site, period, dim, metric string) map[string]float64 {
	t.Helper()
	rows, err := db.Query(`SELECT value, noisy FROM released WHERE site=? AND period=? AND dim=? AND metric=?`, site, period, dim, metric)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]float64{}
	for rows.Next() {
		var v string
		var x float64
		rows.Scan(&v, &x)
		out[v] = x
	}
	return out
}

func TestDayReleaseSelectsPartitionsAndChargesOnce(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	s := store.Site{ID: "s1", Domain: "example.com", Retention: 90 * 24 * time.Hour, Created: day}
	e.st.CreateSite(ctx, s)
	e.db.Exec(`INSERT INTO agg_days (site, day, last_event, events, closed) VALUES ('s1', ?, 0, 1, 1)`, day.Unix()/86400)
	e.cell(t, "s1", aggregate.DimTotal, "", day.Add(10*time.Hour), 5000, 12000)
	e.cell(t, "s1", aggregate.DimPage, "/popular", day.Add(10*time.Hour), 3000, 5000)
	e.cell(t, "s1", aggregate.DimPage, "/secret-of-one-visitor", day.Add(11*time.Hour), 1, 2)
	e.cell(t, "s1", aggregate.DimCountry, "DE", day.Add(10*time.Hour), 4000, 0)

	if err := e.rel.ReleaseDue(ctx, s); err != nil {
		t.Fatal(err)
	}
	pages := released(t, e.db, "s1", "day", aggregate.DimPage, Pageviews)
	if _, ok := pages["/secret-of-one-visitor"]; ok {
		t.Fatal("a page visited by one unit was released")
	}
	if v, ok := pages["/popular"]; !ok || math.Abs(v-5000) > 500 {
		t.Fatalf("popular page: %v %v", v, ok)
	}
	countries := released(t, e.db, "s1", "day", aggregate.DimCountry, Visitors)
	if len(countries) != len(PublicValues(aggregate.DimCountry)) {
		t.Fatalf("released %d countries, want every public value (%d)", len(countries), len(PublicValues(aggregate.DimCountry)))
	}
	hours := released(t, e.db, "s1", "hour", aggregate.DimTotal, Visitors)
	_ = hours
	var nHours int
	e.db.QueryRow(`SELECT count(*) FROM release_runs WHERE site='s1' AND period='hour'`).Scan(&nHours)
	if nHours < 24 {
		t.Fatalf("%d hours released, want every closed hour", nHours)
	}
	spent, _ := e.led.Spent(ctx, "s1", "release:")
	want := DefaultBudget.ReleaseRho()
	if got := spent[DefaultBudget.ReleaseKey(day)]; math.Abs(got-want) > 1e-12 {
		t.Fatalf("release spent %v on the day, want %v", got, want)
	}
	// Running again publishes nothing new and charges nothing more.
	before := released(t, e.db, "s1", "day", aggregate.DimPage, Pageviews)
	e.now = e.now.Add(time.Hour)
	if err := e.rel.ReleaseDue(ctx, s); err != nil {
		t.Fatal(err)
	}
	after := released(t, e.db, "s1", "day", aggregate.DimPage, Pageviews)
	if after["/popular"] != before["/popular"] {
		t.Fatal("a released value changed: a second noisy copy was published")
	}
	spent2, _ := e.led.Spent(ctx, "s1", "release:")
	if spent2[DefaultBudget.ReleaseKey(day)] != spent[DefaultBudget.ReleaseKey(day)] {
		t.Fatal("release charged twice for one day")
	}
}
