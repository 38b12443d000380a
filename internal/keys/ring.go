package keys

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/prf"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// Keyset names. Each has one purpose, so rotating or losing one never
// touches the others.
const (
	Pseudonym = "pseudonym" // HMAC-SHA256 PRF: keyed pseudonyms of visitors and users
	Salt      = "salt"      // AES256-GCM: protects the stored daily salts
	Vault     = "vault"     // AES256-GCM: wraps the vault's per-subject data keys
	Audit     = "audit"     // AES256-GCM: protects the audit log's signing key
)

// templates lists every keyset the ring holds, with the template used for
// its first key and for every rotation.
var templates = map[string]func() *tinkpb.KeyTemplate{
	Pseudonym: prf.HMACSHA256PRFKeyTemplate,
	Salt:      aead.AES256GCMKeyTemplate,
	Vault:     aead.AES256GCMKeyTemplate,
	Audit:     aead.AES256GCMKeyTemplate,
}

// Names returns the keyset names the ring manages, sorted.
func Names() []string {
	names := make([]string, 0, len(templates))
	for n := range templates {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

const schema = `CREATE TABLE IF NOT EXISTS keysets (
	name TEXT PRIMARY KEY,
	blob BLOB NOT NULL,
	updated INTEGER NOT NULL
)`

// Ring holds Veil's named keysets, stored in the database encrypted under
// the KEK. The primitives it hands out follow rotations made through it, so
// callers may keep them; a rotation made by another process (the CLI while
// the server runs) takes effect when this process restarts.
type Ring struct {
	db  *sql.DB
	kek tink.AEAD

	mu   sync.Mutex // serialises rotations in this process
	sets map[string]*loaded
}

// loaded is one keyset in memory. Rotation replaces its state whole, so a
// reader always sees a handle, primitive and primary id that belong together.
type loaded struct {
	state atomic.Pointer[state]
}

type state struct {
	handle  *keyset.Handle
	blob    []byte // the stored ciphertext, compared on rotation
	updated time.Time
	aead    tink.AEAD // AEAD keysets
	prf     *prf.Set  // the PRF keyset
}

// associatedData binds a stored keyset to its name, so one keyset's
// ciphertext cannot be substituted for another's. The prefix separates this
// use of the KEK from any other use of the same KMS key.
func associatedData(name string) []byte { return []byte("veil.keyset." + name) }

// hasKeysets reports whether any keyset is stored in db.
func hasKeysets(ctx context.Context, db *sql.DB) (bool, error) {
	if _, err := db.ExecContext(ctx, schema); err != nil {
		return false, fmt.Errorf("keysets table: %w", err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM keysets`).Scan(&n); err != nil {
		return false, err
	}
	return n > 0, nil
}

// Open opens the KEK named by kekURI and the ring in db. It lets OpenKEK
// create a local key file only while the database holds no keysets: a
// missing key file next to existing keysets means the KEK was lost or
// misconfigured, and a fresh one could decrypt nothing.
func Open(ctx context.Context, db *sql.DB, kekURI, dataDir string, allowCreate bool) (*Ring, Info, error) {
	exist, err := hasKeysets(ctx, db)
	if err != nil {
		return nil, Info{}, err
	}
	kek, info, err := OpenKEK(ctx, kekURI, dataDir, allowCreate && !exist)
	if err != nil {
		if exist {
			err = fmt.Errorf("%w; the database holds keysets encrypted under a KEK, so no new KEK or keys were created: restore the KEK or fix its URI", err)
		}
		return nil, Info{}, err
	}
	r, err := OpenRing(ctx, db, kek, allowCreate)
	if err != nil {
		return nil, Info{}, err
	}
	return r, info, nil
}

// OpenRing loads every keyset from db, decrypting each with kek. Missing
// keysets are created when allowCreate is true, but only after every stored
// keyset has decrypted: a wrong KEK must never lead to fresh keys being
// written next to data that the old keys protect.
func OpenRing(ctx context.Context, db *sql.DB, kek tink.AEAD, allowCreate bool) (*Ring, error) {
	if _, err := db.ExecContext(ctx, schema); err != nil {
		return nil, fmt.Errorf("keysets table: %w", err)
	}
	r := &Ring{db: db, kek: kek, sets: make(map[string]*loaded, len(templates))}
	var missing []string
	for _, name := range Names() {
		st, err := r.load(ctx, name)
		if errors.Is(err, sql.ErrNoRows) {
			missing = append(missing, name)
			continue
		}
		if err != nil {
			return nil, err
		}
		r.sets[name] = &loaded{}
		r.sets[name].state.Store(st)
	}
	if len(missing) > 0 && !allowCreate {
		return nil, fmt.Errorf("keysets %v are missing and creating keys is not allowed here (run the server or `veil keys init` first)", missing)
	}
	for _, name := range missing {
		st, err := r.create(ctx, name)
		if err != nil {
			return nil, err
		}
		r.sets[name] = &loaded{}
		r.sets[name].state.Store(st)
	}
	return r, nil
}

// load reads and decrypts one keyset; sql.ErrNoRows means it is not stored.
func (r *Ring) load(ctx context.Context, name string) (*state, error) {
	var (
		blob    []byte
		updated int64
	)
	err := r.db.QueryRowContext(ctx, `SELECT blob, updated FROM keysets WHERE name=?`, name).Scan(&blob, &updated)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, err
		}
		return nil, fmt.Errorf("keyset %q: %w", name, err)
	}
	h, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(blob)), r.kek, associatedData(name))
	if err != nil {
		return nil, fmt.Errorf("keyset %q cannot be decrypted with the configured KEK (wrong KEK, KMS unreachable, or a damaged record): %w; keys were NOT regenerated", name, err)
	}
	return newState(name, h, blob, time.Unix(updated, 0))
}

// create stores a new keyset unless another process stored one first, and
// returns whichever is stored.
func (r *Ring) create(ctx context.Context, name string) (*state, error) {
	h, err := keyset.NewHandle(templates[name]())
	if err != nil {
		return nil, err
	}
	blob, err := r.encrypt(name, h)
	if err != nil {
		return nil, err
	}
	if _, err := r.db.ExecContext(ctx, `INSERT OR IGNORE INTO keysets (name, blob, updated) VALUES (?, ?, ?)`,
		name, blob, time.Now().Unix()); err != nil {
		return nil, fmt.Errorf("keyset %q: %w", name, err)
	}
	return r.load(ctx, name)
}

func (r *Ring) encrypt(name string, h *keyset.Handle) ([]byte, error) {
	var buf bytes.Buffer
	if err := h.WriteWithAssociatedData(keyset.NewBinaryWriter(&buf), r.kek, associatedData(name)); err != nil {
		return nil, fmt.Errorf("keyset %q: encrypt with KEK: %w", name, err)
	}
	return buf.Bytes(), nil
}

func newState(name string, h *keyset.Handle, blob []byte, updated time.Time) (*state, error) {
	st := &state{handle: h, blob: blob, updated: updated}
	var err error
	if name == Pseudonym {
		st.prf, err = prf.NewPRFSet(h)
	} else {
		st.aead, err = aead.New(h)
	}
	if err != nil {
		return nil, fmt.Errorf("keyset %q: %w", name, err)
	}
	return st, nil
}

func (r *Ring) get(name string) (*loaded, error) {
	l, ok := r.sets[name]
	if !ok {
		return nil, fmt.Errorf("no keyset named %q", name)
	}
	return l, nil
}

// AEAD returns the AEAD of the named keyset. It encrypts with the current
// primary key, including after a Rotate through this ring, and decrypts with
// any key of the keyset.
func (r *Ring) AEAD(name string) (tink.AEAD, error) {
	l, err := r.get(name)
	if err != nil {
		return nil, err
	}
	if l.state.Load().aead == nil {
		return nil, fmt.Errorf("keyset %q is not an AEAD keyset", name)
	}
	return liveAEAD{l}, nil
}

// liveAEAD delegates to the keyset's current primitive.
type liveAEAD struct{ l *loaded }

func (a liveAEAD) Encrypt(plaintext, associatedData []byte) ([]byte, error) {
	return a.l.state.Load().aead.Encrypt(plaintext, associatedData)
}

func (a liveAEAD) Decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	return a.l.state.Load().aead.Decrypt(ciphertext, associatedData)
}

// Pseudonymizer computes keyed pseudonyms. Outputs are versioned by the id of
// the key that made them, so a rotation shows up as a new version (callers
// store or prefix it) instead of silently breaking joins with older data.
type Pseudonymizer struct{ l *loaded }

// PRF returns the pseudonymizer of the "pseudonym" keyset.
func (r *Ring) PRF() (*Pseudonymizer, error) {
	l, err := r.get(Pseudonym)
	if err != nil {
		return nil, err
	}
	return &Pseudonymizer{l}, nil
}

// Compute returns the first n bytes of the PRF of input under the primary
// key, and that key's id.
func (p *Pseudonymizer) Compute(input []byte, n int) (version uint32, out []byte, err error) {
	s := p.l.state.Load().prf
	out, err = computePRF(s, s.PrimaryID, input, n)
	return s.PrimaryID, out, err
}

// ComputeVersion is Compute under an older key, to reproduce pseudonyms made
// before a rotation.
func (p *Pseudonymizer) ComputeVersion(version uint32, input []byte, n int) ([]byte, error) {
	return computePRF(p.l.state.Load().prf, version, input, n)
}

func computePRF(s *prf.Set, version uint32, input []byte, n int) ([]byte, error) {
	f, ok := s.PRFs[version]
	if !ok {
		return nil, fmt.Errorf("pseudonym key version %d is not in the keyset", version)
	}
	if n <= 0 {
		return nil, fmt.Errorf("pseudonym length %d: must be positive", n)
	}
	return f.ComputePRF(input, uint32(n))
}

// Rotate adds a fresh key to the named keyset and makes it primary. Older
// keys stay, so existing ciphertexts remain readable and older pseudonym
// versions remain computable. The stored keyset is replaced only if nobody
// changed it since it was loaded, so two concurrent rotations cannot drop
// each other's key.
func (r *Ring) Rotate(ctx context.Context, name string) (uint32, error) {
	l, err := r.get(name)
	if err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := l.state.Load()
	m := keyset.NewManagerFromHandle(old.handle)
	id, err := m.Add(templates[name]())
	if err != nil {
		return 0, fmt.Errorf("keyset %q: %w", name, err)
	}
	if err := m.SetPrimary(id); err != nil {
		return 0, fmt.Errorf("keyset %q: %w", name, err)
	}
	h, err := m.Handle()
	if err != nil {
		return 0, fmt.Errorf("keyset %q: %w", name, err)
	}
	blob, err := r.encrypt(name, h)
	if err != nil {
		return 0, err
	}
	now := time.Now()
	res, err := r.db.ExecContext(ctx, `UPDATE keysets SET blob=?, updated=? WHERE name=? AND blob=?`,
		blob, now.Unix(), name, old.blob)
	if err != nil {
		return 0, fmt.Errorf("keyset %q: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return 0, fmt.Errorf("keyset %q was changed by another process since it was loaded; restart and retry the rotation", name)
	}
	st, err := newState(name, h, blob, time.Unix(now.Unix(), 0))
	if err != nil {
		return 0, err
	}
	l.state.Store(st)
	return id, nil
}

// KeysetInfo describes a keyset without its key material.
type KeysetInfo struct {
	Name      string
	PrimaryID uint32
	KeyIDs    []uint32 // oldest first
	Updated   time.Time
}

// Status describes every keyset as this ring holds it.
func (r *Ring) Status() []KeysetInfo {
	var out []KeysetInfo
	for _, name := range Names() {
		st := r.sets[name].state.Load()
		ki := st.handle.KeysetInfo()
		info := KeysetInfo{Name: name, PrimaryID: ki.GetPrimaryKeyId(), Updated: st.updated}
		for _, k := range ki.GetKeyInfo() {
			info.KeyIDs = append(info.KeyIDs, k.GetKeyId())
		}
		out = append(out, info)
	}
	return out
}
