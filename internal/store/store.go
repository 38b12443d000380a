// Package store defines Veil's state store: sites, API tokens, daily salts and
// per-site keys. The embedded implementation is SQLite (package sqlitestore);
// a scale-out one can implement the same interface over PostgreSQL.
package store

import (
	"context"
	"errors"
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
