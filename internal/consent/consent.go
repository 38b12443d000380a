// Package consent is Veil's consent registry: for each declared user of a
// site, which of the site's purposes (analytics, personalization, model
// training) they granted or withdrew, reported by the site's backend.
//
// Data may only be used for a purpose the subject consented to:
//
//   - analytics is allowed when no record exists. Veil's analytics are
//     cookieless, minimized and published only under differential privacy;
//     sites run them on legitimate interest, and ingestion already drops
//     hits that send Global Privacy Control or consent:false. An explicit
//     withdrawal (granted=false) stops it for that user.
//   - personalization and model_training need an explicit grant: without a
//     record they are not allowed.
//   - a purpose the site does not declare (store.Site.Purposes) is never
//     allowed, whatever the record says.
//
// Withdrawing takes effect for new use at once in the process that received
// it, and within CacheTTL in other processes sharing the database. It does
// not reach back: numbers already released under differential privacy stay
// published (see package dsr for why that is acceptable).
//
// Subjects are stored only as keyed references (the Ref hasher, backed by a
// Tink PRF in production), never as raw user ids.
package consent

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/veil-analytics/veil/internal/httpx"
	"github.com/veil-analytics/veil/internal/store"
)

const schema = `
CREATE TABLE IF NOT EXISTS consent (
	site TEXT NOT NULL,
	subject_ref TEXT NOT NULL, -- keyed hash of the subject, never the raw id
	purpose TEXT NOT NULL,
	granted INTEGER NOT NULL,  -- 1 granted, 0 refused or withdrawn
	updated INTEGER NOT NULL,  -- unix milliseconds
	source TEXT NOT NULL,      -- who reported it (API token id and label)
	PRIMARY KEY (site, subject_ref, purpose)
);
`

// CacheTTL bounds how long a cached answer may miss a change made by another
// process (a CLI command, another server on the same database).
const CacheTTL = 15 * time.Second

// maxCachedSubjects bounds the cache's memory; past it the cache starts over.
const maxCachedSubjects = 100_000

// UserSubject is the subject string of a declared user id, shared by the
// vault, the consent registry and data subject requests so that they all
// key the same person alike.
func UserSubject(userID string) string { return "user:" + userID }

// ValidUserID accepts every user id ingestion accepts (non-empty, at most
// 256 bytes of UTF-8), so that any user Veil has data about can be named.
func ValidUserID(id string) error {
	switch {
	case id == "":
		return errors.New("must not be empty")
	case len(id) > 256:
		return errors.New("must be at most 256 bytes")
	case !utf8.ValidString(id):
		return errors.New("must be valid UTF-8")
	}
	return nil
}

// State is one purpose's recorded consent.
type State struct {
	Granted bool      `json:"granted"`
	Updated time.Time `json:"updated"`
	Source  string    `json:"source"`
}

// Registry records consent and answers whether a use is allowed. It is safe
// for concurrent use.
type Registry struct {
	db  *sql.DB
	ref func(siteID, subject string) string
	now func() time.Time

	mu sync.RWMutex
	// gen counts changes; a lookup that raced with a change does not cache
	// what it read, so a withdrawal is never hidden by a stale entry.
	gen      uint64
	sites    map[string]siteEntry
	subjects map[subjectKey]subjectEntry
}

type siteEntry struct {
	records bool // whether the site has any consent record at all
	expires time.Time
}

type subjectKey struct{ site, ref string }

type subjectEntry struct {
	granted map[string]bool // purpose -> granted; absent: no record
	expires time.Time
}

// New creates the registry's table. ref is the keyed hasher of subjects;
// now is the clock.
func New(ctx context.Context, db *sql.DB, ref func(siteID, subject string) string, now func() time.Time) (*Registry, error) {
	if db == nil || ref == nil || now == nil {
		return nil, errors.New("consent: database, subject hasher and clock are required")
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		return nil, fmt.Errorf("consent table: %w", err)
	}
	return &Registry{db: db, ref: ref, now: now, sites: map[string]siteEntry{}, subjects: map[subjectKey]subjectEntry{}}, nil
}

// UserRef is the stored reference of a declared user of a site.
func (r *Registry) UserRef(siteID, userID string) string {
	return r.ref(siteID, UserSubject(userID))
}

// ValidatePurposes checks that every purpose is one Veil knows and the site
// declares. Purpose names are echoed only when they look like purpose names,
// since a client could put anything into a JSON key.
func ValidatePurposes(site store.Site, purposes map[string]bool) error {
	if len(purposes) == 0 {
		return httpx.Errorf(http.StatusBadRequest, "invalid_purposes", "purposes", "at least one purpose is required (known: %s)", strings.Join(store.AllPurposes, ", "))
	}
	var unknown, undeclared []string
	for p := range purposes {
		switch {
		case !slices.Contains(store.AllPurposes, p):
			unknown = append(unknown, echoable(p))
		case !slices.Contains(site.SitePurposes(), p):
			undeclared = append(undeclared, p)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return httpx.Errorf(http.StatusBadRequest, "unknown_purpose", "purposes", "unknown purposes: %s (known: %s)", strings.Join(unknown, ", "), strings.Join(store.AllPurposes, ", "))
	}
	if len(undeclared) > 0 {
		sort.Strings(undeclared)
		return httpx.Errorf(http.StatusBadRequest, "purpose_not_allowed", "purposes", "the site does not declare purposes %s (it declares: %s)", strings.Join(undeclared, ", "), strings.Join(site.SitePurposes(), ", "))
	}
	return nil
}

func echoable(p string) string {
	if len(p) == 0 || len(p) > 40 || strings.IndexFunc(p, func(c rune) bool { return !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') }) >= 0 {
		return "(unnamed)"
	}
	return p
}

// Set records the subject's consent for each purpose in purposes (true:
// granted, false: refused or withdrawn); purposes not named keep their
// state. source says who reported it.
func (r *Registry) Set(ctx context.Context, site store.Site, subjectRef string, purposes map[string]bool, source string) error {
	if err := ValidatePurposes(site, purposes); err != nil {
		return err
	}
	now := r.now().UnixMilli()
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for p, granted := range purposes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO consent (site, subject_ref, purpose, granted, updated, source) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (site, subject_ref, purpose) DO UPDATE SET granted=excluded.granted, updated=excluded.updated, source=excluded.source`,
			site.ID, subjectRef, p, granted, now, source); err != nil {
			return fmt.Errorf("consent: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("consent: %w", err)
	}
	r.invalidate(site.ID, subjectRef)
	return nil
}

// Get returns every recorded purpose of a subject (none: an empty map).
func (r *Registry) Get(ctx context.Context, siteID, subjectRef string) (map[string]State, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT purpose, granted, updated, source FROM consent WHERE site=? AND subject_ref=?`, siteID, subjectRef)
	if err != nil {
		return nil, fmt.Errorf("consent: %w", err)
	}
	defer rows.Close()
	out := map[string]State{}
	for rows.Next() {
		var (
			p  string
			s  State
			ms int64
		)
		if err := rows.Scan(&p, &s.Granted, &ms, &s.Source); err != nil {
			return nil, fmt.Errorf("consent: %w", err)
		}
		s.Updated = time.UnixMilli(ms).UTC()
		out[p] = s
	}
	return out, rows.Err()
}

// Erase applies a subject's erasure to their consent: grants are deleted,
// so nothing can be done on their strength any more, while withdrawals and
// refusals are kept. A withdrawal is what keeps a returning user id out of
// analytics, and the controller must be able to show it honoured it (GDPR
// Art. 7(1), 5(2), 17(3)(b)); the kept row holds only the keyed reference,
// the purpose, a time and who reported it. It returns the rows deleted and
// kept.
func (r *Registry) Erase(ctx context.Context, siteID, subjectRef string) (removed, kept int, err error) {
	res, err := r.db.ExecContext(ctx, `DELETE FROM consent WHERE site=? AND subject_ref=? AND granted=1`, siteID, subjectRef)
	if err != nil {
		return 0, 0, fmt.Errorf("consent: %w", err)
	}
	n, _ := res.RowsAffected()
	r.invalidate(siteID, subjectRef)
	if err := r.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM consent WHERE site=? AND subject_ref=?`, siteID, subjectRef).Scan(&kept); err != nil {
		return int(n), 0, fmt.Errorf("consent: %w", err)
	}
	return int(n), kept, nil
}

func (r *Registry) invalidate(siteID, subjectRef string) {
	r.mu.Lock()
	r.gen++
	delete(r.subjects, subjectKey{siteID, subjectRef})
	delete(r.sites, siteID)
	r.mu.Unlock()
}

// Allowed reports whether the subject's data may be used for purpose on
// site. An unknown purpose is an error (a bug in the caller); a purpose the
// site does not declare is simply not allowed.
func (r *Registry) Allowed(ctx context.Context, site store.Site, subjectRef, purpose string) (bool, error) {
	return r.allowed(ctx, site, purpose, subjectRef, true)
}

// AllowedUser is Allowed for a raw user id. It is what ingestion calls on
// every event of a declared user: while the site has no consent record at
// all, the answer is the purpose's default and the user id is not even
// hashed.
func (r *Registry) AllowedUser(ctx context.Context, site store.Site, userID, purpose string) (bool, error) {
	return r.allowed(ctx, site, purpose, userID, false)
}

func (r *Registry) allowed(ctx context.Context, site store.Site, purpose, subject string, isRef bool) (bool, error) {
	if !slices.Contains(store.AllPurposes, purpose) {
		return false, fmt.Errorf("consent: unknown purpose %q", purpose)
	}
	if !slices.Contains(site.SitePurposes(), purpose) {
		return false, nil
	}
	def := purpose == store.PurposeAnalytics
	records, err := r.siteHasRecords(ctx, site.ID)
	if err != nil || !records {
		return def, err
	}
	ref := subject
	if !isRef {
		ref = r.UserRef(site.ID, subject)
	}
	granted, err := r.subjectState(ctx, site.ID, ref)
	if err != nil {
		return false, err
	}
	if g, ok := granted[purpose]; ok {
		return g, nil
	}
	return def, nil
}

func (r *Registry) siteHasRecords(ctx context.Context, siteID string) (bool, error) {
	now := r.now()
	r.mu.RLock()
	e, ok := r.sites[siteID]
	gen := r.gen
	r.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e.records, nil
	}
	var records bool
	if err := r.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM consent WHERE site=?)`, siteID).Scan(&records); err != nil {
		return false, fmt.Errorf("consent: %w", err)
	}
	r.mu.Lock()
	if r.gen == gen {
		r.sites[siteID] = siteEntry{records: records, expires: now.Add(CacheTTL)}
	}
	r.mu.Unlock()
	return records, nil
}

func (r *Registry) subjectState(ctx context.Context, siteID, ref string) (map[string]bool, error) {
	now := r.now()
	key := subjectKey{siteID, ref}
	r.mu.RLock()
	e, ok := r.subjects[key]
	gen := r.gen
	r.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e.granted, nil
	}
	rows, err := r.db.QueryContext(ctx, `SELECT purpose, granted FROM consent WHERE site=? AND subject_ref=?`, siteID, ref)
	if err != nil {
		return nil, fmt.Errorf("consent: %w", err)
	}
	defer rows.Close()
	granted := map[string]bool{}
	for rows.Next() {
		var (
			p string
			g bool
		)
		if err := rows.Scan(&p, &g); err != nil {
			return nil, fmt.Errorf("consent: %w", err)
		}
		granted[p] = g
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("consent: %w", err)
	}
	r.mu.Lock()
	if r.gen == gen {
		if len(r.subjects) >= maxCachedSubjects {
			clear(r.subjects)
		}
		r.subjects[key] = subjectEntry{granted: granted, expires: now.Add(CacheTTL)}
	}
	r.mu.Unlock()
	return granted, nil
}
