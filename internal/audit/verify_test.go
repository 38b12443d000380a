package audit

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, d.Name()), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// renumber rewrites each line's index to its position, as an attacker who
// read the format would after deleting or moving entries.
func renumber(t testing.TB, lines [][]byte) [][]byte {
	t.Helper()
	out := make([][]byte, len(lines))
	for i, line := range lines {
		var l leaf
		if err := json.Unmarshal(line, &l); err != nil {
			t.Fatal(err)
		}
		b, err := encodeLeaf(uint64(i), l.Entry)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = append(b, '\n')
	}
	return out
}

// tamperFixture is a log of 20 entries, a copy of the same log taken at 12
// entries, and the checkpoint at 20 as a witness would hold it.
type tamperFixture struct {
	key     testKey
	dir     string
	old     string
	trusted []byte
}

func newTamperFixture(t *testing.T) tamperFixture {
	k := newKey(t, testOrigin)
	dir := t.TempDir()
	l := openLog(t, dir, k)
	record(t, l, 0, 12)
	if _, err := l.Checkpoint(); err != nil { // the copy gets the checkpoint at 12
		t.Fatal(err)
	}
	old := copyDir(t, dir)
	record(t, l, 12, 20)
	trusted, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return tamperFixture{k, dir, old, trusted}
}

func TestVerifyDetectsTampering(t *testing.T) {
	fx := newTamperFixture(t)
	if rep, err := Verify(fx.dir, fx.key.verifier, fx.trusted); err != nil || rep.Size != 20 || rep.TrustedSize != 20 {
		t.Fatalf("untouched log: %+v, %v", rep, err)
	}

	editLines := func(edit func([][]byte) [][]byte) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) { writeLines(t, dir, edit(fileLines(t, dir))) }
	}
	cases := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		// wantTrusted is the error against the witness's checkpoint,
		// wantAlone the one with no trusted checkpoint ("" if the log alone
		// cannot tell).
		wantTrusted, wantAlone string
	}{
		{"one byte of an actor", editLines(func(l [][]byte) [][]byte {
			l[17] = bytes.Replace(l[17], []byte(`"actor":"actor-2"`), []byte(`"actor":"actor-3"`), 1)
			return l
		}), "root at size 20 does not match the trusted checkpoint", "root at size 20 does not match the log's signed checkpoint"},
		{"one byte of a detail value", editLines(func(l [][]byte) [][]byte {
			l[0] = bytes.Replace(l[0], []byte(`"n":"0"`), []byte(`"n":"1"`), 1)
			return l
		}), "root at size 20 does not match the trusted checkpoint", "does not match the log's signed checkpoint"},
		{"entry deleted", editLines(func(l [][]byte) [][]byte {
			return append(l[:5:5], l[6:]...)
		}), "entry at position 5 carries index 6", "entry at position 5 carries index 6"},
		{"entry deleted and the rest renumbered", editLines(func(l [][]byte) [][]byte {
			return renumber(t, append(l[:5:5], l[6:]...))
		}), "log is shorter (19) than the trusted checkpoint (20)", "log is shorter (19) than its own signed checkpoint (20)"},
		{"entry replaced by renumbering and appending one", editLines(func(l [][]byte) [][]byte {
			return renumber(t, append(append(l[:5:5], l[6:]...), l[5]))
		}), "root at size 20 does not match the trusted checkpoint", "does not match the log's signed checkpoint"},
		{"two entries swapped", editLines(func(l [][]byte) [][]byte {
			l[3], l[4] = l[4], l[3]
			return l
		}), "entry at position 3 carries index 4", "entry at position 3 carries index 4"},
		{"two entries swapped and renumbered", editLines(func(l [][]byte) [][]byte {
			l[3], l[4] = l[4], l[3]
			return renumber(t, l)
		}), "root at size 20 does not match the trusted checkpoint", "does not match the log's signed checkpoint"},
		{"rolled back to an older copy with its checkpoint", func(t *testing.T, dir string) {
			replaceDir(t, dir, fx.old)
		}, "log is shorter (12) than the trusted checkpoint (20): entries were deleted or the log was rolled back", ""},
		{"rolled back by the key holder and regrown to the same size", func(t *testing.T, dir string) {
			replaceDir(t, dir, fx.old)
			l := openLog(t, dir, fx.key)
			record(t, l, 112, 120)
			l.Close()
		}, "root at size 20 does not match the trusted checkpoint", ""},
		{"modified and checkpoint re-signed with another key", func(t *testing.T, dir string) {
			lines := fileLines(t, dir)
			lines[17] = bytes.Replace(lines[17], []byte("actor-2"), []byte("actor-3"), 1)
			writeLines(t, dir, lines)
			forger := newKey(t, testOrigin) // same name, different key
			cp, err := signCheckpoint(forger.signer, testOrigin, 20, mth(trimmed(lines)))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, checkpointFile), cp, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "log checkpoint: checkpoint signature invalid", "log checkpoint: checkpoint signature invalid"},
		{"checkpoint signature bytes edited", func(t *testing.T, dir string) {
			path := filepath.Join(dir, checkpointFile)
			b, _ := os.ReadFile(path)
			i := bytes.LastIndexByte(b, ' ') + 10
			b[i] ^= 'A' ^ 'B'
			os.WriteFile(path, b, 0o600)
		}, "checkpoint signature invalid", "checkpoint signature invalid"},
		{"checkpoint deleted", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, checkpointFile))
		}, "log checkpoint", "log checkpoint"},
		{"garbage line", editLines(func(l [][]byte) [][]byte {
			l[8] = []byte("not json\n")
			return l
		}), "entry 8 is not valid JSON", "entry 8 is not valid JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, fx.dir)
			c.tamper(t, dir)
			_, err := Verify(dir, fx.key.verifier, fx.trusted)
			if err == nil || !strings.Contains(err.Error(), c.wantTrusted) {
				t.Errorf("with trusted checkpoint: got %v, want %q", err, c.wantTrusted)
			}
			_, err = Verify(dir, fx.key.verifier, nil)
			if c.wantAlone == "" {
				if err != nil {
					t.Errorf("without trusted checkpoint: %v (this tampering is self-consistent; only a witness sees it)", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), c.wantAlone) {
				t.Errorf("without trusted checkpoint: got %v, want %q", err, c.wantAlone)
			}
		})
	}
}

func replaceDir(t *testing.T, dir, from string) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(copyDir(t, from), dir); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyRejectsForgedTrustedCheckpoint(t *testing.T) {
	fx := newTamperFixture(t)
	forger := newKey(t, testOrigin)
	forged, err := signCheckpoint(forger.signer, testOrigin, 20, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(fx.dir, fx.key.verifier, forged); err == nil || !strings.Contains(err.Error(), "trusted checkpoint: checkpoint signature invalid") {
		t.Fatalf("forged trusted checkpoint: %v", err)
	}
	other, err := signCheckpoint(fx.key.signer, "another-log", 5, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(fx.dir, fx.key.verifier, other); err == nil || !strings.Contains(err.Error(), `for log "another-log"`) {
		t.Fatalf("trusted checkpoint of another log: %v", err)
	}
}

func TestVerifyWitnessed(t *testing.T) {
	k := newKey(t, testOrigin)
	dir := t.TempDir()
	witness := filepath.Join(t.TempDir(), "witness")
	l := openLog(t, dir, k)
	record(t, l, 0, 6)
	l.Checkpoint() // sign everything recorded so far

	rep, err := VerifyWitnessed(dir, k.verifier, witness)
	if err != nil || rep.TrustedSize != 0 || rep.Size != 6 {
		t.Fatalf("first run: %+v, %v", rep, err)
	}
	old := copyDir(t, dir)
	record(t, l, 6, 10)
	l.Checkpoint()
	if rep, err = VerifyWitnessed(dir, k.verifier, witness); err != nil || rep.TrustedSize != 6 || rep.Size != 10 {
		t.Fatalf("second run: %+v, %v", rep, err)
	}
	saved, _ := LoadTrusted(witness)
	if cp, _ := l.Checkpoint(); !bytes.Equal(saved, cp) {
		t.Fatal("witness not advanced to the verified checkpoint")
	}
	l.Close()

	replaceDir(t, dir, old)
	if _, err := VerifyWitnessed(dir, k.verifier, witness); err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("rollback: %v", err)
	}
	if after, _ := LoadTrusted(witness); !bytes.Equal(after, saved) {
		t.Fatal("a failed verification changed the witness")
	}
}

func TestTornFinalWrite(t *testing.T) {
	k := newKey(t, testOrigin)
	dir := t.TempDir()
	l := openLog(t, dir, k)
	record(t, l, 0, 5)
	l.Close()

	next, err := encodeLeaf(5, testEntry(5))
	if err != nil {
		t.Fatal(err)
	}
	torn := next[:len(next)/2]
	appendFile(t, filepath.Join(dir, entriesFile), torn)

	// A verifier running before the restart reports the fragment but no
	// tampering: the signed history is intact.
	rep, err := Verify(dir, k.verifier, nil)
	if err != nil || rep.Size != 5 || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "incomplete final entry") {
		t.Fatalf("verify before recovery: %+v, %v", rep, err)
	}

	l = openLog(t, dir, k)
	if got := l.Recovery(); got.TruncatedBytes != int64(len(torn)) || got.Unsigned != 0 {
		t.Fatalf("recovery %+v, want %d bytes truncated", got, len(torn))
	}
	record(t, l, 5, 8)
	lines := trimmed(fileLines(t, dir))
	cp, _ := l.Checkpoint()
	if size, root := parsedCheckpoint(t, cp, k); size != 8 || !bytes.Equal(root, mth(lines)) {
		t.Fatalf("after recovery: size %d", size)
	}
	if rep, err := Verify(dir, k.verifier, nil); err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify after recovery: %+v, %v", rep, err)
	}
}

func TestUnsignedTailIsKeptAndSigned(t *testing.T) {
	k := newKey(t, testOrigin)
	dir := t.TempDir()
	l := openLog(t, dir, k)
	record(t, l, 0, 5)
	l.Close()
	// A crash after the fsync of entry 5 but before its checkpoint.
	line, _ := encodeLeaf(5, testEntry(5))
	appendFile(t, filepath.Join(dir, entriesFile), append(line, '\n'))

	rep, err := Verify(dir, k.verifier, nil)
	if err != nil || rep.Size != 5 || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "1 entries after the signed checkpoint") {
		t.Fatalf("verify before recovery: %+v, %v", rep, err)
	}
	l = openLog(t, dir, k)
	if got := l.Recovery(); got.Unsigned != 1 || got.TruncatedBytes != 0 {
		t.Fatalf("recovery %+v", got)
	}
	if rep, err := Verify(dir, k.verifier, rep.Checkpoint); err != nil || rep.Size != 6 || len(rep.Problems) != 0 {
		t.Fatalf("verify after recovery: %+v, %v", rep, err)
	}
}

func TestTornWriteNeverHidesADeletion(t *testing.T) {
	k := newKey(t, testOrigin)
	dir := t.TempDir()
	l := openLog(t, dir, k)
	record(t, l, 0, 5)
	l.Close()
	// The last signed entry is cut short: that is not the trace of an
	// append in flight, and Open must not "repair" it away.
	lines := fileLines(t, dir)
	lines[4] = lines[4][:10]
	writeLines(t, dir, lines)
	if _, err := Open(dir, k.signer, k.verifier, testOrigin); err == nil || !strings.Contains(err.Error(), "4 entries but its checkpoint signs 5") {
		t.Fatalf("Open: %v", err)
	}
	if got := fileLines(t, dir); len(got[4]) != 10 {
		t.Fatal("Open modified a log it refused")
	}
}

func appendFile(t testing.TB, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}
