package collect

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ProxyTrust decides which client address to believe. Forwarding headers
// are honoured only when the direct peer is a configured trusted proxy;
// otherwise anyone could choose the IP (and so the country and pseudonym)
// their events are attributed to.
type ProxyTrust struct {
	trusted []netip.Prefix
	// forwarded selects the RFC 7239 Forwarded header instead of
	// X-Forwarded-For. Only the header the proxy actually writes may be
	// read: a proxy that appends to one passes a client-forged other one
	// through untouched.
	forwarded bool
}

// UseForwarded makes the trust read Forwarded instead of X-Forwarded-For.
func (t ProxyTrust) UseForwarded() ProxyTrust {
	t.forwarded = true
	return t
}

// ParseTrusted parses CIDRs (or single addresses) of trusted proxies.
func ParseTrusted(cidrs []string) (ProxyTrust, error) {
	var t ProxyTrust
	for _, c := range cidrs {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		if !strings.Contains(c, "/") {
			a, err := netip.ParseAddr(c)
			if err != nil {
				return t, fmt.Errorf("trusted proxy %q: not an address or CIDR", c)
			}
			c = netip.PrefixFrom(a, a.BitLen()).String()
		}
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return t, fmt.Errorf("trusted proxy %q: %v", c, err)
		}
		// Peers are compared unmapped, so ::ffff:a.b.c.d/N becomes a.b.c.d/N-96.
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return t, fmt.Errorf("trusted proxy %q: an IPv4-mapped prefix needs at least /96", c)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		t.trusted = append(t.trusted, p.Masked())
	}
	return t, nil
}

func (t ProxyTrust) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP returns the address of the client that sent r: the direct peer,
// or, when the peer is a trusted proxy, the nearest untrusted hop named by
// X-Forwarded-For (or Forwarded, with UseForwarded) (walking from the right, because only the
// entries our own proxies appended can be believed).
func (t ProxyTrust) ClientIP(r *http.Request) netip.Addr {
	peer := peerAddr(r.RemoteAddr)
	if !peer.IsValid() || len(t.trusted) == 0 || !t.isTrusted(peer) {
		return peer
	}
	var hops []string
	if t.forwarded {
		hops = forwardedFor(r.Header.Values("Forwarded"))
	} else {
		for _, v := range r.Header.Values("X-Forwarded-For") {
			for _, h := range strings.Split(v, ",") {
				hops = append(hops, strings.TrimSpace(h))
			}
		}
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a := parseHop(hops[i])
		if !a.IsValid() {
			// A garbled hop cannot be attributed; stop at the last
			// address we could trust.
			return client
		}
		client = a.Unmap()
		if !t.isTrusted(client) {
			return client
		}
	}
	return client
}

func peerAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap()
	}
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// parseHop parses one forwarded address: "1.2.3.4", "1.2.3.4:80",
// "[2001:db8::1]:443" or "2001:db8::1".
func parseHop(h string) netip.Addr {
	h = strings.Trim(strings.TrimSpace(h), `"`)
	if a, err := netip.ParseAddr(h); err == nil {
		return a
	}
	if ap, err := netip.ParseAddrPort(h); err == nil {
		return ap.Addr()
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		a, _ := netip.ParseAddr(h[1 : len(h)-1])
		return a
	}
	return netip.Addr{}
}

// forwardedFor extracts the for= parameters of RFC 7239 Forwarded headers,
// in order.
func forwardedFor(values []string) []string {
	var out []string
	for _, v := range values {
		for _, elem := range strings.Split(v, ",") {
			found := ""
			for _, pair := range strings.Split(elem, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if ok && strings.EqualFold(k, "for") {
					found = val
				}
			}
			// An element without for= is still a hop we cannot attribute.
			out = append(out, found)
		}
	}
	return out
}
