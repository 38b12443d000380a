package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
)

const testOrigin = "veil.test/audit"

type testKey struct {
	signer   note.Signer
	verifier note.Verifier
}

func newKey(t testing.TB, name string) testKey {
	t.Helper()
	skey, vkey, err := GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{s, v}
}

func openLog(t testing.TB, dir string, k testKey) *Log {
	t.Helper()
	l, err := Open(dir, k.signer, k.verifier, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func testEntry(i int) Entry {
	return Entry{
		Time:   t0.Add(time.Duration(i) * time.Minute),
		Actor:  fmt.Sprintf("actor-%d", i%3),
		Action: []string{"site.create", "vault.detokenize", "dp.release"}[i%3],
		Target: fmt.Sprintf("site-%d/obj-%d", i%2, i),
		Reason: "test",
		Detail: map[string]string{"n": fmt.Sprint(i), "b": "x", "a": "y"},
	}
}

func record(t testing.TB, l *Log, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := l.Record(context.Background(), testEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
}

// mth is RFC 6962's Merkle Tree Hash, written out from the RFC with plain
// SHA-256 so that the log's tree is checked against something that shares
// no code with it.
func mth(leaves [][]byte) []byte {
	switch n := len(leaves); n {
	case 0:
		h := sha256.Sum256(nil)
		return h[:]
	case 1:
		h := sha256.Sum256(append([]byte{0}, leaves[0]...))
		return h[:]
	default:
		k := 1
		for k*2 < n {
			k *= 2
		}
		h := sha256.Sum256(append(append([]byte{1}, mth(leaves[:k])...), mth(leaves[k:])...))
		return h[:]
	}
}

// fileLines returns the lines of dir's entries file.
func fileLines(t testing.TB, dir string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, entriesFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	return lines
}

func writeLines(t testing.TB, dir string, lines [][]byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, entriesFile), bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

func trimmed(lines [][]byte) [][]byte {
	out := make([][]byte, len(lines))
	for i, l := range lines {
		out[i] = bytes.TrimSuffix(l, []byte("\n"))
	}
	return out
}

func parsedCheckpoint(t testing.TB, cp []byte, k testKey) (uint64, []byte) {
	t.Helper()
	c, err := parseCheckpoint(cp, k.verifier, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	return c.Size, c.Hash
}

func TestRecordVerifyAndProofs(t *testing.T) {
	k := newKey(t, testOrigin)
	dir := t.TempDir()
	l := openLog(t, dir, k)
	const n = 21
	record(t, l, 0, n)

	cp, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	size, root := parsedCheckpoint(t, cp, k)
	leaves := trimmed(fileLines(t, dir))
	if size != n || len(leaves) != n {
		t.Fatalf("checkpoint size %d, %d lines, want %d", size, len(leaves), n)
	}
	if !bytes.Equal(root, mth(leaves)) {
		t.Fatal("checkpoint root differs from RFC 6962 MTH of the entries")
	}
	// Each leaf is canonical JSON binding the entry to its index.
	var first map[string]any
	if err := json.Unmarshal(leaves[3], &first); err != nil {
		t.Fatal(err)
	}
	if first["index"] != 3.0 || first["actor"] != "actor-0" || first["time"] != "2025-03-01T12:03:00Z" {
		t.Fatalf("leaf 3 = %s", leaves[3])
	}

	rep, err := Verify(dir, k.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Size != n || !bytes.Equal(rep.Root, root) || len(rep.Problems) != 0 || rep.Origin != testOrigin {
		t.Fatalf("report %+v", rep)
	}

	for i := range uint64(n) {
		p, err := l.InclusionProof(i, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(hasher, i, n, leafHash(leaves[i]), p, root); err != nil {
			t.Fatalf("inclusion of %d: %v", i, err)
		}
		if err := proof.VerifyInclusion(hasher, i, n, leafHash(leaves[(i+1)%n]), p, root); err == nil {
			t.Fatalf("inclusion proof of %d accepted another leaf", i)
		}
	}
	for m := range n + 1 {
		for nn := m; nn <= n; nn++ {
			p, err := l.ConsistencyProof(uint64(m), uint64(nn))
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyConsistency(hasher, uint64(m), uint64(nn), p, mth(leaves[:m]), mth(leaves[:nn])); err != nil {
				t.Fatalf("consistency %d→%d: %v", m, nn, err)
			}
		}
	}
	if _, err := l.InclusionProof(n, n+1); err == nil {
		t.Fatal("proof for a size beyond the log")
	}
}

func TestReopenContinuesTree(t *testing.T) {
	k := newKey(t, testOrigin)
	dir := t.TempDir()
	l := openLog(t, dir, k)
	record(t, l, 0, 7)
	old, _ := l.Checkpoint()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Record(context.Background(), testEntry(99)); err != ErrClosed {
		t.Fatalf("Record after Close: %v", err)
	}

	l = openLog(t, dir, k)
	if r := l.Recovery(); r != (Recovery{}) {
		t.Fatalf("clean reopen reported recovery %+v", r)
	}
	record(t, l, 7, 13)
	cp, _ := l.Checkpoint()
	size, root := parsedCheckpoint(t, cp, k)
	leaves := trimmed(fileLines(t, dir))
	if size != 13 || !bytes.Equal(root, mth(leaves)) {
		t.Fatalf("after reopen: size %d, root matches from-scratch: %v", size, bytes.Equal(root, mth(leaves)))
	}
	oldSize, oldRoot := parsedCheckpoint(t, old, k)
	p, err := l.ConsistencyProof(oldSize, size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(hasher, oldSize, size, p, oldRoot, root); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(dir, k.verifier, old); err != nil {
		t.Fatal(err)
	}
}

func TestRecordValidation(t *testing.T) {
	k := newKey(t, testOrigin)
	l := openLog(t, t.TempDir(), k)
	ctx := context.Background()
	if err := l.Record(ctx, Entry{Actor: "a"}); err == nil {
		t.Fatal("entry without action accepted")
	}
	big := Entry{Action: "x", Detail: map[string]string{"k": strings.Repeat("a", MaxEntrySize)}}
	if err := l.Record(ctx, big); err == nil {
		t.Fatal("oversized entry accepted")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.Record(cancelled, testEntry(0)); err == nil {
		t.Fatal("Record with a cancelled context succeeded")
	}
	l.now = func() time.Time { return t0 }
	if err := l.Record(ctx, Entry{Action: "site.create", Target: "s1\nforged line"}); err != nil {
		t.Fatal(err)
	}
	got, err := l.Entries(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Index != 0 || !got[0].Entry.Time.Equal(t0) || got[0].Entry.Target != "s1\nforged line" {
		t.Fatalf("entries %+v", got)
	}
	if n := len(fileLines(t, l.dir)); n != 1 {
		t.Fatalf("a newline inside a field produced %d lines", n)
	}
}

func TestOpenRefuses(t *testing.T) {
	k := newKey(t, testOrigin)
	dir := t.TempDir()
	l := openLog(t, dir, k)
	record(t, l, 0, 5)

	if _, err := Open(dir, k.signer, k.verifier, testOrigin); err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second Open of a log in use: %v", err)
	}
	l.Close()

	other := newKey(t, testOrigin)
	if _, err := Open(dir, other.signer, k.verifier, testOrigin); err == nil {
		t.Fatal("Open accepted a verifier of another key")
	}
	if _, err := Open(dir, other.signer, other.verifier, testOrigin); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("Open with a key that did not sign the checkpoint: %v", err)
	}
	if _, err := Open(dir, k.signer, k.verifier, "other-origin"); err == nil {
		t.Fatal("Open accepted a checkpoint of another origin")
	}

	tampered := copyDir(t, dir)
	lines := fileLines(t, tampered)
	lines[2] = bytes.Replace(lines[2], []byte("actor-2"), []byte("actor-7"), 1)
	writeLines(t, tampered, lines)
	if _, err := Open(tampered, k.signer, k.verifier, testOrigin); err == nil || !strings.Contains(err.Error(), "does not match the signed checkpoint") {
		t.Fatalf("Open of a modified log: %v", err)
	}

	noCheckpoint := copyDir(t, dir)
	os.Remove(filepath.Join(noCheckpoint, checkpointFile))
	if _, err := Open(noCheckpoint, k.signer, k.verifier, testOrigin); err == nil || !strings.Contains(err.Error(), "checkpoint is missing") {
		t.Fatalf("Open without checkpoint: %v", err)
	}

	// A missing final line with nothing after it is a deletion, not a crash.
	short := copyDir(t, dir)
	writeLines(t, short, fileLines(t, short)[:4])
	if _, err := Open(short, k.signer, k.verifier, testOrigin); err == nil || !strings.Contains(err.Error(), "4 entries but its checkpoint signs 5") {
		t.Fatalf("Open of a shortened log: %v", err)
	}
}

func TestConcurrentRecord(t *testing.T) {
	k := newKey(t, testOrigin)
	dir := t.TempDir()
	l := openLog(t, dir, k)
	const writers, each = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				errs <- l.Record(context.Background(), Entry{Action: "query.adhoc", Actor: fmt.Sprint(w), Target: fmt.Sprint(i)})
			}
		})
	}
	// Readers run alongside and must only ever see committed entries.
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := l.Entries(context.Background(), Filter{Limit: 10}); err != nil {
				errs <- err
			}
			if n := l.Size(); n > 0 {
				if _, err := l.InclusionProof(n-1, n); err != nil {
					errs <- err
				}
			}
		}
	})
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	got, err := l.Entries(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range got {
		key := e.Entry.Actor + "/" + e.Entry.Target
		if seen[key] {
			t.Fatalf("entry %s recorded twice", key)
		}
		seen[key] = true
	}
	if len(seen) != writers*each || l.Size() != writers*each {
		t.Fatalf("%d distinct entries, size %d, want %d", len(seen), l.Size(), writers*each)
	}
	if _, err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(dir, k.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Size != writers*each || !bytes.Equal(rep.Root, mth(trimmed(fileLines(t, dir)))) {
		t.Fatalf("report %+v", rep)
	}
}

func TestEntriesFilter(t *testing.T) {
	k := newKey(t, testOrigin)
	l := openLog(t, t.TempDir(), k)
	record(t, l, 0, 30)
	ctx := context.Background()

	indexes := func(f Filter) []uint64 {
		t.Helper()
		got, err := l.Entries(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []uint64
		for _, g := range got {
			out = append(out, g.Index)
		}
		return out
	}
	cases := []struct {
		f    Filter
		want []uint64
	}{
		{Filter{Limit: 3}, []uint64{29, 28, 27}},
		{Filter{Limit: 2, Offset: 1}, []uint64{28, 27}},
		{Filter{Action: "vault.detokenize", Limit: 3}, []uint64{28, 25, 22}},
		{Filter{Actor: "actor-2", Action: "dp.release", Since: t0.Add(20 * time.Minute)}, []uint64{29, 26, 23, 20}},
		{Filter{TargetPrefix: "site-1/", Until: t0.Add(6 * time.Minute)}, []uint64{5, 3, 1}},
		{Filter{Actor: "nobody"}, nil},
		{Filter{Offset: 30}, nil},
	}
	for _, c := range cases {
		if got := indexes(c.f); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%+v: got %v, want %v", c.f, got, c.want)
		}
	}
	if _, err := l.Entries(ctx, Filter{Limit: -1}); err == nil {
		t.Error("negative limit accepted")
	}

	// Reading in chunks smaller than the file gives the same answer.
	all := indexes(Filter{})
	defer func(n int64) { readChunk = n }(readChunk)
	readChunk = 700
	if got := indexes(Filter{}); len(all) != 30 || fmt.Sprint(got) != fmt.Sprint(all) {
		t.Fatalf("chunked read: %v, want %v", got, all)
	}

	// The leaf hash an admin sees is the one the tree commits to.
	got, _ := l.Entries(ctx, Filter{Limit: 1, Offset: 4})
	cp, _ := l.Checkpoint()
	size, root := parsedCheckpoint(t, cp, k)
	p, _ := l.InclusionProof(got[0].Index, size)
	h, _ := hex.DecodeString(got[0].LeafHash)
	if err := proof.VerifyInclusion(hasher, got[0].Index, size, h, p, root); err != nil {
		t.Fatal(err)
	}
	if want := testEntry(25); got[0].Entry.Actor != want.Actor || got[0].Entry.Detail["n"] != "25" {
		t.Fatalf("entry 25 = %+v", got[0].Entry)
	}
}

func TestEntriesNoticesChangesOnDisk(t *testing.T) {
	k := newKey(t, testOrigin)
	dir := t.TempDir()
	l := openLog(t, dir, k)
	record(t, l, 0, 4)
	lines := fileLines(t, dir)
	lines[1] = bytes.Replace(lines[1], []byte("actor-1"), []byte("actor-X"), 1)
	writeLines(t, dir, lines)
	if _, err := l.Entries(context.Background(), Filter{}); err == nil || !strings.Contains(err.Error(), "entry 1 was modified") {
		t.Fatalf("Entries over a modified file: %v", err)
	}
}

func TestCheckpointsFollowAppends(t *testing.T) {
	k := newKey(t, testOrigin)
	dir := t.TempDir()
	l := openLog(t, dir, k)
	record(t, l, 0, 9)
	// Nobody asks for a checkpoint: the background writer must still sign
	// what was recorded, promptly.
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dir, checkpointFile))
		if err != nil {
			t.Fatal(err)
		}
		if size, root := parsedCheckpoint(t, b, k); size == 9 {
			if !bytes.Equal(root, mth(trimmed(fileLines(t, dir)))) {
				t.Fatal("background checkpoint has a wrong root")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("checkpoint file never caught up with the entries")
		}
		time.Sleep(5 * time.Millisecond)
	}

	record(t, l, 9, 12)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if rep, err := Verify(dir, k.verifier, nil); err != nil || rep.Size != 12 || len(rep.Problems) != 0 {
		t.Fatalf("after Close: %+v, %v", rep, err)
	}
}

func TestCheckpointFailureFailsRecord(t *testing.T) {
	k := newKey(t, testOrigin)
	dir := t.TempDir()
	l := openLog(t, dir, k)
	record(t, l, 0, 2)
	l.Checkpoint()
	// A directory where the checkpoint goes makes every rename over it fail
	// (permissions would not: tests may run as root).
	cpPath := filepath.Join(dir, checkpointFile)
	if err := os.Remove(cpPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(cpPath, 0o700); err != nil {
		t.Fatal(err)
	}
	// The background write fails after this Record returns, or a
	// synchronous one in Checkpoint fails; either way the next Record hears.
	l.Record(context.Background(), testEntry(2))
	if _, err := l.Checkpoint(); err == nil {
		t.Fatal("Checkpoint succeeded although it could not be written")
	}
	err := l.Record(context.Background(), testEntry(3))
	if err == nil || !strings.Contains(err.Error(), "entry stored, but checkpoints are failing") {
		t.Fatalf("Record while checkpoints fail: %v", err)
	}
	if l.Size() != 4 {
		t.Fatalf("size %d: entries should be stored all the same", l.Size())
	}

	os.Remove(cpPath)
	cp, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if size, _ := parsedCheckpoint(t, cp, k); size != 4 {
		t.Fatalf("checkpoint size %d after recovery", size)
	}
	if err := l.Record(context.Background(), testEntry(4)); err != nil {
		t.Fatal(err)
	}
}
