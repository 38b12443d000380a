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
	"github.com/veil-analytics/veil/internal/auth"
	"github.com/veil-analytics/veil/internal/collect"
	"github.com/veil-analytics/veil/internal/eventlog"
	"github.com/veil-analytics/veil/internal/geo"
	"github.com/veil-analytics/veil/internal/ledger"
	"github.com/veil-analytics/veil/internal/pseudo"
	"github.com/veil-analytics/veil/internal/query"
	"github.com/veil-analytics/veil/internal/release"
	"github.com/veil-analytics/veil/internal/server"
	"github.com/veil-analytics/veil/internal/store"
	"github.com/veil-analytics/veil/internal/store/sqlitestore"
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
	// Now is the clock (tests inject one); nil means time.Now.
	Now func() time.Time
}

// App is a running Veil.
type App struct {
	Cfg       Config
	Store     *sqlitestore.DB
	Log       *eventlog.Log
	Pseudo    *pseudo.Pseudonymizer
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
	a.Pseudo = pseudo.New(st, cfg.Now)
	a.Collector = collect.New(collect.Config{
		Store: st, Log: lg, Pseudo: a.Pseudo, Geo: locator, Proxies: trust,
		Metrics: collect.NewMetrics(reg), Logger: logger, Now: cfg.Now,
	})
	a.Agg, err = aggregate.New(aggregate.Config{JS: lg.JetStream(), DB: st.SQL(), Store: st, Logger: logger, Now: cfg.Now, Registerer: reg, Grace: cfg.CloseGrace})
	if err != nil {
		a.Close()
		return nil, err
	}
	if a.Ledger, err = ledger.Open(st.SQL()); err != nil {
		a.Close()
		return nil, err
	}
	if a.Releaser, err = release.New(release.Config{DB: st.SQL(), Store: st, Ledger: a.Ledger, Logger: logger, Now: cfg.Now, Registry: reg, Budgets: SiteBudget}); err != nil {
		a.Close()
		return nil, err
	}
	a.Query = NewQueryEngine(st, a.Ledger, cfg.Now)
	a.Handler = server.New(server.Config{
		Store: st, Log: lg, Collector: a.Collector, Auth: auth.NewAuthenticator(st, 10*time.Second),
		Gatherer: reg, Logger: logger, Now: cfg.Now, Ready: a.ready, Query: a.Query,
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
	if a.Store != nil {
		errs = append(errs, a.Store.Close())
	}
	return errors.Join(errs...)
}

// NewQueryEngine returns the query engine over a state store (the server
// and `veil query` share it).
func NewQueryEngine(st *sqlitestore.DB, led *ledger.Ledger, now func() time.Time) *query.Engine {
	return &query.Engine{DB: st.SQL(), Ledger: led, Caps: aggregate.DefaultCaps,
		Budgets: SiteBudget, Now: now}
}

// SiteBudget is a site's privacy budget: per visitor-day, or per user and
// month for sites whose privacy unit is the declared user.
func SiteBudget(s store.Site) release.Budget {
	if s.UserUnit {
		return release.UserBudget
	}
	return release.DefaultBudget
}

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
