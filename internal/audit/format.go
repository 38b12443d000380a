package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// On-disk layout of a log directory.
const (
	entriesFile    = "entries"    // one canonical JSON leaf per line, append-only
	checkpointFile = "checkpoint" // the latest signed checkpoint (a signed note)
	lockFile       = "lock"       // flock'ed while a Log has the directory open
)

// MaxEntrySize bounds one encoded entry. The bound lets readers use a fixed
// buffer, and a line longer than it can only be corruption.
const MaxEntrySize = 64 << 10

// leaf is what the tree commits to for each entry. The index is inside the
// hashed bytes so that a verifier can tell a deleted or reordered entry from
// a modified one, and so that no entry's bytes are valid at another position.
type leaf struct {
	Index uint64 `json:"index"`
	Entry
}

// encodeLeaf returns the canonical JSON of the entry at index, without the
// trailing newline. Canonical here means: fields in struct order, Detail keys
// sorted (encoding/json sorts map keys), time in UTC with nanoseconds, no HTML
// escaping, newlines inside strings escaped — so every leaf is one line.
func encodeLeaf(index uint64, e Entry) ([]byte, error) {
	e.Time = e.Time.UTC()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(leaf{Index: index, Entry: e}); err != nil {
		return nil, err
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(b) > MaxEntrySize {
		return nil, fmt.Errorf("audit: entry encodes to %d bytes, more than %d", len(b), MaxEntrySize)
	}
	return b, nil
}

// decodeLeaf parses one stored line and checks that it sits at its position.
func decodeLeaf(line []byte, want uint64) (Entry, error) {
	var l leaf
	if err := json.Unmarshal(line, &l); err != nil {
		return Entry{}, fmt.Errorf("entry %d is not valid JSON: %w", want, err)
	}
	if l.Index != want {
		return Entry{}, fmt.Errorf("entry at position %d carries index %d: entries were deleted, inserted or reordered", want, l.Index)
	}
	return l.Entry, nil
}

func leafHash(line []byte) []byte { return rfc6962.DefaultHasher.HashLeaf(line) }

// scanEntries reads an entries file and calls visit for every complete line
// (one ending in '\n'), with its position and bytes without the newline; the
// slice is only valid during the call. It returns the length of the complete
// lines and of the incomplete tail after them: a tail is what a crash in the
// middle of an append leaves behind, and only the caller knows whether it may
// be removed.
func scanEntries(r io.Reader, visit func(index uint64, line []byte) error) (complete, tail int64, err error) {
	br := bufio.NewReaderSize(r, MaxEntrySize+1)
	for index := uint64(0); ; index++ {
		line, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			if verr := visit(index, line[:len(line)-1]); verr != nil {
				return complete, 0, verr
			}
			complete += int64(len(line))
		case errors.Is(err, io.EOF):
			return complete, int64(len(line)), nil
		case errors.Is(err, bufio.ErrBufferFull):
			return complete, 0, fmt.Errorf("entry %d is longer than %d bytes: the entries file is corrupt", index, MaxEntrySize)
		default:
			return complete, 0, err
		}
	}
}

// signCheckpoint returns the signed note for a tree of size with root.
func signCheckpoint(signer note.Signer, origin string, size uint64, root []byte) ([]byte, error) {
	text := log.Checkpoint{Origin: origin, Size: size, Hash: root}.Marshal()
	return note.Sign(&note.Note{Text: string(text)}, signer)
}

// parseCheckpoint verifies the signature on a checkpoint note and parses it.
// An empty origin accepts any origin (Verify compares origins itself).
func parseCheckpoint(b []byte, verifier note.Verifier, origin string) (*log.Checkpoint, error) {
	n, err := note.Open(b, note.VerifierList(verifier))
	if err != nil {
		return nil, fmt.Errorf("checkpoint signature invalid: %w", err)
	}
	var cp log.Checkpoint
	rest, err := cp.Unmarshal([]byte(n.Text))
	if err != nil {
		return nil, err
	}
	// Veil writes no extension lines; a signed checkpoint with some was not
	// written by this code.
	if len(rest) != 0 {
		return nil, errors.New("invalid checkpoint - unexpected extension lines")
	}
	if len(cp.Hash) != rfc6962.DefaultHasher.Size() {
		return nil, fmt.Errorf("invalid checkpoint - root hash is %d bytes, want %d", len(cp.Hash), rfc6962.DefaultHasher.Size())
	}
	if origin != "" && cp.Origin != origin {
		return nil, fmt.Errorf("checkpoint is for log %q, want %q", cp.Origin, origin)
	}
	return &cp, nil
}

// writeFileAtomic replaces path with data so that a crash leaves either the
// old or the new content, never a mix: write a temporary file, fsync it,
// rename it over path. The directory itself is not synced: losing the rename
// in a crash brings back the previous file, which for a checkpoint is an
// older but still valid one.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// syncDir makes a newly created file's directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
