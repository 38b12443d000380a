package collect

import (
	"sync"
	"time"

	"github.com/veil-analytics/veil/internal/event"
)

// Dedupe remembers recently accepted event ids (as keyed hashes) so a client
// retry inside the window is stored once. Two generations bound both time
// and memory: an id is remembered for at least window/2 and at most window,
// and a generation that fills up early is retired early.
type Dedupe struct {
	mu       sync.Mutex
	cur, old map[event.Pseudonym]struct{}
	rotated  time.Time
	half     time.Duration
	max      int
	now      func() time.Time
}

// NewDedupe returns a Dedupe with the given window and per-generation bound.
func NewDedupe(window time.Duration, maxPerGen int, now func() time.Time) *Dedupe {
	return &Dedupe{cur: map[event.Pseudonym]struct{}{}, old: map[event.Pseudonym]struct{}{},
		rotated: now(), half: window / 2, max: maxPerGen, now: now}
}

// Seen reports whether id was seen in the window, and records it if not.
func (d *Dedupe) Seen(id event.Pseudonym) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if idle := now.Sub(d.rotated); idle >= 2*d.half {
		// Idle for a whole window: both generations are too old.
		clear(d.old)
		clear(d.cur)
		d.rotated = now
	} else if idle >= d.half || len(d.cur) >= d.max {
		d.old, d.cur = d.cur, make(map[event.Pseudonym]struct{}, len(d.cur))
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
	for _, id := range ids {
		delete(d.cur, id)
		delete(d.old, id)
	}
}
