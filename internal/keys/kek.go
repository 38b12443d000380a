// Package keys manages Veil's cryptographic keys. Every key lives in a Tink
// keyset; keysets are stored encrypted under a key-encryption key (KEK) that
// is named by a URI and, in production, never leaves a KMS.
package keys

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/vault/api"
	"github.com/tink-crypto/tink-go-awskms/v3/integration/awskms"
	"github.com/tink-crypto/tink-go-gcpkms/v2/integration/gcpkms"
	"github.com/tink-crypto/tink-go-hcvault/v2/integration/hcvault"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/core/registry"
	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// KEK URI schemes.
const (
	SchemeLocal   = "local"
	SchemeHCVault = "hcvault"
	SchemeAWSKMS  = "aws-kms"
	SchemeGCPKMS  = "gcp-kms"
)

// Info describes the KEK that was opened, without key material, for logs and
// `veil keys list`.
type Info struct {
	URI     string // as resolved (the default local URI is filled in)
	Scheme  string // one of the Scheme constants
	Created bool   // a new local key file was written by this call
}

// OpenKEK returns the key-encryption key named by uri.
//
//   - "" or "local://PATH": an AES256-GCM keyset kept in cleartext in the JSON
//     file PATH (default <dataDir>/kek.json). Anyone who can read that file and
//     the database can read every key, so it is for development and single-box
//     installs; production should use a KMS. The file is created (mode 0600)
//     only when it is missing and allowCreate is true; a file readable by
//     group or others is refused.
//   - "hcvault://HOST[:PORT]/MOUNT/keys/NAME": a HashiCorp Vault (or OpenBao)
//     Transit key; create it with derived=false. The token comes from
//     VAULT_TOKEN, and TLS settings from Vault's usual variables (VAULT_CACERT,
//     VAULT_CLIENT_CERT, VAULT_CLIENT_KEY, VAULT_SKIP_VERIFY). Requests use
//     HTTPS unless VAULT_ADDR is set to an http:// address of the same
//     HOST:PORT, as `vault server -dev` suggests; a VAULT_ADDR naming another
//     server is an error rather than a silent choice between the two.
//   - "aws-kms://arn:aws:kms:REGION:ACCOUNT:key/ID": AWS KMS with the SDK's
//     default credential chain.
//   - "gcp-kms://projects/P/locations/L/keyRings/R/cryptoKeys/K": Google Cloud
//     KMS with application default credentials.
//
// Remote KEKs are used directly (one KMS call per keyset read or write), so
// the keyset name travels to the KMS as associated data and a keyset cannot
// be swapped for another under the same KEK.
func OpenKEK(ctx context.Context, uri, dataDir string, allowCreate bool) (tink.AEAD, Info, error) {
	if uri == "" {
		uri = SchemeLocal + "://" + filepath.Join(dataDir, "kek.json")
	}
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return nil, Info{}, fmt.Errorf("KEK URI %q: want local://PATH, hcvault://, aws-kms:// or gcp-kms://", uri)
	}
	info := Info{URI: uri, Scheme: scheme}
	var (
		kek tink.AEAD
		err error
	)
	switch scheme {
	case SchemeLocal:
		kek, info.Created, err = openLocalKEK(rest, allowCreate)
	case SchemeHCVault:
		kek, err = openVaultKEK(uri)
	case SchemeAWSKMS:
		var c registry.KMSClient
		if c, err = awskms.NewClientWithOptions(ctx, uri); err == nil {
			kek, err = c.GetAEAD(uri)
		}
	case SchemeGCPKMS:
		var c *gcpkms.Client
		if c, err = gcpkms.NewClient(ctx, uri); err == nil {
			kek, err = c.GetAEAD(uri)
		}
	default:
		return nil, Info{}, fmt.Errorf("KEK URI %q: unknown scheme %q (want local, hcvault, aws-kms or gcp-kms)", uri, scheme)
	}
	if err != nil {
		return nil, Info{}, fmt.Errorf("KEK %s: %w", uri, err)
	}
	return kek, info, nil
}

// openLocalKEK reads the cleartext KEK keyset at path, creating it first when
// allowed. Creation writes a temporary file and links it into place, so two
// processes starting together end up sharing whichever key was linked first
// and a half-written file is never seen.
func openLocalKEK(path string, allowCreate bool) (tink.AEAD, bool, error) {
	if path == "" {
		return nil, false, errors.New("local KEK URI has no path")
	}
	kek, err := readLocalKEK(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return kek, false, err
	}
	if !allowCreate {
		return nil, false, fmt.Errorf("key file %s does not exist and creating keys is not allowed here", path)
	}
	created, err := createLocalKEK(path)
	if err != nil {
		return nil, false, err
	}
	if created {
		slog.Warn("created a local key-encryption key file: it is for development only; "+
			"anyone who can read it and the database can read every key. "+
			"In production set the KEK URI to a KMS (hcvault://, aws-kms:// or gcp-kms://)",
			"path", path)
	}
	kek, err = readLocalKEK(path)
	return kek, created, err
}

func readLocalKEK(path string) (tink.AEAD, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key file %s is accessible by group or others (mode %04o); run chmod 600 on it", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	h, err := insecurecleartextkeyset.Read(keyset.NewJSONReader(bytes.NewReader(b)))
	if err != nil {
		return nil, fmt.Errorf("key file %s is not a Tink keyset: %w", path, err)
	}
	a, err := aead.New(h)
	if err != nil {
		return nil, fmt.Errorf("key file %s does not hold an AEAD keyset: %w", path, err)
	}
	return a, nil
}

// createLocalKEK writes a fresh keyset to path unless a file is already
// there; it reports whether this call created the file.
func createLocalKEK(path string) (bool, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return false, err
	}
	var buf bytes.Buffer
	if err := insecurecleartextkeyset.Write(h, keyset.NewJSONWriter(&buf)); err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(dir, ".kek-*.tmp") // CreateTemp uses mode 0600
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	// Link, unlike rename, fails when path exists: a concurrent creator's
	// key is never replaced.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

func openVaultKEK(uri string) (tink.AEAD, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, err
	}
	if u.Host == "" || !strings.Contains(u.Path, "/keys/") {
		return nil, errors.New("want hcvault://HOST[:PORT]/MOUNT/keys/NAME")
	}
	scheme := "https"
	if addr := os.Getenv("VAULT_ADDR"); addr != "" {
		a, err := url.Parse(addr)
		if err != nil || (a.Scheme != "http" && a.Scheme != "https") {
			return nil, fmt.Errorf("VAULT_ADDR %q is not an http(s) URL", addr)
		}
		if a.Host != u.Host {
			return nil, fmt.Errorf("VAULT_ADDR %q names a different server than the KEK URI (%s)", addr, u.Host)
		}
		scheme = a.Scheme
	}
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, cfg.Error
	}
	cfg.Address = scheme + "://" + u.Host
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	if client.Token() == "" {
		return nil, errors.New("VAULT_TOKEN is not set")
	}
	c, err := hcvault.NewClientWithAEADOptions(SchemeHCVault+"://"+u.Host, client.Logical())
	if err != nil {
		return nil, err
	}
	return c.GetAEAD(uri)
}
