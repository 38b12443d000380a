// Package vault replaces declared personal values (an e-mail, an order id)
// with opaque tokens and keeps the values, encrypted, for the few who may
// resolve them.
//
// Envelope encryption gives each (site, subject) its own data key, a Tink
// AES256-GCM keyset stored wrapped under the master AEAD. Erasing a subject
// deletes that key with the values: a copy of the value rows kept anywhere
// else (a replica, an export of the table) can no longer be decrypted.
// A full database backup taken before the erasure still holds the wrapped
// key: for the erasure to reach backups, they must expire within the site's
// retention, or (not built yet) the surviving data keys be re-wrapped under a
// new master key and the old master key destroyed.
//
// Nothing in the database identifies a subject or a value in the clear:
// subjects are stored as keyed hashes, values as ciphertext, and equal values
// are found again through a keyed hash (a lookup key the vault keeps wrapped
// under the master AEAD), so the same (site, subject, field, value) always
// yields the same token without a dictionary attack being possible from the
// database alone.
//
// The SQL is SQLite's (the embedded store). Open the database as sqlitestore
// does: secure_delete on, so erased rows are zeroed in the file, and
// _txlock=immediate, so write transactions queue instead of failing.
package vault

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/prf"
	"github.com/tink-crypto/tink-go/v2/tink"
	"github.com/veil-analytics/veil/internal/audit"
)

var (
	// ErrNotFound: no such token (never issued, or expired by retention).
	ErrNotFound = errors.New("vault: token not found")
	// ErrShredded: the token's subject was erased, so its value is gone for
	// good. Erased tokens answer this until the site's retention would have
	// removed them anyway; after that they are simply not found.
	ErrShredded = errors.New("vault: value erased (subject's key destroyed)")
)

// TokenPrefix starts every token, so tokens are recognisable in event data.
const TokenPrefix = "tok_"

const schema = `
CREATE TABLE IF NOT EXISTS vault_meta (
	name TEXT PRIMARY KEY,
	blob BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS vault_subject_keys (
	site TEXT NOT NULL,
	subject BLOB NOT NULL,   -- keyed hash of the subject reference
	wrapped BLOB NOT NULL,   -- data keyset encrypted under the master AEAD
	created INTEGER NOT NULL,
	PRIMARY KEY (site, subject)
);
CREATE TABLE IF NOT EXISTS vault_values (
	token TEXT PRIMARY KEY,
	site TEXT NOT NULL,
	subject BLOB NOT NULL,
	field TEXT NOT NULL,
	lookup BLOB NOT NULL UNIQUE, -- keyed hash of (site, subject, field, value)
	ciphertext BLOB NOT NULL,
	created INTEGER NOT NULL     -- unix milliseconds
);
CREATE INDEX IF NOT EXISTS vault_values_subject ON vault_values (site, subject);
CREATE INDEX IF NOT EXISTS vault_values_created ON vault_values (site, created);
CREATE TABLE IF NOT EXISTS vault_tombstones (
	token TEXT PRIMARY KEY,
	site TEXT NOT NULL,
	erased INTEGER NOT NULL      -- unix milliseconds
);
CREATE INDEX IF NOT EXISTS vault_tombstones_erased ON vault_tombstones (site, erased);
`

const lookupKeyName = "lookup"

// Vault tokenizes values. It is safe for concurrent use, also by several
// processes sharing the database.
type Vault struct {
	db     *sql.DB
	master tink.AEAD
	lookup *prf.Set
	rec    audit.Recorder
	now    func() time.Time
}

// Item is one stored value, as handed to a data subject on export.
type Item struct {
	Token   string
	Field   string
	Value   string
	Created time.Time
}

// FieldCount summarises one field of a site, without values.
type FieldCount struct {
	Field    string
	Values   int
	Subjects int
}

// New prepares the vault's tables and its lookup key. master wraps every
// data key and the lookup key (keys.Ring's "vault" keyset); rec receives an
// entry for every detokenization; now is the clock.
func New(ctx context.Context, db *sql.DB, master tink.AEAD, rec audit.Recorder, now func() time.Time) (*Vault, error) {
	if _, err := db.ExecContext(ctx, schema); err != nil {
		return nil, fmt.Errorf("vault tables: %w", err)
	}
	v := &Vault{db: db, master: master, rec: rec, now: now}
	h, err := v.lookupKey(ctx)
	if err != nil {
		return nil, err
	}
	if v.lookup, err = prf.NewPRFSet(h); err != nil {
		return nil, fmt.Errorf("vault lookup key: %w", err)
	}
	return v, nil
}

// lookupKey loads the keyed-hash key, creating it on first use. It refuses to
// create one when the vault already holds data: a new key would orphan every
// stored subject, and erasure requests would silently find nothing.
func (v *Vault) lookupKey(ctx context.Context) (*keyset.Handle, error) {
	ad := []byte("veil.vault.lookup")
	read := func() (*keyset.Handle, error) {
		var blob []byte
		if err := v.db.QueryRowContext(ctx, `SELECT blob FROM vault_meta WHERE name=?`, lookupKeyName).Scan(&blob); err != nil {
			return nil, err
		}
		h, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(blob)), v.master, ad)
		if err != nil {
			return nil, fmt.Errorf("vault lookup key cannot be decrypted with the master key (wrong key ring?): %w", err)
		}
		return h, nil
	}
	h, err := read()
	if !errors.Is(err, sql.ErrNoRows) {
		return h, err
	}
	var used bool
	if err := v.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM vault_subject_keys) OR EXISTS (SELECT 1 FROM vault_values)`).Scan(&used); err != nil {
		return nil, err
	}
	if used {
		return nil, errors.New("vault holds data but its lookup key is missing; refusing to create a new one")
	}
	fresh, err := keyset.NewHandle(prf.HMACSHA256PRFKeyTemplate())
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := fresh.WriteWithAssociatedData(keyset.NewBinaryWriter(&buf), v.master, ad); err != nil {
		return nil, fmt.Errorf("vault lookup key: %w", err)
	}
	if _, err := v.db.ExecContext(ctx, `INSERT OR IGNORE INTO vault_meta (name, blob) VALUES (?, ?)`, lookupKeyName, buf.Bytes()); err != nil {
		return nil, err
	}
	return read() // another process may have stored its key first
}

// encode joins parts unambiguously (length-prefixed), so distinct tuples
// never hash or bind alike.
func encode(parts ...string) []byte {
	var b []byte
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

func (v *Vault) hash(parts ...string) ([]byte, error) {
	return v.lookup.ComputePrimaryPRF(encode(parts...), 32)
}

// subjectRef is what the database stores for a subject. Values not linked to
// a subject share one per-site "unlinked" subject, labelled so that no real
// subject reference can collide with it.
func (v *Vault) subjectRef(site, subject string) ([]byte, error) {
	if subject == "" {
		return v.hash("unlinked", site)
	}
	return v.hash("subject", site, subject)
}

// keyAD binds a wrapped data key to its row.
func keyAD(site string, subject []byte) []byte {
	return encode("veil.vault.key", site, string(subject))
}

// valueAD binds a ciphertext to its token and field.
func valueAD(token, site, field string) []byte {
	return encode("veil.vault.value", token, site, field)
}

func newToken() string {
	b := make([]byte, 16) // 128 bits
	rand.Read(b)
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// Tokenize returns the token for value, issuing one on first sight. subject
// is the caller's opaque (already pseudonymous) subject reference, or "" for
// values linked to no subject, which can then only expire by retention.
func (v *Vault) Tokenize(ctx context.Context, siteID, subject, field, value string) (string, error) {
	if siteID == "" || field == "" {
		return "", errors.New("vault: site and field are required")
	}
	sref, err := v.subjectRef(siteID, subject)
	if err != nil {
		return "", err
	}
	lookup, err := v.hash("value", siteID, string(sref), field, value)
	if err != nil {
		return "", err
	}
	if tok, err := v.tokenFor(ctx, v.db, lookup); !errors.Is(err, sql.ErrNoRows) {
		return tok, err
	}

	// One write transaction (BEGIN IMMEDIATE with sqlitestore's DSN): writers
	// queue, so concurrent callers with the same value agree on one token,
	// and an Erase cannot delete the subject's key between our reading it and
	// storing a value under it.
	tx, err := v.db.BeginTx(ctx, nil)
	if err != nil {
		return "", err
	}
	defer tx.Rollback()
	if tok, err := v.tokenFor(ctx, tx, lookup); !errors.Is(err, sql.ErrNoRows) {
		return tok, err
	}
	data, err := v.subjectKey(ctx, tx, siteID, sref)
	if err != nil {
		return "", err
	}
	tok := newToken()
	ct, err := data.Encrypt([]byte(value), valueAD(tok, siteID, field))
	if err != nil {
		return "", fmt.Errorf("vault: encrypt: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO vault_values (token, site, subject, field, lookup, ciphertext, created) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		tok, siteID, sref, field, lookup, ct, v.now().UnixMilli()); err != nil {
		return "", err
	}
	return tok, tx.Commit()
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (v *Vault) tokenFor(ctx context.Context, q querier, lookup []byte) (string, error) {
	var tok string
	err := q.QueryRowContext(ctx, `SELECT token FROM vault_values WHERE lookup=?`, lookup).Scan(&tok)
	return tok, err
}

// subjectKey returns the subject's data key, creating it when missing.
func (v *Vault) subjectKey(ctx context.Context, tx *sql.Tx, site string, sref []byte) (tink.AEAD, error) {
	var wrapped []byte
	err := tx.QueryRowContext(ctx, `SELECT wrapped FROM vault_subject_keys WHERE site=? AND subject=?`, site, sref).Scan(&wrapped)
	if err == nil {
		return v.unwrap(site, sref, wrapped)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := h.WriteWithAssociatedData(keyset.NewBinaryWriter(&buf), v.master, keyAD(site, sref)); err != nil {
		return nil, fmt.Errorf("vault: wrap data key: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO vault_subject_keys (site, subject, wrapped, created) VALUES (?, ?, ?, ?)`,
		site, sref, buf.Bytes(), v.now().UnixMilli()); err != nil {
		return nil, err
	}
	return aead.New(h)
}

func (v *Vault) unwrap(site string, sref, wrapped []byte) (tink.AEAD, error) {
	h, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(wrapped)), v.master, keyAD(site, sref))
	if err != nil {
		return nil, fmt.Errorf("vault: unwrap data key: %w", err)
	}
	a, err := aead.New(h)
	if err != nil {
		return nil, fmt.Errorf("vault: data key: %w", err)
	}
	return a, nil
}

// Detokenize returns the value behind token. The re-identification is
// recorded (actor, reason, token; never the value) before the value is
// returned, and no value is returned if it cannot be recorded.
func (v *Vault) Detokenize(ctx context.Context, token, actor, reason string) (string, error) {
	if actor == "" || reason == "" {
		return "", errors.New("vault: detokenizing needs an actor and a reason")
	}
	var (
		site, field string
		sref, ct    []byte
		wrapped     []byte
	)
	err := v.db.QueryRowContext(ctx, `SELECT v.site, v.subject, v.field, v.ciphertext, k.wrapped
		FROM vault_values v LEFT JOIN vault_subject_keys k ON k.site = v.site AND k.subject = v.subject
		WHERE v.token=?`, token).Scan(&site, &sref, &field, &ct, &wrapped)
	if errors.Is(err, sql.ErrNoRows) {
		var one int
		err := v.db.QueryRowContext(ctx, `SELECT 1 FROM vault_tombstones WHERE token=?`, token).Scan(&one)
		switch {
		case err == nil:
			return "", ErrShredded
		case errors.Is(err, sql.ErrNoRows):
			return "", ErrNotFound
		default:
			return "", err
		}
	}
	if err != nil {
		return "", err
	}
	if wrapped == nil {
		return "", ErrShredded
	}
	data, err := v.unwrap(site, sref, wrapped)
	if err != nil {
		return "", err
	}
	pt, err := data.Decrypt(ct, valueAD(token, site, field))
	if err != nil {
		return "", fmt.Errorf("vault: decrypt value: %w", err)
	}
	e := audit.Entry{
		Time:   v.now(),
		Actor:  actor,
		Action: "vault.detokenize",
		Target: token,
		Reason: reason,
		Detail: map[string]string{"site": site, "field": field},
	}
	if err := v.rec.Record(ctx, e); err != nil {
		return "", fmt.Errorf("vault: audit record failed, value withheld: %w", err)
	}
	return string(pt), nil
}

// Export returns every value stored for a subject of a site (the data
// subject access path; the caller audits it).
func (v *Vault) Export(ctx context.Context, siteID, subject string) ([]Item, error) {
	if subject == "" {
		return nil, errors.New("vault: export needs a subject; unlinked values expire by retention")
	}
	sref, err := v.subjectRef(siteID, subject)
	if err != nil {
		return nil, err
	}
	var wrapped []byte
	err = v.db.QueryRowContext(ctx, `SELECT wrapped FROM vault_subject_keys WHERE site=? AND subject=?`, siteID, sref).Scan(&wrapped)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	data, err := v.unwrap(siteID, sref, wrapped)
	if err != nil {
		return nil, err
	}
	rows, err := v.db.QueryContext(ctx, `SELECT token, field, ciphertext, created FROM vault_values WHERE site=? AND subject=? ORDER BY created, token`, siteID, sref)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Item
	for rows.Next() {
		var (
			it      Item
			ct      []byte
			created int64
		)
		if err := rows.Scan(&it.Token, &it.Field, &ct, &created); err != nil {
			return nil, err
		}
		pt, err := data.Decrypt(ct, valueAD(it.Token, siteID, it.Field))
		if err != nil {
			return nil, fmt.Errorf("vault: decrypt value of %s: %w", it.Token, err)
		}
		it.Value = string(pt)
		it.Created = time.UnixMilli(created)
		out = append(out, it)
	}
	return out, rows.Err()
}

// Erase crypto-shreds a subject of a site: its data key and values are
// deleted in one transaction and its tokens are tombstoned (token and site
// only), so they answer ErrShredded. It returns the number of values erased.
func (v *Vault) Erase(ctx context.Context, siteID, subject string) (int, error) {
	if subject == "" {
		return 0, errors.New("vault: erase needs a subject; unlinked values expire by retention")
	}
	sref, err := v.subjectRef(siteID, subject)
	if err != nil {
		return 0, err
	}
	tx, err := v.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO vault_tombstones (token, site, erased)
		SELECT token, site, ? FROM vault_values WHERE site=? AND subject=?`, v.now().UnixMilli(), siteID, sref); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM vault_values WHERE site=? AND subject=?`, siteID, sref)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	if _, err := tx.ExecContext(ctx, `DELETE FROM vault_subject_keys WHERE site=? AND subject=?`, siteID, sref); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	v.checkpoint(ctx)
	return int(n), nil
}

// PurgeBefore applies retention to a site: values created before cutoff go,
// then the data keys no value needs any more, and tombstones older than the
// cutoff (those tokens then read as not found, like any expired token).
func (v *Vault) PurgeBefore(ctx context.Context, siteID string, cutoff time.Time) (int, error) {
	c := cutoff.UnixMilli()
	tx, err := v.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM vault_values WHERE site=? AND created < ?`, siteID, c)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	if _, err := tx.ExecContext(ctx, `DELETE FROM vault_subject_keys WHERE site=? AND NOT EXISTS
		(SELECT 1 FROM vault_values v WHERE v.site = vault_subject_keys.site AND v.subject = vault_subject_keys.subject)`, siteID); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM vault_tombstones WHERE site=? AND erased < ?`, siteID, c); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	if n > 0 {
		v.checkpoint(ctx)
	}
	return int(n), nil
}

// checkpoint moves the write-ahead log into the database file and truncates
// it, so the pages that held deleted keys and ciphertexts do not linger in
// the log (secure_delete already zeroes them in the database file). A busy
// reader can keep the log alive; the next checkpoint removes it, so this is
// reported, not failed.
func (v *Vault) checkpoint(ctx context.Context) {
	var busy, logFrames, done int
	err := v.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done)
	if err != nil || busy != 0 {
		slog.Warn("vault: the write-ahead log could not be truncated after deleting data; it will be at the next checkpoint", "err", err)
	}
}

// Fields counts stored values and distinct subjects per field of a site, for
// reports. Values linked to no subject count as values, not as a subject.
func (v *Vault) Fields(ctx context.Context, siteID string) ([]FieldCount, error) {
	unlinked, err := v.subjectRef(siteID, "")
	if err != nil {
		return nil, err
	}
	rows, err := v.db.QueryContext(ctx, `SELECT field, COUNT(*), COUNT(DISTINCT CASE WHEN subject != ? THEN subject END)
		FROM vault_values WHERE site=? GROUP BY field ORDER BY field`, unlinked, siteID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []FieldCount
	for rows.Next() {
		var fc FieldCount
		if err := rows.Scan(&fc.Field, &fc.Values, &fc.Subjects); err != nil {
			return nil, err
		}
		out = append(out, fc)
	}
	return out, rows.Err()
}
