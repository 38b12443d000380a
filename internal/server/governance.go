package server

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/veil-analytics/veil/internal/audit"
	"github.com/veil-analytics/veil/internal/auth"
	"github.com/veil-analytics/veil/internal/httpx"
	"github.com/veil-analytics/veil/internal/policy"
	"github.com/veil-analytics/veil/internal/site"
	"github.com/veil-analytics/veil/internal/store"
)

// AuditLog is what the audit endpoints read.
type AuditLog interface {
	Entries(ctx context.Context, f audit.Filter) ([]audit.Indexed, error)
	Checkpoint() ([]byte, error)
}

// PolicyStatus reports which query policy is in force.
type PolicyStatus interface {
	Status() policy.Status
}

func (s *Server) registerGovernance(m *http.ServeMux) {
	if s.cfg.AuditLog != nil {
		m.Handle("GET /api/v1/audit", s.authed(s.auditEntries, store.RoleAdmin, store.RolePrivacyOfficer))
		m.Handle("GET /api/v1/audit/checkpoint", s.authed(s.auditCheckpoint, store.RoleAdmin, store.RolePrivacyOfficer))
	}
	if s.cfg.Policy != nil {
		m.Handle("GET /api/v1/policy", s.authed(s.policyStatus, store.RoleAdmin, store.RolePrivacyOfficer))
	}
	if s.cfg.Query != nil {
		m.Handle("GET /api/v1/privacy", s.authed(s.privacyTelemetry, store.RoleAdmin, store.RolePrivacyOfficer))
	}
}

// auditEntries lists audit entries, newest first: ?action=&actor=&target=&since=&limit=&offset=.
func (s *Server) auditEntries(_ store.Token, w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := audit.Filter{Action: q.Get("action"), Actor: q.Get("actor"), TargetPrefix: q.Get("target"), Limit: 100}
	for name, dst := range map[string]*int{"limit": &f.Limit, "offset": &f.Offset} {
		if v := q.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || name == "limit" && (n < 1 || n > 1000) {
				httpx.WriteError(w, httpx.Errorf(http.StatusBadRequest, "invalid_param", name, "%s must be a whole number (limit 1 to 1000)", name))
				return
			}
			*dst = n
		}
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			httpx.WriteError(w, httpx.Errorf(http.StatusBadRequest, "invalid_param", "since", "since must be an RFC 3339 time"))
			return
		}
		f.Since = t
	}
	entries, err := s.cfg.AuditLog.Entries(r.Context(), f)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	if entries == nil {
		entries = []audit.Indexed{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"entries": entries})
}

// auditCheckpoint serves the latest signed checkpoint (a signed note), for
// auditors who keep their own copy to detect rollbacks.
func (s *Server) auditCheckpoint(_ store.Token, w http.ResponseWriter, r *http.Request) {
	cp, err := s.cfg.AuditLog.Checkpoint()
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(cp)
}

func (s *Server) policyStatus(_ store.Token, w http.ResponseWriter, r *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, s.cfg.Policy.Status())
}

// privacyTelemetry is the privacy officer's overview: each site's budget
// and noise parameters and its spend over the last 30 days, policy denials
// by rule, and data subject requests against their deadline.
func (s *Server) privacyTelemetry(tok store.Token, w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sites, err := s.cfg.Store.Sites(ctx)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	today := s.cfg.Now().UTC().Truncate(24 * time.Hour)
	type siteTelemetry struct {
		site.View
		Mechanism string `json:"mechanism"`
		Budget    any    `json:"budget"`
	}
	out := []siteTelemetry{}
	for _, st := range sites {
		if !auth.CoversSite(tok, st.ID) {
			continue
		}
		rep, err := s.cfg.Query.Budget(ctx, st, today.AddDate(0, 0, -29), today.Add(24*time.Hour))
		if err != nil {
			httpx.WriteError(w, err)
			return
		}
		out = append(out, siteTelemetry{View: site.ViewOf(st), Budget: rep,
			Mechanism: "Gaussian (zCDP) via google/differential-privacy; Gaussian-threshold partition selection"})
	}
	res := map[string]any{"sites": out}
	if s.cfg.AuditLog != nil {
		denials, err := s.cfg.AuditLog.Entries(ctx, audit.Filter{Action: "policy.deny", Since: today.AddDate(0, 0, -29)})
		if err != nil {
			httpx.WriteError(w, err)
			return
		}
		byRule := map[string]int{}
		for _, d := range denials {
			for _, rule := range strings.Split(d.Entry.Detail["rules"], ",") {
				byRule[rule]++
			}
		}
		res["denials_by_rule_30d"] = byRule
	}
	if s.cfg.Policy != nil {
		res["policy"] = s.cfg.Policy.Status()
	}
	if s.cfg.DSR != nil {
		reqs, err := s.cfg.DSR(ctx)
		if err != nil {
			httpx.WriteError(w, err)
			return
		}
		res["dsr"] = reqs
	}
	httpx.WriteJSON(w, http.StatusOK, res)
}
