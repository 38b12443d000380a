package event

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// A batch is the unit written to the log: many events in one message, so the
// log's per-message cost is paid once per batch rather than once per event.
//
//	batch  = magic(2) version(1) uvarint(count) { uvarint(len) event }*
//	event  = flags(1) [idhash(16)] varint(unix ms) string*18 unit(1)
//	         pseudonym(16) uvarint(keyver) varint(scroll) uvarint(engaged)
//	         uvarint(nprops) { string string }*
//	string = uvarint(len) bytes
const (
	magic0, magic1 = 'V', 'E'
	codecVersion   = 1

	// Limits on decode guard against corrupt or hostile messages; the edge
	// enforces tighter ones on input.
	maxString = 4096
	maxProps  = 64
	maxBatch  = 1 << 20
)

const (
	flagHasID = 1 << iota
	flagInteractive
)

// ErrCorrupt is returned for any batch that cannot be decoded.
var ErrCorrupt = errors.New("event: corrupt batch")

// AppendBatch appends the encoding of evs to dst.
func AppendBatch(dst []byte, evs []Event) []byte {
	ptrs := make([]*Event, len(evs))
	for i := range evs {
		ptrs[i] = &evs[i]
	}
	return AppendBatchPtr(dst, ptrs)
}

// AppendBatchPtr is AppendBatch for events held by pointer, so callers that
// group events need not copy them.
func AppendBatchPtr(dst []byte, evs []*Event) []byte {
	dst = append(dst, magic0, magic1, codecVersion)
	dst = binary.AppendUvarint(dst, uint64(len(evs)))
	for _, e := range evs {
		// Reserve the longest length prefix an event can need, encode in
		// place, then close the gap: no scratch copy per event.
		lenAt := len(dst)
		dst = append(dst, 0, 0, 0, 0, 0)
		dst = appendEvent(dst, e)
		n := len(dst) - lenAt - 5
		var l [binary.MaxVarintLen64]byte
		ln := binary.PutUvarint(l[:], uint64(n))
		copy(dst[lenAt:], l[:ln])
		copy(dst[lenAt+ln:], dst[lenAt+5:])
		dst = dst[:lenAt+ln+n]
	}
	return dst
}

func (e *Event) strings() [18]*string {
	return [18]*string{&e.SiteID, &e.Name, &e.Host, &e.Path, &e.Query, &e.Referrer,
		&e.Source, &e.UTMSource, &e.UTMMedium, &e.UTMCamp, &e.UTMTerm, &e.UTMContent,
		&e.Country, &e.Browser, &e.BrowserV, &e.OS, &e.OSV, &e.Device}
}

func appendEvent(b []byte, e *Event) []byte {
	var flags byte
	if e.HasID {
		flags |= flagHasID
	}
	if e.Interactive {
		flags |= flagInteractive
	}
	b = append(b, flags)
	if e.HasID {
		b = append(b, e.IDHash[:]...)
	}
	b = binary.AppendVarint(b, e.Time.UnixMilli())
	for _, s := range e.strings() {
		b = appendString(b, *s)
	}
	b = append(b, byte(e.Unit))
	b = append(b, e.Pseudonym[:]...)
	b = binary.AppendUvarint(b, uint64(e.KeyVersion))
	b = binary.AppendVarint(b, int64(e.ScrollDepth))
	b = binary.AppendUvarint(b, uint64(e.EngagedMS))
	b = binary.AppendUvarint(b, uint64(len(e.Props)))
	for _, p := range e.Props {
		b = appendString(b, p.Key)
		b = appendString(b, p.Value)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// DecodeBatch decodes a batch written by AppendBatch. It never panics; any
// malformed input yields an error wrapping ErrCorrupt.
func DecodeBatch(b []byte) ([]Event, error) {
	if len(b) < 3 || b[0] != magic0 || b[1] != magic1 {
		return nil, fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	if b[2] != codecVersion {
		return nil, fmt.Errorf("%w: unsupported version %d", ErrCorrupt, b[2])
	}
	r := reader{b: b[3:]}
	n := r.uvarint()
	// Every event takes at least 20 bytes, so a count larger than the input
	// allows is corrupt; checking it first avoids a huge allocation.
	if r.err != nil || n > maxBatch || n > uint64(len(r.b))/20 {
		return nil, fmt.Errorf("%w: bad count", ErrCorrupt)
	}
	evs := make([]Event, n)
	for i := range evs {
		l := r.uvarint()
		if r.err != nil || l > uint64(len(r.b)) {
			return nil, fmt.Errorf("%w: event %d: bad length", ErrCorrupt, i)
		}
		er := reader{b: r.b[:l]}
		r.b = r.b[l:]
		er.event(&evs[i])
		if er.err == nil && len(er.b) != 0 {
			er.err = errors.New("trailing bytes")
		}
		if er.err != nil {
			return nil, fmt.Errorf("%w: event %d: %v", ErrCorrupt, i, er.err)
		}
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes", ErrCorrupt)
	}
	return evs, nil
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(msg string) {
	if r.err == nil {
		r.err = errors.New(msg)
	}
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.fail("short input")
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	v := r.bytes(1)
	if v == nil {
		return 0
	}
	return v[0]
}

func (r *reader) string() string {
	n := r.uvarint()
	if n > maxString {
		r.fail("string too long")
		return ""
	}
	return string(r.bytes(int(n)))
}

func (r *reader) event(e *Event) {
	flags := r.byte()
	if flags&^(flagHasID|flagInteractive) != 0 {
		r.fail("unknown flags")
		return
	}
	if flags&flagHasID != 0 {
		e.HasID = true
		copy(e.IDHash[:], r.bytes(16))
	}
	e.Interactive = flags&flagInteractive != 0
	e.Time = time.UnixMilli(r.varint()).UTC()
	for _, s := range e.strings() {
		*s = r.string()
	}
	e.Unit = Unit(r.byte())
	if e.Unit < UnitVisitorDay || e.Unit > UnitEvent {
		r.fail("unknown unit")
		return
	}
	copy(e.Pseudonym[:], r.bytes(16))
	kv := r.uvarint()
	if kv > 1<<32-1 {
		r.fail("key version out of range")
	}
	e.KeyVersion = uint32(kv)
	sd := r.varint()
	if sd < -1 || sd > 100 {
		r.fail("scroll depth out of range")
	}
	e.ScrollDepth = int16(sd)
	em := r.uvarint()
	if em > 1<<32-1 {
		r.fail("engagement out of range")
	}
	e.EngagedMS = uint32(em)
	np := r.uvarint()
	if np > maxProps {
		r.fail("too many props")
		return
	}
	if np > 0 && r.err == nil {
		e.Props = make([]Prop, np)
		for i := range e.Props {
			e.Props[i].Key = r.string()
			e.Props[i].Value = r.string()
		}
	}
}
