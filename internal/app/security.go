package app

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/veil-analytics/veil/internal/audit"
	"github.com/veil-analytics/veil/internal/keys"
	"github.com/veil-analytics/veil/internal/store"
)

// AuditOrigin names Veil's audit log in its signed checkpoints.
const AuditOrigin = "veil-audit"

// AuditDir is the audit log's directory under a data directory.
func AuditDir(dataDir string) string { return filepath.Join(dataDir, "audit") }

// WitnessPath is where `veil audit verify` keeps the last checkpoint it
// verified unless told otherwise: beside the log, not in it. An auditor
// keeps their own copy elsewhere with --witness.
func WitnessPath(dataDir string) string { return filepath.Join(dataDir, "audit.witness") }

// auditKeys returns the audit log's signing and verification keys. The
// note signing key is generated once and stored in the state store
// encrypted under the "audit" keyset.
func auditKeys(ctx context.Context, st store.Store, ring *keys.Ring) (note.Signer, note.Verifier, error) {
	aead, err := ring.AEAD(keys.Audit)
	if err != nil {
		return nil, nil, err
	}
	skey, vkey, err := audit.GenerateKey(AuditOrigin)
	if err != nil {
		return nil, nil, err
	}
	ad := []byte("veil.audit.signer")
	fresh, err := aead.Encrypt([]byte(skey+"\n"+vkey), ad)
	if err != nil {
		return nil, nil, err
	}
	stored, err := st.Key(ctx, "audit-signer", fresh)
	if err != nil {
		return nil, nil, err
	}
	plain, err := aead.Decrypt(stored, ad)
	if err != nil {
		return nil, nil, fmt.Errorf("audit signing key cannot be decrypted with the audit keyset: %w", err)
	}
	skey, vkey, ok := strings.Cut(string(plain), "\n")
	if !ok {
		return nil, nil, fmt.Errorf("audit signing key is malformed")
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, nil, fmt.Errorf("audit signing key: %w", err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, nil, fmt.Errorf("audit verification key: %w", err)
	}
	return signer, verifier, nil
}

// AuditVerifier returns the audit log's verification key (public) from a
// data directory's state store, for `veil audit verify`.
func AuditVerifier(ctx context.Context, st store.Store, ring *keys.Ring) (note.Verifier, error) {
	_, v, err := auditKeys(ctx, st, ring)
	return v, err
}

// OpenAudit opens the audit log of a data directory. Only one process may
// hold it: the CLI's operator commands fail while veil serve runs.
func OpenAudit(ctx context.Context, dataDir string, st store.Store, ring *keys.Ring) (*audit.Log, error) {
	signer, verifier, err := auditKeys(ctx, st, ring)
	if err != nil {
		return nil, err
	}
	return audit.Open(AuditDir(dataDir), signer, verifier, AuditOrigin)
}
