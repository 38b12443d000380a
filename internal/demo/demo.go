// Package demo feeds a demo site with realistic synthetic traffic through
// Veil's real ingestion path, so a new user sees a populated dashboard:
// released past days, ranges and period comparisons, and live hours.
//
// Events go through the native batch API (POST /api/v1/events) of the
// server's own handler, with the same authentication, validation, edge
// minimization, event log and aggregation as any client's events. The
// backfill uses that API's bulk path: batches of up to 5,000 events with
// past timestamps (within the site's retention), sent in time order.
package demo

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/veil-analytics/veil/internal/auth"
	"github.com/veil-analytics/veil/internal/site"
	"github.com/veil-analytics/veil/internal/store"
)

// Domain is the demo site's domain.
const Domain = "demo.veil.local"

// Config sets up the demo.
type Config struct {
	Store   store.Store
	Handler http.Handler // the server's handler
	// EnsureSite creates the site's event stream.
	EnsureSite func(context.Context, store.Site) error
	Logger     *slog.Logger
	Now        func() time.Time
	// VisitorsPerDay is the average on a weekday (default 4,000).
	VisitorsPerDay int
	// BackfillDays of past traffic are sent when the demo site is created
	// (default 30).
	BackfillDays int
	// Tick is how often live traffic is sent (default 10 s).
	Tick time.Duration
	Seed uint64
}

// Run registers the demo site if needed (backfilling its past days then),
// and sends live traffic until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	g, err := start(ctx, cfg)
	if err != nil {
		return err
	}
	last := g.cfg.Now().UTC()
	tick := time.NewTicker(g.cfg.Tick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		now := g.cfg.Now().UTC()
		if _, err := g.backfill(ctx, last, now); err != nil && ctx.Err() == nil {
			g.cfg.Logger.Warn("demo traffic not accepted", "err", err)
		}
		last = now
	}
}

// start applies defaults and registers the demo site; a new site gets its
// past days backfilled.
func start(ctx context.Context, cfg Config) (*gen, error) {
	if cfg.VisitorsPerDay <= 0 {
		cfg.VisitorsPerDay = 4000
	}
	if cfg.BackfillDays <= 0 {
		cfg.BackfillDays = 30
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	s, created, err := ensureSite(ctx, cfg)
	if err != nil {
		return nil, err
	}
	g := &gen{cfg: cfg, site: s, rng: rand.New(rand.NewPCG(cfg.Seed, 7)),
		tok: store.Token{ID: "demo", Name: "demo traffic", Role: store.RoleIngest, Sites: []string{s.ID}}}
	if created {
		now := cfg.Now().UTC()
		t0 := time.Now()
		n, err := g.backfill(ctx, now.Truncate(24*time.Hour).AddDate(0, 0, -cfg.BackfillDays), now)
		if err != nil {
			return nil, fmt.Errorf("demo backfill: %w", err)
		}
		cfg.Logger.Info("demo site backfilled", "site", s.ID, "days", cfg.BackfillDays, "events", n, "seconds", time.Since(t0).Seconds())
	}
	return g, nil
}

func ensureSite(ctx context.Context, cfg Config) (store.Site, bool, error) {
	s, err := cfg.Store.SiteByDomain(ctx, Domain)
	if err == nil {
		return s, false, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return s, false, err
	}
	days := 90
	s, err = site.Create(ctx, cfg.Store, Domain, site.Settings{RetentionDays: &days}, cfg.Now())
	if err != nil {
		return s, false, err
	}
	if err := cfg.EnsureSite(ctx, s); err != nil {
		return s, false, err
	}
	return s, true, nil
}

type gen struct {
	cfg  Config
	site store.Site
	rng  *rand.Rand
	tok  store.Token
}

// event is one event of the native batch API.
type event struct {
	ID        string            `json:"id"`
	Timestamp int64             `json:"timestamp"`
	Site      string            `json:"site"`
	Name      string            `json:"name"`
	URL       string            `json:"url"`
	Referrer  string            `json:"referrer,omitempty"`
	IP        string            `json:"ip"`
	UserAgent string            `json:"user_agent"`
	Props     map[string]string `json:"props,omitempty"`
}

// backfill sends the visits that start in [from, to), in time order, and
// returns how many events were accepted.
func (g *gen) backfill(ctx context.Context, from, to time.Time) (int, error) {
	var batch []event
	sent := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := g.send(ctx, batch)
		if err == nil {
			sent += len(batch)
		}
		batch = batch[:0]
		return err
	}
	for h := from.Truncate(time.Hour); h.Before(to); h = h.Add(time.Hour) {
		lo, hi := h, h.Add(time.Hour)
		if lo.Before(from) {
			lo = from
		}
		if hi.After(to) {
			hi = to
		}
		// Only the part of the hour in [from, to) gets its share of visits.
		n := poisson(g.rng, g.visitsInHour(h)*hi.Sub(lo).Hours())
		var hour []event
		for range n {
			start := lo.Add(time.Duration(g.rng.Int64N(int64(hi.Sub(lo)))))
			hour = append(hour, g.visit(start, to)...)
		}
		// Visits overlap, so order the hour's events by time as a bulk
		// import should send them.
		slices.SortFunc(hour, func(a, b event) int { return cmp.Compare(a.Timestamp, b.Timestamp) })
		for _, e := range hour {
			batch = append(batch, e)
			if len(batch) == 5000 {
				if err := flush(); err != nil {
					return sent, err
				}
			}
		}
		if ctx.Err() != nil {
			return sent, ctx.Err()
		}
	}
	return sent, flush()
}

func (g *gen) send(ctx context.Context, evs []event) error {
	body, err := json.Marshal(evs)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(auth.WithToken(ctx, g.tok), http.MethodPost, "/api/v1/events", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	rec := &recorder{header: http.Header{}, code: http.StatusOK}
	g.cfg.Handler.ServeHTTP(rec, req)
	if rec.code != http.StatusAccepted {
		return fmt.Errorf("batch API answered %d: %.300s", rec.code, rec.body.String())
	}
	var res struct {
		Rejected []json.RawMessage `json:"rejected"`
	}
	if json.Unmarshal(rec.body.Bytes(), &res) == nil && len(res.Rejected) > 0 {
		return fmt.Errorf("%d demo events rejected, first: %s", len(res.Rejected), res.Rejected[0])
	}
	return nil
}

// recorder captures the handler's answer to an in-process request.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(code int)        { r.code = code }

// hourWeight is the daily rhythm (UTC): quiet nights, a European morning
// and an American afternoon.
var hourWeight = [24]float64{0.3, 0.25, 0.2, 0.2, 0.25, 0.35, 0.55, 0.8, 1.0, 1.15, 1.2, 1.2,
	1.25, 1.35, 1.5, 1.6, 1.6, 1.5, 1.35, 1.2, 1.0, 0.8, 0.6, 0.4}

// visitsInHour is the expected number of visits starting in hour h.
func (g *gen) visitsInHour(h time.Time) float64 {
	sum := 0.0
	for _, w := range hourWeight {
		sum += w
	}
	day := float64(g.cfg.VisitorsPerDay)
	switch h.Weekday() {
	case time.Saturday, time.Sunday:
		day *= 0.6
	}
	// Growth of about 20% over the backfilled weeks, so period
	// comparisons show a trend.
	ago := g.cfg.Now().Sub(h).Hours() / 24
	day *= 1 + 0.2*math.Max(0, 1-ago/float64(g.cfg.BackfillDays))
	return day * hourWeight[h.Hour()] / sum
}

// poisson draws a Poisson count with mean m (normal approximation for
// large means; traffic shape, not privacy, depends on it).
func poisson(r *rand.Rand, m float64) int {
	if m < 30 {
		l, k, p := math.Exp(-m), 0, 1.0
		for {
			p *= r.Float64()
			if p <= l {
				return k
			}
			k++
		}
	}
	return max(0, int(math.Round(m+math.Sqrt(m)*r.NormFloat64())))
}

func pick[T any](r *rand.Rand, xs []weighted[T]) T {
	total := 0.0
	for _, x := range xs {
		total += x.w
	}
	v := r.Float64() * total
	for _, x := range xs {
		if v -= x.w; v < 0 {
			return x.v
		}
	}
	return xs[len(xs)-1].v
}

type weighted[T any] struct {
	v T
	w float64
}

type source struct {
	referrer, utm string
	landing       string // "blog", "docs" or "home"
}

var sources = []weighted[source]{
	{source{"", "", "home"}, 30},
	{source{"https://www.google.com/", "", "blog"}, 28},
	{source{"https://www.bing.com/", "", "blog"}, 5},
	{source{"https://duckduckgo.com/", "", "docs"}, 5},
	{source{"https://news.ycombinator.com/item?id=4242", "", "blog"}, 7},
	{source{"https://t.co/x1", "", "blog"}, 4},
	{source{"https://github.com/veil-analytics/veil", "", "docs"}, 6},
	{source{"https://www.reddit.com/r/privacy/", "", "blog"}, 4},
	{source{"", "utm_source=newsletter&utm_medium=email&utm_campaign=monthly-update", "home"}, 6},
	{source{"", "utm_source=mastodon&utm_medium=social&utm_campaign=launch-week", "blog"}, 3},
	{source{"https://www.linkedin.com/", "utm_source=linkedin&utm_medium=paid&utm_campaign=privacy-ads", "home"}, 2},
}

// countries are address blocks that public IP-to-country tables place in
// the named country; with no geo database every visit counts as unknown.
var countries = []weighted[[2]int]{
	{[2]int{85, 214}, 18}, // DE
	{[2]int{8, 8}, 24},    // US
	{[2]int{81, 2}, 9},    // GB
	{[2]int{90, 84}, 8},   // FR
	{[2]int{145, 94}, 5},  // NL
	{[2]int{24, 114}, 5},  // CA
	{[2]int{177, 16}, 4},  // BR
	{[2]int{126, 0}, 4},   // JP
	{[2]int{117, 192}, 6}, // IN
	{[2]int{193, 0}, 3},   // SE/NL region
	{[2]int{1, 128}, 3},   // AU
	{[2]int{212, 58}, 3},  // GB
	{[2]int{151, 101}, 2}, // US
	{[2]int{88, 198}, 3},  // DE
	{[2]int{200, 160}, 3}, // BR/AR region
}

var agents = []weighted[string]{
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", 30},
	{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", 12},
	{"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", 7},
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0", 6},
	{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", 20},
	{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36", 18},
	{"Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", 4},
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0", 3},
}

var docTopics = []string{"getting-started", "install", "tracker", "events-api", "stats-api", "privacy-model",
	"budgets", "retention", "goals", "props", "self-hosting", "nats", "sqlite", "cli", "tokens", "roles",
	"data-subject-requests", "policies", "audit-log", "faq"}

var pages = []weighted[string]{
	{"/", 30}, {"/pricing", 14}, {"/features", 10}, {"/docs", 9}, {"/about", 4},
	{"/changelog", 3}, {"/blog", 6}, {"/signup", 5}, {"/login", 4}, {"/contact", 2},
}

// page draws the next page of a visit: a fixed set of site pages, 20 doc
// pages and 200 blog posts with a long-tailed popularity.
func (g *gen) page(kind string) string {
	r := g.rng
	switch {
	case kind == "blog" || kind == "" && r.IntN(4) == 0:
		n := int(1/(r.Float64()+0.004)) % 200
		return fmt.Sprintf("/blog/post-%d", n)
	case kind == "docs" || kind == "" && r.IntN(4) == 0:
		return "/docs/" + docTopics[int(1/(r.Float64()+0.05))%len(docTopics)]
	case kind == "home":
		return "/"
	}
	return pick(r, pages)
}

// visit returns the events of one visit starting at start, none after end.
func (g *gen) visit(start, end time.Time) []event {
	r := g.rng
	src := pick(r, sources)
	block := pick(r, countries)
	ip := fmt.Sprintf("%d.%d.%d.%d", block[0], block[1], r.IntN(256), 1+r.IntN(254))
	ua := pick(r, agents)
	base := "https://" + Domain
	var evs []event
	t := start
	page := g.page(src.landing)
	n := 1
	for r.Float64() < 0.6 && n < 12 { // mean ≈ 2.5 pages
		n++
	}
	for i := range n {
		if t.After(end) {
			break
		}
		e := event{ID: fmt.Sprintf("demo-%016x", r.Uint64()), Timestamp: t.UnixMilli(), Site: Domain,
			Name: "pageview", URL: base + page, IP: ip, UserAgent: ua}
		if i == 0 {
			e.Referrer = src.referrer
			if src.utm != "" {
				e.URL += "?" + src.utm
			}
		}
		evs = append(evs, e)
		switch {
		case page == "/signup" && r.Float64() < 0.45:
			plan := pick(r, []weighted[string]{{"free", 6}, {"pro", 3}, {"team", 1}})
			evs = append(evs, event{ID: fmt.Sprintf("demo-%016x", r.Uint64()), Timestamp: t.Add(40 * time.Second).UnixMilli(),
				Site: Domain, Name: "Signup", URL: base + page, IP: ip, UserAgent: ua, Props: map[string]string{"plan": plan}})
		case page == "/docs/install" && r.Float64() < 0.5:
			os := pick(r, []weighted[string]{{"linux", 5}, {"macos", 3}, {"windows", 2}})
			evs = append(evs, event{ID: fmt.Sprintf("demo-%016x", r.Uint64()), Timestamp: t.Add(20 * time.Second).UnixMilli(),
				Site: Domain, Name: "Download", URL: base + page, IP: ip, UserAgent: ua, Props: map[string]string{"os": os}})
		}
		t = t.Add(time.Duration(20+r.IntN(180)) * time.Second)
		switch {
		case page == "/pricing" && r.IntN(3) == 0:
			page = "/signup"
		case page == "/docs" || page == "/docs/getting-started":
			page = g.page("docs")
		default:
			page = g.page("")
		}
	}
	return evs
}
