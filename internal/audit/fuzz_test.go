package audit

import (
	"bytes"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// A fixed key, so that the signed checkpoints in testdata/fuzz stay valid.
// It signs nothing but fuzz inputs.
const (
	fuzzSKey = "PRIVATE+KEY+veil.test/fuzz+2def85ef+AaUMvckvCs3MV4p+KZ6qAqV0vKlYkuvT1zm7/5rTkHCn"
	fuzzVKey = "veil.test/fuzz+2def85ef+AYFZl1j1EKdws4BZoRzaDYgrrIzZ6eZtHeF5yDHrcQ5s"
)

func fuzzKey(t testing.TB) testKey {
	s, err := note.NewSigner(fuzzSKey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(fuzzVKey)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{s, v}
}

// FuzzScanEntries feeds arbitrary bytes to the entries file reader that Open
// and Verify use. It must never panic, must account for every byte as either
// complete lines or a tail, and must give the same lines when re-run on the
// complete part alone (what Open keeps after truncating the tail).
func FuzzScanEntries(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var lines [][]byte
		var sum int64
		complete, tail, err := scanEntries(bytes.NewReader(data), func(i uint64, line []byte) error {
			if bytes.IndexByte(line, '\n') >= 0 {
				t.Fatalf("line %d contains a newline", i)
			}
			if _, err := decodeLeaf(line, i); err != nil {
				return err
			}
			lines = append(lines, bytes.Clone(line))
			sum += int64(len(line)) + 1
			return nil
		})
		if sum != complete {
			t.Fatalf("complete = %d, lines add up to %d", complete, sum)
		}
		if err != nil {
			return
		}
		if complete+tail != int64(len(data)) {
			t.Fatalf("complete %d + tail %d != %d bytes", complete, tail, len(data))
		}
		if tail > 0 && bytes.IndexByte(data[complete:], '\n') >= 0 {
			t.Fatal("tail contains a complete line")
		}
		var again int
		c2, t2, err := scanEntries(bytes.NewReader(data[:complete]), func(i uint64, line []byte) error {
			if !bytes.Equal(line, lines[i]) {
				t.Fatalf("line %d differs on re-read", i)
			}
			again++
			return nil
		})
		if err != nil || c2 != complete || t2 != 0 || again != len(lines) {
			t.Fatalf("re-read of the complete part: %d, %d, %v, %d lines", c2, t2, err, again)
		}
	})
}

// FuzzParseCheckpoint feeds arbitrary bytes to the checkpoint parser: any
// input it accepts must carry a valid signature by the key and a full hash.
func FuzzParseCheckpoint(f *testing.F) {
	k := fuzzKey(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		cp, err := parseCheckpoint(data, k.verifier, "")
		if err != nil {
			return
		}
		if _, err := note.Open(data, note.VerifierList(k.verifier)); err != nil {
			t.Fatalf("accepted a note that does not verify: %v", err)
		}
		if len(cp.Hash) != 32 || cp.Origin == "" {
			t.Fatalf("accepted %+v", cp)
		}
	})
}

// FuzzCheckpointText signs arbitrary text with the key, so the fuzzer reaches
// the body parser behind the signature check. What it accepts must survive a
// marshal, sign and parse round trip unchanged.
func FuzzCheckpointText(f *testing.F) {
	k := fuzzKey(f)
	f.Fuzz(func(t *testing.T, text string) {
		signed, err := note.Sign(&note.Note{Text: text}, k.signer)
		if err != nil {
			return // not a well-formed note text; Sign refuses it
		}
		cp, err := parseCheckpoint(signed, k.verifier, "")
		if err != nil {
			return
		}
		again, err := signCheckpoint(k.signer, cp.Origin, cp.Size, cp.Hash)
		if err != nil {
			t.Fatalf("re-signing %+v: %v", cp, err)
		}
		cp2, err := parseCheckpoint(again, k.verifier, cp.Origin)
		if err != nil || cp2.Size != cp.Size || !bytes.Equal(cp2.Hash, cp.Hash) {
			t.Fatalf("round trip of %+v: %+v, %v", cp, cp2, err)
		}
	})
}
