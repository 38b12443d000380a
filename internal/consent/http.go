package consent

import (
	"context"
	"net/http"
	"strings"

	"github.com/veil-analytics/veil/internal/httpx"
	"github.com/veil-analytics/veil/internal/store"
)

// maxBody bounds a consent request; a real one is a few hundred bytes.
const maxBody = 64 << 10

// Register adds the consent API to mux. authed wraps a handler so it runs
// only for a token with one of roles; sites looks up the site of a domain
// for a token (404 when the token does not cover it).
//
//	PUT /api/v1/sites/{domain}/consent    (ingest, admin, privacy-officer)
//	    {"user_id": "...", "purposes": {"analytics": true, ...}, "source": "signup-form"}
//	GET /api/v1/sites/{domain}/consent?user_id=...   (privacy-officer)
func (r *Registry) Register(mux *http.ServeMux,
	authed func(h func(store.Token, http.ResponseWriter, *http.Request), roles ...store.Role) http.Handler,
	sites func(ctx context.Context, tok store.Token, domain string) (store.Site, error)) {
	mux.Handle("PUT /api/v1/sites/{domain}/consent", authed(func(tok store.Token, w http.ResponseWriter, req *http.Request) {
		site, err := sites(req.Context(), tok, req.PathValue("domain"))
		if err != nil {
			httpx.WriteError(w, err)
			return
		}
		var in struct {
			UserID   string          `json:"user_id"`
			Purposes map[string]bool `json:"purposes"`
			Source   string          `json:"source"`
		}
		if err := httpx.DecodeJSON(w, req, maxBody, &in); err != nil {
			httpx.WriteError(w, err)
			return
		}
		if err := ValidUserID(in.UserID); err != nil {
			httpx.WriteError(w, httpx.Errorf(http.StatusBadRequest, "invalid_user_id", "user_id", "%v", err))
			return
		}
		if !validLabel(in.Source) {
			httpx.WriteError(w, httpx.Errorf(http.StatusBadRequest, "invalid_source", "source", "must be at most 64 letters, digits, '.', '_' or '-'"))
			return
		}
		// The record says which token reported the consent, and how the
		// site collected it when the site says so.
		source := "token:" + tok.ID
		if in.Source != "" {
			source += "/" + in.Source
		}
		if err := r.Set(req.Context(), site, r.UserRef(site.ID, in.UserID), in.Purposes, source); err != nil {
			httpx.WriteError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}, store.RoleIngest, store.RoleAdmin, store.RolePrivacyOfficer))

	mux.Handle("GET /api/v1/sites/{domain}/consent", authed(func(tok store.Token, w http.ResponseWriter, req *http.Request) {
		site, err := sites(req.Context(), tok, req.PathValue("domain"))
		if err != nil {
			httpx.WriteError(w, err)
			return
		}
		userID := req.URL.Query().Get("user_id")
		if err := ValidUserID(userID); err != nil {
			httpx.WriteError(w, httpx.Errorf(http.StatusBadRequest, "invalid_user_id", "user_id", "%v", err))
			return
		}
		ref := r.UserRef(site.ID, userID)
		states, err := r.Get(req.Context(), site.ID, ref)
		if err != nil {
			httpx.WriteError(w, err)
			return
		}
		effective := map[string]bool{}
		for _, p := range site.SitePurposes() {
			if effective[p], err = r.Allowed(req.Context(), site, ref, p); err != nil {
				httpx.WriteError(w, err)
				return
			}
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"found": len(states) > 0, "purposes": states, "effective": effective})
	}, store.RolePrivacyOfficer))
}

// validLabel accepts an empty label or a short name of how consent was
// collected; free text could carry personal data into the record.
func validLabel(s string) bool {
	return len(s) <= 64 && strings.IndexFunc(s, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-')
	}) < 0
}
