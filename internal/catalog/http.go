package catalog

import (
	"context"
	"net/http"

	"github.com/veil-analytics/veil/internal/auth"
	"github.com/veil-analytics/veil/internal/httpx"
	"github.com/veil-analytics/veil/internal/store"
	"github.com/veil-analytics/veil/internal/urlnorm"
)

// Authed wraps a handler so that it runs only for a valid token with one of
// roles (the server's bearer and session check).
type Authed = func(h func(store.Token, http.ResponseWriter, *http.Request), roles ...store.Role) http.Handler

// Config wires the catalog API.
type Config struct {
	// Sites lists every site (store.Store.Sites); the handlers keep those
	// the token covers.
	Sites     func(ctx context.Context) ([]store.Site, error)
	PII       PIISource // nil: products carry no PII findings
	Locations Locations
}

// readers may read the catalog: it holds settings and classifications, no
// event counts.
var readers = []store.Role{store.RoleAdmin, store.RoleAnalyst, store.RoleViewer, store.RolePrivacyOfficer}

// Register serves GET /api/v1/catalog (every product the token may read,
// by domain) and GET /api/v1/catalog/{domain} (the product of one site).
func Register(mux *http.ServeMux, authed Authed, cfg Config) {
	mux.Handle("GET /api/v1/catalog", authed(func(tok store.Token, w http.ResponseWriter, r *http.Request) {
		sites, err := covered(r.Context(), cfg, tok)
		if err != nil {
			httpx.WriteError(w, err)
			return
		}
		c, err := Build(r.Context(), sites, cfg.PII, cfg.Locations)
		if err != nil {
			httpx.WriteError(w, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, c)
	}, readers...))
	mux.Handle("GET /api/v1/catalog/{domain}", authed(func(tok store.Token, w http.ResponseWriter, r *http.Request) {
		raw := r.PathValue("domain")
		d, err := urlnorm.NormalizeDomain(raw)
		if err != nil {
			httpx.WriteError(w, httpx.Errorf(http.StatusBadRequest, "invalid_domain", "domain", "%v", err))
			return
		}
		sites, err := covered(r.Context(), cfg, tok)
		if err != nil {
			httpx.WriteError(w, err)
			return
		}
		for _, s := range sites {
			if s.Domain == d {
				p, err := ProductOf(r.Context(), s, cfg.PII, cfg.Locations)
				if err != nil {
					httpx.WriteError(w, err)
					return
				}
				httpx.WriteJSON(w, http.StatusOK, p)
				return
			}
		}
		// The same answer whether the site does not exist or the token may
		// not read it, so tokens cannot probe for other sites.
		httpx.WriteError(w, httpx.Errorf(http.StatusNotFound, "unknown_product", "domain", "no data product %s, or the token may not read it", d))
	}, readers...))
}

// covered returns the sites tok may read.
func covered(ctx context.Context, cfg Config, tok store.Token) ([]store.Site, error) {
	all, err := cfg.Sites(ctx)
	if err != nil {
		return nil, err
	}
	out := all[:0:0]
	for _, s := range all {
		if auth.CoversSite(tok, s.ID) {
			out = append(out, s)
		}
	}
	return out, nil
}
