// Package web serves Veil's dashboard: sign-in with an API token, a
// server-side session, the single-page app and its embedded assets, and
// /ui/api, which forwards the app's calls to the JSON API under the
// session's token. Every number the dashboard shows comes from that API, so
// the UI adds no way around its privacy checks.
package web

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/veil-analytics/veil/internal/auth"
	"github.com/veil-analytics/veil/internal/httpx"
	"github.com/veil-analytics/veil/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.ParseFS(templateFS, "templates/*.html"))

// Config wires the UI.
type Config struct {
	Store  store.Store
	Auth   *auth.Authenticator
	Logger *slog.Logger
	Now    func() time.Time
	// SecureCookies marks cookies Secure; set it when Veil is served over
	// TLS, directly or behind an https proxy.
	SecureCookies bool
}

// UI is the dashboard's HTTP surface.
type UI struct {
	cfg      Config
	sessions *sessions
	limiter  *loginLimiter
	static   *assets
}

// New returns the UI.
func New(cfg Config) *UI {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &UI{cfg: cfg, sessions: newSessions(cfg.Now), limiter: newLoginLimiter(cfg.Now), static: loadAssets()}
}

// Register adds the UI's routes to mux. api is the JSON API handler that
// /ui/api/X forwards to as /api/X.
func (u *UI) Register(mux *http.ServeMux, api http.Handler) {
	mux.Handle("GET /{$}", u.secure(http.HandlerFunc(u.home)))
	mux.Handle("GET /login", u.secure(http.HandlerFunc(u.loginPage)))
	mux.Handle("POST /login", u.secure(http.HandlerFunc(u.login)))
	mux.Handle("POST /logout", u.secure(http.HandlerFunc(u.logout)))
	mux.Handle("GET /app/{rest...}", u.secure(http.HandlerFunc(u.app)))
	mux.Handle("GET /static/{file...}", u.secure(http.HandlerFunc(u.static.serve)))
	mux.Handle("/ui/api/{rest...}", u.secure(u.forward(api)))
}

// csp allows scripts, styles, images and connections from Veil's own origin
// only: no inline script, no inline style attribute, no framing.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// secure sets the security headers every UI response carries.
func (u *UI) secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		if u.cfg.SecureCookies {
			hd.Set("Strict-Transport-Security", "max-age=31536000")
		}
		h.ServeHTTP(w, r)
	})
}

// current returns the request's live session and its cookie value.
func (u *UI) current(r *http.Request) (*session, string, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, "", false
	}
	sess, ok := u.sessions.get(c.Value)
	return sess, c.Value, ok
}

// token returns the session's API token, re-reading it from the store now
// and then so a revoked or deleted token ends the session.
func (u *UI) token(ctx context.Context, id string, sess *session) (store.Token, error) {
	if tok, due := u.sessions.cachedToken(sess); !due {
		return tok, nil
	}
	tok, err := u.cfg.Store.TokenByHash(ctx, sess.tokenHash)
	if errors.Is(err, store.ErrNotFound) {
		u.sessions.remove(id)
	}
	if err != nil {
		return store.Token{}, err
	}
	u.sessions.setToken(sess, tok)
	return tok, nil
}

func (u *UI) home(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := u.current(r); ok {
		http.Redirect(w, r, "/app/", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// sameOrigin rejects cross-site requests by the headers browsers add:
// Sec-Fetch-Site and Origin. Either may be absent (older browsers, curl);
// the CSRF token is the check that always applies. Under our
// Referrer-Policy no-referrer, browsers send "Origin: null" even on
// same-origin posts, so a null origin counts only with Sec-Fetch-Site.
func sameOrigin(r *http.Request) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	if site != "" && site != "same-origin" && site != "none" {
		return false
	}
	switch o := r.Header.Get("Origin"); o {
	case "":
	case "null":
		return site == "same-origin"
	default:
		ou, err := url.Parse(o)
		if err != nil || ou.Host != r.Host {
			return false
		}
	}
	return true
}

func (u *UI) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: u.cfg.SecureCookies, SameSite: http.SameSiteStrictMode,
	})
}

type loginData struct {
	CSRF    string
	Next    string
	Error   string
	Version string
}

// safeNext returns where to go after signing in: a path inside the app,
// never another site.
func safeNext(next string) string {
	if strings.HasPrefix(next, "/app/") && !strings.HasPrefix(next, "//") && !strings.ContainsAny(next, "\\\r\n") {
		return next
	}
	return "/app/"
}

func (u *UI) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := u.current(r); ok {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	u.renderLogin(w, r, http.StatusOK, "")
}

// renderLogin shows the sign-in form with a fresh pre-session CSRF token,
// sent both as a cookie and as a form field (double submit).
func (u *UI) renderLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	csrf := randomToken()
	u.setCookie(w, loginCSRFCook, csrf, 3600)
	next := r.URL.Query().Get("next")
	if r.Method == http.MethodPost {
		next = r.PostFormValue("next")
	}
	u.render(w, status, "login.html", loginData{CSRF: csrf, Next: safeNext(next), Error: msg, Version: u.static.version})
}

func (u *UI) render(w http.ResponseWriter, status int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		u.cfg.Logger.Error("render page", "page", name, "err", err)
	}
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		u.renderLogin(w, r, http.StatusBadRequest, "The form could not be read. Please try again.")
		return
	}
	c, err := r.Cookie(loginCSRFCook)
	if !sameOrigin(r) || err != nil || !sameSecret(c.Value, r.PostFormValue(csrfFormField)) {
		u.renderLogin(w, r, http.StatusForbidden, "The sign-in form expired or came from another site. Please try again.")
		return
	}
	client := clientAddr(r)
	if !u.limiter.allowed(client) {
		u.renderLogin(w, r, http.StatusTooManyRequests, "Too many failed sign-ins from this address. Wait a few minutes and try again.")
		return
	}
	secret := strings.TrimSpace(r.PostFormValue("token"))
	tok, err := u.cfg.Auth.Authenticate(r.Context(), secret)
	switch {
	case errors.Is(err, auth.ErrNoToken), errors.Is(err, auth.ErrBadToken):
		u.limiter.fail(client)
		u.renderLogin(w, r, http.StatusUnauthorized, "That token is not valid. Paste the whole token, starting with "+auth.TokenPrefix+".")
		return
	case err != nil:
		u.cfg.Logger.Error("sign-in: token lookup failed", "err", err)
		u.renderLogin(w, r, http.StatusInternalServerError, "Sign-in is unavailable right now. Please try again.")
		return
	}
	// Privacy officers sign in for the governance pages (privacy overview,
	// audit log, catalog); the API itself refuses them analytics.
	if !auth.Allows(tok, store.RoleViewer, store.RoleAnalyst, store.RoleAdmin, store.RolePrivacyOfficer) {
		u.limiter.fail(client)
		u.renderLogin(w, r, http.StatusForbidden, "A token with role "+string(tok.Role)+" cannot open the dashboard; use a viewer, analyst, admin or privacy-officer token.")
		return
	}
	u.limiter.succeed(client)
	id, _ := u.sessions.create(tok)
	u.setCookie(w, sessionCookie, id, int(sessionMaxAge/time.Second))
	u.setCookie(w, loginCSRFCook, "", -1)
	u.cfg.Logger.Info("dashboard sign-in", "token_id", tok.ID, "role", tok.Role)
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

// logout ends the session. It takes the session's CSRF token as a form
// field (the app's sign-out button is a plain form) or as a header.
func (u *UI) logout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	sess, id, ok := u.current(r)
	if ok {
		given := r.Header.Get(csrfHeader)
		if given == "" {
			given = r.PostFormValue(csrfFormField)
		}
		if !sameOrigin(r) || !sameSecret(sess.csrf, given) {
			http.Error(w, "forbidden: missing or wrong CSRF token", http.StatusForbidden)
			return
		}
		u.sessions.remove(id)
	}
	u.setCookie(w, sessionCookie, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

type appData struct {
	CSRF    string
	Version string
	// Modules are preloaded together so the browser does not discover
	// them import by import.
	Modules []string
}

// app serves the single-page app's shell for every /app/ path; the
// scripts route on the client.
func (u *UI) app(w http.ResponseWriter, r *http.Request) {
	sess, id, ok := u.current(r)
	if ok {
		_, err := u.token(r.Context(), id, sess)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			u.cfg.Logger.Error("session token lookup failed", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		ok = err == nil
	}
	if !ok {
		http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	u.render(w, http.StatusOK, "app.html", appData{CSRF: sess.csrf, Version: u.static.version, Modules: u.static.modules})
}

// forward serves /ui/api/{rest...}: with a live session and its CSRF token
// it hands the request to the API as /api/{rest...}, authenticated as the
// session's token, so the API's own role and site checks apply unchanged.
func (u *UI) forward(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		sess, id, ok := u.current(r)
		if !ok {
			httpx.WriteError(w, httpx.Errorf(http.StatusUnauthorized, "unauthorized", "", "not signed in, or the session expired"))
			return
		}
		if !sameOrigin(r) || !sameSecret(sess.csrf, r.Header.Get(csrfHeader)) {
			httpx.WriteError(w, httpx.Errorf(http.StatusForbidden, "csrf", "", "missing or wrong "+csrfHeader+" header"))
			return
		}
		tok, err := u.token(r.Context(), id, sess)
		if errors.Is(err, store.ErrNotFound) {
			httpx.WriteError(w, httpx.Errorf(http.StatusUnauthorized, "unauthorized", "", "the session's token was revoked"))
			return
		}
		if err != nil {
			u.cfg.Logger.Error("session token lookup failed", "err", err)
			httpx.WriteError(w, err)
			return
		}
		rest := r.PathValue("rest")
		if !strings.HasPrefix(rest, "v1/") && !strings.HasPrefix(rest, "v2/") {
			httpx.WriteError(w, httpx.Errorf(http.StatusNotFound, "not_found", "", "no such endpoint"))
			return
		}
		fr := r.Clone(auth.WithToken(r.Context(), tok))
		fr.URL.Path, fr.URL.RawPath = "/api/"+rest, ""
		fr.RequestURI = fr.URL.RequestURI()
		// The API authenticates by the context alone: no cookie or
		// header of the browser's is passed on.
		fr.Header.Del("Cookie")
		fr.Header.Del("Authorization")
		fr.Header.Del(csrfHeader)
		api.ServeHTTP(w, fr)
	})
}
