// Package sqlitestore implements store.Store on an embedded SQLite database
// (modernc.org/sqlite, pure Go) in WAL mode.
package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/veil-analytics/veil/internal/store"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// DB is the SQLite state store.
type DB struct {
	db *sql.DB
}

var _ store.Store = (*DB)(nil)

// migrations are applied in order; PRAGMA user_version records how many ran.
var migrations = []string{
	`CREATE TABLE sites (
		id TEXT PRIMARY KEY,
		domain TEXT NOT NULL UNIQUE,
		retention_s INTEGER NOT NULL,
		allowed_params TEXT NOT NULL DEFAULT 'null',
		user_unit INTEGER NOT NULL DEFAULT 0,
		created INTEGER NOT NULL
	);
	CREATE TABLE tokens (
		id TEXT PRIMARY KEY,
		name TEXT NOT NULL,
		role TEXT NOT NULL,
		hash BLOB NOT NULL UNIQUE,
		sites TEXT NOT NULL DEFAULT '[]',
		created INTEGER NOT NULL
	);
	CREATE TABLE salts (
		day TEXT PRIMARY KEY,
		salt BLOB NOT NULL
	);
	CREATE TABLE keys (
		name TEXT PRIMARY KEY,
		key BLOB NOT NULL
	);`,
	// Settings added later live in one JSON column, so a new setting does
	// not need a migration.
	`ALTER TABLE sites ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';`,
}

// siteSettings is the JSON of sites.settings.
type siteSettings struct {
	DailyEpsilon float64                      `json:"daily_epsilon,omitempty"`
	AllowedProps []string                     `json:"allowed_props"`
	Fields       map[string]store.FieldAction `json:"fields,omitempty"`
	Undeclared   string                       `json:"undeclared,omitempty"`
	Purposes     []string                     `json:"purposes,omitempty"`
	Owner        string                       `json:"owner,omitempty"`
	OwnerDomain  string                       `json:"owner_domain,omitempty"`
	Caps         map[string]int               `json:"caps,omitempty"`
}

func settingsOf(st store.Site) string {
	b, _ := json.Marshal(siteSettings{DailyEpsilon: st.DailyEpsilon, AllowedProps: st.AllowedProps, Fields: st.Fields,
		Undeclared: st.Undeclared, Purposes: st.Purposes, Owner: st.Owner, OwnerDomain: st.OwnerDomain, Caps: st.Caps})
	return string(b)
}

// Open opens (creating if needed) the database at path and migrates it.
func Open(path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("state store: %w", err)
	}
	// secure_delete overwrites deleted content, so destroyed salts do not
	// linger in free pages; busy_timeout lets CLI commands and the server
	// share the file.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
		"&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=secure_delete(ON)&_pragma=cache_size(-16384)&_pragma=temp_store(MEMORY)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("state store: %w", err)
	}
	db.SetMaxOpenConns(4)
	s := &DB{db: db}
	err = s.migrate()
	// Two processes creating a new file at the same moment can see
	// SQLITE_BUSY while the first sets the journal mode; retry briefly.
	for i := 0; err != nil && strings.Contains(err.Error(), "SQLITE_BUSY") && i < 50; i++ {
		time.Sleep(20 * time.Millisecond)
		err = s.migrate()
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("state store %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("state store: %w", err)
	}
	return s, nil
}

// SQL exposes the database handle to packages that keep their own tables in
// the same file (so their writes can share transactions).
func (s *DB) SQL() *sql.DB { return s.db }

func (s *DB) migrate() error {
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this binary (%d); upgrade veil", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.Exec(migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	if _, err := tx.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, len(migrations))); err != nil {
		return err
	}
	return tx.Commit()
}

// Close closes the database.
func (s *DB) Close() error { return s.db.Close() }

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// CreateSite registers a site.
func (s *DB) CreateSite(ctx context.Context, st store.Site) error {
	params, _ := json.Marshal(st.AllowedParams)
	_, err := s.db.ExecContext(ctx, `INSERT INTO sites (id, domain, retention_s, allowed_params, user_unit, created, settings) VALUES (?,?,?,?,?,?,?)`,
		st.ID, st.Domain, int64(st.Retention/time.Second), string(params), st.UserUnit, st.Created.Unix(), settingsOf(st))
	if isUnique(err) {
		return fmt.Errorf("site %s: %w", st.Domain, store.ErrExists)
	}
	return err
}

// UpdateSite changes a site's settings (not its id or domain).
func (s *DB) UpdateSite(ctx context.Context, st store.Site) error {
	params, _ := json.Marshal(st.AllowedParams)
	res, err := s.db.ExecContext(ctx, `UPDATE sites SET retention_s=?, allowed_params=?, user_unit=?, settings=? WHERE id=?`,
		int64(st.Retention/time.Second), string(params), st.UserUnit, settingsOf(st), st.ID)
	if err != nil {
		return err
	}
	return expectOne(res)
}

// DeleteSite removes a site.
func (s *DB) DeleteSite(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM sites WHERE id=?`, id)
	if err != nil {
		return err
	}
	return expectOne(res)
}

func expectOne(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

const siteCols = `id, domain, retention_s, allowed_params, user_unit, created, settings`

type scanner interface{ Scan(...any) error }

func scanSite(r scanner) (store.Site, error) {
	var st store.Site
	var ret, created int64
	var params, settings string
	if err := r.Scan(&st.ID, &st.Domain, &ret, &params, &st.UserUnit, &created, &settings); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return st, store.ErrNotFound
		}
		return st, err
	}
	st.Retention = time.Duration(ret) * time.Second
	st.Created = time.Unix(created, 0).UTC()
	if err := json.Unmarshal([]byte(params), &st.AllowedParams); err != nil {
		return st, fmt.Errorf("site %s: allowed params: %w", st.ID, err)
	}
	var set siteSettings
	if err := json.Unmarshal([]byte(settings), &set); err != nil {
		return st, fmt.Errorf("site %s: settings: %w", st.ID, err)
	}
	st.DailyEpsilon, st.AllowedProps, st.Fields, st.Undeclared = set.DailyEpsilon, set.AllowedProps, set.Fields, set.Undeclared
	st.Purposes, st.Owner, st.OwnerDomain, st.Caps = set.Purposes, set.Owner, set.OwnerDomain, set.Caps
	return st, nil
}

// SiteByDomain looks a site up by its normalized domain.
func (s *DB) SiteByDomain(ctx context.Context, domain string) (store.Site, error) {
	return scanSite(s.db.QueryRowContext(ctx, `SELECT `+siteCols+` FROM sites WHERE domain=?`, domain))
}

// SiteByID looks a site up by id.
func (s *DB) SiteByID(ctx context.Context, id string) (store.Site, error) {
	return scanSite(s.db.QueryRowContext(ctx, `SELECT `+siteCols+` FROM sites WHERE id=?`, id))
}

// Sites lists all sites ordered by domain.
func (s *DB) Sites(ctx context.Context) ([]store.Site, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+siteCols+` FROM sites ORDER BY domain`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Site
	for rows.Next() {
		st, err := scanSite(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, rows.Err()
}

// CreateToken stores a token (its hash, never its secret).
func (s *DB) CreateToken(ctx context.Context, t store.Token) error {
	sites, _ := json.Marshal(t.Sites)
	_, err := s.db.ExecContext(ctx, `INSERT INTO tokens (id, name, role, hash, sites, created) VALUES (?,?,?,?,?,?)`,
		t.ID, t.Name, string(t.Role), t.Hash, string(sites), t.Created.Unix())
	if isUnique(err) {
		return store.ErrExists
	}
	return err
}

const tokenCols = `id, name, role, hash, sites, created`

func scanToken(r scanner) (store.Token, error) {
	var t store.Token
	var role, sites string
	var created int64
	if err := r.Scan(&t.ID, &t.Name, &role, &t.Hash, &sites, &created); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return t, store.ErrNotFound
		}
		return t, err
	}
	t.Role = store.Role(role)
	t.Created = time.Unix(created, 0).UTC()
	if err := json.Unmarshal([]byte(sites), &t.Sites); err != nil {
		return t, fmt.Errorf("token %s: sites: %w", t.ID, err)
	}
	return t, nil
}

// TokenByHash finds a token by the hash of its secret.
func (s *DB) TokenByHash(ctx context.Context, hash []byte) (store.Token, error) {
	return scanToken(s.db.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM tokens WHERE hash=?`, hash))
}

// Tokens lists all tokens.
func (s *DB) Tokens(ctx context.Context) ([]store.Token, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+tokenCols+` FROM tokens ORDER BY created, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// DeleteToken revokes a token.
func (s *DB) DeleteToken(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM tokens WHERE id=?`, id)
	if err != nil {
		return err
	}
	return expectOne(res)
}

// getOrCreate inserts fresh under key unless a value exists, and returns
// whichever value is stored; INSERT OR IGNORE makes concurrent creators agree.
func (s *DB) getOrCreate(ctx context.Context, table, col, keyCol, key string, fresh []byte) ([]byte, error) {
	if _, err := s.db.ExecContext(ctx, `INSERT OR IGNORE INTO `+table+` (`+keyCol+`, `+col+`) VALUES (?, ?)`, key, fresh); err != nil {
		return nil, err
	}
	var v []byte
	err := s.db.QueryRowContext(ctx, `SELECT `+col+` FROM `+table+` WHERE `+keyCol+`=?`, key).Scan(&v)
	return v, err
}

// Salt returns the salt of a day, creating it from fresh when missing.
func (s *DB) Salt(ctx context.Context, day string, fresh []byte) ([]byte, error) {
	return s.getOrCreate(ctx, "salts", "salt", "day", day, fresh)
}

// Key returns a named long-lived key, creating it from fresh when missing.
func (s *DB) Key(ctx context.Context, name string, fresh []byte) ([]byte, error) {
	return s.getOrCreate(ctx, "keys", "key", "name", name, fresh)
}

// DeleteSaltsBefore destroys old salts. secure_delete zeroes the freed
// content, and a truncating checkpoint removes the copies the write-ahead log
// still holds.
func (s *DB) DeleteSaltsBefore(ctx context.Context, day string) (int, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM salts WHERE day < ?`, day)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		if _, err := s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			return int(n), fmt.Errorf("checkpoint after deleting salts: %w", err)
		}
	}
	return int(n), nil
}
