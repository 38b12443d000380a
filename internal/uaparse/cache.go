package uaparse

import (
	"hash/maphash"
	"sync"
)

// Cache memoizes Parse for repeated user agents. It is safe for concurrent
// use and never holds more than maxEntries results.
//
// Keys are 64-bit maphash values under a per-cache random seed, so the raw
// header is never stored and each entry costs a fixed ~16 bytes; a wrong
// answer would need a 64-bit collision. Values are packed results.
//
// Each shard keeps two generations: when the current map fills, it becomes
// the previous one and the old previous is dropped. A hit in the previous
// generation is copied forward, so hot UAs survive rotation while the bound
// stays strict (roughly LRU at a fraction of the bookkeeping).
type Cache struct {
	seed   maphash.Seed
	shards []cacheShard
	mask   uint64
	genMax int  // entries per generation per shard
	twoGen bool // false only for tiny caches where two generations would exceed the bound
}

type cacheShard struct {
	mu        sync.RWMutex
	cur, prev map[uint64]uint64
	_         [128 - 40]byte // keep shards on separate cache lines
}

const maxShards = 64

// NewCache returns a cache holding at most maxEntries parsed results. A
// maxEntries of zero or less (or a zero Cache) disables caching: Parse is
// called every time.
func NewCache(maxEntries int) *Cache {
	c := &Cache{seed: maphash.MakeSeed()}
	if maxEntries <= 0 {
		return c
	}
	// More shards cut lock contention, but each shard must keep a useful
	// number of entries per generation.
	n := 1
	for n < maxShards && maxEntries/(4*n) >= 64 {
		n *= 2
	}
	c.genMax = maxEntries / (2 * n)
	c.twoGen = true
	if c.genMax == 0 {
		// maxEntries == 1: a single generation of one entry.
		c.genMax, c.twoGen = maxEntries, false
	}
	c.shards = make([]cacheShard, n)
	c.mask = uint64(n - 1)
	for i := range c.shards {
		c.shards[i].cur = make(map[uint64]uint64)
	}
	return c
}

// Parse returns the same Info as the package-level Parse, from the cache
// when possible.
func (c *Cache) Parse(ua string) Info {
	if c == nil || len(c.shards) == 0 || len(ua) > maxLen {
		// Oversized headers are constant-time bots anyway; hashing them
		// would cost more than parsing.
		return Parse(ua)
	}
	h := maphash.String(c.seed, ua)
	s := &c.shards[h&c.mask]

	s.mu.RLock()
	v, ok := s.cur[h]
	old := false
	if !ok {
		v, ok = s.prev[h]
		old = ok
	}
	s.mu.RUnlock()

	if ok && !old {
		return unpack(v).info()
	}
	if !ok {
		v = parse(ua).pack()
	}
	s.mu.Lock()
	s.put(h, v, c.genMax, c.twoGen)
	s.mu.Unlock()
	return unpack(v).info()
}

// put inserts into the current generation, rotating first if it is full.
// Entries in cur and prev together never exceed 2*genMax.
func (s *cacheShard) put(h, v uint64, genMax int, twoGen bool) {
	if _, ok := s.cur[h]; ok {
		return // another goroutine got here first
	}
	if len(s.cur) >= genMax {
		s.prev = nil
		if twoGen {
			s.prev = s.cur
		}
		s.cur = make(map[uint64]uint64, min(genMax, 4096)) // a hint, not a reservation of a huge bound
	}
	s.cur[h] = v
}

// len reports the number of stored entries (counting an entry present in
// both generations twice, which is what memory use follows).
func (c *Cache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.cur) + len(s.prev)
		s.mu.RUnlock()
	}
	return n
}
