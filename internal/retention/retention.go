// Package retention enforces each site's retention on everything that can
// single out a privacy unit — events in the log, vault values, and whatever
// state other packages add as targets (rollups, cached answers) — and
// reports what it removed.
//
// The cutoff of a run is now − retention truncated to the start of its UTC
// day: whole days are kept until every moment of them is older than the
// retention, and then removed together. Daily rollups, releases and the
// query API's earliest day are aligned on UTC days, so a day is never left
// half purged, with counts that no longer match what was released for it.
// The price is that data lives up to one day longer than the retention
// (the event log also drops messages by arrival time at exactly the
// retention, through the stream's MaxAge).
//
// Not purged here, on purpose: the daily salts of visitor pseudonyms are
// destroyed after 48 hours by package pseudo; consent withdrawals and the
// data subject request register are kept as evidence and hold only keyed
// references; released DP aggregates are not personal data.
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veil-analytics/veil/internal/audit"
	"github.com/veil-analytics/veil/internal/store"
)

// Purgeable removes a site's data from before cutoff and says how much
// (eventlog.Log and vault.Vault implement it).
type Purgeable interface {
	PurgeBefore(ctx context.Context, siteID string, cutoff time.Time) (int, error)
}

// Target is one kind of state the purger enforces retention on.
type Target struct {
	Name  string // metric label and report key: a kind, never a site
	Purge func(ctx context.Context, siteID string, cutoff time.Time) (int, error)
}

// Config wires a Purger.
type Config struct {
	Sites func(ctx context.Context) ([]store.Site, error)
	Log   Purgeable // reported as "events"
	Vault Purgeable // reported as "vault_values"
	Extra []Target
	Audit audit.Recorder
	// Logger and Now default to slog.Default and time.Now.
	Logger *slog.Logger
	Now    func() time.Time
}

// Purger applies retention.
type Purger struct {
	sites   func(ctx context.Context) ([]store.Site, error)
	targets []Target
	audit   audit.Recorder
	log     *slog.Logger
	now     func() time.Time

	purged   *prometheus.CounterVec
	failures *prometheus.CounterVec
	lastRun  prometheus.Gauge
}

// Report is what one run removed from one site.
type Report struct {
	Site    string         `json:"site"` // site id
	Cutoff  time.Time      `json:"cutoff"`
	Removed map[string]int `json:"removed"` // by target name
}

// New builds a purger and registers its metrics with reg.
func New(cfg Config, reg prometheus.Registerer) (*Purger, error) {
	if cfg.Sites == nil || cfg.Audit == nil {
		return nil, errors.New("retention: sites and audit recorder are required")
	}
	p := &Purger{sites: cfg.Sites, audit: cfg.Audit, log: cfg.Logger, now: cfg.Now}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.now == nil {
		p.now = time.Now
	}
	if cfg.Log != nil {
		p.targets = append(p.targets, Target{Name: "events", Purge: cfg.Log.PurgeBefore})
	}
	if cfg.Vault != nil {
		p.targets = append(p.targets, Target{Name: "vault_values", Purge: cfg.Vault.PurgeBefore})
	}
	p.targets = append(p.targets, cfg.Extra...)
	seen := map[string]bool{}
	for _, t := range p.targets {
		if t.Name == "" || t.Purge == nil || seen[t.Name] {
			return nil, fmt.Errorf("retention: target %q needs a unique name and a purge function", t.Name)
		}
		seen[t.Name] = true
	}
	p.purged = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "veil_retention_purged_total", Help: "Items removed by retention, by kind."}, []string{"kind"})
	p.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "veil_retention_failures_total", Help: "Retention purges that failed, by kind."}, []string{"kind"})
	p.lastRun = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "veil_retention_last_run_timestamp_seconds",
		Help: "When retention last ran to completion over every site without an error; alert when it is stale."})
	for _, t := range p.targets {
		p.purged.WithLabelValues(t.Name)
		p.failures.WithLabelValues(t.Name)
	}
	for _, c := range []prometheus.Collector{p.purged, p.failures, p.lastRun} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Cutoff is the retention cutoff of a site at now: data from before it is
// removed.
func Cutoff(now time.Time, retention time.Duration) time.Time {
	return now.UTC().Add(-retention).Truncate(24 * time.Hour)
}

// RunOnce applies retention to every site once. A failure on one site or
// target does not stop the others; the errors are returned together with
// the reports of what was removed.
func (p *Purger) RunOnce(ctx context.Context) ([]Report, error) {
	sites, err := p.sites(ctx)
	if err != nil {
		return nil, fmt.Errorf("retention: list sites: %w", err)
	}
	now := p.now()
	var (
		reports []Report
		errs    []error
	)
	for _, s := range sites {
		if s.Retention <= 0 {
			errs = append(errs, fmt.Errorf("retention: site %s has no retention set; skipped", s.ID))
			continue
		}
		rep := Report{Site: s.ID, Cutoff: Cutoff(now, s.Retention), Removed: map[string]int{}}
		total := 0
		for _, t := range p.targets {
			n, err := t.Purge(ctx, s.ID, rep.Cutoff)
			// A failed purge may still have removed some items.
			rep.Removed[t.Name] = n
			total += n
			p.purged.WithLabelValues(t.Name).Add(float64(n))
			if err != nil {
				p.failures.WithLabelValues(t.Name).Inc()
				errs = append(errs, fmt.Errorf("retention: site %s, %s: %w", s.ID, t.Name, err))
			}
		}
		reports = append(reports, rep)
		if total == 0 {
			continue
		}
		detail := map[string]string{"cutoff": rep.Cutoff.Format(time.RFC3339)}
		for k, n := range rep.Removed {
			detail[k] = strconv.Itoa(n)
		}
		if err := p.audit.Record(ctx, audit.Entry{Time: now.UTC(), Actor: "system", Action: "retention.purge",
			Target: s.ID, Reason: "site retention " + s.Retention.String(), Detail: detail}); err != nil {
			errs = append(errs, fmt.Errorf("retention: site %s: audit record: %w", s.ID, err))
		}
		p.log.Info("retention purge", "site", s.ID, "cutoff", rep.Cutoff, "removed", rep.Removed)
	}
	if len(errs) == 0 {
		p.lastRun.Set(float64(now.Unix()))
	}
	return reports, errors.Join(errs...)
}

// Run applies retention now and then every interval until ctx ends.
func (p *Purger) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := p.RunOnce(ctx); err != nil && ctx.Err() == nil {
			p.log.Error("retention run failed; the next run retries", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
