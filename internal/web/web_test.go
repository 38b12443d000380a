package web_test

import (
	"compress/gzip"
	"context"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veil-analytics/veil/internal/auth"
	"github.com/veil-analytics/veil/internal/server"
	"github.com/veil-analytics/veil/internal/store"
	"github.com/veil-analytics/veil/internal/store/sqlitestore"
	"github.com/veil-analytics/veil/internal/web"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	t       *testing.T
	srv     *httptest.Server
	st      store.Store
	clock   *clock
	admin   string
	viewer  string
	ingest  string
	officer string
}

// newEnv runs the real API server with the UI registered on it, the way
// Veil serves it, over a fresh SQLite store.
func newEnv(t *testing.T, secure bool) *env {
	t.Helper()
	st, err := sqlitestore.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	ctx := context.Background()
	e := &env{t: t, st: st, clock: clk}
	for role, dst := range map[store.Role]*string{store.RoleAdmin: &e.admin, store.RoleViewer: &e.viewer, store.RoleIngest: &e.ingest, store.RolePrivacyOfficer: &e.officer} {
		secret, _, err := auth.NewToken(ctx, st, string(role)+" token", role, nil, clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		*dst = secret
	}
	logger := slog.New(slog.DiscardHandler)
	authn := auth.NewAuthenticator(st, time.Second)
	ui := web.New(web.Config{Store: st, Auth: authn, Logger: logger, Now: clk.Now, SecureCookies: secure})
	reg := prometheus.NewRegistry()
	h := server.New(server.Config{Store: st, Auth: authn, Gatherer: reg, Logger: logger, Now: clk.Now, Web: ui}, reg)
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

// client is a browser-like client: a cookie jar and no automatic redirects.
func (e *env) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (e *env) do(c *http.Client, method, path string, body io.Reader, hdr map[string]string) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

func readBody(t *testing.T, res *http.Response) string {
	t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

// login signs c in with token and returns the login answer.
func (e *env) login(c *http.Client, token string) *http.Response {
	e.t.Helper()
	page := readBody(e.t, e.do(c, "GET", "/login", nil, nil))
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		e.t.Fatalf("login page has no CSRF field:\n%s", page)
	}
	form := url.Values{"csrf": {m[1]}, "token": {token}, "next": {"/app/"}}
	return e.do(c, "POST", "/login", strings.NewReader(form.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
}

// session signs in and returns the CSRF token of the session.
func (e *env) session(c *http.Client, token string) string {
	e.t.Helper()
	res := e.login(c, token)
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("sign-in answered %d, want 303", res.StatusCode)
	}
	page := readBody(e.t, e.do(c, "GET", "/app/", nil, nil))
	m := csrfMeta.FindStringSubmatch(page)
	if m == nil {
		e.t.Fatalf("app page has no CSRF meta:\n%s", page)
	}
	return m[1]
}

func cookieNamed(res *http.Response, name string) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestLoginSetsAStrictSessionCookie(t *testing.T) {
	for _, secure := range []bool{false, true} {
		e := newEnv(t, secure)
		res := e.login(e.client(), e.admin)
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/app/" {
			t.Fatalf("secure=%v: sign-in answered %d to %q, want 303 to /app/", secure, res.StatusCode, res.Header.Get("Location"))
		}
		c := cookieNamed(res, "veil_session")
		if c == nil {
			t.Fatalf("secure=%v: no veil_session cookie", secure)
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure != secure {
			t.Errorf("secure=%v: cookie HttpOnly=%v SameSite=%v Path=%q Secure=%v", secure, c.HttpOnly, c.SameSite, c.Path, c.Secure)
		}
		if len(c.Value) < 43 {
			t.Errorf("session id %d characters, want 256 bits", len(c.Value))
		}
		if strings.Contains(c.Value, strings.TrimPrefix(e.admin, auth.TokenPrefix)) {
			t.Error("the session cookie carries the API token")
		}
	}
}

func TestLoginRefusesBadTokensAndRoles(t *testing.T) {
	e := newEnv(t, false)
	for name, tok := range map[string]string{"wrong": "veil_not-a-token", "empty": "", "ingest role": e.ingest} {
		res := e.login(e.client(), tok)
		body := readBody(t, res)
		if res.StatusCode == http.StatusSeeOther || cookieNamed(res, "veil_session") != nil {
			t.Errorf("%s token: signed in (%d)", name, res.StatusCode)
		}
		if !strings.Contains(body, `data-testid="login-error"`) {
			t.Errorf("%s token: the page does not say what went wrong", name)
		}
	}
}

// TestPrivacyOfficersSignIn: privacy officers open the dashboard for its
// governance pages, and the API's role checks still apply to their session.
func TestPrivacyOfficersSignIn(t *testing.T) {
	e := newEnv(t, false)
	c := e.client()
	csrf := e.session(c, e.officer)
	res := e.do(c, "GET", "/ui/api/v1/me", nil, map[string]string{"X-CSRF-Token": csrf})
	if body := readBody(t, res); res.StatusCode != http.StatusOK || !strings.Contains(body, `"role":"privacy-officer"`) {
		t.Fatalf("a privacy officer's session: %d %s, want 200 with the privacy-officer token", res.StatusCode, body)
	}
	res = e.do(c, "GET", "/ui/api/v1/sites", nil, map[string]string{"X-CSRF-Token": csrf})
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("a privacy officer's session listed sites: %d, want 403", res.StatusCode)
	}
}

func TestLoginNeedsItsCSRFToken(t *testing.T) {
	e := newEnv(t, false)
	c := e.client()
	e.do(c, "GET", "/login", nil, nil).Body.Close() // sets the CSRF cookie
	form := url.Values{"csrf": {"forged"}, "token": {e.admin}}
	res := e.do(c, "POST", "/login", strings.NewReader(form.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden || cookieNamed(res, "veil_session") != nil {
		t.Fatalf("sign-in with a forged CSRF field answered %d, want 403 without a session", res.StatusCode)
	}
	// A cross-site form post fails even with a matching token.
	page := readBody(t, e.do(c, "GET", "/login", nil, nil))
	form.Set("csrf", csrfField.FindStringSubmatch(page)[1])
	res = e.do(c, "POST", "/login", strings.NewReader(form.Encode()), map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site sign-in answered %d, want 403", res.StatusCode)
	}
	// Under Referrer-Policy no-referrer browsers send "Origin: null" on
	// same-origin posts: it passes only when Sec-Fetch-Site vouches for it.
	for site, want := range map[string]int{"": http.StatusForbidden, "cross-site": http.StatusForbidden, "same-origin": http.StatusSeeOther} {
		c := e.client()
		page := readBody(t, e.do(c, "GET", "/login", nil, nil))
		form.Set("csrf", csrfField.FindStringSubmatch(page)[1])
		hdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "null"}
		if site != "" {
			hdr["Sec-Fetch-Site"] = site
		}
		res := e.do(c, "POST", "/login", strings.NewReader(form.Encode()), hdr)
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("Origin null, Sec-Fetch-Site %q: %d, want %d", site, res.StatusCode, want)
		}
	}
}

func TestFailedLoginsAreRateLimited(t *testing.T) {
	e := newEnv(t, false)
	c := e.client()
	for range 10 {
		e.login(c, "veil_wrong").Body.Close()
	}
	res := e.login(c, e.admin)
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after 10 failures a good token answered %d, want 429", res.StatusCode)
	}
	e.clock.Add(11 * time.Minute)
	res = e.login(c, e.admin)
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("after the window a good token answered %d, want 303", res.StatusCode)
	}
}

func TestUIAPIRequiresSessionAndCSRF(t *testing.T) {
	e := newEnv(t, false)
	c := e.client()
	csrf := e.session(c, e.admin)

	res := e.do(c, "GET", "/ui/api/v1/me", nil, nil)
	if body := readBody(t, res); res.StatusCode != http.StatusForbidden || !strings.Contains(body, "X-CSRF-Token") {
		t.Fatalf("without the CSRF header: %d %s, want 403", res.StatusCode, body)
	}
	res = e.do(c, "GET", "/ui/api/v1/me", nil, map[string]string{"X-CSRF-Token": "wrong"})
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("with a wrong CSRF header: %d, want 403", res.StatusCode)
	}
	res = e.do(c, "GET", "/ui/api/v1/me", nil, map[string]string{"X-CSRF-Token": csrf, "Origin": "https://evil.example"})
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("from another origin: %d, want 403", res.StatusCode)
	}
	res = e.do(c, "GET", "/ui/api/v1/me", nil, map[string]string{"X-CSRF-Token": csrf, "Sec-Fetch-Site": "same-origin"})
	if body := readBody(t, res); res.StatusCode != http.StatusOK || !strings.Contains(body, `"role":"admin"`) {
		t.Fatalf("with session and CSRF: %d %s, want 200 with the admin token", res.StatusCode, body)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}

	other := e.client()
	u, _ := url.Parse(e.srv.URL)
	other.Jar.SetCookies(u, []*http.Cookie{{Name: "veil_session", Value: "forged-session-id"}})
	res = e.do(other, "GET", "/ui/api/v1/me", nil, map[string]string{"X-CSRF-Token": csrf})
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("with an unknown session: %d, want 401", res.StatusCode)
	}
	res = e.do(e.client(), "GET", "/ui/api/v1/me", nil, map[string]string{"X-CSRF-Token": csrf})
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without a session: %d, want 401", res.StatusCode)
	}
	// A bearer token is not a way in: /ui/api trusts only its session.
	res = e.do(e.client(), "GET", "/ui/api/v1/me", nil, map[string]string{"Authorization": "Bearer " + e.admin, "X-CSRF-Token": csrf})
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("with a bearer token and no session: %d, want 401", res.StatusCode)
	}
}

func TestUIAPIKeepsTheAPIsRoleChecks(t *testing.T) {
	e := newEnv(t, false)
	viewer := e.client()
	vcsrf := e.session(viewer, e.viewer)
	res := e.do(viewer, "GET", "/ui/api/v1/sites", nil, map[string]string{"X-CSRF-Token": vcsrf})
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("a viewer's session listed sites: %d, want 403", res.StatusCode)
	}
	res = e.do(viewer, "POST", "/ui/api/v1/sites", strings.NewReader(`{"domain":"evil.example"}`),
		map[string]string{"X-CSRF-Token": vcsrf, "Content-Type": "application/json"})
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("a viewer's session created a site: %d, want 403", res.StatusCode)
	}

	admin := e.client()
	acsrf := e.session(admin, e.admin)
	res = e.do(admin, "GET", "/ui/api/v1/sites", nil, map[string]string{"X-CSRF-Token": acsrf})
	if body := readBody(t, res); res.StatusCode != http.StatusOK || !strings.Contains(body, `"sites"`) {
		t.Fatalf("an admin's session: %d %s, want 200 with sites", res.StatusCode, body)
	}
	// Only the JSON API is reachable, not other server routes.
	res = e.do(admin, "GET", "/ui/api/../metrics", nil, map[string]string{"X-CSRF-Token": acsrf})
	res.Body.Close()
	if res.StatusCode == http.StatusOK {
		t.Fatal("/ui/api reached /metrics")
	}
}

func TestLogoutEndsTheSession(t *testing.T) {
	e := newEnv(t, false)
	c := e.client()
	csrf := e.session(c, e.admin)
	res := e.do(c, "POST", "/logout", strings.NewReader(url.Values{"csrf": {"wrong"}}.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("logout with a wrong CSRF token: %d, want 403", res.StatusCode)
	}
	u, _ := url.Parse(e.srv.URL)
	old := c.Jar.Cookies(u)
	res = e.do(c, "POST", "/logout", strings.NewReader(url.Values{"csrf": {csrf}}.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login" {
		t.Fatalf("logout: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	// The old cookie, replayed, no longer works.
	replay := e.client()
	replay.Jar.SetCookies(u, old)
	res = e.do(replay, "GET", "/ui/api/v1/me", nil, map[string]string{"X-CSRF-Token": csrf})
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after logout the old session answered %d, want 401", res.StatusCode)
	}
}

func TestSessionsExpireAndFollowTokenRevocation(t *testing.T) {
	e := newEnv(t, false)
	c := e.client()
	csrf := e.session(c, e.admin)
	e.clock.Add(13 * time.Hour) // idle too long
	res := e.do(c, "GET", "/app/", nil, nil)
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/login?next=") {
		t.Fatalf("an idle session opened the app: %d %q", res.StatusCode, res.Header.Get("Location"))
	}

	c = e.client()
	csrf = e.session(c, e.viewer)
	tok, err := e.st.TokenByHash(context.Background(), auth.Hash(e.viewer))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.DeleteToken(context.Background(), tok.ID); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(11 * time.Second)
	res = e.do(c, "GET", "/ui/api/v1/me", nil, map[string]string{"X-CSRF-Token": csrf})
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after revoking its token the session answered %d, want 401", res.StatusCode)
	}
}

func TestPagesRedirectBySession(t *testing.T) {
	e := newEnv(t, false)
	c := e.client()
	for path, want := range map[string]string{"/": "/login", "/app/sites/x.example?range=30d": "/login?next=%2Fapp%2Fsites%2Fx.example%3Frange%3D30d"} {
		res := e.do(c, "GET", path, nil, nil)
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != want {
			t.Errorf("GET %s signed out: %d to %q, want 303 to %q", path, res.StatusCode, res.Header.Get("Location"), want)
		}
	}
	e.session(c, e.admin)
	res := e.do(c, "GET", "/", nil, nil)
	res.Body.Close()
	if res.Header.Get("Location") != "/app/" {
		t.Errorf("GET / signed in goes to %q, want /app/", res.Header.Get("Location"))
	}
	// Sign-in never sends anyone to another site.
	c = e.client()
	page := readBody(t, e.do(c, "GET", "/login", nil, nil))
	form := url.Values{"csrf": {csrfField.FindStringSubmatch(page)[1]}, "token": {e.admin}, "next": {"//evil.example/app/"}}
	res = e.do(c, "POST", "/login", strings.NewReader(form.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	res.Body.Close()
	if res.Header.Get("Location") != "/app/" {
		t.Errorf("next=//evil.example went to %q", res.Header.Get("Location"))
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, true)
	c := e.client()
	csrf := e.session(c, e.admin)
	page := readBody(t, e.do(c, "GET", "/app/", nil, nil))
	version := regexp.MustCompile(`/static/(v[0-9a-f]{12})/app\.js`).FindStringSubmatch(page)
	if version == nil {
		t.Fatalf("app page does not load a versioned app.js:\n%s", page)
	}
	for _, path := range []string{"/login", "/app/", "/static/" + version[1] + "/app.js", "/ui/api/v1/me"} {
		res := e.do(c, "GET", path, nil, map[string]string{"X-CSRF-Token": csrf})
		res.Body.Close()
		h := res.Header
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP allows inline code: %q", path, csp)
		}
		for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Strict-Transport-Security": "max-age=31536000"} {
			if h.Get(k) != want {
				t.Errorf("%s: %s = %q, want %q", path, k, h.Get(k), want)
			}
		}
		if h.Get("Permissions-Policy") == "" {
			t.Errorf("%s: no Permissions-Policy", path)
		}
	}
}

func TestStaticAssets(t *testing.T) {
	e := newEnv(t, false)
	c := e.client()
	page := readBody(t, e.do(c, "GET", "/login", nil, nil))
	m := regexp.MustCompile(`/static/(v[0-9a-f]{12})/app\.css`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("login page has no versioned stylesheet:\n%s", page)
	}
	v := m[1]
	cases := []struct{ path, ctype, cache string }{
		{"/static/" + v + "/app.js", "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
		{"/static/" + v + "/app.css", "text/css; charset=utf-8", "public, max-age=31536000, immutable"},
		{"/static/" + v + "/vendor/uPlot.esm.js", "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
		{"/static/" + v + "/favicon.svg", "image/svg+xml", "public, max-age=31536000, immutable"},
		{"/static/app.css", "text/css; charset=utf-8", "no-cache"},                     // unversioned: revalidate
		{"/static/v000000000000/app.js", "text/javascript; charset=utf-8", "no-cache"}, // an older release's URL
	}
	for _, tc := range cases {
		res := e.do(c, "GET", tc.path, nil, nil)
		body := readBody(t, res)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != tc.ctype || res.Header.Get("Cache-Control") != tc.cache || len(body) == 0 {
			t.Errorf("GET %s: %d, %q, %q, %d bytes; want 200, %q, %q", tc.path, res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get("Cache-Control"), len(body), tc.ctype, tc.cache)
		}
		res = e.do(c, "GET", tc.path, nil, map[string]string{"If-None-Match": res.Header.Get("ETag")})
		res.Body.Close()
		if res.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %d, want 304", tc.path, res.StatusCode)
		}
	}
	// Big files are compressed for clients that accept it (and only them).
	tr := &http.Transport{DisableCompression: true}
	zc := &http.Client{Transport: tr}
	res := e.do(zc, "GET", "/static/"+v+"/vendor/uPlot.esm.js", nil, map[string]string{"Accept-Encoding": "gzip"})
	defer res.Body.Close()
	if res.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("uPlot not compressed for a gzip client: %q", res.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if !strings.Contains(string(plain), "export { uPlot as default }") {
		t.Error("compressed uPlot does not decompress to the module")
	}
	for _, p := range []string{"/static/nope.js", "/static/" + v + "/../web.go", "/static/" + v + "/"} {
		res := e.do(c, "GET", p, nil, nil)
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			t.Errorf("GET %s answered 200", p)
		}
	}
}

// TestNoInlineScriptOrStyleInPages checks the pages need nothing the CSP
// forbids: script elements without src, event handler attributes, style
// elements or attributes, javascript: URLs.
func TestNoInlineScriptOrStyleInPages(t *testing.T) {
	e := newEnv(t, false)
	c := e.client()
	pages := map[string]string{"login": readBody(t, e.do(c, "GET", "/login", nil, nil))}
	e.session(c, e.admin)
	pages["app"] = readBody(t, e.do(c, "GET", "/app/", nil, nil))
	// The templates as embedded, too, in case a branch was not rendered.
	err := filepath.WalkDir("templates", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		pages[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	scriptTag := regexp.MustCompile(`(?is)<script\b[^>]*>.*?</script>`)
	for name, html := range pages {
		for _, tag := range scriptTag.FindAllString(html, -1) {
			if !strings.Contains(tag, " src=") || !strings.HasSuffix(strings.TrimSpace(tag), "></script>") {
				t.Errorf("%s: inline script: %s", name, tag)
			}
		}
		for _, bad := range []*regexp.Regexp{regexp.MustCompile(`(?i)\son[a-z]+\s*=`), regexp.MustCompile(`(?i)<style[\s>]`), regexp.MustCompile(`(?i)\sstyle\s*=`), regexp.MustCompile(`(?i)javascript:`)} {
			if m := bad.FindString(html); m != "" {
				t.Errorf("%s: inline code the CSP forbids: %q", name, m)
			}
		}
	}
}

// TestModuleImportsResolve checks that every ES module import in the
// embedded scripts names a file that is embedded, since there is no build
// step to catch a typo.
func TestModuleImportsResolve(t *testing.T) {
	imp := regexp.MustCompile(`(?:from|import)\s*\(?\s*'(\./[^']+)'`)
	n := 0
	err := filepath.WalkDir("static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".js" || strings.Contains(p, "vendor") {
			return err
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range imp.FindAllStringSubmatch(string(src), -1) {
			n++
			if _, err := os.Stat(filepath.Join(filepath.Dir(p), m[1])); err != nil {
				t.Errorf("%s imports %s, which is not embedded", p, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("found only %d imports; the pattern is broken", n)
	}
}

// TestRolePagesLoadOnDemand: the pages only some roles open are embedded but
// not preloaded with the app, so the dashboard's first paint does not wait
// for them.
func TestRolePagesLoadOnDemand(t *testing.T) {
	e := newEnv(t, false)
	c := e.client()
	e.session(c, e.admin)
	page := readBody(t, e.do(c, "GET", "/app/", nil, nil))
	version := regexp.MustCompile(`/static/(v[0-9a-f]{12})/app\.js`).FindStringSubmatch(page)
	if version == nil || !strings.Contains(page, `rel="modulepreload" href="/static/`+version[1]+`/dashboard.js"`) {
		t.Fatalf("the app page does not preload the dashboard:\n%s", page)
	}
	for _, name := range []string{"admin.js", "telemetry.js", "audit.js", "catalog.js"} {
		if strings.Contains(page, "/"+name+`"`) {
			t.Errorf("the app page preloads %s", name)
		}
		res := e.do(c, "GET", "/static/"+version[1]+"/"+name, nil, nil)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", name, res.StatusCode)
		}
	}
}
