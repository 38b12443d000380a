package consent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/auth"
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

func fakeSites(sites ...store.Site) func(context.Context, store.Token, string) (store.Site, error) {
	return func(_ context.Context, tok store.Token, domain string) (store.Site, error) {
		for _, s := range sites {
			if s.Domain == domain && auth.CoversSite(tok, s.ID) {
				return s, nil
			}
		}
		return store.Site{}, httpx.Errorf(http.StatusNotFound, "unknown_site", "domain", "no site")
	}
}

func TestHTTP(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	r := newRegistry(t, openDB(t), c)
	mux := http.NewServeMux()
	analyticsOnly := store.Site{ID: "s2", Domain: "b.example"}
	r.Register(mux, fakeAuthed, fakeSites(allPurposes, analyticsOnly))
	do := func(method, path, role, body string, hdr ...string) (int, map[string]any) {
		t.Helper()
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Role", role)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		var out map[string]any
		json.Unmarshal(w.Body.Bytes(), &out)
		return w.Code, out
	}
	put := `{"user_id": "alice", "purposes": {"personalization": true, "analytics": false}, "source": "signup-form"}`
	for _, role := range []string{"ingest", "admin", "privacy-officer"} {
		if code, out := do("PUT", "/api/v1/sites/example.com/consent", role, put); code != http.StatusNoContent {
			t.Fatalf("%s PUT: %d %v", role, code, out)
		}
	}
	for _, role := range []string{"viewer", "analyst"} {
		if code, _ := do("PUT", "/api/v1/sites/example.com/consent", role, put); code != http.StatusForbidden {
			t.Fatalf("%s PUT: %d, want 403", role, code)
		}
	}
	if code, _ := do("PUT", "/api/v1/sites/example.com/consent", "ingest", put, "X-Sites", "other"); code != http.StatusNotFound {
		t.Fatalf("PUT for a site the token does not cover: %d", code)
	}
	if !allowed(t, r, allPurposes, "alice", "personalization") || allowed(t, r, allPurposes, "alice", "analytics") {
		t.Fatal("PUT did not take effect")
	}

	code, out := do("GET", "/api/v1/sites/example.com/consent?user_id=alice", "privacy-officer", "")
	if code != 200 || out["found"] != true {
		t.Fatalf("GET: %d %v", code, out)
	}
	eff := out["effective"].(map[string]any)
	if eff["analytics"] != false || eff["personalization"] != true || eff["model_training"] != false {
		t.Fatalf("effective: %v", eff)
	}
	p := out["purposes"].(map[string]any)["personalization"].(map[string]any)
	if p["source"] != "token:tok-privacy-officer/signup-form" {
		t.Fatalf("source: %v", p)
	}
	if code, out := do("GET", "/api/v1/sites/example.com/consent?user_id=nobody", "privacy-officer", ""); code != 200 || out["found"] != false {
		t.Fatalf("GET unknown subject: %d %v", code, out)
	}
	for _, role := range []string{"ingest", "admin", "viewer"} {
		if code, _ := do("GET", "/api/v1/sites/example.com/consent?user_id=alice", role, ""); code != http.StatusForbidden {
			t.Fatalf("%s GET: %d, want 403", role, code)
		}
	}

	bad := []struct {
		name, path, body, field string
		status                  int
	}{
		{"unknown purpose", "example.com", `{"user_id": "a", "purposes": {"ads": true}}`, "purposes", 400},
		{"purpose the site does not declare", "b.example", `{"user_id": "a", "purposes": {"personalization": true}}`, "purposes", 400},
		{"no purposes", "example.com", `{"user_id": "a", "purposes": {}}`, "purposes", 400},
		{"missing user", "example.com", `{"purposes": {"analytics": true}}`, "user_id", 400},
		{"long user", "example.com", `{"user_id": "` + strings.Repeat("x", 257) + `", "purposes": {"analytics": true}}`, "user_id", 400},
		{"unknown field", "example.com", `{"user_id": "a", "purposes": {"analytics": true}, "email": "x"}`, "email", 400},
		{"free-text source", "example.com", `{"user_id": "a", "purposes": {"analytics": true}, "source": "alice@example.com"}`, "source", 400},
		{"not a bool", "example.com", `{"user_id": "a", "purposes": {"analytics": "yes"}}`, "purposes", 400},
		{"huge", "example.com", `{"user_id": "` + strings.Repeat("x", 70<<10) + `"}`, "", 413},
	}
	for _, tc := range bad {
		code, out := do("PUT", "/api/v1/sites/"+tc.path+"/consent", "ingest", tc.body)
		if code != tc.status || out["error"] == nil || tc.field != "" && out["field"] != tc.field {
			t.Errorf("%s: %d %v, want %d naming %q", tc.name, code, out, tc.status, tc.field)
		}
	}
	if _, out := do("PUT", "/api/v1/sites/example.com/consent", "ingest", `{"user_id": "a", "purposes": {"ads": true}}`); !strings.Contains(out["error"].(string), "ads") {
		t.Errorf("unknown purpose not named: %v", out)
	}
}
