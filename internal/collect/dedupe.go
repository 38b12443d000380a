package collect

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/veil-analytics/veil/internal/event"
)

// Dedupe remembers recently accepted event ids (as keyed hashes) so a client
// retry inside the window is stored once. Two generations bound both time
// and memory: an id is remembered for at least window/2 and at most window,
// and a generation that fills up early is retired early, so at high rates
// the window shrinks to the last maxPerGen..2·maxPerGen ids. Only 64 bits
// of each keyed hash are kept: a false duplicate needs a 64-bit collision.
type Dedupe struct {
	mu       sync.Mutex
	cur, old map[uint64]struct{}
	rotated  time.Time
	half     time.Duration
	max      int
	now      func() time.Time
}

// NewDedupe returns a Dedupe with the given window and per-generation bound.
func NewDedupe(window time.Duration, maxPerGen int, now func() time.Time) *Dedupe {
	return &Dedupe{cur: map[uint64]struct{}{}, old: map[uint64]struct{}{},
		rotated: now(), half: window / 2, max: maxPerGen, now: now}
}

// Seen reports whether id was seen in the window, and records it if not.
func (d *Dedupe) Seen(full event.Pseudonym) bool {
	id := binary.LittleEndian.Uint64(full[:8])
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if idle := now.Sub(d.rotated); idle >= 2*d.half {
		// Idle for a whole window: both generations are too old.
		clear(d.old)
		clear(d.cur)
		d.rotated = now
	} else if idle >= d.half || len(d.cur) >= d.max {
		d.old, d.cur = d.cur, make(map[uint64]struct{}, len(d.cur))
		d.rotated = now
	}
	if _, ok := d.cur[id]; ok {
		return true
	}
	if _, ok := d.old[id]; ok {
		return true
	}
	d.cur[id] = struct{}{}
	return false
}

// Forget removes ids whose append failed, so a retry is not mistaken for a
// duplicate of an event that was never stored.
func (d *Dedupe) Forget(ids []event.Pseudonym) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, full := range ids {
		id := binary.LittleEndian.Uint64(full[:8])
		delete(d.cur, id)
		delete(d.old, id)
	}
}
