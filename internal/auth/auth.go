// Package auth issues API tokens and checks them. A token is shown once at
// creation; the store keeps only its SHA-256 hash (tokens carry 256 bits of
// randomness, so a fast hash is enough — there is nothing to brute-force).
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/veil-analytics/veil/internal/store"
)

// TokenPrefix marks Veil tokens so secret scanners can find leaked ones.
const TokenPrefix = "veil_"

// Hash returns the stored form of a token secret.
func Hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// NewToken creates a token with role, limited to sites (none means all), and
// returns the secret, which is not stored anywhere.
func NewToken(ctx context.Context, st store.Store, name string, role store.Role, sites []string, now time.Time) (string, store.Token, error) {
	if !store.ValidRole(role) {
		return "", store.Token{}, fmt.Errorf("unknown role %q (want one of %v)", role, store.Roles)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", store.Token{}, err
	}
	secret := TokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	var id [6]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", store.Token{}, err
	}
	t := store.Token{ID: hex.EncodeToString(id[:]), Name: name, Role: role, Hash: Hash(secret), Sites: sites, Created: now.UTC()}
	if err := st.CreateToken(ctx, t); err != nil {
		return "", store.Token{}, err
	}
	return secret, t, nil
}

// Errors returned by Authenticate.
var (
	ErrNoToken  = errors.New("missing bearer token")
	ErrBadToken = errors.New("invalid token")
)

// Authenticator resolves bearer tokens, caching lookups briefly so the ingest
// path does not hit the store on every request.
type Authenticator struct {
	store store.Store
	ttl   time.Duration

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	tok     store.Token
	ok      bool
	expires time.Time
}

// NewAuthenticator returns an Authenticator; a revoked token stops working
// within ttl.
func NewAuthenticator(st store.Store, ttl time.Duration) *Authenticator {
	return &Authenticator{store: st, ttl: ttl, cache: map[string]cached{}}
}

// Bearer extracts the token from an Authorization header.
func Bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// Authenticate returns the token presented by r.
func (a *Authenticator) Authenticate(ctx context.Context, secret string) (store.Token, error) {
	if secret == "" {
		return store.Token{}, ErrNoToken
	}
	key := string(Hash(secret))
	now := time.Now()
	a.mu.Lock()
	c, hit := a.cache[key]
	a.mu.Unlock()
	if !hit || now.After(c.expires) {
		t, err := a.store.TokenByHash(ctx, []byte(key))
		switch {
		case err == nil:
			c = cached{tok: t, ok: true}
		case errors.Is(err, store.ErrNotFound):
			c = cached{}
		default:
			return store.Token{}, err
		}
		c.expires = now.Add(a.ttl)
		a.mu.Lock()
		if len(a.cache) > 10000 {
			clear(a.cache) // bound memory against floods of bogus tokens
		}
		a.cache[key] = c
		a.mu.Unlock()
	}
	if !c.ok {
		return store.Token{}, ErrBadToken
	}
	return c.tok, nil
}

// Allows reports whether t has one of roles. Admin is not implied: some
// paths (data subject requests) belong to the privacy officer alone.
func Allows(t store.Token, roles ...store.Role) bool {
	return slices.Contains(roles, t.Role)
}

// CoversSite reports whether t may act on the site with id siteID.
func CoversSite(t store.Token, siteID string) bool {
	return len(t.Sites) == 0 || slices.Contains(t.Sites, siteID)
}

type ctxKey struct{}

// WithToken returns ctx carrying tok as already authenticated. The web UI
// uses it after checking a session cookie and CSRF token, so its requests
// pass through the same API handlers and role checks as bearer requests.
// Clients cannot set context values, so this cannot be forged over HTTP.
func WithToken(ctx context.Context, tok store.Token) context.Context {
	return context.WithValue(ctx, ctxKey{}, tok)
}

// FromContext returns the token WithToken stored in ctx.
func FromContext(ctx context.Context) (store.Token, bool) {
	tok, ok := ctx.Value(ctxKey{}).(store.Token)
	return tok, ok
}
