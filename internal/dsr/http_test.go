package dsr

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/veil-analytics/veil/internal/auth"
	"github.com/veil-analytics/veil/internal/consent"
	"github.com/veil-analytics/veil/internal/httpx"
	"github.com/veil-analytics/veil/internal/store"
)

// fakeAuthed applies the real role check to a token described by headers.
func fakeAuthed(h func(store.Token, http.ResponseWriter, *http.Request), roles ...store.Role) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := store.Token{ID: "tok-" + r.Header.Get("X-Role"), Role: store.Role(r.Header.Get("X-Role"))}
		if s := r.Header.Get("X-Sites"); s != "" {
			tok.Sites = strings.Split(s, ",")
		}
		if !auth.Allows(tok, roles...) {
			httpx.WriteError(w, httpx.Errorf(http.StatusForbidden, "forbidden", "", "forbidden"))
			return
		}
		h(tok, w, r)
	})
}

func (e *env) mux() *http.ServeMux {
	m := http.NewServeMux()
	e.svc.Register(m, fakeAuthed, func(_ context.Context, tok store.Token, domain string) (store.Site, error) {
		if domain == e.site.Domain && auth.CoversSite(tok, e.site.ID) {
			return e.site, nil
		}
		return store.Site{}, httpx.Errorf(http.StatusNotFound, "unknown_site", "domain", "no site")
	})
	return m
}

type response struct {
	code int
	body string
	json map[string]any
}

func do(t *testing.T, h http.Handler, method, path, role, body string, hdr ...string) response {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Role", role)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	r := response{code: w.Code, body: w.Body.String()}
	json.Unmarshal(w.Body.Bytes(), &r.json)
	if w.Code != http.StatusNoContent && !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("%s %s: answered %q, not JSON", method, path, w.Header().Get("Content-Type"))
	}
	return r
}

func TestHTTPRolesAndAnswers(t *testing.T) {
	e := setup(t)
	m := e.mux()
	marker := "/henry-" + randomID(t)
	e.ingest(t, "henry", 2, marker, 2)
	tok := e.tokenize(t, consent.UserSubject("henry"), "email", "henry@example.com")
	body := `{"user_id": "henry", "reason": "ticket 77"}`

	for _, role := range []string{"admin", "analyst", "viewer", "ingest"} {
		for _, path := range []string{"/api/v1/sites/example.com/dsr/export", "/api/v1/sites/example.com/dsr/erase", "/api/v1/vault/detokenize"} {
			r := do(t, m, "POST", path, role, body)
			if r.code != http.StatusForbidden || strings.Contains(r.body, marker) {
				t.Fatalf("%s %s: %d %s", role, path, r.code, r.body)
			}
		}
	}
	if r := do(t, m, "POST", "/api/v1/sites/example.com/dsr/export", "privacy-officer", body, "X-Sites", "other"); r.code != http.StatusNotFound {
		t.Fatalf("site the token does not cover: %d", r.code)
	}

	r := do(t, m, "POST", "/api/v1/sites/example.com/dsr/export", "privacy-officer", body)
	if r.code != 200 || r.json["found"] != true || len(r.json["events"].([]any)) != 2 || !strings.Contains(r.body, marker) ||
		!strings.Contains(r.body, "henry@example.com") {
		t.Fatalf("export: %d %s", r.code, r.body)
	}
	r = do(t, m, "POST", "/api/v1/sites/example.com/dsr/export", "privacy-officer", `{"email": "nobody@example.com", "reason": "ticket 78"}`)
	if r.code != 200 || r.json["found"] != false {
		t.Fatalf("unknown subject: %d %s", r.code, r.body)
	}

	detok := `{"token": "` + tok + `", "purpose": "data_subject_request", "reason": "ticket 77"}`
	if r := do(t, m, "POST", "/api/v1/vault/detokenize", "privacy-officer", detok); r.code != 200 || r.json["value"] != "henry@example.com" {
		t.Fatalf("detokenize: %d %s", r.code, r.body)
	}
	if r := do(t, m, "POST", "/api/v1/vault/detokenize", "privacy-officer", detok, "X-Sites", "s1"); r.code != http.StatusForbidden {
		t.Fatalf("site-limited detokenize: %d %s", r.code, r.body)
	}
	unknown := `{"token": "tok_AAAAAAAAAAAAAAAAAAAAAA", "purpose": "security", "reason": "ticket 77"}`
	if r := do(t, m, "POST", "/api/v1/vault/detokenize", "privacy-officer", unknown); r.code != http.StatusNotFound || r.json["field"] != "token" {
		t.Fatalf("unknown token: %d %s", r.code, r.body)
	}

	r = do(t, m, "POST", "/api/v1/sites/example.com/dsr/erase", "privacy-officer", body)
	if r.code != 200 || r.json["found"] != true || r.json["events"] != 2.0 || r.json["vault_values"] != 1.0 {
		t.Fatalf("erase: %d %s", r.code, r.body)
	}
	if r := do(t, m, "POST", "/api/v1/vault/detokenize", "privacy-officer", detok); r.code != http.StatusGone || r.json["value"] != nil {
		t.Fatalf("detokenize after erasure: %d %s", r.code, r.body)
	}

	for _, role := range []string{"privacy-officer", "admin"} {
		r := do(t, m, "GET", "/api/v1/dsr?status=completed", role, "")
		reqs, _ := r.json["requests"].([]any)
		if r.code != 200 || len(reqs) != 3 || strings.Contains(r.body, `"henry"`) || strings.Contains(r.body, "nobody@") {
			t.Fatalf("%s register: %d %s", role, r.code, r.body)
		}
		first := reqs[0].(map[string]any)
		for _, k := range []string{"deadline", "age_seconds", "overdue", "subject_ref", "reason", "actor"} {
			if _, ok := first[k]; !ok {
				t.Fatalf("register entry lacks %s: %v", k, first)
			}
		}
	}
	if r := do(t, m, "GET", "/api/v1/dsr", "privacy-officer", "", "X-Sites", "other"); r.code != 200 || len(r.json["requests"].([]any)) != 0 {
		t.Fatalf("register for a token limited to other sites: %s", r.body)
	}
	if r := do(t, m, "GET", "/api/v1/dsr?status=pending", "admin", ""); r.code != 400 || r.json["field"] != "status" {
		t.Fatalf("bad status filter: %d %s", r.code, r.body)
	}
	if r := do(t, m, "GET", "/api/v1/dsr", "analyst", ""); r.code != http.StatusForbidden {
		t.Fatalf("analyst register: %d", r.code)
	}
}

// A value that cannot be decrypted is a 500 and no value, never an empty
// one; so is an export whose access cannot be recorded.
func TestHTTPFailuresReturnNoData(t *testing.T) {
	e := setup(t)
	m := e.mux()
	marker := "/ivy-" + randomID(t)
	e.ingest(t, "ivy", 2, marker, 1)
	tok := e.tokenize(t, consent.UserSubject("ivy"), "email", "ivy@example.com")

	e.rec.setErr(errors.New("audit disk full"))
	r := do(t, m, "POST", "/api/v1/sites/example.com/dsr/export", "privacy-officer", `{"user_id": "ivy", "reason": "ticket 5"}`)
	if r.code != http.StatusInternalServerError || strings.Contains(r.body, marker) || strings.Contains(r.body, "ivy@") || strings.Contains(r.body, "disk") {
		t.Fatalf("export with failing audit: %d %s", r.code, r.body)
	}
	detok := `{"token": "` + tok + `", "purpose": "security", "reason": "ticket 5"}`
	if r := do(t, m, "POST", "/api/v1/vault/detokenize", "privacy-officer", detok); r.code != http.StatusInternalServerError || strings.Contains(r.body, "ivy@") {
		t.Fatalf("detokenize with failing audit: %d %s", r.code, r.body)
	}
	e.rec.setErr(nil)

	if _, err := e.db.Exec(`UPDATE vault_values SET ciphertext = zeroblob(length(ciphertext)) WHERE token=?`, tok); err != nil {
		t.Fatal(err)
	}
	r = do(t, m, "POST", "/api/v1/vault/detokenize", "privacy-officer", detok)
	if v, ok := r.json["value"]; r.code != http.StatusInternalServerError || ok {
		t.Fatalf("undecryptable value: %d %s (value %v)", r.code, r.body, v)
	}
	if r := do(t, m, "POST", "/api/v1/sites/example.com/dsr/export", "privacy-officer", `{"user_id": "ivy", "reason": "ticket 6"}`); r.code != http.StatusInternalServerError || strings.Contains(r.body, marker) {
		t.Fatalf("export with an undecryptable value: %d %s", r.code, r.body)
	}
}

func TestHTTPBadInput(t *testing.T) {
	e := setup(t)
	m := e.mux()
	cases := []struct {
		name, path, body, field string
		status                  int
	}{
		{"missing reason", "dsr/erase", `{"user_id": "u1"}`, "reason", 400},
		{"blank reason", "dsr/erase", `{"user_id": "u1", "reason": "  "}`, "reason", 400},
		{"long reason", "dsr/erase", `{"user_id": "u1", "reason": "` + strings.Repeat("r", 501) + `"}`, "reason", 400},
		{"multi-line reason", "dsr/erase", `{"user_id": "u1", "reason": "a\nb"}`, "reason", 400},
		{"reason with an email", "dsr/export", `{"user_id": "u1", "reason": "asked by x.y@example.org"}`, "reason", 400},
		{"reason repeating the id", "dsr/export", `{"user_id": "u-4711", "reason": "user U-4711 asked"}`, "reason", 400},
		{"both ids", "dsr/export", `{"user_id": "u1", "email": "a@example.com", "reason": "r"}`, "email", 400},
		{"no id", "dsr/export", `{"reason": "r"}`, "user_id", 400},
		{"empty user id", "dsr/export", `{"user_id": "", "reason": "r"}`, "user_id", 400},
		{"bad email", "dsr/export", `{"email": "not-an-email", "reason": "r"}`, "email", 400},
		{"display-name email", "dsr/export", `{"email": "A <a@example.com>", "reason": "r"}`, "email", 400},
		{"unknown field", "dsr/export", `{"user_id": "u1", "reason": "r", "phone": "1"}`, "phone", 400},
		{"wrong type", "dsr/export", `{"user_id": 7, "reason": "r"}`, "user_id", 400},
		{"trailing data", "dsr/export", `{"user_id": "u1", "reason": "r"} {}`, "", 400},
		{"not JSON", "dsr/export", `user_id=u1`, "", 400},
		{"huge body", "dsr/export", `{"user_id": "u1", "reason": "` + strings.Repeat("r", 70<<10) + `"}`, "", 413},
		{"detokenize without purpose", "../../vault/detokenize", `{"token": "tok_x", "reason": "r"}`, "purpose", 400},
		{"detokenize for personalization", "../../vault/detokenize", `{"token": "tok_x", "reason": "r", "purpose": "personalization"}`, "purpose", 400},
		{"detokenize a non-token", "../../vault/detokenize", `{"token": "alice", "reason": "r", "purpose": "security"}`, "token", 400},
	}
	for _, tc := range cases {
		path := "/api/v1/sites/example.com/" + tc.path
		if strings.HasPrefix(tc.path, "../") {
			path = "/api/v1/vault/detokenize"
		}
		r := do(t, m, "POST", path, "privacy-officer", tc.body)
		if field, _ := r.json["field"].(string); r.code != tc.status || r.json["error"] == nil || field != tc.field {
			t.Errorf("%s: %d %s, want %d naming %q", tc.name, r.code, r.body, tc.status, tc.field)
		}
		if strings.Contains(r.body, "x.y@example.org") || strings.Contains(r.body, "4711") {
			t.Errorf("%s: the error echoes personal data: %s", tc.name, r.body)
		}
	}
	req := httptest.NewRequest("POST", "/api/v1/sites/example.com/dsr/export", strings.NewReader(`{"user_id": "u1", "reason": "r"}`))
	req.Header.Set("X-Role", "privacy-officer")
	w := httptest.NewRecorder()
	m.ServeHTTP(w, req)
	if w.Code != http.StatusUnsupportedMediaType {
		t.Errorf("without Content-Type: %d", w.Code)
	}
	// Nothing was registered for any of them.
	if reqs, _ := e.svc.Requests(context.Background(), Filter{}); len(reqs) != 0 {
		t.Fatalf("bad requests were registered: %+v", reqs)
	}
}
