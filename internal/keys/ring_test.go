package keys

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tink-crypto/tink-go/v2/testing/fakekms"
	"github.com/tink-crypto/tink-go/v2/tink"
	"github.com/veil-analytics/veil/internal/store/sqlitestore"
)

func openDB(t *testing.T, dir string) *sql.DB {
	t.Helper()
	s, err := sqlitestore.Open(filepath.Join(dir, "veil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.SQL()
}

func storedBlobs(t *testing.T, db *sql.DB) map[string][]byte {
	t.Helper()
	rows, err := db.Query(`SELECT name, blob FROM keysets`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var n string
		var b []byte
		if err := rows.Scan(&n, &b); err != nil {
			t.Fatal(err)
		}
		out[n] = b
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameBlobs(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func mustAEAD(t *testing.T, r *Ring, name string) tink.AEAD {
	t.Helper()
	a, err := r.AEAD(name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustPRF(t *testing.T, r *Ring) *Pseudonymizer {
	t.Helper()
	p, err := r.PRF()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCreateAndReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openDB(t, dir)

	r, info, err := Open(ctx, db, "", dir, true)
	if err != nil {
		t.Fatal(err)
	}
	kekPath := filepath.Join(dir, "kek.json")
	if !info.Created || info.Scheme != SchemeLocal || info.URI != "local://"+kekPath {
		t.Fatalf("info = %+v", info)
	}
	st, err := os.Stat(kekPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("kek mode %o, want 600", st.Mode().Perm())
	}
	kekBytes, _ := os.ReadFile(kekPath)
	if !strings.Contains(string(kekBytes), "AesGcmKey") {
		t.Fatalf("kek file does not hold an AES-GCM keyset: %s", kekBytes)
	}

	ct, err := mustAEAD(t, r, Salt).Encrypt([]byte("salt bytes"), []byte("day"))
	if err != nil {
		t.Fatal(err)
	}
	v, p1, err := mustPRF(t, r).Compute([]byte("visitor"), 16)
	if err != nil || len(p1) != 16 {
		t.Fatalf("Compute: %x %v", p1, err)
	}
	blobs := storedBlobs(t, db)
	if len(blobs) != 4 {
		t.Fatalf("stored keysets %v, want 4", len(blobs))
	}

	r2, info2, err := Open(ctx, db, "", dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if info2.Created {
		t.Fatal("reopen created a KEK")
	}
	pt, err := mustAEAD(t, r2, Salt).Decrypt(ct, []byte("day"))
	if err != nil || string(pt) != "salt bytes" {
		t.Fatalf("decrypt after reopen: %q %v", pt, err)
	}
	// Keysets are separate: the vault keyset cannot read the salt keyset's data.
	if _, err := mustAEAD(t, r2, Vault).Decrypt(ct, []byte("day")); err == nil {
		t.Fatal("vault keyset decrypted a salt ciphertext")
	}
	v2, p2, err := mustPRF(t, r2).Compute([]byte("visitor"), 16)
	if err != nil || v2 != v || !bytes.Equal(p1, p2) {
		t.Fatalf("pseudonym changed across reopen: %d %x / %d %x (%v)", v, p1, v2, p2, err)
	}
	if !sameBlobs(blobs, storedBlobs(t, db)) {
		t.Fatal("reopen rewrote stored keysets")
	}
	for _, ks := range r2.Status() {
		if len(ks.KeyIDs) != 1 || ks.KeyIDs[0] != ks.PrimaryID || ks.Updated.IsZero() {
			t.Fatalf("status %+v", ks)
		}
	}
	if _, err := r2.AEAD(Pseudonym); err == nil {
		t.Fatal("AEAD of the PRF keyset did not fail")
	}
	if _, err := r2.AEAD("nope"); err == nil {
		t.Fatal("AEAD of an unknown keyset did not fail")
	}
}

func TestMissingKeysetsNeedAllowCreate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openDB(t, dir)
	kek, _, err := OpenKEK(ctx, "", dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenRing(ctx, db, kek, false); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("OpenRing without allowCreate on an empty db: %v", err)
	}
	if n := len(storedBlobs(t, db)); n != 0 {
		t.Fatalf("%d keysets written without allowCreate", n)
	}
}

func TestWrongKEKDoesNotRegenerate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openDB(t, dir)
	kekA, _, err := OpenKEK(ctx, "local://"+filepath.Join(dir, "a.json"), dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenRing(ctx, db, kekA, true); err != nil {
		t.Fatal(err)
	}
	// One keyset goes missing too: even then nothing may be created while the
	// others do not decrypt.
	if _, err := db.Exec(`DELETE FROM keysets WHERE name=?`, Audit); err != nil {
		t.Fatal(err)
	}
	before := storedBlobs(t, db)

	kekB, _, err := OpenKEK(ctx, "local://"+filepath.Join(dir, "b.json"), dir, true)
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenRing(ctx, db, kekB, true)
	if err == nil {
		t.Fatal("ring opened with the wrong KEK")
	}
	if !strings.Contains(err.Error(), "NOT regenerated") || !strings.Contains(err.Error(), `keyset "`) {
		t.Fatalf("unclear error: %v", err)
	}
	if !sameBlobs(before, storedBlobs(t, db)) {
		t.Fatal("keysets changed after a wrong KEK")
	}
	// The right KEK still works and restores the missing keyset.
	if _, err := OpenRing(ctx, db, kekA, true); err != nil {
		t.Fatal(err)
	}
	if n := len(storedBlobs(t, db)); n != 4 {
		t.Fatalf("%d keysets after reopen with the right KEK", n)
	}
}

func TestMalformedBlob(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openDB(t, dir)
	kek, _, err := OpenKEK(ctx, "", dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenRing(ctx, db, kek, true); err != nil {
		t.Fatal(err)
	}
	good := storedBlobs(t, db)[Salt]
	flipped := bytes.Clone(good)
	flipped[len(flipped)-5] ^= 1
	for name, blob := range map[string][]byte{
		"garbage":   []byte("not a keyset"),
		"truncated": good[:len(good)/2],
		"bit flip":  flipped,
		"empty":     {},
	} {
		if _, err := db.Exec(`UPDATE keysets SET blob=? WHERE name=?`, blob, Salt); err != nil {
			t.Fatal(err)
		}
		_, err := OpenRing(ctx, db, kek, true)
		if err == nil || !strings.Contains(err.Error(), `keyset "salt"`) {
			t.Errorf("%s: err = %v", name, err)
		}
		if got := storedBlobs(t, db)[Salt]; !bytes.Equal(got, blob) {
			t.Errorf("%s: the damaged keyset was overwritten", name)
		}
	}
	// A keyset stored under another name's row fails too: the name is bound
	// as associated data.
	if _, err := db.Exec(`UPDATE keysets SET blob=(SELECT blob FROM keysets WHERE name=?) WHERE name=?`, Vault, Salt); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenRing(ctx, db, kek, true); err == nil || !strings.Contains(err.Error(), `keyset "salt"`) {
		t.Errorf("swapped keyset: err = %v", err)
	}
}

func TestMissingLocalKEKWithExistingKeysets(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openDB(t, dir)
	if _, _, err := Open(ctx, db, "", dir, true); err != nil {
		t.Fatal(err)
	}
	kekPath := filepath.Join(dir, "kek.json")
	if err := os.Remove(kekPath); err != nil {
		t.Fatal(err)
	}
	before := storedBlobs(t, db)
	_, _, err := Open(ctx, db, "", dir, true)
	if err == nil || !strings.Contains(err.Error(), "no new KEK or keys were created") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(kekPath); !os.IsNotExist(err) {
		t.Fatalf("kek file re-created (stat err %v)", err)
	}
	if !sameBlobs(before, storedBlobs(t, db)) {
		t.Fatal("keysets changed")
	}
}

func TestOpenKEKErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, _, err := OpenKEK(ctx, "", dir, false); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing file without allowCreate: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "kek.json")); !os.IsNotExist(err) {
		t.Error("kek file created without allowCreate")
	}
	if _, _, err := OpenKEK(ctx, "s3://bucket/key", dir, true); err == nil || !strings.Contains(err.Error(), `unknown scheme "s3"`) {
		t.Errorf("unknown scheme: %v", err)
	}
	if _, _, err := OpenKEK(ctx, "kek.json", dir, true); err == nil {
		t.Error("URI without scheme accepted")
	}

	path := filepath.Join(dir, "k.json")
	if _, _, err := OpenKEK(ctx, "local://"+path, dir, true); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenKEK(ctx, "local://"+path, dir, true); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable kek: %v", err)
	}
	if err := os.WriteFile(path, []byte(`{"key": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenKEK(ctx, "local://"+path, dir, true); err == nil || !strings.Contains(err.Error(), "not a Tink keyset") {
		t.Errorf("bad kek file: %v", err)
	}

	t.Setenv("VAULT_TOKEN", "")
	t.Setenv("VAULT_ADDR", "")
	if _, _, err := OpenKEK(ctx, "hcvault://127.0.0.1:8200/transit/keys/veil", dir, true); err == nil || !strings.Contains(err.Error(), "VAULT_TOKEN") {
		t.Errorf("vault without token: %v", err)
	}
	t.Setenv("VAULT_TOKEN", "t")
	if _, _, err := OpenKEK(ctx, "hcvault://127.0.0.1:8200/veil", dir, true); err == nil {
		t.Error("vault URI without /keys/ accepted")
	}
	t.Setenv("VAULT_ADDR", "http://vault.example:8200")
	if _, _, err := OpenKEK(ctx, "hcvault://127.0.0.1:8200/transit/keys/veil", dir, true); err == nil || !strings.Contains(err.Error(), "different server") {
		t.Errorf("VAULT_ADDR for another host: %v", err)
	}
}

func TestRotation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openDB(t, dir)
	r, _, err := Open(ctx, db, "", dir, true)
	if err != nil {
		t.Fatal(err)
	}
	salt := mustAEAD(t, r, Salt) // kept across the rotation, as callers do
	ad := []byte("2026-01-01")
	ct1, err := salt.Encrypt([]byte("old"), ad)
	if err != nil {
		t.Fatal(err)
	}
	oldPrimary := statusOf(t, r, Salt).PrimaryID
	newID, err := r.Rotate(ctx, Salt)
	if err != nil {
		t.Fatal(err)
	}
	if newID == oldPrimary {
		t.Fatal("rotation kept the primary id")
	}
	ct2, err := salt.Encrypt([]byte("new"), ad)
	if err != nil {
		t.Fatal(err)
	}
	// Tink prefixes ciphertexts with the key id: the new one must use the new key.
	if bytes.Equal(ct1[:5], ct2[:5]) {
		t.Fatal("encryption after rotation still uses the old key")
	}

	pz := mustPRF(t, r)
	v1, p1, err := pz.Compute([]byte("user-42"), 16)
	if err != nil {
		t.Fatal(err)
	}
	v2id, err := r.Rotate(ctx, Pseudonym)
	if err != nil {
		t.Fatal(err)
	}
	v2, p2, err := pz.Compute([]byte("user-42"), 16)
	if err != nil {
		t.Fatal(err)
	}
	if v2 != v2id || v2 == v1 || bytes.Equal(p1, p2) {
		t.Fatalf("rotation not visible: v1=%d v2=%d (rotate said %d), equal output %v", v1, v2, v2id, bytes.Equal(p1, p2))
	}

	// A fresh process sees the rotated keysets.
	r2, err := OpenRing(ctx, db, mustKEK(t, dir), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ct   []byte
		want string
	}{{ct1, "old"}, {ct2, "new"}} {
		pt, err := mustAEAD(t, r2, Salt).Decrypt(c.ct, ad)
		if err != nil || string(pt) != c.want {
			t.Fatalf("decrypt after rotation: %q %v", pt, err)
		}
	}
	old, err := mustPRF(t, r2).ComputeVersion(v1, []byte("user-42"), 16)
	if err != nil || !bytes.Equal(old, p1) {
		t.Fatalf("ComputeVersion(old) = %x %v, want %x", old, err, p1)
	}
	v3, p3, err := mustPRF(t, r2).Compute([]byte("user-42"), 16)
	if err != nil || v3 != v2 || !bytes.Equal(p3, p2) {
		t.Fatalf("primary pseudonym after reopen: %d %x %v", v3, p3, err)
	}
	if _, err := pz.ComputeVersion(12345, []byte("x"), 16); err == nil {
		t.Fatal("unknown version accepted")
	}
	if _, _, err := pz.Compute([]byte("x"), 0); err == nil {
		t.Fatal("zero length accepted")
	}
	for _, ks := range r2.Status() {
		want := 1
		if ks.Name == Salt || ks.Name == Pseudonym {
			want = 2
		}
		if len(ks.KeyIDs) != want || ks.PrimaryID != ks.KeyIDs[len(ks.KeyIDs)-1] {
			t.Fatalf("status %+v", ks)
		}
	}

	// r2 rotates behind r's back; r's next rotation must fail rather than
	// drop the key r2 added.
	if _, err := r2.Rotate(ctx, Vault); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Rotate(ctx, Vault); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("conflicting rotation: %v", err)
	}
}

func statusOf(t *testing.T, r *Ring, name string) KeysetInfo {
	t.Helper()
	for _, ks := range r.Status() {
		if ks.Name == name {
			return ks
		}
	}
	t.Fatalf("no status for %q", name)
	return KeysetInfo{}
}

func mustKEK(t *testing.T, dir string) tink.AEAD {
	t.Helper()
	kek, _, err := OpenKEK(context.Background(), "", dir, false)
	if err != nil {
		t.Fatal(err)
	}
	return kek
}

func TestConcurrentFirstStart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openDB(t, dir)
	const n = 4
	rings := make([]*Ring, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { rings[i], _, errs[i] = Open(ctx, db, "", dir, true) })
	}
	wg.Wait()
	var want []byte
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		_, p, err := mustPRF(t, rings[i]).Compute([]byte("x"), 16)
		if err != nil {
			t.Fatal(err)
		}
		if want == nil {
			want = p
		} else if !bytes.Equal(p, want) {
			t.Fatal("concurrent starters ended up with different keys")
		}
	}
	if n := len(storedBlobs(t, db)); n != 4 {
		t.Fatalf("%d keysets", n)
	}
	tmp, _ := filepath.Glob(filepath.Join(dir, ".kek-*"))
	if len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
}

func TestFakeKMSKEK(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, t.TempDir())
	uri, err := fakekms.NewKeyURI()
	if err != nil {
		t.Fatal(err)
	}
	kek, err := fakekms.NewAEAD(uri)
	if err != nil {
		t.Fatal(err)
	}
	r, err := OpenRing(ctx, db, kek, true)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := mustAEAD(t, r, Audit).Encrypt([]byte("signing key"), nil)
	if err != nil {
		t.Fatal(err)
	}
	again, err := fakekms.NewAEAD(uri)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := OpenRing(ctx, db, again, false)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := mustAEAD(t, r2, Audit).Decrypt(ct, nil); err != nil || string(pt) != "signing key" {
		t.Fatalf("%q %v", pt, err)
	}
	otherURI, _ := fakekms.NewKeyURI()
	other, _ := fakekms.NewAEAD(otherURI)
	if _, err := OpenRing(ctx, db, other, true); err == nil {
		t.Fatal("another KMS key opened the ring")
	}
}
