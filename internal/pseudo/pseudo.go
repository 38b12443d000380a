// Package pseudo turns identifiers into keyed pseudonyms at the edge.
//
// Cookieless visitors: HMAC-SHA256 over (site, IP, user agent) under a random
// salt of the UTC day. Salts live only in the state store, are created on
// first use each day and destroyed 48 hours after their day began, after
// which nobody — including Veil's operator — can recompute the pseudonyms.
// Declared user ids: HMAC-SHA256 under a long-lived random key per site.
package pseudo

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"net/netip"
	"sync"
	"time"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/store"
)

// SaltLifetime is how long after its day begins a salt is destroyed.
const SaltLifetime = 48 * time.Hour

// UserKeyVersion is the version of per-site user keys; it changes when keys
// are rotated so rotated pseudonyms are distinguishable.
const UserKeyVersion = 1

// Pseudonymizer computes pseudonyms. It is safe for concurrent use.
type Pseudonymizer struct {
	store store.Store
	now   func() time.Time

	mu    sync.Mutex
	salts map[string]*keyed // by day
	keys  map[string]*keyed // by key name
}

// keyed pools HMAC states for one key, avoiding a key schedule per event.
type keyed struct{ pool sync.Pool }

func newKeyed(key []byte) *keyed {
	k := &keyed{}
	k.pool.New = func() any { return hmac.New(sha256.New, key) }
	return k
}

func (k *keyed) sum(parts ...[]byte) event.Pseudonym {
	h := k.pool.Get().(hash.Hash)
	h.Reset()
	for _, p := range parts {
		// Length-prefix each part so ("ab","c") and ("a","bc") differ.
		var l [4]byte
		binary.BigEndian.PutUint32(l[:], uint32(len(p)))
		h.Write(l[:])
		h.Write(p)
	}
	var buf [sha256.Size]byte
	out := h.Sum(buf[:0])
	k.pool.Put(h)
	var p event.Pseudonym
	copy(p[:], out)
	return p
}

// New returns a Pseudonymizer backed by st; now is the clock.
func New(st store.Store, now func() time.Time) *Pseudonymizer {
	return &Pseudonymizer{store: st, now: now, salts: map[string]*keyed{}, keys: map[string]*keyed{}}
}

// Day formats the UTC day of t as YYYY-MM-DD.
func Day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// DayVersion encodes a day as the key version of visitor-day pseudonyms
// (e.g. 20261122), so the salt a pseudonym was made under is visible.
func DayVersion(t time.Time) uint32 {
	y, m, d := t.UTC().Date()
	return uint32(y*10000 + int(m)*100 + d)
}

func randomKey() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return k
}

// oldestSaltDay is the first day whose salt still exists at now.
func oldestSaltDay(now time.Time) string {
	return Day(now.UTC().Add(-SaltLifetime + 24*time.Hour))
}

func (p *Pseudonymizer) salt(ctx context.Context, t time.Time) (*keyed, error) {
	day := Day(t)
	p.mu.Lock()
	k := p.salts[day]
	p.mu.Unlock()
	if k != nil {
		return k, nil
	}
	var key []byte
	if day < oldestSaltDay(p.now()) {
		// The stored salt of that day is already destroyed (or never
		// existed). A late or back-filled event gets an ephemeral salt that
		// lives only in memory until the next rotation, so nothing
		// recreates a destroyed day on disk.
		key = randomKey()
	} else {
		var err error
		key, err = p.store.Salt(ctx, day, randomKey())
		if err != nil {
			return nil, fmt.Errorf("salt: %w", err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if k := p.salts[day]; k != nil {
		return k, nil
	}
	k = newKeyed(key)
	p.salts[day] = k
	return k, nil
}

func (p *Pseudonymizer) key(ctx context.Context, name string) (*keyed, error) {
	p.mu.Lock()
	k := p.keys[name]
	p.mu.Unlock()
	if k != nil {
		return k, nil
	}
	key, err := p.store.Key(ctx, name, randomKey())
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if k := p.keys[name]; k != nil {
		return k, nil
	}
	k = newKeyed(key)
	p.keys[name] = k
	return k, nil
}

// Visitor returns the visitor-day pseudonym for an event at t.
func (p *Pseudonymizer) Visitor(ctx context.Context, siteID string, ip netip.Addr, ua string, t time.Time) (event.Pseudonym, uint32, error) {
	k, err := p.salt(ctx, t)
	if err != nil {
		return event.Pseudonym{}, 0, err
	}
	ip16 := ip.Unmap().As16()
	return k.sum([]byte(siteID), ip16[:], []byte(ua)), DayVersion(t), nil
}

// User returns the pseudonym of a declared user id.
func (p *Pseudonymizer) User(ctx context.Context, siteID, userID string) (event.Pseudonym, uint32, error) {
	k, err := p.key(ctx, "user:"+siteID)
	if err != nil {
		return event.Pseudonym{}, 0, err
	}
	return k.sum([]byte(siteID), []byte(userID)), UserKeyVersion, nil
}

// EventID returns a keyed hash of a client-supplied event id, used for
// deduplication without storing the id itself.
func (p *Pseudonymizer) EventID(ctx context.Context, siteID, id string) (event.Pseudonym, error) {
	k, err := p.key(ctx, "eventid:"+siteID)
	if err != nil {
		return event.Pseudonym{}, err
	}
	return k.sum([]byte(siteID), []byte(id)), nil
}

// Rotate destroys every salt older than SaltLifetime, in the store and in
// memory. It returns how many stored salts were destroyed.
func (p *Pseudonymizer) Rotate(ctx context.Context) (int, error) {
	oldest := oldestSaltDay(p.now())
	p.mu.Lock()
	for day := range p.salts {
		if day < oldest {
			delete(p.salts, day)
		}
	}
	p.mu.Unlock()
	return p.store.DeleteSaltsBefore(ctx, oldest)
}

// Run rotates salts just after every UTC midnight until ctx ends.
func (p *Pseudonymizer) Run(ctx context.Context, onErr func(error)) {
	for {
		if _, err := p.Rotate(ctx); err != nil && ctx.Err() == nil {
			onErr(err)
		}
		now := p.now().UTC()
		next := now.Truncate(24 * time.Hour).Add(24*time.Hour + time.Second)
		wait := next.Sub(now)
		if wait > time.Minute {
			wait = time.Minute // re-check often: the clock may be injected or jump
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
