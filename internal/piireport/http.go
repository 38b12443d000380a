package piireport

import (
	"context"
	"net/http"

	"github.com/veil-analytics/veil/internal/httpx"
	"github.com/veil-analytics/veil/internal/store"
)

// Authed wraps a handler so that it runs only for a valid token with one of
// roles (the server's bearer and session check).
type Authed = func(h func(store.Token, http.ResponseWriter, *http.Request), roles ...store.Role) http.Handler

// SiteFor resolves a site domain for a token, answering 404 for sites the
// token may not read (query.SiteFor does).
type SiteFor = func(ctx context.Context, tok store.Token, domain string) (store.Site, error)

// Register serves GET /api/v1/sites/{domain}/pii to admins and privacy
// officers: the site's field report.
func (r *Reporter) Register(mux *http.ServeMux, authed Authed, sites SiteFor) {
	mux.Handle("GET /api/v1/sites/{domain}/pii", authed(func(tok store.Token, w http.ResponseWriter, req *http.Request) {
		s, err := sites(req.Context(), tok, req.PathValue("domain"))
		if err != nil {
			httpx.WriteError(w, err)
			return
		}
		reps, err := r.Report(req.Context(), s)
		if err != nil {
			httpx.WriteError(w, err)
			return
		}
		if reps == nil {
			reps = []FieldReport{}
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"site": s.Domain, "fields": reps})
	}, store.RoleAdmin, store.RolePrivacyOfficer))
}
