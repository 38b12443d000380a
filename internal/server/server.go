// Package server assembles Veil's HTTP surface: ingestion, the tracker
// script, the admin API, health checks and metrics.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/veil-analytics/veil/internal/audit"
	"github.com/veil-analytics/veil/internal/auth"
	"github.com/veil-analytics/veil/internal/collect"
	"github.com/veil-analytics/veil/internal/httpx"
	"github.com/veil-analytics/veil/internal/query"
	"github.com/veil-analytics/veil/internal/site"
	"github.com/veil-analytics/veil/internal/statsquery"
	"github.com/veil-analytics/veil/internal/store"
	"github.com/veil-analytics/veil/internal/tracker"
)

// SiteLog is what the admin API needs of the event log.
type SiteLog interface {
	EnsureSite(ctx context.Context, s store.Site) error
	RemoveSite(ctx context.Context, siteID string) error
}

// Config wires the server.
type Config struct {
	Store     store.Store
	Log       SiteLog
	Collector *collect.Collector
	Auth      *auth.Authenticator
	Gatherer  prometheus.Gatherer
	Logger    *slog.Logger
	Now       func() time.Time
	// Ready reports whether the server can accept events.
	Ready func(ctx context.Context) error
	// Query answers Stats API queries; nil disables the endpoint.
	Query *query.Engine
	// Web is the dashboard; nil serves the API alone.
	Web WebUI
	// Audit records every admin change before it is acknowledged.
	Audit audit.Recorder
	// AuditLog serves audit entries and checkpoints; Policy the policy
	// status; DSR the open data subject requests (all optional).
	AuditLog AuditLog
	Policy   PolicyStatus
	DSR      func(ctx context.Context) (any, error)
	// Governance are further API parts (data subject rights, consent)
	// registered with the server's authentication and site lookup.
	Governance []Registrar
	// SiteDeleted lets other parts forget a deleted site.
	SiteDeleted func(ctx context.Context, siteID string) error
}

// Registrar registers routes that authenticate through the server and
// look sites up for a token.
type Registrar interface {
	Register(mux *http.ServeMux,
		authed func(h func(store.Token, http.ResponseWriter, *http.Request), roles ...store.Role) http.Handler,
		sites func(ctx context.Context, tok store.Token, domain string) (store.Site, error))
}

// WebUI is the dashboard: it registers its pages on the server's mux and
// forwards its API calls to api, the server itself.
type WebUI interface {
	Register(mux *http.ServeMux, api http.Handler)
}

// Server is Veil's HTTP handler.
type Server struct {
	cfg Config
	mux *http.ServeMux
	req *prometheus.CounterVec
}

// New builds the handler and registers its metrics with reg.
func New(cfg Config, reg prometheus.Registerer) *Server {
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.req = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "veil_http_requests_total", Help: "HTTP requests by route pattern and status code."}, []string{"route", "code"})
	reg.MustRegister(s.req)

	m := s.mux
	m.HandleFunc("/api/event", cfg.Collector.HandleEvent)
	m.Handle("POST /api/v1/events", s.authed(cfg.Collector.HandleBatch, store.RoleIngest, store.RoleAdmin))
	m.Handle("GET /js/script.js", tracker.Handler())

	if cfg.Query != nil {
		m.Handle("POST /api/v2/query", s.authed(s.query, store.RoleViewer, store.RoleAnalyst, store.RoleAdmin))
		m.Handle("GET /api/v1/sites/{domain}/budget", s.authed(s.siteBudget, store.RoleViewer, store.RoleAnalyst, store.RoleAdmin))
		m.Handle("GET /api/v1/sites/{domain}/releases", s.authed(s.siteReleases, store.RoleViewer, store.RoleAnalyst, store.RoleAdmin))
	}
	m.Handle("GET /api/v1/me", s.authed(s.me, store.Roles...))
	s.registerGovernance(m)
	for _, g := range cfg.Governance {
		g.Register(m, s.authed, func(ctx context.Context, tok store.Token, domain string) (store.Site, error) {
			return query.SiteFor(ctx, cfg.Store, tok, domain, "domain")
		})
	}
	m.Handle("GET /api/v1/sites", s.authed(s.listSites, store.RoleAdmin))
	m.Handle("POST /api/v1/sites", s.authed(s.createSite, store.RoleAdmin))
	m.Handle("GET /api/v1/sites/{domain}", s.authed(s.getSite, store.RoleAdmin))
	m.Handle("PATCH /api/v1/sites/{domain}", s.authed(s.updateSite, store.RoleAdmin))
	m.Handle("DELETE /api/v1/sites/{domain}", s.authed(s.deleteSite, store.RoleAdmin))
	m.Handle("GET /api/v1/tokens", s.authed(s.listTokens, store.RoleAdmin))
	m.Handle("POST /api/v1/tokens", s.authed(s.createToken, store.RoleAdmin))
	m.Handle("DELETE /api/v1/tokens/{id}", s.authed(s.deleteToken, store.RoleAdmin))

	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.HandleFunc("GET /readyz", s.ready)
	// Metrics count events exactly, so they are for the operator only.
	metrics := promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})
	m.Handle("GET /metrics", s.authed(func(_ store.Token, w http.ResponseWriter, r *http.Request) { metrics.ServeHTTP(w, r) }, store.RoleAdmin))
	if cfg.Web != nil {
		cfg.Web.Register(m, s)
	} else {
		m.HandleFunc("GET /{$}", home)
	}
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteError(w, httpx.Errorf(http.StatusNotFound, "not_found", "", "no such endpoint"))
	})
	return s
}

// ServeHTTP recovers from panics (a 5xx is a bug, but one request must not
// take the server down), counts requests, and logs them without anything
// that identifies the client: no IP, no user agent, no query string.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.cfg.Logger.Error("panic serving request", "route", r.Pattern, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if !rw.wrote {
				httpx.WriteError(rw, errors.New("panic"))
			}
		}
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		s.req.WithLabelValues(route, fmt.Sprint(rw.status)).Inc()
		if rw.status >= 500 {
			s.cfg.Logger.Warn("request", "method", r.Method, "route", route, "status", rw.status, "duration", time.Since(start))
		} else if s.cfg.Logger.Enabled(r.Context(), slog.LevelDebug) {
			s.cfg.Logger.Debug("request", "method", r.Method, "route", route, "status", rw.status, "duration", time.Since(start))
		}
	}()
	s.mux.ServeHTTP(rw, r)
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// authed wraps h so that it runs only for a valid bearer token with one of
// roles.
func (s *Server) authed(h func(store.Token, http.ResponseWriter, *http.Request), roles ...store.Role) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := auth.FromContext(r.Context())
		var err error
		if !ok {
			tok, err = s.cfg.Auth.Authenticate(r.Context(), auth.Bearer(r))
		}
		switch {
		case errors.Is(err, auth.ErrNoToken):
			w.Header().Set("WWW-Authenticate", `Bearer realm="veil"`)
			httpx.WriteError(w, httpx.Errorf(http.StatusUnauthorized, "unauthorized", "", "missing bearer token"))
			return
		case errors.Is(err, auth.ErrBadToken):
			w.Header().Set("WWW-Authenticate", `Bearer realm="veil", error="invalid_token"`)
			httpx.WriteError(w, httpx.Errorf(http.StatusUnauthorized, "unauthorized", "", "invalid token"))
			return
		case err != nil:
			s.cfg.Logger.Error("token lookup failed", "err", err)
			httpx.WriteError(w, err)
			return
		}
		if !auth.Allows(tok, roles...) {
			httpx.WriteError(w, httpx.Errorf(http.StatusForbidden, "forbidden", "", "a token with role %s may not use this endpoint", tok.Role))
			return
		}
		h(tok, w, r)
	})
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(ctx); err != nil {
			httpx.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
			return
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) listSites(_ store.Token, w http.ResponseWriter, r *http.Request) {
	sites, err := s.cfg.Store.Sites(r.Context())
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	out := make([]site.View, 0, len(sites))
	for _, st := range sites {
		out = append(out, site.ViewOf(st))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"sites": out})
}

type createSiteReq struct {
	Domain string `json:"domain"`
	site.Settings
}

func (s *Server) createSite(tok store.Token, w http.ResponseWriter, r *http.Request) {
	var req createSiteReq
	if err := httpx.DecodeJSON(w, r, 64<<10, &req); err != nil {
		httpx.WriteError(w, err)
		return
	}
	st, err := site.Create(r.Context(), s.cfg.Store, req.Domain, req.Settings, s.cfg.Now())
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	if err := s.cfg.Log.EnsureSite(r.Context(), st); err != nil {
		s.cfg.Logger.Error("create stream", "site", st.ID, "err", err)
		// The site exists; its stream is created again on first event.
	}
	s.cfg.Collector.Invalidate(st.Domain)
	s.cfg.Logger.Info("site created", "site", st.ID)
	if !s.audited(w, r, tok, "site.create", st.ID, map[string]string{"domain": st.Domain}) {
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, site.ViewOf(st))
}

func (s *Server) getSite(_ store.Token, w http.ResponseWriter, r *http.Request) {
	st, err := site.Lookup(r.Context(), s.cfg.Store, r.PathValue("domain"))
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, site.ViewOf(st))
}

func (s *Server) updateSite(tok store.Token, w http.ResponseWriter, r *http.Request) {
	st, err := site.Lookup(r.Context(), s.cfg.Store, r.PathValue("domain"))
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	var set site.Settings
	if err := httpx.DecodeJSON(w, r, 64<<10, &set); err != nil {
		httpx.WriteError(w, err)
		return
	}
	if set.Caps != nil {
		httpx.WriteError(w, httpx.Errorf(http.StatusConflict, "caps_fixed", "caps", "contribution bounds are fixed when a site is added: changing them would change the meaning of days already counted and released"))
		return
	}
	if err := site.Apply(&st, set); err != nil {
		httpx.WriteError(w, err)
		return
	}
	// Stream first: if the log refuses the new retention, nothing changes.
	if err := s.cfg.Log.EnsureSite(r.Context(), st); err != nil {
		httpx.WriteError(w, err)
		return
	}
	if err := s.cfg.Store.UpdateSite(r.Context(), st); err != nil {
		httpx.WriteError(w, err)
		return
	}
	s.cfg.Collector.Invalidate(st.Domain)
	s.cfg.Logger.Info("site updated", "site", st.ID)
	// Which settings changed, not their values: an owner may be a
	// person's name or address, which the audit log must not hold.
	if !s.audited(w, r, tok, "site.update", st.ID, map[string]string{"domain": st.Domain, "changed": strings.Join(set.Names(), ",")}) {
		return
	}
	httpx.WriteJSON(w, http.StatusOK, site.ViewOf(st))
}

func (s *Server) deleteSite(tok store.Token, w http.ResponseWriter, r *http.Request) {
	st, err := site.Lookup(r.Context(), s.cfg.Store, r.PathValue("domain"))
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	if err := s.cfg.Store.DeleteSite(r.Context(), st.ID); err != nil {
		httpx.WriteError(w, err)
		return
	}
	s.cfg.Collector.Invalidate(st.Domain)
	if err := s.cfg.Log.RemoveSite(r.Context(), st.ID); err != nil {
		s.cfg.Logger.Error("delete stream", "site", st.ID, "err", err)
		httpx.WriteError(w, err)
		return
	}
	if s.cfg.SiteDeleted != nil {
		if err := s.cfg.SiteDeleted(r.Context(), st.ID); err != nil {
			s.cfg.Logger.Error("forget deleted site", "site", st.ID, "err", err)
		}
	}
	s.cfg.Logger.Info("site deleted", "site", st.ID)
	if !s.audited(w, r, tok, "site.delete", st.ID, map[string]string{"domain": st.Domain}) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type tokenView struct {
	ID      string     `json:"id"`
	Name    string     `json:"name"`
	Role    store.Role `json:"role"`
	Sites   []string   `json:"sites"`
	Created time.Time  `json:"created"`
	Secret  string     `json:"token,omitempty"`
}

func viewToken(t store.Token) tokenView {
	v := tokenView{ID: t.ID, Name: t.Name, Role: t.Role, Sites: t.Sites, Created: t.Created}
	if v.Sites == nil {
		v.Sites = []string{}
	}
	return v
}

func (s *Server) listTokens(_ store.Token, w http.ResponseWriter, r *http.Request) {
	toks, err := s.cfg.Store.Tokens(r.Context())
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	out := make([]tokenView, 0, len(toks))
	for _, t := range toks {
		out = append(out, viewToken(t))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"tokens": out})
}

type createTokenReq struct {
	Name  string     `json:"name"`
	Role  store.Role `json:"role"`
	Sites []string   `json:"sites"` // domains
}

func (s *Server) createToken(tok store.Token, w http.ResponseWriter, r *http.Request) {
	var req createTokenReq
	if err := httpx.DecodeJSON(w, r, 16<<10, &req); err != nil {
		httpx.WriteError(w, err)
		return
	}
	if !store.ValidRole(req.Role) {
		httpx.WriteError(w, httpx.Errorf(http.StatusBadRequest, "invalid_role", "role", "role must be one of %v", store.Roles))
		return
	}
	if len(req.Name) > 100 {
		httpx.WriteError(w, httpx.Errorf(http.StatusBadRequest, "invalid_name", "name", "name must be at most 100 bytes"))
		return
	}
	var ids []string
	for _, d := range req.Sites {
		st, err := site.Lookup(r.Context(), s.cfg.Store, d)
		if err != nil {
			httpx.WriteError(w, err)
			return
		}
		ids = append(ids, st.ID)
	}
	secret, t, err := auth.NewToken(r.Context(), s.cfg.Store, req.Name, req.Role, ids, s.cfg.Now())
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	v := viewToken(t)
	v.Secret = secret
	s.cfg.Logger.Info("token created", "token_id", t.ID, "role", t.Role)
	if !s.audited(w, r, tok, "token.create", t.ID, map[string]string{"role": string(t.Role), "sites": strings.Join(ids, ",")}) {
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, v)
}

func (s *Server) deleteToken(tok store.Token, w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == tok.ID {
		httpx.WriteError(w, httpx.Errorf(http.StatusConflict, "self_revoke", "id", "a token cannot revoke itself"))
		return
	}
	if err := s.cfg.Store.DeleteToken(r.Context(), id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = httpx.Errorf(http.StatusNotFound, "unknown_token", "id", "no such token")
		}
		httpx.WriteError(w, err)
		return
	}
	s.cfg.Logger.Info("token revoked", "token_id", id)
	if !s.audited(w, r, tok, "token.revoke", id, nil) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

const homePage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Veil</title></head>
<body style="font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;line-height:1.5">
<h1>Veil is running</h1>
<p>Privacy-first analytics: events are minimized at the edge and written to a durable log.
The dashboard is not part of this release yet; use the API:</p>
<ul>
<li><code>POST /api/event</code> (Plausible-compatible) and <code>POST /api/v1/events</code> (batch, ingest token)</li>
<li><code>GET /js/script.js</code>: the tracker</li>
<li><code>/api/v1/sites</code>, <code>/api/v1/tokens</code>: administration (admin token)</li>
<li><code>/healthz</code>, <code>/readyz</code>, <code>/metrics</code></li>
</ul></body></html>`

func home(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write([]byte(homePage))
}

// query serves POST /api/v2/query (Plausible Stats API v2 shape).
func (s *Server) query(tok store.Token, w http.ResponseWriter, r *http.Request) {
	if mt := httpx.MediaType(r); mt != "application/json" {
		httpx.WriteError(w, httpx.Errorf(http.StatusUnsupportedMediaType, "content_type", "", "Content-Type must be application/json"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, statsquery.MaxBodyBytes))
	if err != nil {
		httpx.WriteError(w, httpx.JSONError(err))
		return
	}
	res, err := query.Serve(r.Context(), s.cfg.Query, s.cfg.Store, tok, body)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, res)
}

// statusClientClosed is nginx's code for a request whose client went away
// before the answer was ready: not a server error.
const statusClientClosed = 499

// writeErr answers err; an error that is not a client error is logged,
// unless the client closed the request (a dashboard navigating away).
func (s *Server) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpx.Error
	switch {
	case errors.As(err, &he):
	case r.Context().Err() != nil:
		s.cfg.Logger.Debug("client closed the request", "route", r.Pattern)
		httpx.WriteJSON(w, statusClientClosed, &httpx.Error{Msg: "request canceled"})
		return
	default:
		s.cfg.Logger.Error("request failed", "route", r.Pattern, "err", err)
	}
	httpx.WriteError(w, err)
}

// me describes the caller's token and the sites it may read.
func (s *Server) me(tok store.Token, w http.ResponseWriter, r *http.Request) {
	sites, err := s.cfg.Store.Sites(r.Context())
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	type siteRef struct {
		ID            string `json:"id"`
		Domain        string `json:"domain"`
		PrivacyUnit   string `json:"privacy_unit"`
		RetentionDays int    `json:"retention_days"`
	}
	out := []siteRef{}
	for _, st := range sites {
		if auth.CoversSite(tok, st.ID) {
			v := site.ViewOf(st)
			out = append(out, siteRef{ID: v.ID, Domain: v.Domain, PrivacyUnit: v.PrivacyUnit, RetentionDays: v.RetentionDays})
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"id": tok.ID, "name": tok.Name, "role": tok.Role, "sites": out})
}

// siteBudget reports the privacy budget spent per day (or month) of a range.
// siteReleases lists the site's releases and their cost.
func (s *Server) siteReleases(tok store.Token, w http.ResponseWriter, r *http.Request) {
	st, err := query.SiteFor(r.Context(), s.cfg.Store, tok, r.PathValue("domain"), "domain")
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	runs, err := s.cfg.Query.Releases(r.Context(), st)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"site": st.Domain, "releases": runs})
}

func (s *Server) siteBudget(tok store.Token, w http.ResponseWriter, r *http.Request) {
	st, err := query.SiteFor(r.Context(), s.cfg.Store, tok, r.PathValue("domain"), "domain")
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	today := s.cfg.Now().UTC().Truncate(24 * time.Hour)
	day := func(name string, def time.Time) (time.Time, error) {
		v := r.URL.Query().Get(name)
		if v == "" {
			return def, nil
		}
		t, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return t, httpx.Errorf(http.StatusBadRequest, "invalid_date", name, "%s must be a date like 2026-01-31", name)
		}
		return t, nil
	}
	from, err := day("from", today.AddDate(0, 0, -29))
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	to, err := day("to", today)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	if to.Before(from) || to.Sub(from) > query.MaxBudgetDays*24*time.Hour {
		httpx.WriteError(w, httpx.Errorf(http.StatusBadRequest, "invalid_date_range", "to", "from must not be after to, and the range at most %d days", query.MaxBudgetDays))
		return
	}
	rep, err := s.cfg.Query.Budget(r.Context(), st, from, to.Add(24*time.Hour))
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, rep)
}

// audited records an admin change; when the audit log cannot take it, the
// caller answers 500 instead of acknowledging an unrecorded change.
func (s *Server) audited(w http.ResponseWriter, r *http.Request, tok store.Token, action, target string, detail map[string]string) bool {
	if s.cfg.Audit == nil {
		return true
	}
	err := s.cfg.Audit.Record(r.Context(), audit.Entry{Time: s.cfg.Now().UTC(), Actor: tok.ID, Action: action, Target: target, Detail: detail})
	if err != nil {
		s.cfg.Logger.Error("audit record failed", "action", action, "err", err)
		httpx.WriteError(w, fmt.Errorf("audit log: %w", err))
		return false
	}
	return true
}
