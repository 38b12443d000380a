// Package pseudo turns identifiers into keyed pseudonyms at the edge.
//
// Cookieless visitors: HMAC-SHA256 over (site, IP, user agent) under a random
// salt of the UTC day. Salts live only in the state store, encrypted under
// the "salt" keyset, are created on first use each day and destroyed 48
// hours after their day began, after which nobody — including Veil's
// operator — can recompute the pseudonyms.
// Declared user ids and event ids: the Tink HMAC-SHA256 PRF of the
// "pseudonym" keyset. A user pseudonym carries the id of the key that made
// it as its version, so a key rotation is visible in the data (new
// pseudonyms, new version) and every older version stays computable for
// data subject requests.
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

	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/keys"
	"github.com/veil-analytics/veil/internal/store"
)

// SaltLifetime is how long after its day begins a salt is destroyed.
const SaltLifetime = 48 * time.Hour

// Pseudonymizer computes pseudonyms. It is safe for concurrent use.
type Pseudonymizer struct {
	store    store.Store
	prf      *keys.Pseudonymizer
	versions func() []uint32 // ids of the pseudonym keys
	saltAEAD tink.AEAD
	now      func() time.Time

	mu    sync.Mutex
	salts map[string]*keyed // by day
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

// New returns a Pseudonymizer backed by st and the keysets of ring; now is
// the clock.
func New(st store.Store, ring *keys.Ring, now func() time.Time) (*Pseudonymizer, error) {
	prf, err := ring.PRF()
	if err != nil {
		return nil, err
	}
	saltAEAD, err := ring.AEAD(keys.Salt)
	if err != nil {
		return nil, err
	}
	versions := func() []uint32 {
		for _, ks := range ring.Status() {
			if ks.Name == keys.Pseudonym {
				return ks.KeyIDs
			}
		}
		return nil
	}
	return &Pseudonymizer{store: st, prf: prf, versions: versions, saltAEAD: saltAEAD, now: now, salts: map[string]*keyed{}}, nil
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
		ad := []byte("veil.salt." + day)
		fresh, err := p.saltAEAD.Encrypt(randomKey(), ad)
		if err != nil {
			return nil, fmt.Errorf("salt: %w", err)
		}
		stored, err := p.store.Salt(ctx, day, fresh)
		if err != nil {
			return nil, fmt.Errorf("salt: %w", err)
		}
		if key, err = p.saltAEAD.Decrypt(stored, ad); err != nil {
			return nil, fmt.Errorf("salt of %s cannot be decrypted with the salt keyset: %w", day, err)
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

// Visitor returns the visitor-day pseudonym for an event at t.
func (p *Pseudonymizer) Visitor(ctx context.Context, siteID string, ip netip.Addr, ua string, t time.Time) (event.Pseudonym, uint32, error) {
	k, err := p.salt(ctx, t)
	if err != nil {
		return event.Pseudonym{}, 0, err
	}
	ip16 := ip.Unmap().As16()
	return k.sum([]byte(siteID), ip16[:], []byte(ua)), DayVersion(t), nil
}

// prfInput length-prefixes each part so ("ab","c") and ("a","bc") differ.
func prfInput(parts ...string) []byte {
	var b []byte
	for _, s := range parts {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

func pseudonym(out []byte) event.Pseudonym {
	var p event.Pseudonym
	copy(p[:], out)
	return p
}

// User returns the pseudonym of a declared user id and the version (key id)
// it was made under.
func (p *Pseudonymizer) User(_ context.Context, siteID, userID string) (event.Pseudonym, uint32, error) {
	v, out, err := p.prf.Compute(prfInput("user", siteID, userID), len(event.Pseudonym{}))
	if err != nil {
		return event.Pseudonym{}, 0, err
	}
	return pseudonym(out), v, nil
}

// UserPseudonyms returns the pseudonyms userID has had on site under every
// pseudonym key version, newest key first — what a data subject request
// must look for.
func (p *Pseudonymizer) UserPseudonyms(siteID, userID string) ([]event.Pseudonym, error) {
	in := prfInput("user", siteID, userID)
	vs := p.versions()
	out := make([]event.Pseudonym, 0, len(vs))
	for i := len(vs) - 1; i >= 0; i-- {
		b, err := p.prf.ComputeVersion(vs[i], in, len(event.Pseudonym{}))
		if err != nil {
			return nil, err
		}
		out = append(out, pseudonym(b))
	}
	return out, nil
}

// EventID returns a keyed hash of a client-supplied event id, used for
// deduplication without storing the id itself.
func (p *Pseudonymizer) EventID(_ context.Context, siteID, id string) (event.Pseudonym, error) {
	_, out, err := p.prf.Compute(prfInput("eventid", siteID, id), len(event.Pseudonym{}))
	if err != nil {
		return event.Pseudonym{}, err
	}
	return pseudonym(out), nil
}

// Field returns the keyed pseudonym of a field value declared "hash":
// "h<version>_<hex>", per site and field, so equal values stay joinable
// within a site and a key rotation is visible.
func (p *Pseudonymizer) Field(siteID, field, value string) (string, error) {
	v, out, err := p.prf.Compute(prfInput("field", siteID, field, value), len(event.Pseudonym{}))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("h%d_%s", v, pseudonym(out)), nil
}

// Subject returns a keyed reference to a data subject (e.g. "user:<id>")
// for registers that must find the subject again without storing the id:
// consent records and DSR requests. It uses the keyset's first key (keys
// are appended on rotation and never removed), so references stay stable
// across rotations.
func (p *Pseudonymizer) Subject(siteID, subject string) (string, error) {
	vs := p.versions()
	if len(vs) == 0 {
		return "", fmt.Errorf("pseudonym keyset is empty")
	}
	out, err := p.prf.ComputeVersion(vs[0], prfInput("subject", siteID, subject), len(event.Pseudonym{}))
	if err != nil {
		return "", err
	}
	return pseudonym(out).String(), nil
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
