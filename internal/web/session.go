package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"

	"github.com/veil-analytics/veil/internal/store"
)

// Session lifetimes. A dashboard left open keeps its session alive through
// the realtime panel's polling, so the idle limit is generous; the absolute
// limit makes every session end within a week however busy it is.
const (
	sessionIdle    = 12 * time.Hour
	sessionMaxAge  = 7 * 24 * time.Hour
	maxSessions    = 10000
	tokenRecheck   = 10 * time.Second // a revoked token ends its sessions this fast
	sessionCookie  = "veil_session"
	loginCSRFCook  = "veil_login_csrf"
	csrfHeader     = "X-CSRF-Token"
	csrfFormField  = "csrf"
	maxLoginFailed = 10
	loginWindow    = 10 * time.Minute
)

// session is what the server remembers of a signed-in browser. It holds the
// token's hash, never its secret, and re-reads the token from the store now
// and then so that revoking it ends the session.
type session struct {
	tokenHash []byte
	csrf      string
	created   time.Time

	// Guarded by sessions.mu.
	seen    time.Time
	tok     store.Token
	checked time.Time
}

// sessions is an in-memory session table keyed by the SHA-256 of the
// session id, so a memory dump does not reveal usable cookies. Sessions do
// not survive a restart (users sign in again), and a multi-node deployment
// needs sticky sessions; both are acceptable for a token-only sign-in.
type sessions struct {
	now func() time.Time

	mu sync.Mutex
	m  map[[32]byte]*session
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{now: now, m: map[[32]byte]*session{}}
}

// randomToken returns 256 random bits, URL-safe encoded.
func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// create starts a session for tok and returns the cookie value.
func (s *sessions) create(tok store.Token) (id string, sess *session) {
	now := s.now()
	id = randomToken()
	sess = &session{tokenHash: tok.Hash, csrf: randomToken(), created: now, seen: now, tok: tok, checked: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= maxSessions {
		s.sweepLocked(now)
	}
	if len(s.m) >= maxSessions {
		s.evictOldestLocked()
	}
	s.m[sha256.Sum256([]byte(id))] = sess
	return id, sess
}

// get returns the live session for cookie value id and marks it used.
func (s *sessions) get(id string) (*session, bool) {
	if id == "" {
		return nil, false
	}
	key := sha256.Sum256([]byte(id))
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[key]
	if !ok {
		return nil, false
	}
	if expired(sess, now) {
		delete(s.m, key)
		return nil, false
	}
	sess.seen = now
	return sess, true
}

// cachedToken returns the session's token, or due when it is time to look
// it up in the store again.
func (s *sessions) cachedToken(sess *session) (tok store.Token, due bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(sess.checked) >= tokenRecheck {
		return store.Token{}, true
	}
	return sess.tok, false
}

func (s *sessions) setToken(sess *session, tok store.Token) {
	now := s.now()
	s.mu.Lock()
	sess.tok, sess.checked = tok, now
	s.mu.Unlock()
}

func (s *sessions) remove(id string) {
	s.mu.Lock()
	delete(s.m, sha256.Sum256([]byte(id)))
	s.mu.Unlock()
}

func expired(sess *session, now time.Time) bool {
	return now.Sub(sess.seen) > sessionIdle || now.Sub(sess.created) > sessionMaxAge
}

func (s *sessions) sweepLocked(now time.Time) {
	for k, sess := range s.m {
		if expired(sess, now) {
			delete(s.m, k)
		}
	}
}

func (s *sessions) evictOldestLocked() {
	var oldest [32]byte
	var at time.Time
	for k, sess := range s.m {
		if at.IsZero() || sess.seen.Before(at) {
			oldest, at = k, sess.seen
		}
	}
	delete(s.m, oldest)
}

// sameSecret compares two secrets in constant time; empty never matches.
func sameSecret(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// loginLimiter slows down token guessing a little: a client (by address)
// gets maxLoginFailed failed sign-ins per loginWindow. Tokens carry 256 bits,
// so this is about noise in the logs and the store, not about brute force.
type loginLimiter struct {
	now func() time.Time

	mu     sync.Mutex
	failed map[string]*failures
}

type failures struct {
	n     int
	since time.Time
}

func newLoginLimiter(now func() time.Time) *loginLimiter {
	return &loginLimiter{now: now, failed: map[string]*failures{}}
}

func (l *loginLimiter) allowed(client string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.failed[client]
	if f == nil || l.now().Sub(f.since) > loginWindow {
		return true
	}
	return f.n < maxLoginFailed
}

func (l *loginLimiter) fail(client string) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failed) > 10000 {
		clear(l.failed) // bound memory against floods from many addresses
	}
	f := l.failed[client]
	if f == nil || now.Sub(f.since) > loginWindow {
		f = &failures{since: now}
		l.failed[client] = f
	}
	f.n++
}

func (l *loginLimiter) succeed(client string) {
	l.mu.Lock()
	delete(l.failed, client)
	l.mu.Unlock()
}
