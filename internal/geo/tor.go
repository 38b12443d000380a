package geo

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"slices"
)

// Tor is a Locator backed by Debian's tor-geoipdb files:
//
//	/usr/share/tor/geoip   START_INT,END_INT,CC    decimal uint32, inclusive
//	/usr/share/tor/geoip6  START_IPV6,END_IPV6,CC  textual IPv6, inclusive
//
// Lines starting with '#' and blank lines are ignored; surrounding spaces
// and CRLF line ends are tolerated. Any other malformed line is rejected
// with a *ParseError naming the line, because a truncated or corrupt file
// must not silently give wrong answers.
//
// Ranges may appear in any order (they are sorted on load) but must not
// overlap: there is no right answer for an address claimed by two
// countries, and in practice overlap means two files were concatenated or
// one was damaged, so it is reported as an error naming both lines.
//
// Placeholder ranges ("??" and friends) are dropped and adjacent ranges of
// the same country are merged, so the tables hold only useful data. A Tor
// is immutable after loading and safe for concurrent use.
type Tor struct {
	// Parallel sorted, non-overlapping slices: struct-of-arrays so the
	// binary search walks only the starts.
	v4Start, v4End []ip4
	v4Code         []uint16
	// v4Index[k] is the first range whose start>>16 >= k (len 65537), so a
	// lookup only searches the ranges starting in the address's /16 block.
	v4Index []uint32

	v6Start, v6End []ip6
	v6Code         []uint16
}

// ParseError reports a problem in a tor-geoipdb file.
type ParseError struct {
	File string // path, or "ipv4 data"/"ipv6 data" for ParseTor
	Line int    // 1-based
	Msg  string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("geo: %s line %d: %s", e.File, e.Line, e.Msg)
}

// LoadTor loads tor-geoipdb files. v4Path is required; v6Path may be "" or
// name a missing file, in which case IPv6 addresses are unknown.
func LoadTor(v4Path, v6Path string) (*Tor, error) {
	f4, err := os.Open(v4Path)
	if err != nil {
		return nil, fmt.Errorf("geo: %w", err)
	}
	defer f4.Close()

	var r6 io.Reader
	if v6Path != "" {
		f6, err := os.Open(v6Path)
		switch {
		case err == nil:
			defer f6.Close()
			r6 = f6
		case errors.Is(err, fs.ErrNotExist):
			// Optional: older packages shipped only the IPv4 file.
		default:
			return nil, fmt.Errorf("geo: %w", err)
		}
	}

	t, err := parseTor(f4, v4Path, sizeHint(f4, 24), r6, v6Path, sizeHint(r6, 48))
	if err != nil {
		return nil, err
	}
	// An empty (e.g. zero-length after a failed upgrade) file parses fine
	// but would silently turn geolocation off.
	if len(t.v4Start) == 0 {
		return nil, fmt.Errorf("geo: %s: no country ranges", v4Path)
	}
	if r6 != nil && len(t.v6Start) == 0 {
		return nil, fmt.Errorf("geo: %s: no country ranges", v6Path)
	}
	return t, nil
}

// ParseTor parses tor-geoipdb data (see Tor for the format). Either reader
// may be nil, leaving that address family unknown. Format errors are
// *ParseError; empty input is not an error here (LoadTor rejects it).
func ParseTor(r4, r6 io.Reader) (*Tor, error) {
	return parseTor(r4, "ipv4 data", 0, r6, "ipv6 data", 0)
}

// sizeHint guesses how many ranges a file holds from its size and a
// typical line length (24 bytes for geoip, 58 for geoip6; rounded down so
// the guess is usually a slight overestimate). Pre-sizing avoids append
// regrowing multi-megabyte slices a dozen times during load.
func sizeHint(r io.Reader, lineLen int64) int {
	f, ok := r.(*os.File)
	if !ok {
		return 0
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return 0
	}
	return int(min(st.Size()/lineLen, 4<<20)) // bounded: it is only a guess
}

func parseTor(r4 io.Reader, name4 string, hint4 int, r6 io.Reader, name6 string, hint6 int) (*Tor, error) {
	t := &Tor{}
	if r4 != nil {
		var b builder[ip4]
		b.grow(hint4)
		err := scanLines(r4, name4, func(line int, f *[3][]byte) string {
			s, ok1 := parseUint32(f[0])
			e, ok2 := parseUint32(f[1])
			if !ok1 || !ok2 {
				return "bad IPv4 number"
			}
			return b.add(ip4(s), ip4(e), f[2], line)
		})
		if err != nil {
			return nil, err
		}
		t.v4Start, t.v4End, t.v4Code, err = b.build(name4)
		if err != nil {
			return nil, err
		}
		if len(t.v4Start) > 0 {
			t.v4Index = buildIndex(t.v4Start)
		}
	}
	if r6 != nil {
		var b builder[ip6]
		b.grow(hint6)
		err := scanLines(r6, name6, func(line int, f *[3][]byte) string {
			s, ok1 := parseIP6(f[0])
			e, ok2 := parseIP6(f[1])
			if !ok1 || !ok2 {
				return "bad IPv6 address"
			}
			return b.add(s, e, f[2], line)
		})
		if err != nil {
			return nil, err
		}
		t.v6Start, t.v6End, t.v6Code, err = b.build(name6)
		if err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Country implements Locator.
func (t *Tor) Country(ip netip.Addr) string {
	if t == nil {
		return ""
	}
	ip = ip.Unmap()
	if !lookupable(ip) {
		return ""
	}
	if ip.Is4() {
		a := ip.As4()
		return codeString(t.lookup4(binary.BigEndian.Uint32(a[:])))
	}
	a := ip.As16()
	return codeString(t.lookup6(ip6{binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])}))
}

// Len reports how many ranges are held per family (after merging), for
// start-up logs.
func (t *Tor) Len() (v4, v6 int) {
	if t == nil {
		return 0, 0
	}
	return len(t.v4Start), len(t.v6Start)
}

func (t *Tor) lookup4(addr uint32) uint16 {
	if len(t.v4Index) != 1<<16+1 {
		return noCode
	}
	x := ip4(addr)
	blk := x >> 16
	lo, hi := int(t.v4Index[blk]), int(t.v4Index[blk+1])
	// The candidates are the ranges starting in x's block, s[lo:hi], or
	// s[lo-1], which started in an earlier block and may extend into it.
	s := t.v4Start
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s[m] <= x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	i := lo - 1
	if i < 0 || x > t.v4End[i] {
		return noCode
	}
	return t.v4Code[i]
}

func (t *Tor) lookup6(x ip6) uint16 {
	s := t.v6Start
	lo, hi := 0, len(s)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s[m].hi < x.hi || (s[m].hi == x.hi && s[m].lo <= x.lo) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	i := lo - 1
	if i < 0 {
		return noCode
	}
	if e := t.v6End[i]; x.hi > e.hi || (x.hi == e.hi && x.lo > e.lo) {
		return noCode
	}
	return t.v6Code[i]
}

// buildIndex returns idx with idx[k] = first i such that start[i]>>16 >= k.
func buildIndex(start []ip4) []uint32 {
	idx := make([]uint32, 1<<16+1)
	i := 0
	for k := range idx {
		for i < len(start) && int(start[i]>>16) < k {
			i++
		}
		idx[k] = uint32(i)
	}
	return idx
}

// scanLines calls fn with the three comma-separated fields of every data
// line; fn returns "" or a message for a ParseError.
func scanLines(r io.Reader, name string, fn func(line int, f *[3][]byte) string) error {
	sc := bufio.NewScanner(r)
	// Real lines are < 100 bytes; the default 64 KiB limit turns a binary
	// or garbage file into a clear error rather than a huge allocation.
	n := 0
	var f [3][]byte
	for sc.Scan() {
		n++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 || b[0] == '#' {
			continue
		}
		i := bytes.IndexByte(b, ',')
		j := -1
		if i >= 0 {
			j = bytes.IndexByte(b[i+1:], ',')
		}
		if j < 0 || bytes.IndexByte(b[i+1+j+1:], ',') >= 0 {
			return &ParseError{name, n, "want START,END,CC"}
		}
		j += i + 1
		f[0] = bytes.TrimSpace(b[:i])
		f[1] = bytes.TrimSpace(b[i+1 : j])
		f[2] = bytes.TrimSpace(b[j+1:])
		if msg := fn(n, &f); msg != "" {
			return &ParseError{name, n, msg}
		}
	}
	if err := sc.Err(); err != nil {
		return &ParseError{name, n + 1, err.Error()}
	}
	return nil
}

// parseUint32 parses a plain decimal number (no sign, no spaces).
func parseUint32(b []byte) (uint32, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	if v > 1<<32-1 {
		return 0, false
	}
	return uint32(v), true
}

// parseIP6 parses a textual IPv6 address without allocating (netip wants a
// string, and converting 550k fields costs ~20 MB of garbage per load).
// The grammar follows net/netip's parseIPv6, minus zones, which have no
// place in geoip6; FuzzParseIP6 checks the two agree.
func parseIP6(s []byte) (ip6, bool) {
	var ip [16]byte
	ellipsis := -1 // position of "::" in ip
	if len(s) >= 2 && s[0] == ':' && s[1] == ':' {
		ellipsis = 0
		s = s[2:]
		if len(s) == 0 {
			return ip6{}, true
		}
	}
	i := 0
	for i < 16 {
		off := 0
		acc := uint32(0)
	digits:
		for ; off < len(s); off++ {
			c := s[off]
			switch {
			case c >= '0' && c <= '9':
				acc = acc<<4 + uint32(c-'0')
			case c >= 'a' && c <= 'f':
				acc = acc<<4 + uint32(c-'a'+10)
			case c >= 'A' && c <= 'F':
				acc = acc<<4 + uint32(c-'A'+10)
			default:
				break digits
			}
			if off > 3 {
				return ip6{}, false // more than 4 digits
			}
		}
		if off == 0 {
			return ip6{}, false
		}
		if off < len(s) && s[off] == '.' {
			// Trailing dotted quad, replacing the last two groups.
			if ellipsis < 0 && i != 12 || i+4 > 16 || !parseDotted(s, ip[i:i+4]) {
				return ip6{}, false
			}
			s = nil
			i += 4
			break
		}
		ip[i] = byte(acc >> 8)
		ip[i+1] = byte(acc)
		i += 2
		s = s[off:]
		if len(s) == 0 {
			break
		}
		if s[0] != ':' || len(s) == 1 {
			return ip6{}, false
		}
		s = s[1:]
		if s[0] == ':' {
			if ellipsis >= 0 {
				return ip6{}, false // second "::"
			}
			ellipsis = i
			s = s[1:]
			if len(s) == 0 {
				break
			}
		}
	}
	if len(s) != 0 {
		return ip6{}, false
	}
	if i < 16 {
		if ellipsis < 0 {
			return ip6{}, false
		}
		n := 16 - i
		copy(ip[ellipsis+n:], ip[ellipsis:i])
		clear(ip[ellipsis : ellipsis+n])
	} else if ellipsis >= 0 {
		return ip6{}, false // "::" must stand for at least one group
	}
	return ip6{binary.BigEndian.Uint64(ip[:8]), binary.BigEndian.Uint64(ip[8:])}, true
}

// parseDotted parses "a.b.c.d" into out (4 bytes), rejecting leading zeros
// like netip does.
func parseDotted(s []byte, out []byte) bool {
	val, pos, digits := 0, 0, 0
	for i, c := range s {
		switch {
		case c >= '0' && c <= '9':
			if digits == 1 && val == 0 {
				return false
			}
			val = val*10 + int(c-'0')
			digits++
			if val > 255 {
				return false
			}
		case c == '.':
			if i == 0 || i == len(s)-1 || s[i-1] == '.' || pos == 3 {
				return false
			}
			out[pos] = byte(val)
			pos++
			val, digits = 0, 0
		default:
			return false
		}
	}
	if pos < 3 {
		return false
	}
	out[3] = byte(val)
	return true
}

// parseCode validates a country field: two characters that are letters,
// digits or '?', the shapes used by tor and MaxMind ("US", "??", "A1").
func parseCode(b []byte) (uint16, bool) {
	if len(b) != 2 {
		return 0, false
	}
	for _, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '?') {
			return 0, false
		}
	}
	return codeIndex(b[0], b[1]), true
}

// Range keys. The methods give the load-time builder one generic
// implementation; lookups use hand-written searches on the raw values.
type (
	ip4 uint32
	ip6 struct{ hi, lo uint64 }
)

func (a ip4) compare(b ip4) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (a ip4) follows(p ip4) bool { return p != 1<<32-1 && a == p+1 }

func (a ip6) compare(b ip6) int {
	switch {
	case a.hi < b.hi:
		return -1
	case a.hi > b.hi:
		return 1
	case a.lo < b.lo:
		return -1
	case a.lo > b.lo:
		return 1
	}
	return 0
}

func (a ip6) follows(p ip6) bool {
	if p.lo != 1<<64-1 {
		return a.hi == p.hi && a.lo == p.lo+1
	}
	return p.hi != 1<<64-1 && a.hi == p.hi+1 && a.lo == 0
}

type rangeKey[K any] interface {
	comparable
	compare(K) int
	follows(K) bool // reports whether the receiver is exactly one past the argument
}

// builder accumulates ranges in file order, then sorts, checks and
// compacts them.
type builder[K rangeKey[K]] struct {
	start, end []K
	code       []uint16
	line       []uint32 // source line per entry, for error messages
	unsorted   bool
}

func (b *builder[K]) grow(n int) {
	b.start = slices.Grow(b.start, n)
	b.end = slices.Grow(b.end, n)
	b.code = slices.Grow(b.code, n)
	b.line = slices.Grow(b.line, n)
}

func (b *builder[K]) add(s, e K, cc []byte, line int) string {
	code, ok := parseCode(cc)
	if !ok {
		return "bad country code"
	}
	if s.compare(e) > 0 {
		return "range start is after its end"
	}
	if n := len(b.start); n > 0 && s.compare(b.start[n-1]) < 0 {
		b.unsorted = true
	}
	b.start = append(b.start, s)
	b.end = append(b.end, e)
	b.code = append(b.code, code)
	b.line = append(b.line, uint32(line))
	return ""
}

func (b *builder[K]) build(name string) (start, end []K, code []uint16, err error) {
	if b.unsorted {
		b.sort()
	}
	for i := 1; i < len(b.start); i++ {
		// Sorted by start, so checking neighbours finds any overlap.
		if b.start[i].compare(b.end[i-1]) <= 0 {
			return nil, nil, nil, &ParseError{name, int(b.line[i]),
				fmt.Sprintf("range overlaps the one on line %d", b.line[i-1])}
		}
	}
	n := 0
	for i := range b.start {
		if b.code[i] == noCode {
			continue // gaps answer "" just as well, and cost nothing
		}
		if n > 0 && b.code[n-1] == b.code[i] && b.start[i].follows(b.end[n-1]) {
			b.end[n-1] = b.end[i]
			continue
		}
		b.start[n], b.end[n], b.code[n] = b.start[i], b.end[i], b.code[i]
		n++
	}
	// Copy to exact size so append's spare capacity is released.
	return slices.Clone(b.start[:n]), slices.Clone(b.end[:n]), slices.Clone(b.code[:n]), nil
}

func (b *builder[K]) sort() {
	perm := make([]int32, len(b.start))
	for i := range perm {
		perm[i] = int32(i)
	}
	// Stable, so equal starts keep file order and the overlap error names
	// lines predictably.
	slices.SortStableFunc(perm, func(x, y int32) int { return b.start[x].compare(b.start[y]) })
	b.start = permute(b.start, perm)
	b.end = permute(b.end, perm)
	b.code = permute(b.code, perm)
	b.line = permute(b.line, perm)
}

func permute[T any](s []T, perm []int32) []T {
	out := make([]T, len(s))
	for i, p := range perm {
		out[i] = s[p]
	}
	return out
}
