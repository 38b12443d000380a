package keys

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// transitEmulator answers Vault Transit's encrypt and decrypt endpoints the
// way Vault does (JSON shapes, "vault:v1:" ciphertexts, associated_data),
// backed by a Tink AEAD, so the real tink-go-hcvault client and Vault API
// client run end to end over HTTP.
type transitEmulator struct {
	token string
	key   string
	aead  tink.AEAD
	calls atomic.Int64
}

func (e *transitEmulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.calls.Add(1)
	fail := func(code int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string][]string{"errors": {msg}})
	}
	if r.Header.Get("X-Vault-Token") != e.token {
		fail(http.StatusForbidden, "permission denied")
		return
	}
	if r.Method != http.MethodPut && r.Method != http.MethodPost {
		fail(http.StatusMethodNotAllowed, "unsupported operation")
		return
	}
	var req struct {
		Plaintext      string `json:"plaintext"`
		Ciphertext     string `json:"ciphertext"`
		AssociatedData string `json:"associated_data"`
		Context        string `json:"context"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	if req.Context != "" {
		fail(http.StatusBadRequest, "context given for a key without derivation")
		return
	}
	ad, err := base64.StdEncoding.DecodeString(req.AssociatedData)
	if err != nil {
		fail(http.StatusBadRequest, "associated_data is not base64")
		return
	}
	var data map[string]string
	switch r.URL.Path {
	case "/v1/transit/encrypt/" + e.key:
		pt, err := base64.StdEncoding.DecodeString(req.Plaintext)
		if err != nil {
			fail(http.StatusBadRequest, "plaintext is not base64")
			return
		}
		ct, err := e.aead.Encrypt(pt, ad)
		if err != nil {
			fail(http.StatusInternalServerError, err.Error())
			return
		}
		data = map[string]string{"ciphertext": "vault:v1:" + base64.StdEncoding.EncodeToString(ct), "key_version": "1"}
	case "/v1/transit/decrypt/" + e.key:
		raw, ok := strings.CutPrefix(req.Ciphertext, "vault:v1:")
		ct, err := base64.StdEncoding.DecodeString(raw)
		if !ok || err != nil {
			fail(http.StatusBadRequest, "invalid ciphertext: no prefix")
			return
		}
		pt, err := e.aead.Decrypt(ct, ad)
		if err != nil {
			fail(http.StatusBadRequest, "cipher: message authentication failed")
			return
		}
		data = map[string]string{"plaintext": base64.StdEncoding.EncodeToString(pt)}
	default:
		fail(http.StatusNotFound, "no handler for route")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"data": data})
}

// exerciseVaultKEK runs the ring through an hcvault:// KEK: create, reopen,
// and refuse a different Transit key.
func exerciseVaultKEK(t *testing.T, uri, otherURI string) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openDB(t, dir)
	r, info, err := Open(ctx, db, uri, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if info.Scheme != SchemeHCVault || info.Created {
		t.Fatalf("info %+v", info)
	}
	if _, err := os.Stat(dir + "/kek.json"); !os.IsNotExist(err) {
		t.Fatal("a local KEK file was written for a Vault KEK")
	}
	ct, err := mustAEAD(t, r, Vault).Encrypt([]byte("data key"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	r2, _, err := Open(ctx, db, uri, dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := mustAEAD(t, r2, Vault).Decrypt(ct, []byte("ad")); err != nil || string(pt) != "data key" {
		t.Fatalf("%q %v", pt, err)
	}
	before := storedBlobs(t, db)
	if _, _, err := Open(ctx, db, otherURI, dir, true); err == nil || !strings.Contains(err.Error(), "NOT regenerated") {
		t.Fatalf("another Transit key: %v", err)
	}
	if !sameBlobs(before, storedBlobs(t, db)) {
		t.Fatal("keysets changed after a wrong KEK")
	}
}

func TestHCVaultKEKAgainstTransitEmulator(t *testing.T) {
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		t.Fatal(err)
	}
	a, err := aead.New(h)
	if err != nil {
		t.Fatal(err)
	}
	em := &transitEmulator{token: "s.test", key: "veil", aead: a}
	srv := httptest.NewServer(em)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	t.Setenv("VAULT_ADDR", srv.URL)
	t.Setenv("VAULT_TOKEN", "s.test")
	t.Setenv("VAULT_MAX_RETRIES", "0") // failures below are meant to fail fast

	exerciseVaultKEK(t, "hcvault://"+host+"/transit/keys/veil", "hcvault://"+host+"/transit/keys/other")
	if em.calls.Load() == 0 {
		t.Fatal("the emulator was never called")
	}

	uri := "hcvault://" + host + "/transit/keys/veil"
	db := openDB(t, t.TempDir())
	t.Setenv("VAULT_TOKEN", "wrong")
	if _, _, err := Open(context.Background(), db, uri, t.TempDir(), true); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("wrong token: %v", err)
	}
	// Without VAULT_ADDR saying otherwise, the client insists on HTTPS.
	t.Setenv("VAULT_TOKEN", "s.test")
	t.Setenv("VAULT_ADDR", "")
	calls := em.calls.Load()
	if _, _, err := Open(context.Background(), db, uri, t.TempDir(), true); err == nil {
		t.Fatal("plain-HTTP Vault used without VAULT_ADDR=http://")
	}
	if em.calls.Load() != calls {
		t.Fatal("a request reached the server over plain HTTP")
	}
}
