package urlnorm

import (
	"errors"
	"net/netip"
	"strings"
)

// ErrInvalidDomain is wrapped by every error NormalizeDomain returns.
var ErrInvalidDomain = errors.New("urlnorm: invalid domain")

type domainError string

func (e domainError) Error() string { return "urlnorm: invalid domain: " + string(e) }
func (e domainError) Unwrap() error { return ErrInvalidDomain }

// splitAuthority drops user info and port from an authority and returns the
// host; ipv6 reports a bracketed literal (returned without brackets).
func splitAuthority(auth string) (host string, ipv6, ok bool) {
	// Browsers read a backslash as '/' in http(s) URLs, so `a.com\@b.com`
	// is a.com to them; refuse rather than guess.
	if strings.IndexByte(auth, '\\') >= 0 {
		return "", false, false
	}
	if i := strings.LastIndexByte(auth, '@'); i >= 0 {
		auth = auth[i+1:]
	}
	if strings.HasPrefix(auth, "[") {
		end := strings.IndexByte(auth, ']')
		if end < 0 {
			return "", false, false
		}
		host, rest := auth[1:end], auth[end+1:]
		if rest != "" && (rest[0] != ':' || !isPort(rest[1:])) {
			return "", false, false
		}
		return host, true, true
	}
	if i := strings.LastIndexByte(auth, ':'); i >= 0 {
		if !isPort(auth[i+1:]) {
			return "", false, false
		}
		auth = auth[:i]
	}
	return auth, false, true
}

// isPort accepts an empty port too, as RFC 3986 does ("example.com:").
func isPort(s string) bool {
	if len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// appendHost validates the host of an authority and appends it lower-cased,
// without port, trailing dot or "www." prefixes. Hosts must be ASCII
// (browsers send IDNs as punycode); '_' is tolerated because real hostnames
// use it. An empty host appends nothing.
func appendHost(b []byte, auth string) ([]byte, error) {
	host, ipv6, ok := splitAuthority(auth)
	if !ok {
		return b, ErrHost
	}
	if ipv6 {
		addr, err := netip.ParseAddr(host)
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return b, ErrHost
		}
		// AppendTo gives the canonical form without allocating.
		b = append(b, '[')
		b = addr.AppendTo(b)
		return append(b, ']'), nil
	}
	host = strings.TrimSuffix(host, ".")
	if host == "" {
		return b, nil
	}
	if len(host) > 253 {
		return b, ErrHost
	}
	mark := len(b)
	label := 0
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '.':
			if label == 0 {
				return b[:mark], ErrHost
			}
			label = -1
		default:
			return b[:mark], ErrHost
		}
		label++
		if label > 63 {
			return b[:mark], ErrHost
		}
		b = append(b, c)
	}
	if label == 0 {
		return b[:mark], ErrHost
	}
	// Strip every "www." so the result is a fixed point ("www.www.x" → "x").
	n := mark
	for len(b)-n > 4 && string(b[n:n+4]) == "www." {
		n += 4
	}
	if n > mark {
		b = append(b[:mark], b[n:]...)
	}
	return b, nil
}

// trimWWW removes a trailing dot and leading "www." labels, ignoring case.
func trimWWW(h string) string {
	h = strings.TrimSuffix(h, ".")
	for len(h) > 4 && strings.EqualFold(h[:4], "www.") {
		h = h[4:]
	}
	return h
}

// HostMatches reports whether a page host belongs to a site domain: equal,
// or a subdomain of it ("blog.example.com" matches "example.com";
// "example.com.evil.io" and "notexample.com" do not). Case, a trailing dot
// and "www." prefixes are ignored on both sides.
func HostMatches(host, siteDomain string) bool {
	host, siteDomain = trimWWW(host), trimWWW(siteDomain)
	if host == "" || siteDomain == "" {
		return false
	}
	n := len(host) - len(siteDomain)
	switch {
	case n == 0:
		return strings.EqualFold(host, siteDomain)
	case n > 1: // at least one byte of label before the dot
		return host[n-1] == '.' && strings.EqualFold(host[n:], siteDomain)
	}
	return false
}

// NormalizeDomain lower-cases and validates a site domain as registered by an
// admin: "Example.COM" → "example.com". It strips a trailing dot and "www."
// prefixes, because Page.Host has them stripped too. It rejects schemes,
// paths, ports, user info, empty labels, labels longer than 63 bytes or
// starting or ending with '-', domains longer than 253 bytes and anything
// outside letters, digits, '-' and '.'; IDNs must be given in punycode.
func NormalizeDomain(d string) (string, error) {
	d = strings.TrimSpace(d)
	switch {
	case d == "":
		return "", domainError("empty")
	case strings.Contains(d, "://"):
		return "", domainError("must not include a scheme")
	case strings.ContainsAny(d, "/?#"):
		return "", domainError("must not include a path")
	case strings.Contains(d, "@"):
		return "", domainError("must not include user info")
	case strings.Contains(d, ":"):
		return "", domainError("must not include a port")
	}
	d = strings.TrimSuffix(d, ".")
	if len(d) > 253 {
		return "", domainError("longer than 253 bytes")
	}
	b := make([]byte, 0, len(d))
	start := 0
	for i := 0; i <= len(d); i++ {
		if i == len(d) || d[i] == '.' {
			switch l := i - start; {
			case l == 0:
				return "", domainError("empty label")
			case l > 63:
				return "", domainError("label longer than 63 bytes")
			case d[start] == '-' || d[i-1] == '-':
				return "", domainError("label starts or ends with '-'")
			}
			if i < len(d) {
				b = append(b, '.')
			}
			start = i + 1
			continue
		}
		c := d[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-':
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c >= 0x80:
			return "", domainError("not ASCII (give IDNs in punycode)")
		default:
			return "", domainError("only letters, digits, '-' and '.' are allowed")
		}
		b = append(b, c)
	}
	return trimWWW(string(b)), nil
}
