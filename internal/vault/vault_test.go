package vault

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/audit"
	"github.com/veil-analytics/veil/internal/keys"
	"github.com/veil-analytics/veil/internal/store/sqlitestore"
)

type recorder struct {
	mu      sync.Mutex
	entries []audit.Entry
	err     error
}

func (r *recorder) Record(_ context.Context, e audit.Entry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.entries = append(r.entries, e)
	return nil
}

func (r *recorder) all() []audit.Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]audit.Entry(nil), r.entries...)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	dir   string
	db    *sql.DB
	ring  *keys.Ring
	v     *Vault
	rec   *recorder
	clock *clock
}

func setup(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlitestore.Open(filepath.Join(dir, "veil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{dir: dir, db: st.SQL(), rec: &recorder{}, clock: &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}}
	e.ring, _, err = keys.Open(context.Background(), e.db, "", dir, true)
	if err != nil {
		t.Fatal(err)
	}
	e.v = e.open(t)
	return e
}

// open makes a Vault over the env's database, as a new process would.
func (e *env) open(t *testing.T) *Vault {
	t.Helper()
	master, err := e.ring.AEAD(keys.Vault)
	if err != nil {
		t.Fatal(err)
	}
	v, err := New(context.Background(), e.db, master, e.rec, e.clock.now)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (e *env) tokenize(t *testing.T, site, subject, field, value string) string {
	t.Helper()
	tok, err := e.v.Tokenize(context.Background(), site, subject, field, value)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// filesContaining lists the files in dir whose bytes contain needle.
func filesContaining(t *testing.T, dir string, needle []byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			hits = append(hits, filepath.Base(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

var tokenRE = regexp.MustCompile(`^tok_[A-Za-z0-9_-]{22}$`)

func TestTokenizeIsStableAndDistinct(t *testing.T) {
	e := setup(t)
	a := e.tokenize(t, "site1", "subj-a", "email", "a@example.com")
	if !tokenRE.MatchString(a) {
		t.Fatalf("token %q", a)
	}
	if again := e.tokenize(t, "site1", "subj-a", "email", "a@example.com"); again != a {
		t.Fatalf("same value got %q then %q", a, again)
	}
	seen := map[string]string{a: "base"}
	for name, args := range map[string][4]string{
		"other value":   {"site1", "subj-a", "email", "b@example.com"},
		"other field":   {"site1", "subj-a", "order", "a@example.com"},
		"other subject": {"site1", "subj-b", "email", "a@example.com"},
		"other site":    {"site2", "subj-a", "email", "a@example.com"},
		"unlinked":      {"site1", "", "email", "a@example.com"},
		"subject named": {"site1", "unlinked", "email", "a@example.com"},
	} {
		tok := e.tokenize(t, args[0], args[1], args[2], args[3])
		if prev, dup := seen[tok]; dup {
			t.Errorf("%s shares token with %s", name, prev)
		}
		seen[tok] = name
	}
	// A new process finds the same token.
	v2 := e.open(t)
	if tok, err := v2.Tokenize(context.Background(), "site1", "subj-a", "email", "a@example.com"); err != nil || tok != a {
		t.Fatalf("after reopen: %q %v", tok, err)
	}
	if _, err := e.v.Tokenize(context.Background(), "", "s", "email", "x"); err == nil {
		t.Fatal("empty site accepted")
	}
}

func TestNothingPersonalOnDisk(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	secrets := map[string]string{ // subject -> value
		"subject-ALICE-3f9c2e": "alice.wonderland@example.com",
		"subject-BOB-77d1a0":   "ORDER-BOB-99887766",
	}
	tokens := map[string]string{}
	for subj, val := range secrets {
		tokens[subj] = e.tokenize(t, "site1", subj, "email", val)
	}
	unlinked := e.tokenize(t, "site1", "", "coupon", "COUPON-UNLINKED-5544")
	check := func(stage string) {
		t.Helper()
		for subj, val := range secrets {
			for _, needle := range []string{subj, val} {
				if hits := filesContaining(t, e.dir, []byte(needle)); len(hits) > 0 {
					t.Errorf("%s: %q found in %v", stage, needle, hits)
				}
			}
		}
		if hits := filesContaining(t, e.dir, []byte("COUPON-UNLINKED-5544")); len(hits) > 0 {
			t.Errorf("%s: unlinked value found in %v", stage, hits)
		}
	}
	// Make sure the test looks where the data is: the WAL and the database.
	if hits := filesContaining(t, e.dir, []byte(tokens["subject-ALICE-3f9c2e"])); len(hits) == 0 {
		t.Fatal("token not found in any file: the scan does not see the database")
	}
	check("after tokenize")

	// Capture Alice's stored ciphertext and wrapped key: after erasure these
	// bytes must be gone from every file, not merely unreferenced.
	var ct, wrapped []byte
	if err := e.db.QueryRow(`SELECT v.ciphertext, k.wrapped FROM vault_values v JOIN vault_subject_keys k USING (site, subject) WHERE v.token=?`,
		tokens["subject-ALICE-3f9c2e"]).Scan(&ct, &wrapped); err != nil {
		t.Fatal(err)
	}
	if len(filesContaining(t, e.dir, wrapped)) == 0 {
		t.Fatal("wrapped key not found on disk before erase")
	}
	n, err := e.v.Erase(ctx, "site1", "subject-ALICE-3f9c2e")
	if err != nil || n != 1 {
		t.Fatalf("Erase = %d, %v", n, err)
	}
	check("after erase")
	for name, b := range map[string][]byte{"ciphertext": ct, "wrapped key": wrapped} {
		if hits := filesContaining(t, e.dir, b); len(hits) > 0 {
			t.Errorf("erased %s still in %v", name, hits)
		}
	}
	// The others are untouched.
	if got, err := e.v.Detokenize(ctx, tokens["subject-BOB-77d1a0"], "admin", "test"); err != nil || got != secrets["subject-BOB-77d1a0"] {
		t.Fatalf("Bob after Alice's erasure: %q %v", got, err)
	}
	if got, err := e.v.Detokenize(ctx, unlinked, "admin", "test"); err != nil || got != "COUPON-UNLINKED-5544" {
		t.Fatalf("unlinked: %q %v", got, err)
	}
}

func TestErase(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	t1 := e.tokenize(t, "site1", "subj", "email", "x@example.com")
	t2 := e.tokenize(t, "site1", "subj", "phone", "+441234")
	other := e.tokenize(t, "site2", "subj", "email", "x@example.com") // same subject ref on another site
	n, err := e.v.Erase(ctx, "site1", "subj")
	if err != nil || n != 2 {
		t.Fatalf("Erase = %d, %v", n, err)
	}
	for _, tok := range []string{t1, t2} {
		if v, err := e.v.Detokenize(ctx, tok, "admin", "dsr check"); !errors.Is(err, ErrShredded) || v != "" {
			t.Fatalf("after erase: %q %v", v, err)
		}
	}
	if _, err := e.v.Detokenize(ctx, other, "admin", "dsr check"); err != nil {
		t.Fatalf("another site's subject was erased: %v", err)
	}
	if _, err := e.v.Detokenize(ctx, "tok_neverissued0000000000", "admin", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown token: %v", err)
	}
	items, err := e.v.Export(ctx, "site1", "subj")
	if err != nil || len(items) != 0 {
		t.Fatalf("export after erase: %v %v", items, err)
	}
	if n, err := e.v.Erase(ctx, "site1", "subj"); err != nil || n != 0 {
		t.Fatalf("second erase = %d, %v", n, err)
	}
	if _, err := e.v.Erase(ctx, "site1", ""); err == nil {
		t.Fatal("erase of the unlinked bucket accepted")
	}
	// A fresh value for the same subject gets a new key and a new token.
	if tok := e.tokenize(t, "site1", "subj", "email", "x@example.com"); tok == t1 {
		t.Fatal("erased token reissued")
	}
}

func TestMasterRotationKeepsTokens(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	before := e.tokenize(t, "site1", "subj-old", "email", "old@example.com")
	var wrappedBefore []byte
	e.db.QueryRow(`SELECT wrapped FROM vault_subject_keys`).Scan(&wrappedBefore)
	if _, err := e.ring.Rotate(ctx, keys.Vault); err != nil {
		t.Fatal(err)
	}
	after := e.tokenize(t, "site1", "subj-new", "email", "new@example.com")
	var wrappedAfter []byte
	e.db.QueryRow(`SELECT k.wrapped FROM vault_subject_keys k JOIN vault_values v USING (site, subject) WHERE v.token=?`, after).Scan(&wrappedAfter)
	// Tink prefixes ciphertexts with the key id: the new data key must be
	// wrapped under the new master key.
	if len(wrappedBefore) == 0 || len(wrappedAfter) == 0 || bytes.Equal(wrappedBefore[:16], wrappedAfter[:16]) {
		t.Fatal("data key after rotation not wrapped under the new master key")
	}
	check := func(v *Vault) {
		t.Helper()
		for tok, want := range map[string]string{before: "old@example.com", after: "new@example.com"} {
			if got, err := v.Detokenize(ctx, tok, "admin", "rotation test"); err != nil || got != want {
				t.Fatalf("%s: %q %v", tok, got, err)
			}
		}
	}
	check(e.v)
	// A new process, reading the rotated ring from the database.
	ring2, _, err := keys.Open(ctx, e.db, "", e.dir, false)
	if err != nil {
		t.Fatal(err)
	}
	e.ring = ring2
	v2 := e.open(t)
	check(v2)
	if tok, err := v2.Tokenize(ctx, "site1", "subj-old", "email", "old@example.com"); err != nil || tok != before {
		t.Fatalf("lookup after rotation: %q %v", tok, err)
	}
}

func TestCorruptionIsAnError(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	a := e.tokenize(t, "site1", "subj", "email", "a@example.com")
	b := e.tokenize(t, "site1", "subj", "email", "b@example.com")
	c := e.tokenize(t, "site1", "subj2", "email", "c@example.com")

	var ct []byte
	if err := e.db.QueryRow(`SELECT ciphertext FROM vault_values WHERE token=?`, a).Scan(&ct); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(ct)
	bad[len(bad)-1] ^= 0x01
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE vault_values SET ciphertext=? WHERE token=?`, []any{bad, a}},
		// a's intact ciphertext under b's token: bound to a's token, so it fails.
		{`UPDATE vault_values SET ciphertext=? WHERE token=?`, []any{ct, b}},
		{`UPDATE vault_subject_keys SET wrapped=X'00' || wrapped WHERE subject=(SELECT subject FROM vault_values WHERE token=?)`, []any{c}},
	} {
		if _, err := e.db.Exec(q.sql, q.args...); err != nil {
			t.Fatal(err)
		}
	}

	for name, tok := range map[string]string{"flipped bit": a, "swapped ciphertext": b, "damaged data key": c} {
		v, err := e.v.Detokenize(ctx, tok, "admin", "test")
		if err == nil || v != "" || errors.Is(err, ErrNotFound) || errors.Is(err, ErrShredded) {
			t.Errorf("%s: %q, %v", name, v, err)
		}
	}
	if n := len(e.rec.all()); n != 0 {
		t.Fatalf("%d audit entries for failed detokenizations", n)
	}
	if _, err := e.v.Export(ctx, "site1", "subj"); err == nil {
		t.Fatal("export of a damaged value succeeded")
	}
}

func TestDetokenizeIsAudited(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	const value = "audited@example.com"
	tok := e.tokenize(t, "site1", "subj", "email", value)
	got, err := e.v.Detokenize(ctx, tok, "user:42", "support ticket 1234")
	if err != nil || got != value {
		t.Fatalf("%q %v", got, err)
	}
	entries := e.rec.all()
	if len(entries) != 1 {
		t.Fatalf("%d entries", len(entries))
	}
	en := entries[0]
	if en.Action != "vault.detokenize" || en.Actor != "user:42" || en.Target != tok || en.Reason != "support ticket 1234" || !en.Time.Equal(e.clock.now()) {
		t.Fatalf("entry %+v", en)
	}
	if s := fmt.Sprintf("%+v", en); strings.Contains(s, value) || strings.Contains(s, "subj") {
		t.Fatalf("entry holds personal data: %s", s)
	}
	for _, c := range [][2]string{{"", "reason"}, {"actor", ""}} {
		if _, err := e.v.Detokenize(ctx, tok, c[0], c[1]); err == nil {
			t.Fatalf("detokenize with actor %q reason %q accepted", c[0], c[1])
		}
	}
}

func TestFailingRecorderWithholdsValue(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	tok := e.tokenize(t, "site1", "subj", "email", "x@example.com")
	e.rec.err = errors.New("disk full")
	got, err := e.v.Detokenize(ctx, tok, "admin", "test")
	if err == nil || got != "" || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("%q %v", got, err)
	}
}

func TestConcurrentTokenizeAgrees(t *testing.T) {
	e := setup(t)
	const n = 32
	toks := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			toks[i], errs[i] = e.v.Tokenize(context.Background(), "site1", "subj", "email", "same@example.com")
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if toks[i] != toks[0] {
			t.Fatalf("goroutine %d got %q, goroutine 0 got %q", i, toks[i], toks[0])
		}
	}
	var values, subjectKeys int
	e.db.QueryRow(`SELECT COUNT(*) FROM vault_values`).Scan(&values)
	e.db.QueryRow(`SELECT COUNT(*) FROM vault_subject_keys`).Scan(&subjectKeys)
	if values != 1 || subjectKeys != 1 {
		t.Fatalf("%d value rows, %d subject keys", values, subjectKeys)
	}
}

func TestExportAndFields(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	t1 := e.tokenize(t, "site1", "subj", "email", "x@example.com")
	e.clock.advance(time.Minute)
	t2 := e.tokenize(t, "site1", "subj", "phone", "+441234")
	e.tokenize(t, "site1", "subj2", "email", "y@example.com")
	e.tokenize(t, "site1", "", "email", "anon@example.com")
	e.tokenize(t, "site2", "subj", "email", "z@example.com")

	items, err := e.v.Export(ctx, "site1", "subj")
	if err != nil {
		t.Fatal(err)
	}
	want := []Item{
		{Token: t1, Field: "email", Value: "x@example.com", Created: e.clock.now().Add(-time.Minute)},
		{Token: t2, Field: "phone", Value: "+441234", Created: e.clock.now()},
	}
	if len(items) != len(want) {
		t.Fatalf("export %+v", items)
	}
	for i := range want {
		if items[i].Token != want[i].Token || items[i].Field != want[i].Field || items[i].Value != want[i].Value || !items[i].Created.Equal(want[i].Created) {
			t.Fatalf("item %d = %+v, want %+v", i, items[i], want[i])
		}
	}
	if items, err := e.v.Export(ctx, "site1", "nobody"); err != nil || len(items) != 0 {
		t.Fatalf("unknown subject: %v %v", items, err)
	}
	if _, err := e.v.Export(ctx, "site1", ""); err == nil {
		t.Fatal("export of the unlinked bucket accepted")
	}

	fields, err := e.v.Fields(ctx, "site1")
	if err != nil {
		t.Fatal(err)
	}
	wantFields := []FieldCount{{"email", 3, 2}, {"phone", 1, 1}}
	if fmt.Sprint(fields) != fmt.Sprint(wantFields) {
		t.Fatalf("fields %v, want %v", fields, wantFields)
	}
}

func TestPurgeBefore(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	old := e.tokenize(t, "site1", "subj1", "email", "old@example.com")
	gone := e.tokenize(t, "site1", "subj2", "email", "only-old@example.com")
	erased := e.tokenize(t, "site1", "subj3", "email", "erased@example.com")
	if _, err := e.v.Erase(ctx, "site1", "subj3"); err != nil {
		t.Fatal(err)
	}
	otherSite := e.tokenize(t, "site2", "subj1", "email", "old@example.com")
	e.clock.advance(48 * time.Hour)
	cutoff := e.clock.now().Add(-time.Hour)
	kept := e.tokenize(t, "site1", "subj1", "phone", "+441234")

	n, err := e.v.PurgeBefore(ctx, "site1", cutoff)
	if err != nil || n != 2 {
		t.Fatalf("PurgeBefore = %d, %v", n, err)
	}
	for _, tok := range []string{old, gone, erased} {
		if _, err := e.v.Detokenize(ctx, tok, "admin", "test"); !errors.Is(err, ErrNotFound) {
			t.Errorf("purged %s: %v", tok, err)
		}
	}
	for _, tok := range []string{kept, otherSite} {
		if _, err := e.v.Detokenize(ctx, tok, "admin", "test"); err != nil {
			t.Errorf("kept %s: %v", tok, err)
		}
	}
	var keysLeft int
	e.db.QueryRow(`SELECT COUNT(*) FROM vault_subject_keys WHERE site='site1'`).Scan(&keysLeft)
	if keysLeft != 1 { // subj1 still has a value; subj2's key went with its last value
		t.Fatalf("%d subject keys left on site1", keysLeft)
	}
}

func TestNewRefusesWrongMasterAndLostLookupKey(t *testing.T) {
	ctx := context.Background()
	e := setup(t)
	e.tokenize(t, "site1", "subj", "email", "x@example.com")

	otherDir := t.TempDir()
	st, err := sqlitestore.Open(filepath.Join(otherDir, "other.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	otherRing, _, err := keys.Open(ctx, st.SQL(), "", otherDir, true)
	if err != nil {
		t.Fatal(err)
	}
	wrong, _ := otherRing.AEAD(keys.Vault)
	if _, err := New(ctx, e.db, wrong, e.rec, e.clock.now); err == nil {
		t.Fatal("vault opened with another master key")
	}
	if _, err := e.db.Exec(`DELETE FROM vault_meta`); err != nil {
		t.Fatal(err)
	}
	master, _ := e.ring.AEAD(keys.Vault)
	if _, err := New(ctx, e.db, master, e.rec, e.clock.now); err == nil || !strings.Contains(err.Error(), "lookup key is missing") {
		t.Fatalf("lost lookup key: %v", err)
	}
	var n int
	e.db.QueryRow(`SELECT COUNT(*) FROM vault_meta`).Scan(&n)
	if n != 0 {
		t.Fatal("a new lookup key was created over existing data")
	}
}

func TestConcurrentFirstNewAgreesOnLookupKey(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlitestore.Open(filepath.Join(dir, "veil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	ring, _, err := keys.Open(ctx, st.SQL(), "", dir, true)
	if err != nil {
		t.Fatal(err)
	}
	master, _ := ring.AEAD(keys.Vault)
	const n = 4
	vaults := make([]*Vault, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { vaults[i], errs[i] = New(ctx, st.SQL(), master, &recorder{}, time.Now) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
	}
	first, err := vaults[0].Tokenize(ctx, "s", "subj", "f", "v")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < n; i++ {
		if tok, err := vaults[i].Tokenize(ctx, "s", "subj", "f", "v"); err != nil || tok != first {
			t.Fatalf("vault %d: %q %v, want %q", i, tok, err, first)
		}
	}
}
