// Package urlnorm minimizes the page URL and referrer of an analytics event
// at the ingest edge, before anything is stored, and derives the visit's
// traffic source.
//
// Privacy is the point: a page URL keeps only its host (so the caller can
// check it belongs to the site), its normalized path and an allow-list of
// query parameters; everything else (other parameters, the fragment, user
// info, ports, path parameters such as ";jsessionid=...") is dropped. A
// referrer is reduced to its host. Results never alias the raw input, so a
// retained Page or Referrer does not keep the dropped parts alive in memory.
//
// The functions are on the hot path (hundreds of thousands of events per
// second) and use no regexp: ParsePage and ParseReferrer make one allocation
// for typical input (ParsePage a second one when the minimized URL exceeds
// 512 bytes) and none when they reject input or find an internal referrer.
package urlnorm

import (
	"bytes"
	"errors"
	"strings"
	"unicode/utf8"
)

// Limits applied by ParsePage.
const (
	MaxURLLen  = 2000 // raw page URL, bytes
	MaxPathLen = 1024 // normalized Page.Path including a kept route fragment
	MaxUTMLen  = 128  // each UTM field; longer values are truncated
	// MaxQueryLen bounds Page.Query; parameters past it are dropped whole.
	MaxQueryLen = 512
)

// Errors returned by ParsePage. They never include the URL itself, which may
// carry personal data.
var (
	ErrEmpty       = errors.New("urlnorm: URL is empty")
	ErrTooLong     = errors.New("urlnorm: URL longer than 2000 bytes")
	ErrInvalidUTF8 = errors.New("urlnorm: URL is not valid UTF-8")
	ErrControlChar = errors.New("urlnorm: URL contains control characters")
	ErrScheme      = errors.New("urlnorm: missing or unsupported URL scheme")
	ErrNoHost      = errors.New("urlnorm: URL has no host")
	ErrHost        = errors.New("urlnorm: invalid host")
	ErrPathTooLong = errors.New("urlnorm: path longer than 1024 bytes")
)

// DefaultAllowedParams is the query allow-list used when
// Options.AllowedParams is nil: the five standard UTM parameters.
var DefaultAllowedParams = []string{"utm_*"}

// Options configures ParsePage for one site.
type Options struct {
	// AllowedParams lists the query parameters kept in Page.Query: exact
	// names, or prefixes ending in '*'. Names are compared with the decoded
	// parameter name, ignoring ASCII case. nil means DefaultAllowedParams; an
	// empty non-nil slice keeps no parameters (and fills no UTM fields). A
	// bare "*" is ignored: a site cannot switch minimization off.
	AllowedParams []string
	// KeepRouteFragment keeps a route-like fragment ("#/route" or "#!/route")
	// for hash-routed single-page apps (Plausible's h=1).
	KeepRouteFragment bool
}

// Page is a minimized page URL.
type Page struct {
	// Host is lower-case, without port, user info, trailing dot or "www."
	// prefix. IPv6 hosts keep their brackets ("[2001:db8::1]"). It may be
	// empty only for app schemes ("app:///index.html").
	Host string
	// Path starts with "/", has unreserved percent-escapes decoded and all
	// others upper-cased, no empty, "." or ".." segments, no path
	// parameters and no trailing slash except for the root. A kept route
	// fragment is appended as "#/route".
	Path string
	// Query holds the allowed parameters in their original order as
	// "k=v&k2=v2", canonically escaped (only unreserved characters literal,
	// spaces as %20), at most MaxQueryLen bytes; "" if none.
	Query string
	// UTM fields are decoded, trimmed, stripped of control characters and
	// invalid UTF-8, and truncated to MaxUTMLen bytes. They are read from
	// Query, so they are filled only when the parameter is allowed (and
	// kept); the first non-empty occurrence wins.
	UTMSource, UTMMedium, UTMCampaign, UTMTerm, UTMContent string
}

var utmNames = [5]string{"utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"}

// ParsePage parses and minimizes a page URL. It accepts http and https URLs
// (which must have a host) and hierarchical app schemes ("app://",
// "capacitor://", "android-app://"); data:, javascript:, file:, blob:,
// about: and vbscript: are rejected, as are opaque URLs without "//".
func ParsePage(raw string, opt Options) (Page, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return Page{}, ErrEmpty
	}
	if len(raw) > MaxURLLen {
		return Page{}, ErrTooLong
	}
	if err := checkChars(raw); err != nil {
		return Page{}, err
	}
	scheme, rest, ok := splitScheme(raw)
	if !ok || blockedScheme(scheme) || !strings.HasPrefix(rest, "//") {
		return Page{}, ErrScheme
	}
	rest = rest[2:]
	end := authorityEnd(rest)
	auth, rest := rest[:end], rest[end:]
	var frag string
	hasFrag := false
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		frag, rest, hasFrag = rest[i+1:], rest[:i], true
	}
	var query string
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		query, rest = rest[i+1:], rest[:i]
	}

	// Everything is written into one buffer and converted to a string once:
	// one allocation, and no field aliases raw.
	var arr [512]byte
	b, err := appendHost(arr[:0], auth)
	if err != nil {
		return Page{}, err
	}
	hostEnd := len(b)
	if hostEnd == 0 && (strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "https")) {
		return Page{}, ErrNoHost
	}
	b = appendPath(b, rest)
	if opt.KeepRouteFragment && hasFrag {
		b = appendRoute(b, frag)
	}
	pathEnd := len(b)
	if pathEnd-hostEnd > MaxPathLen {
		return Page{}, ErrPathTooLong
	}

	pats := opt.AllowedParams
	if pats == nil {
		pats = DefaultAllowedParams
	}
	b = appendQuery(b, query, pats)
	queryEnd := len(b)

	var utm [5][2]int
	if queryEnd > pathEnd {
		b = appendUTM(b, pathEnd, queryEnd, &utm)
	}

	s := string(b)
	p := Page{Host: s[:hostEnd], Path: s[hostEnd:pathEnd], Query: s[pathEnd:queryEnd]}
	fields := [5]*string{&p.UTMSource, &p.UTMMedium, &p.UTMCampaign, &p.UTMTerm, &p.UTMContent}
	for i, o := range utm {
		*fields[i] = s[o[0]:o[1]]
	}
	return p, nil
}

// checkChars rejects invalid UTF-8 and C0/C1 control characters (tabs and
// newlines included: no browser sends them, and they break log lines).
func checkChars(s string) error {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return ErrControlChar
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return ErrInvalidUTF8
		}
		if r <= 0x9f {
			return ErrControlChar
		}
		i += size
	}
	return nil
}

// splitScheme splits "scheme:rest"; the scheme is [A-Za-z][A-Za-z0-9+.-]*.
func splitScheme(s string) (scheme, rest string, ok bool) {
	for i := 0; i < len(s) && i <= 32; i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9', c == '+', c == '-', c == '.':
			if i == 0 {
				return "", "", false
			}
		case c == ':':
			if i == 0 {
				return "", "", false
			}
			return s[:i], s[i+1:], true
		default:
			return "", "", false
		}
	}
	return "", "", false
}

// blockedScheme reports schemes that never name a page a visitor is on and
// can carry arbitrary payloads (data:, javascript:) or local paths (file:).
func blockedScheme(s string) bool {
	switch len(s) {
	case 4:
		return strings.EqualFold(s, "data") || strings.EqualFold(s, "file") || strings.EqualFold(s, "blob")
	case 5:
		return strings.EqualFold(s, "about")
	case 8:
		return strings.EqualFold(s, "vbscript")
	case 10:
		return strings.EqualFold(s, "javascript")
	}
	return false
}

// authorityEnd returns the index of the first '/', '?' or '#' in s, or len(s).
func authorityEnd(s string) int {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '/', '?', '#':
			return i
		}
	}
	return len(s)
}

// appendPath appends the normalized form of p (empty or starting with "/").
// It drops path parameters (";..." up to the next "/", where session ids
// like ";jsessionid=" live), collapses empty segments, resolves "." and ".."
// the way browsers do, and drops the trailing slash.
func appendPath(b []byte, p string) []byte {
	base := len(b)
	b = append(b, '/') // invariant: b[base:] ends with '/' inside the loop
	for p != "" {
		var seg string
		if i := strings.IndexByte(p, '/'); i >= 0 {
			seg, p = p[:i], p[i+1:]
		} else {
			seg, p = p, ""
		}
		if i := strings.IndexByte(seg, ';'); i >= 0 {
			seg = seg[:i]
		}
		if seg == "" {
			continue
		}
		mark := len(b)
		b = appendEscaped(b, seg, &pathLiteral, false)
		n := len(b) - mark
		switch {
		case n == 1 && b[mark] == '.':
			b = b[:mark]
		case n == 2 && b[mark] == '.' && b[mark+1] == '.':
			b = b[:mark]
			if len(b)-base > 1 {
				j := bytes.LastIndexByte(b[base:len(b)-1], '/')
				b = b[:base+j+1]
			}
		default:
			b = append(b, '/')
		}
	}
	if len(b)-base > 1 {
		b = b[:len(b)-1]
	}
	return b
}

// appendRoute appends "#"+route for a route-like fragment and nothing for
// any other fragment. Only the path part of the route is kept, and a route
// holding '=' is dropped whole: fragments carry OAuth tokens
// (#access_token=...) and query-like state.
func appendRoute(b []byte, frag string) []byte {
	frag = strings.TrimPrefix(frag, "!")
	if !strings.HasPrefix(frag, "/") {
		return b
	}
	for i := 0; i < len(frag); i++ {
		if frag[i] == '?' || frag[i] == ';' {
			frag = frag[:i]
			break
		}
	}
	for i := 0; i < len(frag); i++ {
		if frag[i] == '=' || frag[i] == '%' && i+2 < len(frag) && frag[i+1] == '3' && (frag[i+2] == 'd' || frag[i+2] == 'D') {
			return b
		}
	}
	mark := len(b)
	b = append(b, '#')
	b = appendPath(b, frag)
	if len(b)-mark == 2 { // "#/": the root route says nothing the path doesn't
		b = b[:mark]
	}
	return b
}

// appendQuery appends the allowed parameters of the raw query, canonically
// escaped, in their original order. A parameter that would take the query
// past MaxQueryLen is dropped whole: cutting it would change its meaning, and
// the bound keeps the minimized URL under MaxURLLen so that it parses again.
func appendQuery(b []byte, query string, pats []string) []byte {
	start := len(b)
	for query != "" {
		var param string
		param, query, _ = strings.Cut(query, "&")
		key, val, _ := strings.Cut(param, "=")
		if key == "" || !allowed(key, pats) {
			continue
		}
		mark := len(b)
		if mark > start {
			b = append(b, '&')
		}
		b = appendEscaped(b, key, &queryLiteral, true)
		b = append(b, '=')
		b = appendEscaped(b, val, &queryLiteral, true)
		if len(b)-start > MaxQueryLen {
			b = b[:mark]
		}
	}
	return b
}

// appendUTM appends the decoded UTM values found in the canonical query
// b[start:end] and records their offsets in b. Reading the kept query rather
// than the raw one means a UTM field is never filled from a parameter that
// Query dropped.
func appendUTM(b []byte, start, end int, off *[5][2]int) []byte {
	// Appending to b never touches b[start:end], even if b is reallocated.
	q := b[start:end]
	var set [5]bool
	for len(q) > 0 {
		param := q
		if i := bytes.IndexByte(q, '&'); i >= 0 {
			param, q = q[:i], q[i+1:]
		} else {
			q = nil
		}
		i := bytes.IndexByte(param, '=') // always present in the canonical query
		if i < 0 {
			continue
		}
		f := utmField(param[:i])
		if f < 0 || set[f] {
			continue
		}
		mark := len(b)
		b = appendUTMValue(b, param[i+1:])
		if len(b) > mark {
			off[f] = [2]int{mark, len(b)}
			set[f] = true
		}
	}
	return b
}

// utmField returns the index in utmNames of a canonical parameter name, or
// -1. Canonical names have unreserved escapes decoded, so a byte comparison
// (ignoring case) suffices.
func utmField(key []byte) int {
	if len(key) < 8 || lower(key[0]) != 'u' {
		return -1
	}
	for i, n := range utmNames {
		if len(key) == len(n) && equalFoldASCII(key, n) {
			return i
		}
	}
	return -1
}

func equalFoldASCII(b []byte, s string) bool {
	for i := range b {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

// appendUTMValue appends the decoded, sanitized, trimmed and truncated value
// of a canonical query value (which has no '+' and only valid escapes).
func appendUTMValue(b []byte, val []byte) []byte {
	mark := len(b)
	for i := 0; i < len(val); i++ {
		c := val[i]
		if c == '%' && i+2 < len(val) {
			c = unhex(val[i+1])<<4 | unhex(val[i+2])
			i += 2
		}
		b = append(b, c)
	}
	// Drop control characters and invalid UTF-8 in place: these values end
	// up in dashboards and CSV exports.
	w := mark
	for r := mark; r < len(b); {
		c := b[r]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != 0x7f {
				b[w] = c
				w++
			}
			r++
			continue
		}
		ru, size := utf8.DecodeRune(b[r:])
		if !(ru == utf8.RuneError && size == 1) && ru > 0x9f {
			w += copy(b[w:], b[r:r+size])
		}
		r += size
	}
	b = b[:w]
	v := bytes.TrimSpace(b[mark:])
	if len(v) > MaxUTMLen {
		n := MaxUTMLen
		for n > 0 && !utf8.RuneStart(v[n]) {
			n--
		}
		v = bytes.TrimSpace(v[:n])
	}
	n := copy(b[mark:], v) // copy handles the overlap
	return b[:mark+n]
}

// allowed reports whether a raw parameter name matches one of the patterns.
func allowed(key string, pats []string) bool {
	for _, p := range pats {
		prefix := strings.HasSuffix(p, "*")
		if prefix {
			p = p[:len(p)-1]
		}
		if p == "" { // "" and a bare "*" would allow everything
			continue
		}
		if keyMatches(key, p, prefix) {
			return true
		}
	}
	return false
}

// keyMatches compares the decoded raw key with name (or name as a prefix),
// ignoring ASCII case, without decoding into a buffer.
func keyMatches(key, name string, prefix bool) bool {
	i := 0
	for j := 0; j < len(name); j++ {
		if i >= len(key) {
			return false
		}
		var c byte
		c, i = nextQueryByte(key, i)
		if lower(c) != lower(name[j]) {
			return false
		}
	}
	return prefix || i == len(key)
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
