// Package store defines Veil's state store: sites, API tokens, daily salts and
// per-site keys. The embedded implementation is SQLite (package sqlitestore);
// a scale-out one can implement the same interface over PostgreSQL.
package store

import (
	"context"
	"errors"
	"strings"
	"time"
)

var (
	// ErrNotFound is returned when a looked-up record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists is returned when a record with the same key already exists.
	ErrExists = errors.New("already exists")
)

// DefaultRetention is how long a site's events are kept unless configured.
const DefaultRetention = 30 * 24 * time.Hour

// Site is one data product: a website or app whose events Veil collects.
type Site struct {
	ID     string // short random id, used in log subjects and stream names
	Domain string // normalized domain, unique
	// Retention bounds how long events are kept; the event log enforces it.
	Retention time.Duration
	// AllowedParams are the query parameters kept in page URLs (exact names or
	// prefixes ending in '*'); nil means the default (utm_*).
	AllowedParams []string
	// UserUnit makes the declared user, rather than the visitor-day, the
	// privacy unit for events that carry a user id.
	UserUnit bool
	Created  time.Time
	// DailyEpsilon overrides the default privacy budget per unit (per day,
	// or per month for user-unit sites); 0 means the default.
	DailyEpsilon float64
	// AllowedProps are the custom-event prop names kept (exact names or
	// prefixes ending in '*'); nil means all.
	AllowedProps []string
	// Fields declares what server-side ingestion may send in props and
	// what happens to each: see FieldAction. Empty: no schema is declared
	// and props are only scanned and redacted.
	Fields map[string]FieldAction
	// Undeclared is what happens to props the schema does not declare
	// when Fields is not empty: FieldDrop (default) or "reject".
	Undeclared string
	// Purposes the site's data may be used for; nil means analytics only.
	Purposes []string
	// Owner and OwnerDomain name who is accountable for the site as a data
	// product, and the domain (data mesh) it belongs to.
	Owner       string
	OwnerDomain string
	// Caps override the default contribution bounds by name (see
	// site.CapsOf); they are fixed when the site is added.
	Caps map[string]int
}

// FieldAction is what ingestion does with a declared field.
type FieldAction string

const (
	FieldTokenize FieldAction = "tokenize" // replaced by a vault token
	FieldHash     FieldAction = "hash"     // replaced by a keyed pseudonym
	FieldDrop     FieldAction = "drop"     // removed
	FieldKeep     FieldAction = "keep"     // kept (non-identifying fields only)
)

// UndeclaredReject refuses events carrying undeclared fields.
const UndeclaredReject = "reject"

// Purposes a site's data may be used for.
const (
	PurposeAnalytics       = "analytics"
	PurposePersonalization = "personalization"
	PurposeModelTraining   = "model_training"
)

// AllPurposes lists the purposes Veil knows.
var AllPurposes = []string{PurposeAnalytics, PurposePersonalization, PurposeModelTraining}

// SitePurposes returns the purposes s allows.
func (s Site) SitePurposes() []string {
	if len(s.Purposes) == 0 {
		return []string{PurposeAnalytics}
	}
	return s.Purposes
}

// Role is what an API token may do.
type Role string

const (
	RoleAdmin          Role = "admin"
	RoleAnalyst        Role = "analyst"
	RoleViewer         Role = "viewer"
	RoleIngest         Role = "ingest"
	RolePrivacyOfficer Role = "privacy-officer"
)

// Roles lists every valid role.
var Roles = []Role{RoleAdmin, RoleAnalyst, RoleViewer, RoleIngest, RolePrivacyOfficer}

// ValidRole reports whether r names a known role.
func ValidRole(r Role) bool {
	for _, v := range Roles {
		if v == r {
			return true
		}
	}
	return false
}

// Token is an API token; only a hash of its secret is stored.
type Token struct {
	ID      string
	Name    string
	Role    Role
	Hash    []byte   // SHA-256 of the secret
	Sites   []string // site ids the token is limited to; empty means all
	Created time.Time
}

// Store is the state store.
type Store interface {
	CreateSite(ctx context.Context, s Site) error
	UpdateSite(ctx context.Context, s Site) error
	DeleteSite(ctx context.Context, id string) error
	SiteByDomain(ctx context.Context, domain string) (Site, error)
	SiteByID(ctx context.Context, id string) (Site, error)
	Sites(ctx context.Context) ([]Site, error)

	CreateToken(ctx context.Context, t Token) error
	TokenByHash(ctx context.Context, hash []byte) (Token, error)
	Tokens(ctx context.Context) ([]Token, error)
	DeleteToken(ctx context.Context, id string) error

	// Salt returns the salt for day (YYYY-MM-DD), storing fresh when none
	// exists yet; concurrent callers, in this process or another, all get the
	// same salt.
	Salt(ctx context.Context, day string, fresh []byte) ([]byte, error)
	// DeleteSaltsBefore destroys every salt for a day before day and makes
	// sure the deleted bytes do not linger in the database files.
	DeleteSaltsBefore(ctx context.Context, day string) (int, error)
	// Key returns the long-lived key named name, storing fresh when none
	// exists yet.
	Key(ctx context.Context, name string, fresh []byte) ([]byte, error)

	Close() error
}

// PropAllowed reports whether custom-event prop key is kept for s.
func (s Site) PropAllowed(key string) bool {
	if s.AllowedProps == nil {
		return true
	}
	for _, p := range s.AllowedProps {
		if pre, ok := strings.CutSuffix(p, "*"); ok && strings.HasPrefix(key, pre) || p == key {
			return true
		}
	}
	return false
}
