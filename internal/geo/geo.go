// Package geo maps a client IP address to an ISO 3166-1 alpha-2 country
// code at the ingest edge. The address is looked up once and then dropped;
// only the country code travels further, so nothing in this package stores
// or logs addresses.
//
// Two data sources are supported: a MaxMind-format database (GeoLite2 /
// GeoIP2 Country or City, DB-IP lite, see OpenMMDB) and Debian's
// tor-geoipdb text files (see LoadTor), which many servers already have
// installed. Open picks the best available one and falls back to None.
//
// Every Locator returned by this package is safe for concurrent use, does
// not allocate on the lookup path (MMDB allocates only on a cache miss) and
// returns either "" or two upper-case ASCII letters. Private, loopback,
// link-local, multicast and unspecified addresses, and the non-country
// placeholders used by the data vendors ("??", "A1", "A2", "A3", "AP",
// "EU", "XX", "ZZ"), all map to "".
package geo

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
)

// Locator resolves an address to an upper-case ISO country code, or "" when
// unknown.
type Locator interface {
	Country(ip netip.Addr) string
}

// Source names what a Locator is backed by, for logs and /readyz
// ("mmdb:/path", "tor-geoipdb", "none").
type Source string

const (
	// SourceNone is reported when no geolocation data is available.
	SourceNone Source = "none"
	// SourceTor is reported when Debian's tor-geoipdb files are used.
	SourceTor Source = "tor-geoipdb"
)

// MMDBSource returns the Source reported for an mmdb file at path.
func MMDBSource(path string) Source { return Source("mmdb:" + path) }

// None is the Locator used when no data is available; it always returns "".
type None struct{}

// Country implements Locator.
func (None) Country(netip.Addr) string { return "" }

// Debian's tor-geoipdb package locations. Variables so tests can point Open
// at fixtures.
var (
	torV4Path = "/usr/share/tor/geoip"
	torV6Path = "/usr/share/tor/geoip6"
)

// Open picks the best available source: the mmdb file when mmdbPath is
// non-empty, else Debian's tor-geoipdb files when present, else None.
//
// A configured mmdb that cannot be opened is an error rather than a silent
// fallback: the operator asked for it, so start-up should stop. Tor files
// that are present but fail to parse are an error too, because a corrupt
// file must not quietly turn into wrong or missing countries.
func Open(mmdbPath string) (Locator, Source, error) {
	if mmdbPath != "" {
		db, err := OpenMMDB(mmdbPath)
		if err != nil {
			return nil, "", err
		}
		return db, MMDBSource(mmdbPath), nil
	}
	if _, err := os.Stat(torV4Path); err == nil {
		t, err := LoadTor(torV4Path, torV6Path)
		if err != nil {
			return nil, "", err
		}
		return t, SourceTor, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		// Present but unreadable (permissions, I/O): say so instead of
		// pretending there is no data.
		return nil, "", fmt.Errorf("geo: %w", err)
	}
	return None{}, SourceNone, nil
}

// lookupable reports whether ip can have a country at all. Checking here
// keeps answers consistent across sources (the tor files, for instance,
// carry ULA ranges tagged "??", while an mmdb just has no record) and skips
// the search for the addresses reverse proxies most often hand us.
// ip must already be unmapped.
func lookupable(ip netip.Addr) bool {
	return ip.IsValid() &&
		!ip.IsUnspecified() &&
		!ip.IsLoopback() &&
		!ip.IsPrivate() &&
		!ip.IsLinkLocalUnicast() &&
		!ip.IsMulticast()
}

// Country codes are stored as an index into the 26*26 two-letter pairs so
// that ranges stay small (uint16) and lookups can return a substring of one
// constant string instead of allocating.
const (
	numCodes = 26 * 26
	noCode   = numCodes // "unknown" marker; never returned as text
)

var codePairs = func() string {
	b := make([]byte, 0, 2*numCodes)
	for a := byte('A'); a <= 'Z'; a++ {
		for c := byte('A'); c <= 'Z'; c++ {
			b = append(b, a, c)
		}
	}
	return string(b)
}()

// codeString returns the text for a code index, "" for noCode or anything
// out of range.
func codeString(c uint16) string {
	if c >= numCodes {
		return ""
	}
	return codePairs[2*int(c) : 2*int(c)+2]
}

// codeIndex canonicalises a two-byte country code. It accepts either case,
// maps UK (ISO "exceptionally reserved" and common in registry data) to GB,
// and returns noCode for the vendors' non-country placeholders and for
// anything that is not two letters.
func codeIndex(a, b byte) uint16 {
	a, b = upper(a), upper(b)
	if a < 'A' || a > 'Z' || b < 'A' || b > 'Z' {
		return noCode // "??", "A1", "A2", "O1", ...
	}
	switch uint16(a)<<8 | uint16(b) {
	case 'A'<<8 | 'P', 'E'<<8 | 'U', 'X'<<8 | 'X', 'Z'<<8 | 'Z': // Asia/Pacific, Europe, unknown
		return noCode
	case 'U'<<8 | 'K':
		a, b = 'G', 'B'
	}
	return uint16(a-'A')*26 + uint16(b-'A')
}

// codeIndexString is codeIndex for a whole string; anything but exactly two
// bytes is unknown.
func codeIndexString(s string) uint16 {
	if len(s) != 2 {
		return noCode
	}
	return codeIndex(s[0], s[1])
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}
