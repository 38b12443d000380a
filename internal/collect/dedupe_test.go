package collect

import (
	"sync"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/event"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func pid(b byte) event.Pseudonym { return event.Pseudonym{b, 0xee, b} }

func TestDedupeWithinWindow(t *testing.T) {
	clk := newFakeClock()
	d := NewDedupe(10*time.Minute, 1000, clk.Now)
	a, b := pid(1), pid(2)
	if d.Seen(a) {
		t.Fatal("first sight reported as duplicate")
	}
	if !d.Seen(a) {
		t.Fatal("retry not reported as duplicate")
	}
	if d.Seen(b) {
		t.Fatal("another id reported as duplicate")
	}
	// Remembered for at least half the window, across a rotation...
	clk.Advance(4*time.Minute + 59*time.Second)
	if !d.Seen(a) {
		t.Fatal("forgotten before window/2")
	}
	clk.Advance(time.Second) // rotation at window/2: a moves to the old generation
	if !d.Seen(a) || !d.Seen(b) {
		t.Fatal("forgotten at the first rotation")
	}
	// ...and gone after the window (second rotation).
	clk.Advance(5 * time.Minute)
	if d.Seen(a) {
		t.Fatal("remembered after the window")
	}
	// Seen records it anew.
	if !d.Seen(a) {
		t.Fatal("not recorded after expiry")
	}
}

func TestDedupeRefreshIsNotExtended(t *testing.T) {
	// Seeing a duplicate does not move it to the current generation.
	clk := newFakeClock()
	d := NewDedupe(10*time.Minute, 1000, clk.Now)
	a := pid(1)
	d.Seen(a)
	clk.Advance(6 * time.Minute)
	if !d.Seen(a) {
		t.Fatal("forgotten inside the window")
	}
	clk.Advance(5 * time.Minute)
	if d.Seen(a) {
		t.Fatal("a duplicate sighting extended the memory beyond the window")
	}
}

func TestDedupeForget(t *testing.T) {
	clk := newFakeClock()
	d := NewDedupe(10*time.Minute, 1000, clk.Now)
	a, b, c := pid(1), pid(2), pid(3)
	d.Seen(a)
	d.Seen(b)
	clk.Advance(5 * time.Minute) // a and b are now in the old generation
	d.Seen(c)
	d.Forget([]event.Pseudonym{a, c, pid(9)})
	if d.Seen(a) {
		t.Error("forgotten id (old generation) still a duplicate")
	}
	if d.Seen(c) {
		t.Error("forgotten id (current generation) still a duplicate")
	}
	if !d.Seen(b) {
		t.Error("Forget dropped an id it was not given")
	}
	d.Forget(nil)
	if !d.Seen(b) {
		t.Error("Forget(nil) dropped an id")
	}
}

func TestDedupeEarlyRotationWhenFull(t *testing.T) {
	clk := newFakeClock()
	d := NewDedupe(time.Hour, 2, clk.Now)
	a, b, c, e, f := pid(1), pid(2), pid(3), pid(4), pid(5)
	d.Seen(a)
	d.Seen(b) // current generation full
	if d.Seen(c) {
		t.Fatal("c reported as duplicate")
	}
	// The full generation became the old one: a and b are still known.
	if !d.Seen(a) || !d.Seen(b) || !d.Seen(c) {
		t.Fatal("ids lost at the first early rotation")
	}
	d.Seen(e) // current: c, e (full)
	if d.Seen(f) {
		t.Fatal("f reported as duplicate")
	}
	// Second early rotation: c and e are the old generation, and a and b
	// are gone although no time passed.
	if !d.Seen(e) {
		t.Error("e lost")
	}
	if d.Seen(a) {
		t.Error("a still remembered after two generations filled")
	}
	// Memory stays bounded: at most two generations of max ids.
	d.mu.Lock()
	n := len(d.cur) + len(d.old)
	d.mu.Unlock()
	if n > 4 {
		t.Errorf("holding %d ids, want at most 4", n)
	}
	for i := 0; i < 1000; i++ {
		d.Seen(event.Pseudonym{byte(i), byte(i >> 8), 7})
	}
	d.mu.Lock()
	n = len(d.cur) + len(d.old)
	d.mu.Unlock()
	if n > 4 {
		t.Errorf("after 1000 ids holding %d, want at most 4", n)
	}
}

func TestDedupeConcurrent(t *testing.T) {
	clk := newFakeClock()
	d := NewDedupe(10*time.Minute, 1<<20, clk.Now)
	var wg sync.WaitGroup
	var mu sync.Mutex
	firsts := map[event.Pseudonym]int{}
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				id := event.Pseudonym{byte(i), byte(i >> 8)}
				if !d.Seen(id) {
					mu.Lock()
					firsts[id]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(firsts) != 500 {
		t.Fatalf("%d distinct ids accepted, want 500", len(firsts))
	}
	for id, n := range firsts {
		if n != 1 {
			t.Fatalf("id %v accepted %d times", id, n)
		}
	}
}

func TestDedupeAtMostWindowWhenIdle(t *testing.T) {
	clk := newFakeClock()
	d := NewDedupe(10*time.Minute, 1000, clk.Now)
	a := pid(1)
	d.Seen(a)
	clk.Advance(time.Hour) // no traffic in between
	if d.Seen(a) {
		t.Fatal("id seen an hour ago (window 10m) reported as a duplicate")
	}
}
