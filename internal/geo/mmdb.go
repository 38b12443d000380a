package geo

import (
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/oschwald/maxminddb-golang/v2/mmdbdata"
)

// MMDB is a Locator backed by a MaxMind-format database (GeoLite2/GeoIP2
// Country or City, DB-IP lite country, ...). It reads country.iso_code,
// falling back to registered_country.iso_code; a plain string "country"
// field (IPinfo's layout) is accepted too.
//
// MMDB is safe for concurrent use. Close must not be called while lookups
// may still be running: the file is memory-mapped and unmapping it under a
// reader would fault.
type MMDB struct {
	r      *maxminddb.Reader
	v4Only bool // IPv6 lookups would only produce errors

	// Direct-mapped cache from data-record offset to code index. Country
	// databases have a few hundred distinct records, so after warm-up a
	// lookup is only the tree walk: no decoding, no allocation. Each slot
	// packs (offset+1)<<cacheCodeBits | code into one word, so a racing
	// writer can only replace an entry with another valid one.
	cache [cacheSlots]atomic.Uint64
}

const (
	cacheBits     = 14 // 16384 slots, 128 KiB
	cacheSlots    = 1 << cacheBits
	cacheCodeBits = 10 // noCode (676) fits
	cacheMaxOff   = 1<<(64-cacheCodeBits) - 2
)

// OpenMMDB opens (memory-maps) a MaxMind-format database.
func OpenMMDB(path string) (*MMDB, error) {
	r, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("geo: open mmdb %s: %w", path, err)
	}
	return &MMDB{r: r, v4Only: r.Metadata.IPVersion == 4}, nil
}

// DatabaseType returns the type string from the file's metadata (e.g.
// "GeoLite2-Country"), for start-up logs.
func (m *MMDB) DatabaseType() string { return m.r.Metadata.DatabaseType }

// Close releases the mapping. See the type comment about concurrency.
func (m *MMDB) Close() error { return m.r.Close() }

// Country implements Locator.
func (m *MMDB) Country(ip netip.Addr) string {
	if m == nil {
		return ""
	}
	ip = ip.Unmap()
	if !lookupable(ip) || m.v4Only && ip.Is6() {
		// The library would build a formatted error for IPv6 in an
		// IPv4-only database: an allocation per lookup.
		return ""
	}
	// The library reports closed readers and corrupt trees as errors;
	// both mean "unknown" here.
	res := m.r.Lookup(ip)
	if !res.Found() {
		return ""
	}
	off := uint64(res.Offset())
	if off > cacheMaxOff {
		return codeString(m.decode(res))
	}
	key := (off + 1) << cacheCodeBits
	slot := &m.cache[(off*0x9E3779B97F4A7C15)>>(64-cacheBits)]
	if e := slot.Load(); e&^(1<<cacheCodeBits-1) == key {
		return codeString(uint16(e & (1<<cacheCodeBits - 1)))
	}
	c := m.decode(res)
	slot.Store(key | uint64(c))
	return codeString(c)
}

func (m *MMDB) decode(res maxminddb.Result) uint16 {
	var rec isoRecord
	if err := res.Decode(&rec); err != nil {
		return noCode
	}
	if c := codeIndexString(rec.country); c != noCode {
		return c
	}
	return codeIndexString(rec.registered)
}

// isoRecord decodes just the two fields we need, skipping names in a dozen
// languages, subdivisions and the rest of a City record.
type isoRecord struct{ country, registered string }

// UnmarshalMaxMindDB implements mmdbdata.Unmarshaler.
func (r *isoRecord) UnmarshalMaxMindDB(d *mmdbdata.Decoder) error {
	fields, _, err := d.ReadMap()
	if err != nil {
		return err
	}
	for key, err := range fields {
		if err != nil {
			return err
		}
		// Values not read here are skipped by the iterator.
		switch string(key) {
		case "country":
			r.country, err = readISO(d)
		case "registered_country":
			r.registered, err = readISO(d)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readISO reads {"iso_code": "XX", ...} or, for IPinfo-style data, a bare
// code string. Anything else yields "".
func readISO(d *mmdbdata.Decoder) (string, error) {
	kind, err := d.PeekKind()
	if err != nil {
		return "", err
	}
	switch kind {
	case mmdbdata.KindString:
		return d.ReadString()
	case mmdbdata.KindMap:
	default:
		return "", nil
	}
	fields, _, err := d.ReadMap()
	if err != nil {
		return "", err
	}
	iso := ""
	for key, err := range fields {
		if err != nil {
			return "", err
		}
		if string(key) == "iso_code" {
			if k, err := d.PeekKind(); err != nil {
				return "", err
			} else if k == mmdbdata.KindString {
				if iso, err = d.ReadString(); err != nil {
					return "", err
				}
			}
		}
	}
	return iso, nil
}
