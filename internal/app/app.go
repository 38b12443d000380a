// Package app wires Veil's parts into a running server; cmd/veil and the
// end-to-end tests both start Veil through it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/veil-analytics/veil/internal/aggregate"
	"github.com/veil-analytics/veil/internal/audit"
	"github.com/veil-analytics/veil/internal/auth"
	"github.com/veil-analytics/veil/internal/catalog"
	"github.com/veil-analytics/veil/internal/collect"
	"github.com/veil-analytics/veil/internal/consent"
	"github.com/veil-analytics/veil/internal/demo"
	"github.com/veil-analytics/veil/internal/dsr"
	"github.com/veil-analytics/veil/internal/eventlog"
	"github.com/veil-analytics/veil/internal/geo"
	"github.com/veil-analytics/veil/internal/keys"
	"github.com/veil-analytics/veil/internal/ledger"
	"github.com/veil-analytics/veil/internal/lineage"
	"github.com/veil-analytics/veil/internal/piireport"
	"github.com/veil-analytics/veil/internal/policy"
	"github.com/veil-analytics/veil/internal/pseudo"
	"github.com/veil-analytics/veil/internal/query"
	"github.com/veil-analytics/veil/internal/release"
	"github.com/veil-analytics/veil/internal/retention"
	"github.com/veil-analytics/veil/internal/server"
	"github.com/veil-analytics/veil/internal/site"
	"github.com/veil-analytics/veil/internal/store"
	"github.com/veil-analytics/veil/internal/store/sqlitestore"
	"github.com/veil-analytics/veil/internal/vault"
	"github.com/veil-analytics/veil/internal/web"
)

// Config is the server configuration.
type Config struct {
	Addr           string
	DataDir        string
	NATSURL        string // empty: embedded
	TrustedProxies []string
	// ForwardedHeader is the header trusted proxies write: "x-forwarded-for"
	// (default) or "forwarded" (RFC 7239).
	ForwardedHeader string
	GeoIPPath       string
	// SyncAlways makes the embedded log fsync before acknowledging.
	SyncAlways   bool
	SyncInterval time.Duration
	Replicas     int
	// CloseGrace is the aggregator's day-closing grace (default 1h).
	CloseGrace time.Duration
	// NoAggregate leaves aggregation to separate `veil aggregate` workers.
	NoAggregate bool
	// SecureCookies marks dashboard cookies Secure (and sends HSTS): set it
	// when Veil is served over HTTPS, directly or behind a proxy.
	SecureCookies bool
	// Lineage is where OpenLineage events go: "" (nowhere), file:PATH or
	// an http(s) URL such as Marquez's /api/v1/lineage.
	Lineage string
	// KEKURI names the key-encryption key protecting every keyset:
	// local://PATH (default: <data>/kek.json), hcvault://, aws-kms:// or
	// gcp-kms://.
	KEKURI string
	// Demo registers the demo site, backfills its past 30 days and keeps
	// feeding it synthetic traffic through the batch API.
	Demo bool
	// Now is the clock (tests inject one); nil means time.Now.
	Now func() time.Time
}

// App is a running Veil.
type App struct {
	Cfg       Config
	Store     *sqlitestore.DB
	Log       *eventlog.Log
	Pseudo    *pseudo.Pseudonymizer
	Keys      *keys.Ring
	KeyInfo   keys.Info
	Audit     *audit.Log
	Vault     *vault.Vault
	Policy    *policy.Engine
	Lineage   lineage.Emitter
	Consent   *consent.Registry
	PIIReport *piireport.Reporter
	DSR       *dsr.Service
	Purger    *retention.Purger
	Collector *collect.Collector
	Agg       *aggregate.Aggregator
	Ledger    *ledger.Ledger
	Releaser  *release.Releaser
	Query     *query.Engine
	Registry  *prometheus.Registry
	Handler   http.Handler
	GeoSource geo.Source
	logger    *slog.Logger
}

// PolicyDir holds the operator's Rego policies (site and domain overrides).
func PolicyDir(dataDir string) string { return filepath.Join(dataDir, "policies") }

// StorePath is the state store file under a data directory.
func StorePath(dataDir string) string { return filepath.Join(dataDir, "veil.db") }

// OpenStore opens the state store of a data directory (for CLI commands).
func OpenStore(dataDir string) (*sqlitestore.DB, error) {
	return sqlitestore.Open(StorePath(dataDir))
}

// Open starts every component; Close stops them.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*App, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	trust, err := collect.ParseTrusted(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	switch strings.ToLower(cfg.ForwardedHeader) {
	case "", "x-forwarded-for":
	case "forwarded":
		trust = trust.UseForwarded()
	default:
		return nil, fmt.Errorf("forwarded header %q: want x-forwarded-for or forwarded", cfg.ForwardedHeader)
	}
	locator, src, err := geo.Open(cfg.GeoIPPath)
	if err != nil {
		return nil, fmt.Errorf("geoip: %w", err)
	}
	st, err := OpenStore(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	lg, err := eventlog.Open(ctx, eventlog.Config{
		URL: cfg.NATSURL, Dir: eventlog.StoreDir(cfg.DataDir),
		SyncAlways: cfg.SyncAlways, SyncInterval: cfg.SyncInterval, Replicas: cfg.Replicas,
	}, logger)
	if err != nil {
		st.Close()
		return nil, err
	}
	a := &App{Cfg: cfg, Store: st, Log: lg, GeoSource: src, logger: logger}
	sites, err := st.Sites(ctx)
	if err != nil {
		a.Close()
		return nil, err
	}
	for _, s := range sites {
		if err := lg.EnsureSite(ctx, s); err != nil {
			a.Close()
			return nil, err
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.Registry = reg
	// Keys are created only on a fresh data directory; a missing or wrong
	// KEK over existing keysets stops start-up (keys.Open says why).
	if a.Keys, a.KeyInfo, err = keys.Open(ctx, st.SQL(), cfg.KEKURI, cfg.DataDir, true); err != nil {
		a.Close()
		return nil, err
	}
	if a.Audit, err = OpenAudit(ctx, cfg.DataDir, st, a.Keys); err != nil {
		a.Close()
		return nil, fmt.Errorf("audit log: %w", err)
	}
	vaultKey, err := a.Keys.AEAD(keys.Vault)
	if err != nil {
		a.Close()
		return nil, err
	}
	if a.Vault, err = vault.New(ctx, st.SQL(), vaultKey, a.Audit, cfg.Now); err != nil {
		a.Close()
		return nil, fmt.Errorf("vault: %w", err)
	}
	if a.Pseudo, err = pseudo.New(st, a.Keys, cfg.Now); err != nil {
		a.Close()
		return nil, err
	}
	// Subjects (consent records, DSR register) are named by a keyed
	// reference pinned to the first pseudonym key, stable across rotations.
	ref := func(siteID, subject string) string {
		r, err := a.Pseudo.Subject(siteID, subject)
		if err != nil {
			panic(err) // the keyset is loaded and never empty once Open succeeded
		}
		return r
	}
	if a.Consent, err = consent.New(ctx, st.SQL(), ref, cfg.Now); err != nil {
		a.Close()
		return nil, err
	}
	if a.PIIReport, err = piireport.New(piireport.Config{DB: st.SQL(), Now: cfg.Now, Logger: logger}); err != nil {
		a.Close()
		return nil, err
	}
	a.Collector = collect.New(collect.Config{
		Store: st, Log: lg, Pseudo: a.Pseudo, Geo: locator, Proxies: trust, Vault: a.Vault, Consent: a.Consent, PIIReport: a.PIIReport,
		Metrics: collect.NewMetrics(reg), Logger: logger, Now: cfg.Now,
	})
	if a.Lineage, err = lineage.Parse(cfg.Lineage, reg); err != nil {
		a.Close()
		return nil, fmt.Errorf("lineage: %w", err)
	}
	var onDayClosed func(string, time.Time)
	var onRelease func(string, string, time.Time)
	if a.Lineage != lineage.Discard {
		rep := &lineageReporter{em: a.Lineage, src: lineage.Source{Namespace: "veil"}, st: st, keys: primaryKey(a.Keys),
			db: "sqlite://" + StorePath(cfg.DataDir), stream: lineageStreamNS(cfg.NATSURL), logger: logger}
		onDayClosed, onRelease = rep.dayClosed, rep.released
	}
	a.Agg, err = aggregate.New(aggregate.Config{JS: lg.JetStream(), DB: st.SQL(), Store: st, Logger: logger, Now: cfg.Now, Registerer: reg, Grace: cfg.CloseGrace, OnDayClosed: onDayClosed, CapsFor: site.CapsOf})
	if err != nil {
		a.Close()
		return nil, err
	}
	if a.Ledger, err = ledger.Open(st.SQL()); err != nil {
		a.Close()
		return nil, err
	}
	if a.Releaser, err = release.New(release.Config{DB: st.SQL(), Store: st, Ledger: a.Ledger, Logger: logger, Now: cfg.Now, Registry: reg, Budgets: SiteBudget, Audit: a.Audit, OnRelease: onRelease, CapsFor: site.CapsOf}); err != nil {
		a.Close()
		return nil, err
	}
	if a.Policy, err = policy.New(PolicyDir(cfg.DataDir), logger, reg); err != nil {
		a.Close()
		return nil, fmt.Errorf("query policy: %w", err)
	}
	a.Query = NewQueryEngine(st, a.Ledger, cfg.Now)
	a.Query.Policy, a.Query.Audit = a.Policy, a.Audit
	var bounding dsr.Bounding // with separate workers, this process holds no aggregation state
	if !cfg.NoAggregate {
		bounding = a.Agg
	}
	if a.DSR, err = dsr.New(ctx, dsr.Config{DB: st.SQL(), Log: lg, Vault: a.Vault, Pseudonyms: a.Pseudo, Bounding: bounding,
		Consent: a.Consent, Audit: a.Audit, Ref: ref, Now: cfg.Now, Logger: logger}, reg); err != nil {
		a.Close()
		return nil, err
	}
	if a.Purger, err = retention.New(retention.Config{Sites: st.Sites, Log: lg, Vault: a.Vault, Audit: a.Audit, Logger: logger, Now: cfg.Now,
		Extra: []retention.Target{{Name: "rollups", Purge: func(ctx context.Context, siteID string, cutoff time.Time) (int, error) {
			return aggregate.PurgeBefore(ctx, st.SQL(), siteID, cutoff)
		}}}}, reg); err != nil {
		a.Close()
		return nil, err
	}
	authn := auth.NewAuthenticator(st, 10*time.Second)
	a.Handler = server.New(server.Config{
		Store: st, Log: lg, Collector: a.Collector, Auth: authn,
		Gatherer: reg, Logger: logger, Now: cfg.Now, Ready: a.ready, Query: a.Query,
		Audit: a.Audit, AuditLog: a.Audit, Policy: a.Policy, Governance: []server.Registrar{a.DSR, a.Consent, a.PIIReport, catalogAPI{catalog.Config{Sites: st.Sites, PII: a.PIIReport,
			Locations: catalog.Locations{EventLog: lineageStreamNS(cfg.NATSURL), Store: "sqlite://" + StorePath(cfg.DataDir)}}}},
		SiteDeleted: func(ctx context.Context, siteID string) error { return a.PIIReport.DeleteSite(ctx, siteID) },
		DSR: func(ctx context.Context) (any, error) {
			reqs, err := a.DSR.Requests(ctx, dsr.Filter{})
			return map[string]any{"requests": reqs}, err
		},
		Web: web.New(web.Config{Store: st, Auth: authn, Logger: logger, Now: cfg.Now, SecureCookies: cfg.SecureCookies}),
	}, reg)
	return a, nil
}

func (a *App) ready(ctx context.Context) error {
	if err := a.Store.SQL().PingContext(ctx); err != nil {
		return errors.New("state store unavailable")
	}
	if _, err := a.Log.JetStream().AccountInfo(ctx); err != nil {
		return errors.New("event log unavailable")
	}
	return nil
}

// Serve answers HTTP on ln until ctx ends, then shuts down gracefully: stop
// accepting, finish in-flight requests (whose events are then durable),
// then the caller closes the log and the store.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.logger.Handler(), slog.LevelDebug),
	}
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var bgWG sync.WaitGroup
	defer func() {
		stopBG()
		bgWG.Wait() // background work stops before the log and store close
	}()
	bgWG.Add(1)
	go func() {
		defer bgWG.Done()
		a.Pseudo.Run(bg, func(err error) { a.logger.Error("salt rotation failed", "err", err) })
	}()
	if !a.Cfg.NoAggregate {
		bgWG.Add(2)
		go func() {
			defer bgWG.Done()
			a.Agg.Run(bg)
		}()
		go func() {
			defer bgWG.Done()
			a.Releaser.Run(bg, 30*time.Second)
		}()
	}

	bgWG.Add(3)
	go func() {
		defer bgWG.Done()
		a.Policy.Watch(bg, 2*time.Second)
	}()
	go func() {
		defer bgWG.Done()
		a.Purger.Run(bg, time.Hour)
	}()
	go func() {
		defer bgWG.Done()
		a.PIIReport.Run(bg, 30*time.Second)
	}()
	if a.Cfg.Demo {
		bgWG.Add(1)
		go func() {
			defer bgWG.Done()
			err := demo.Run(bg, demo.Config{Store: a.Store, Handler: a.Handler, EnsureSite: a.Log.EnsureSite, Logger: a.logger, Now: a.Cfg.Now})
			if err != nil && bg.Err() == nil {
				a.logger.Error("demo traffic stopped", "err", err)
			}
		}()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.logger.Info("shutting down: finishing in-flight requests")
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close flushes and closes the log, then the store.
func (a *App) Close() error {
	var errs []error
	if a.Log != nil {
		errs = append(errs, a.Log.Close())
	}
	if a.Lineage != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, a.Lineage.Close(ctx))
		cancel()
		a.Lineage = nil
	}
	if a.Audit != nil {
		errs = append(errs, a.Audit.Close())
		a.Audit = nil
	}
	if a.Store != nil {
		errs = append(errs, a.Store.Close())
	}
	return errors.Join(errs...)
}

// NewQueryEngine returns the query engine over a state store (the server
// and `veil query` share it).
func NewQueryEngine(st *sqlitestore.DB, led *ledger.Ledger, now func() time.Time) *query.Engine {
	return &query.Engine{DB: st.SQL(), Ledger: led, Caps: aggregate.DefaultCaps, CapsFor: site.CapsOf,
		Budgets: SiteBudget, Now: now}
}

// SiteBudget is a site's privacy budget: per visitor-day, or per user and
// month for sites whose privacy unit is the declared user.
func SiteBudget(s store.Site) release.Budget { return site.Budget(s) }

// EnsureAdminToken creates an admin token when no admin token exists (the
// first start, or after every admin token was revoked) and returns its
// secret; "" when an admin token already exists.
func EnsureAdminToken(ctx context.Context, st store.Store, now time.Time) (string, error) {
	toks, err := st.Tokens(ctx)
	if err != nil {
		return "", err
	}
	for _, t := range toks {
		if t.Role == store.RoleAdmin {
			return "", nil
		}
	}
	secret, _, err := auth.NewToken(ctx, st, "initial admin", store.RoleAdmin, nil, now)
	return secret, err
}

// catalogAPI registers the data catalog's read-only API.
type catalogAPI struct{ cfg catalog.Config }

func (c catalogAPI) Register(mux *http.ServeMux,
	authed func(h func(store.Token, http.ResponseWriter, *http.Request), roles ...store.Role) http.Handler,
	_ func(ctx context.Context, tok store.Token, domain string) (store.Site, error)) {
	catalog.Register(mux, authed, c.cfg)
}
