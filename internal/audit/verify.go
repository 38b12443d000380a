package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// Report is the outcome of Verify.
type Report struct {
	Origin string
	// Size and Root are those of the log's own signed checkpoint, which
	// Verify recomputed from the entries.
	Size uint64
	Root []byte
	// Checkpoint is that signed checkpoint: after a successful Verify it is
	// the one to keep as the next trusted checkpoint.
	Checkpoint []byte
	// TrustedSize is the size of the trusted checkpoint checked against the
	// log (0 when none was given).
	TrustedSize uint64
	// Problems are findings that are not evidence of tampering, such as
	// entries written after the last checkpoint by a crash.
	Problems []string
}

// Verify checks the log in dir without opening it for writing and without
// trusting anything in it. It recomputes every leaf hash and the tree from
// the entries file, checks that the directory's checkpoint is signed by
// verifier and matches the recomputed tree, and then checks the trusted
// checkpoint — one kept outside the log by a witness or an auditor, nil on a
// first run — against the tree: it must be signed by verifier, no larger than
// the log, and its root must equal the recomputed root at its size, which
// shows that every entry it covered is still there, unchanged and in order.
// Any failure is returned as an error saying what is wrong.
func Verify(dir string, verifier note.Verifier, trusted []byte) (Report, error) {
	var rep Report
	var tcp *log.Checkpoint
	if trusted != nil {
		var err error
		if tcp, err = parseCheckpoint(trusted, verifier, ""); err != nil {
			return rep, fmt.Errorf("trusted checkpoint: %w", err)
		}
		rep.TrustedSize = tcp.Size
	}

	cpBytes, err := os.ReadFile(filepath.Join(dir, checkpointFile))
	if err != nil {
		return rep, fmt.Errorf("log checkpoint: %w", err)
	}
	cp, err := parseCheckpoint(cpBytes, verifier, "")
	if err != nil {
		return rep, fmt.Errorf("log checkpoint: %w", err)
	}
	if tcp != nil && tcp.Origin != cp.Origin {
		return rep, fmt.Errorf("the trusted checkpoint is for log %q but this log is %q", tcp.Origin, cp.Origin)
	}
	rep.Origin = cp.Origin

	f, err := os.Open(filepath.Join(dir, entriesFile))
	if err != nil {
		return rep, err
	}
	defer f.Close()
	rng := rangeFactory.NewEmptyRange(0)
	// rootAt holds the recomputed roots at the sizes of the two checkpoints.
	rootAt := map[uint64][]byte{0: hasher.EmptyRoot()}
	_, tail, err := scanEntries(f, func(i uint64, line []byte) error {
		if _, err := decodeLeaf(line, i); err != nil {
			return err
		}
		if err := rng.Append(leafHash(line), nil); err != nil {
			return err
		}
		if n := rng.End(); n == cp.Size || (tcp != nil && n == tcp.Size) {
			rootAt[n], _ = rng.GetRootHash(nil)
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	size := rng.End()

	// The trusted checkpoint first: it is the one the log's keeper cannot
	// have rewritten, so its verdict is the one that matters most.
	if tcp != nil {
		if size < tcp.Size {
			return rep, fmt.Errorf("log is shorter (%d) than the trusted checkpoint (%d): entries were deleted or the log was rolled back", size, tcp.Size)
		}
		if !bytes.Equal(rootAt[tcp.Size], tcp.Hash) {
			return rep, fmt.Errorf("root at size %d does not match the trusted checkpoint: an entry below index %d was modified, removed or reordered", tcp.Size, tcp.Size)
		}
	}
	if size < cp.Size {
		return rep, fmt.Errorf("log is shorter (%d) than its own signed checkpoint (%d): entries were deleted", size, cp.Size)
	}
	if !bytes.Equal(rootAt[cp.Size], cp.Hash) {
		return rep, fmt.Errorf("root at size %d does not match the log's signed checkpoint: an entry was modified, removed or reordered", cp.Size)
	}

	if tcp != nil && cp.Size < tcp.Size {
		// The entries are intact (checked above), only the checkpoint file
		// is older than the trusted one, as after a crash lost its rename.
		rep.Problems = append(rep.Problems, fmt.Sprintf("the log's checkpoint (%d) is older than the trusted one (%d)", cp.Size, tcp.Size))
	}
	if size > cp.Size {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%d entries after the signed checkpoint are not signed yet (the log is being written to, or stopped before signing them; opening it signs them)", size-cp.Size))
	}
	if tail > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("an incomplete final entry of %d bytes (a crash during an append; opening the log removes it)", tail))
	}
	rep.Size, rep.Root, rep.Checkpoint = cp.Size, cp.Hash, cpBytes
	return rep, nil
}

// LoadTrusted reads a witness file written by SaveTrusted. A missing file is
// not an error: it returns nil, meaning nothing is trusted yet (first run).
func LoadTrusted(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// SaveTrusted atomically replaces the witness file at path with checkpoint.
// Keep the file outside the log directory, ideally on another machine or in
// an auditor's hands: whoever can rewrite both the log and the witness can
// rewrite history.
func SaveTrusted(path string, checkpoint []byte) error {
	return writeFileAtomic(path, checkpoint)
}

// VerifyWitnessed runs Verify against the checkpoint in the witness file at
// path and, if the log verifies, advances the witness to the log's current
// checkpoint, so each run proves the log only grew since the last one.
func VerifyWitnessed(dir string, verifier note.Verifier, path string) (Report, error) {
	trusted, err := LoadTrusted(path)
	if err != nil {
		return Report{}, fmt.Errorf("witness: %w", err)
	}
	rep, err := Verify(dir, verifier, trusted)
	if err != nil {
		return rep, err
	}
	// Never move the witness backwards: a log whose checkpoint file is older
	// than the witness verified above, but the witness still knows more.
	if rep.Size >= rep.TrustedSize && !bytes.Equal(rep.Checkpoint, trusted) {
		if err := SaveTrusted(path, rep.Checkpoint); err != nil {
			return rep, fmt.Errorf("witness: %w", err)
		}
	}
	return rep, nil
}
