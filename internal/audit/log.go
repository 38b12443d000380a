package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// ErrClosed is returned by a Log after Close, and after a failed write left
// the entries file in a state only a fresh Open can judge.
var ErrClosed = errors.New("audit: log is closed")

// Log is an append-only audit log whose entries are the leaves of an RFC 6962
// Merkle tree. Behind the appends it writes checkpoints (tree size and root)
// signed with the log's key; an auditor who keeps an earlier checkpoint can
// later prove, with Verify, that no entry it covered was changed, removed or
// reordered and that the log was not rolled back.
//
// What must never be recorded: the log cannot forget. An entry can't be
// erased for a data subject request, nor expire with a retention period,
// without breaking every later checkpoint. So an Entry must never hold raw
// personal data — no IP address, user agent, e-mail, name, phone number,
// declared user id, or any value read back from the token vault — nor any
// secret (keys, bearer tokens, passwords, salts), nor query answers or event
// contents. Refer to people only by keyed pseudonym or an opaque id (token id,
// request id) whose meaning lives in a store that can delete it.
//
// A Log is safe for concurrent use. Concurrent Record calls are committed
// together, one write and one fsync per group. Checkpoints are signed and
// written by a background goroutine, so Record waits for one fsync only:
// replacing the checkpoint atomically (a new file, its fsync, a rename) was
// measured at about four times an append's fsync. Checkpoint and Close bring
// the checkpoint up to date before they return.
//
// Memory: the tree keeps every node hash for proofs, 64 bytes per entry,
// plus 8 bytes per entry of file offsets.
type Log struct {
	dir      string
	origin   string
	signer   note.Signer
	verifier note.Verifier
	now      func() time.Time // fills a zero Entry.Time; tests replace it
	recovery Recovery
	lock     *os.File

	// queue holds Record calls not yet written; whoever next holds writeMu
	// writes all of them, so callers that arrive during an fsync share the
	// next one.
	queueMu sync.Mutex
	queue   []*request

	writeMu sync.Mutex // serialises writes to the entries file
	f       *os.File   // nil once closed or broken

	// Checkpoints are written behind the appends by one goroutine: a kick
	// after each commit, coalesced while a write is under way.
	cpMu   sync.Mutex // serialises checkpoint writes
	cpKick chan struct{}
	cpDone chan struct{}
	cpSize uint64 // size of l.checkpoint; guarded by cpMu
	cpErr  error  // outcome of the last checkpoint write; guarded by stateMu

	// state is what readers see: committed entries only.
	stateMu    sync.RWMutex
	rng        *compact.Range
	nodes      [][][32]byte // nodes[level][index]: every perfect subtree's hash, for proofs
	offsets    []int64      // offsets[i] is where entry i starts; offsets[size] is the file length
	checkpoint []byte
	closed     bool
}

type request struct {
	entry Entry
	err   error
	done  bool // guarded by writeMu
}

// Recovery says what Open found and repaired after an unclean shutdown.
type Recovery struct {
	// TruncatedBytes is the length of an incomplete final entry that a crash
	// in the middle of an append left behind and Open removed.
	TruncatedBytes int64
	// Unsigned counts complete entries that were written but not yet covered
	// by a checkpoint: a crash came between their fsync and the next
	// checkpoint. Open keeps and signs them; they are entries whose Record
	// returned, or was about to. Anyone who can write to the directory
	// could append entries that way too: the tree protects history already
	// covered by a checkpoint, not a tail written while the log was down.
	Unsigned uint64
}

var hasher = rfc6962.DefaultHasher

var rangeFactory = &compact.RangeFactory{Hash: hasher.HashChildren}

// GenerateKey returns a new Ed25519 signing key and its verifier key in the
// signed-note text format ("PRIVATE+KEY+name+hash+data", "name+hash+data").
// Store skey encrypted; publish vkey to auditors. Use the log's origin as
// name so checkpoints and keys are easy to match up.
func GenerateKey(name string) (skey, vkey string, err error) {
	return note.GenerateKey(rand.Reader, name)
}

// Open opens the log in dir, creating it if needed. It replays the entries
// file to rebuild the tree, removes an incomplete final entry left by a crash
// (never a complete one), checks the tree against the directory's signed
// checkpoint and refuses to open a log that does not match it — appending
// would otherwise sign over tampered history. The verifier must belong to
// signer; origin names the log in its checkpoints.
func Open(dir string, signer note.Signer, verifier note.Verifier, origin string) (*Log, error) {
	if signer.Name() != verifier.Name() || signer.KeyHash() != verifier.KeyHash() {
		return nil, errors.New("audit: verifier does not belong to the signing key")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	lock, err := lockDir(filepath.Join(dir, lockFile))
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	l := &Log{dir: dir, origin: origin, signer: signer, verifier: verifier, now: time.Now, lock: lock,
		rng: rangeFactory.NewEmptyRange(0), offsets: []int64{0}}
	if err := l.load(); err != nil {
		if l.f != nil {
			l.f.Close()
		}
		lock.Close()
		return nil, fmt.Errorf("audit: %s: %w", dir, err)
	}
	return l, nil
}

func (l *Log) load() error {
	var signed *log.Checkpoint // the checkpoint on disk, if any
	cpBytes, err := os.ReadFile(filepath.Join(l.dir, checkpointFile))
	switch {
	case err == nil:
		if signed, err = parseCheckpoint(cpBytes, l.verifier, l.origin); err != nil {
			return err
		}
	case !errors.Is(err, os.ErrNotExist):
		return err
	}

	// Open closes l.f if load fails.
	if l.f, err = os.OpenFile(filepath.Join(l.dir, entriesFile), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
		return err
	}
	rootAtSigned := hasher.EmptyRoot()
	complete, tail, err := scanEntries(l.f, func(i uint64, line []byte) error {
		if _, err := decodeLeaf(line, i); err != nil {
			return err
		}
		l.appendLeaf(leafHash(line), int64(len(line))+1)
		if signed != nil && i+1 == signed.Size {
			rootAtSigned = l.root()
		}
		return nil
	})
	if err != nil {
		return err
	}
	size := l.size()

	switch {
	case signed == nil && (size > 0 || tail > 0):
		// Open writes the first checkpoint before the first append, so a
		// log with entries but no checkpoint had its checkpoint removed.
		return errors.New("entries exist but the signed checkpoint is missing: the log may have been tampered with; run audit verify against a trusted checkpoint")
	case signed == nil:
		if err := syncDir(l.dir); err != nil { // the entries file was just created
			return err
		}
	case size < signed.Size:
		return fmt.Errorf("log has %d entries but its checkpoint signs %d: entries were deleted or the log was damaged", size, signed.Size)
	case !bytes.Equal(rootAtSigned, signed.Hash):
		return fmt.Errorf("root at size %d does not match the signed checkpoint: entries were modified", signed.Size)
	}

	if tail > 0 {
		if err := l.f.Truncate(complete); err != nil {
			return err
		}
		if err := l.f.Sync(); err != nil {
			return err
		}
		l.recovery.TruncatedBytes = tail
	}
	if signed != nil && size == signed.Size {
		l.checkpoint, l.cpSize = cpBytes, size
	} else {
		if signed != nil {
			l.recovery.Unsigned = size - signed.Size
		}
		if err := l.writeCheckpoint(); err != nil {
			return err
		}
	}
	l.cpKick, l.cpDone = make(chan struct{}, 1), make(chan struct{})
	go l.checkpointer()
	return nil
}

func (l *Log) checkpointer() {
	defer close(l.cpDone)
	for range l.cpKick {
		// A failure is kept in cpErr for Record to report, and retried on
		// the next kick.
		_ = l.writeCheckpoint()
	}
}

// Recovery reports what Open repaired.
func (l *Log) Recovery() Recovery { return l.recovery }

// Record appends e and returns once it is fsynced and in the tree; the next
// checkpoint covers it. A zero e.Time is set to the current time. e.Action is
// required. Once Record has started writing, cancelling ctx does not stop it:
// the outcome is reported only when it is known.
//
// If checkpoints cannot be written (a full disk, say), Record still stores
// the entry but returns an error: an audit trail that is no longer being
// signed must stop the actions it records, not fall silently behind.
func (l *Log) Record(ctx context.Context, e Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if e.Action == "" {
		return errors.New("audit: entry has no action")
	}
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	req := &request{entry: e}
	l.queueMu.Lock()
	l.queue = append(l.queue, req)
	l.queueMu.Unlock()

	l.writeMu.Lock()
	if !req.done { // else an earlier writer committed it with its group
		l.queueMu.Lock()
		group := l.queue
		l.queue = nil
		l.queueMu.Unlock()
		l.commit(group)
	}
	l.writeMu.Unlock()
	if req.err != nil {
		return req.err
	}
	l.stateMu.RLock()
	cpErr := l.cpErr
	l.stateMu.RUnlock()
	if cpErr != nil {
		return fmt.Errorf("audit: entry stored, but checkpoints are failing: %w", cpErr)
	}
	return nil
}

// commit writes a group of requests; writeMu is held.
func (l *Log) commit(group []*request) {
	var err error
	defer func() {
		for _, r := range group {
			if r.err == nil {
				r.err = err
			}
			r.done = true
		}
	}()
	if l.f == nil {
		err = ErrClosed
		return
	}

	size := l.size()
	var buf []byte
	var lines [][]byte
	for _, r := range group {
		line, lerr := encodeLeaf(size+uint64(len(lines)), r.entry)
		if lerr != nil {
			r.err = lerr // the rest of the group goes ahead without it
			continue
		}
		buf = append(append(buf, line...), '\n')
		lines = append(lines, line)
	}
	if len(lines) == 0 {
		return
	}

	if _, err = l.f.Write(buf); err != nil {
		// A partial write would put later entries after a fragment; cut it
		// off. If even that fails only Open can sort the file out.
		if terr := l.f.Truncate(l.end()); terr != nil {
			l.breakFile()
		}
		err = fmt.Errorf("audit: write entries: %w", err)
		return
	}
	if err = l.f.Sync(); err != nil {
		// After a failed fsync the kernel may have dropped the dirty pages
		// and still report later fsyncs as clean: nothing written since the
		// last good fsync can be trusted until the file is re-read.
		l.breakFile()
		err = fmt.Errorf("audit: sync entries: %w", err)
		return
	}

	l.stateMu.Lock()
	for _, line := range lines {
		l.appendLeaf(leafHash(line), int64(len(line))+1)
	}
	l.stateMu.Unlock()
	select {
	case l.cpKick <- struct{}{}:
	default: // a kick is pending; that write will cover these entries too
	}
}

func (l *Log) breakFile() {
	l.f.Close()
	l.f = nil
}

// appendLeaf adds a leaf to the tree. Callers hold stateMu or own l.
func (l *Log) appendLeaf(hash []byte, recordLen int64) {
	// The range reports the leaf and then every perfect subtree it
	// completes, each the next node of its level.
	_ = l.rng.Append(hash, func(id compact.NodeID, h []byte) {
		if int(id.Level) == len(l.nodes) {
			l.nodes = append(l.nodes, nil)
		}
		l.nodes[id.Level] = append(l.nodes[id.Level], [32]byte(h))
	})
	l.offsets = append(l.offsets, l.end()+recordLen)
}

func (l *Log) size() uint64 { return l.rng.End() }

func (l *Log) leaves() [][32]byte {
	if len(l.nodes) == 0 {
		return nil
	}
	return l.nodes[0]
}
func (l *Log) end() int64 { return l.offsets[len(l.offsets)-1] }

func (l *Log) root() []byte {
	if l.size() == 0 {
		return hasher.EmptyRoot()
	}
	root, _ := l.rng.GetRootHash(nil) // fails only for ranges not starting at 0
	return root
}

// writeCheckpoint signs the current tree and replaces the checkpoint file,
// unless the checkpoint already covers it.
func (l *Log) writeCheckpoint() error {
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	l.stateMu.RLock()
	size, root := l.size(), l.root()
	l.stateMu.RUnlock()
	if l.checkpoint != nil && size == l.cpSize {
		return nil
	}
	cp, err := signCheckpoint(l.signer, l.origin, size, root)
	if err == nil {
		err = writeFileAtomic(filepath.Join(l.dir, checkpointFile), cp)
	}
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	l.cpErr = err
	if err == nil {
		l.checkpoint, l.cpSize = cp, size
	}
	return err
}

// Checkpoint returns the latest signed checkpoint, in the signed-note format
// of transparency-dev/formats/log. Hand it to auditors and witnesses.
func (l *Log) Checkpoint() ([]byte, error) {
	l.stateMu.RLock()
	closed := l.closed
	l.stateMu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	if err := l.writeCheckpoint(); err != nil {
		return nil, fmt.Errorf("audit: write checkpoint: %w", err)
	}
	l.stateMu.RLock()
	defer l.stateMu.RUnlock()
	return bytes.Clone(l.checkpoint), nil
}

// Size returns the number of committed entries.
func (l *Log) Size() uint64 {
	l.stateMu.RLock()
	defer l.stateMu.RUnlock()
	return l.size()
}

// InclusionProof returns the RFC 6962 proof that entry index is in the tree
// of the given size, to be checked with proof.VerifyInclusion against the
// root of a checkpoint of that size.
func (l *Log) InclusionProof(index, size uint64) ([][]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("audit: index %d is not below size %d", index, size)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	return l.rehash(nodes, size)
}

// ConsistencyProof returns the RFC 6962 proof that the tree of size oldSize is
// a prefix of the tree of size newSize, to be checked with
// proof.VerifyConsistency against the roots of two checkpoints.
func (l *Log) ConsistencyProof(oldSize, newSize uint64) ([][]byte, error) {
	if oldSize > newSize {
		return nil, fmt.Errorf("audit: old size %d is larger than new size %d", oldSize, newSize)
	}
	nodes, err := proof.Consistency(oldSize, newSize)
	if err != nil {
		return nil, err
	}
	return l.rehash(nodes, newSize)
}

func (l *Log) rehash(nodes proof.Nodes, size uint64) ([][]byte, error) {
	l.stateMu.RLock()
	defer l.stateMu.RUnlock()
	if size > l.size() {
		return nil, fmt.Errorf("audit: size %d is beyond the log's %d entries", size, l.size())
	}
	// Every ID is a perfect subtree within [0, size), so it was completed
	// and stored when the tree grew past it.
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		hashes[i] = bytes.Clone(l.nodes[id.Level][id.Index][:])
	}
	return nodes.Rehash(hashes, hasher.HashChildren)
}

// Filter selects entries for Entries. Empty fields match everything.
type Filter struct {
	Action       string    // exact match
	Actor        string    // exact match
	TargetPrefix string    // Target starts with it
	Since        time.Time // Time >= Since
	Until        time.Time // Time < Until
	Limit        int       // at most this many; 0 means no limit, so an API must set one
	Offset       int       // skip this many matches first
}

func (f *Filter) match(e *Entry) bool {
	return (f.Action == "" || e.Action == f.Action) &&
		(f.Actor == "" || e.Actor == f.Actor) &&
		strings.HasPrefix(e.Target, f.TargetPrefix) &&
		(f.Since.IsZero() || !e.Time.Before(f.Since)) &&
		(f.Until.IsZero() || e.Time.Before(f.Until))
}

// Indexed is an entry with its position in the log and its leaf hash, which
// an auditor can check with an inclusion proof.
type Indexed struct {
	Index    uint64 `json:"index"`
	Entry    Entry  `json:"entry"`
	LeafHash string `json:"leaf_hash"` // hex
}

// readChunk is how much of the entries file Entries reads at once.
var readChunk int64 = 1 << 20

// Entries returns the committed entries that match f, newest first.
func (l *Log) Entries(ctx context.Context, f Filter) ([]Indexed, error) {
	if f.Limit < 0 || f.Offset < 0 {
		return nil, errors.New("audit: negative limit or offset")
	}
	l.stateMu.RLock()
	// Both only ever grow, so these prefixes stay valid without the lock.
	offsets, leaves, closed := l.offsets, l.leaves(), l.closed
	l.stateMu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	// Read through a separate handle: l.f may be closed by Close or a failed
	// write while we read.
	r, err := os.Open(filepath.Join(l.dir, entriesFile))
	if err != nil {
		return nil, err
	}
	defer r.Close()

	var out []Indexed
	skip := f.Offset
	buf := make([]byte, 0, readChunk)
	for hi := len(offsets) - 1; hi > 0; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		lo := hi - 1 // at least one entry per chunk
		for lo > 0 && offsets[hi]-offsets[lo-1] <= readChunk {
			lo--
		}
		buf = buf[:offsets[hi]-offsets[lo]]
		if _, err := r.ReadAt(buf, offsets[lo]); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		for i := hi - 1; i >= lo; i-- {
			line := buf[offsets[i]-offsets[lo] : offsets[i+1]-offsets[lo]-1]
			// The tree holds the hash of what was committed; a line that no
			// longer matches it was changed on disk since.
			if !bytes.Equal(leafHash(line), leaves[i][:]) {
				return nil, fmt.Errorf("audit: entry %d was modified on disk after it was committed", i)
			}
			e, err := decodeLeaf(line, uint64(i))
			if err != nil {
				return nil, err
			}
			if !f.match(&e) {
				continue
			}
			if skip > 0 {
				skip--
				continue
			}
			out = append(out, Indexed{Index: uint64(i), Entry: e, LeafHash: hex.EncodeToString(leaves[i][:])})
			if f.Limit > 0 && len(out) == f.Limit {
				return out, nil
			}
		}
		hi = lo
	}
	return out, nil
}

// Close releases the log. Record calls after it fail with ErrClosed.
func (l *Log) Close() error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	l.stateMu.Lock()
	wasClosed := l.closed
	l.closed = true
	l.stateMu.Unlock()
	if wasClosed {
		return nil
	}
	close(l.cpKick)
	<-l.cpDone
	err := l.writeCheckpoint()
	if l.f != nil {
		if ferr := l.f.Close(); err == nil {
			err = ferr
		}
		l.f = nil
	}
	if lerr := l.lock.Close(); err == nil {
		err = lerr
	}
	return err
}
