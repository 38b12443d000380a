package app

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/auth"
	"github.com/veil-analytics/veil/internal/store"
)

// endpoint is one API call of the role matrix, with the roles allowed to
// make it.
type endpoint struct {
	method, path, ctype, body string
	roles                     []store.Role
}

// TestRoleMatrix proves each role can do exactly what it should: every
// endpoint answers an allowed role with something other than 401/403, and
// every other role with 403 (no token: 401). Responses to anyone never
// carry a raw identifier, a pseudonym or a vault value, except the privacy
// officer's DSR paths.
func TestRoleMatrix(t *testing.T) {
	dir := t.TempDir()
	r := start(t, dir)
	s := r.addSite(t, "example.com")
	r.do(t, "PATCH", "/api/v1/sites/example.com", r.admin, "application/json", []byte(`{"fields":{"email":"tokenize"}}`), nil)
	const userID, email = "matrix-user-4711", "matrix.person@example.org"
	body := fmt.Sprintf(`{"site":"example.com","name":"pageview","url":"https://example.com/","user_id":%q,"props":{"email":%q}}`, userID, email)
	if res := r.do(t, "POST", "/api/v1/events", r.ingest, "application/x-ndjson", []byte(body), nil); res.status != 202 {
		t.Fatalf("ingest: %d %s", res.status, res.body)
	}
	pseudonyms, _ := r.app.Pseudo.UserPseudonyms(s.ID, userID)
	var token string
	for _, ev := range r.events(t, s.ID) {
		for _, p := range ev.Props {
			token = p.Value
		}
	}
	secrets := []string{userID, email, token, pseudonyms[0].String()}

	tokens := map[store.Role]string{}
	for _, role := range store.Roles {
		tokens[role], _, _ = auth.NewToken(context.Background(), r.app.Store, "matrix "+string(role), role, nil, time.Now())
	}
	all := store.Roles
	readers := []store.Role{store.RoleAdmin, store.RoleAnalyst, store.RoleViewer}
	admin := []store.Role{store.RoleAdmin}
	governance := []store.Role{store.RoleAdmin, store.RolePrivacyOfficer}
	officer := []store.Role{store.RolePrivacyOfficer}
	released := `{"site_id":"example.com","metrics":["visitors"],"date_range":"7d"}`
	matrix := []endpoint{
		{"POST", "/api/v1/events", "application/json", `[{"site":"example.com","name":"pageview","url":"https://example.com/x"}]`, []store.Role{store.RoleAdmin, store.RoleIngest}},
		{"POST", "/api/v2/query", "application/json", released, readers},
		{"GET", "/api/v1/sites/example.com/budget", "", "", readers},
		{"GET", "/api/v1/sites/example.com/releases", "", "", readers},
		{"GET", "/api/v1/me", "", "", all},
		{"GET", "/api/v1/sites", "", "", admin},
		{"POST", "/api/v1/sites", "application/json", `{"domain":"matrix-%s.example"}`, admin},
		{"GET", "/api/v1/sites/example.com", "", "", admin},
		{"PATCH", "/api/v1/sites/example.com", "application/json", `{"retention_days":31}`, admin},
		{"GET", "/api/v1/tokens", "", "", admin},
		{"POST", "/api/v1/tokens", "application/json", `{"role":"viewer","name":"made by %s"}`, admin},
		{"GET", "/metrics", "", "", admin},
		{"GET", "/api/v1/audit", "", "", governance},
		{"GET", "/api/v1/audit/checkpoint", "", "", governance},
		{"GET", "/api/v1/policy", "", "", governance},
		{"GET", "/api/v1/privacy", "", "", governance},
		{"POST", "/api/v1/sites/example.com/dsr/export", "application/json", `{"user_id":"` + userID + `","reason":"access request"}`, officer},
		{"GET", "/api/v1/dsr", "", "", governance},
		{"POST", "/api/v1/vault/detokenize", "application/json", `{"token":"` + token + `","reason":"matrix check","purpose":"data_subject_request"}`, officer},
		{"PUT", "/api/v1/sites/example.com/consent", "application/json", `{"user_id":"someone-else","purposes":{"analytics":true}}`, []store.Role{store.RoleAdmin, store.RoleIngest, store.RolePrivacyOfficer}},
		{"GET", "/api/v1/sites/example.com/consent?user_id=someone-else", "", "", officer},
		{"GET", "/api/v1/catalog", "", "", append(readers, store.RolePrivacyOfficer)},
		{"GET", "/api/v1/catalog/example.com", "", "", append(readers, store.RolePrivacyOfficer)},
		{"GET", "/api/v1/sites/example.com/pii", "", "", governance},
		// Erasure last: it removes the subject the rows above read.
		{"POST", "/api/v1/sites/example.com/dsr/erase", "application/json", `{"user_id":"nobody-at-all","reason":"erasure request"}`, officer},
	}
	for _, ep := range matrix {
		for _, role := range append([]store.Role{""}, store.Roles...) {
			b := ep.body
			if strings.Contains(b, "%s") {
				b = fmt.Sprintf(b, role)
			}
			res := r.do(t, ep.method, ep.path, tokens[role], ep.ctype, []byte(b), nil)
			allowed := slices.Contains(ep.roles, role)
			switch {
			case role == "" && res.status != http.StatusUnauthorized:
				t.Errorf("%s %s without a token: %d", ep.method, ep.path, res.status)
			case role != "" && allowed && (res.status == 401 || res.status == 403 || res.status >= 500):
				t.Errorf("%s %s as %s: %d %s (allowed)", ep.method, ep.path, role, res.status, res.body)
			case role != "" && !allowed && res.status != http.StatusForbidden:
				t.Errorf("%s %s as %s: %d (must be 403)", ep.method, ep.path, role, res.status)
			}
			for _, secret := range secrets {
				if secret != "" && strings.Contains(string(res.body), secret) && !ep.dsr() {
					t.Errorf("%s %s as %s returned a raw identifier, pseudonym or vault value", ep.method, ep.path, role)
				}
			}
		}
	}
}

func (ep endpoint) dsr() bool {
	return strings.Contains(ep.path, "/dsr/") || strings.Contains(ep.path, "/vault/")
}
