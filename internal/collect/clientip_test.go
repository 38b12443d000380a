package collect

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func mustTrust(t testing.TB, cidrs ...string) ProxyTrust {
	t.Helper()
	pt, err := ParseTrusted(cidrs)
	if err != nil {
		t.Fatalf("ParseTrusted(%q): %v", cidrs, err)
	}
	return pt
}

func request(remote string, headers ...string) *http.Request {
	r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	return r
}

func TestParseTrusted(t *testing.T) {
	pt := mustTrust(t, " 10.0.0.0/8 ", "", "192.168.1.7", "2001:db8:ffff::/48", "  ", "fd00::1", "172.16.5.4/12")
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"10.0.0.1", true},
		{"10.255.255.255", true},
		{"11.0.0.1", false},
		{"192.168.1.7", true},
		{"192.168.1.8", false},
		{"2001:db8:ffff:1::1", true},
		{"2001:db8:fffe::1", false},
		{"fd00::1", true},
		{"fd00::2", false},
		// A CIDR with host bits is masked.
		{"172.31.0.1", true},
		{"172.32.0.1", false},
		// IPv4-mapped addresses are the IPv4 address.
		{"::ffff:10.1.2.3", true},
		{"::ffff:11.1.2.3", false},
	} {
		if got := pt.isTrusted(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("isTrusted(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}

	empty := mustTrust(t)
	if empty.isTrusted(netip.MustParseAddr("10.0.0.1")) {
		t.Error("empty config trusts an address")
	}
	if pt := mustTrust(t, "", " "); len(pt.trusted) != 0 {
		t.Errorf("blank entries produced prefixes: %v", pt.trusted)
	}

	for _, bad := range []string{"10.0.0.0/33", "not-an-ip", "10.0.0.0/x", "10.0.0/8", "2001:db8::/129", "1.2.3.4:80", "/8", "10.0.0.256"} {
		if _, err := ParseTrusted([]string{"10.0.0.0/8", bad}); err == nil {
			t.Errorf("ParseTrusted(%q) accepted", bad)
		} else if !strings.Contains(err.Error(), "trusted proxy") {
			t.Errorf("ParseTrusted(%q): error %q does not say what it is about", bad, err)
		}
	}
}

func TestClientIP(t *testing.T) {
	trust := mustTrust(t, "10.0.0.0/8", "2001:db8:ffff::/48")
	fwd := trust.UseForwarded()
	for _, tc := range []struct {
		name    string
		trust   ProxyTrust
		remote  string
		headers []string
		want    string
	}{
		{"no proxies configured", ProxyTrust{}, "198.51.100.7:5000", []string{"X-Forwarded-For", "203.0.113.9"}, "198.51.100.7"},
		{"no proxies configured, Forwarded", ProxyTrust{}, "198.51.100.7:5000", []string{"Forwarded", "for=203.0.113.9"}, "198.51.100.7"},
		{"untrusted peer with XFF", trust, "198.51.100.7:5000", []string{"X-Forwarded-For", "203.0.113.9"}, "198.51.100.7"},
		{"untrusted peer with Forwarded", trust, "198.51.100.7:5000", []string{"Forwarded", "for=203.0.113.9"}, "198.51.100.7"},
		{"untrusted peer claiming a trusted hop", trust, "198.51.100.7:5000", []string{"X-Forwarded-For", "203.0.113.9, 10.0.0.2"}, "198.51.100.7"},
		{"trusted peer without headers", trust, "10.0.0.1:5000", nil, "10.0.0.1"},
		{"trusted peer with XFF", trust, "10.0.0.1:5000", []string{"X-Forwarded-For", "203.0.113.9"}, "203.0.113.9"},
		{"spoofed left entries ignored", trust, "10.0.0.1:5000", []string{"X-Forwarded-For", "1.1.1.1, 2.2.2.2, 203.0.113.9"}, "203.0.113.9"},
		{"chain of trusted proxies", trust, "10.0.0.1:5000", []string{"X-Forwarded-For", "1.1.1.1, 203.0.113.9, 10.0.0.3, 10.0.0.2"}, "203.0.113.9"},
		{"several XFF headers", trust, "10.0.0.1:5000", []string{"X-Forwarded-For", "1.1.1.1, 203.0.113.9", "X-Forwarded-For", "10.0.0.3,10.0.0.2"}, "203.0.113.9"},
		{"all hops trusted", trust, "10.0.0.1:5000", []string{"X-Forwarded-For", "10.0.0.3, 10.0.0.2"}, "10.0.0.3"},
		{"garbled hop stops the walk", trust, "10.0.0.1:5000", []string{"X-Forwarded-For", "203.0.113.9, garbage, 10.0.0.2"}, "10.0.0.2"},
		{"garbled rightmost hop", trust, "10.0.0.1:5000", []string{"X-Forwarded-For", "203.0.113.9, unknown"}, "10.0.0.1"},
		{"empty hop", trust, "10.0.0.1:5000", []string{"X-Forwarded-For", "203.0.113.9,,10.0.0.2"}, "10.0.0.2"},
		{"empty XFF", trust, "10.0.0.1:5000", []string{"X-Forwarded-For", ""}, "10.0.0.1"},
		{"XFF with port", trust, "10.0.0.1:5000", []string{"X-Forwarded-For", "203.0.113.9:4711"}, "203.0.113.9"},
		{"XFF IPv6", trust, "10.0.0.1:5000", []string{"X-Forwarded-For", "2001:db8::1"}, "2001:db8::1"},
		{"XFF bracketed IPv6 with port", trust, "10.0.0.1:5000", []string{"X-Forwarded-For", "[2001:db8::1]:4711"}, "2001:db8::1"},
		{"XFF bracketed IPv6", trust, "10.0.0.1:5000", []string{"X-Forwarded-For", "[2001:db8::1]"}, "2001:db8::1"},
		{"XFF quoted", trust, "10.0.0.1:5000", []string{"X-Forwarded-For", `"203.0.113.9"`}, "203.0.113.9"},
		{"XFF IPv4-mapped hop", trust, "10.0.0.1:5000", []string{"X-Forwarded-For", "::ffff:203.0.113.9"}, "203.0.113.9"},
		{"XFF IPv4-mapped trusted hop", trust, "10.0.0.1:5000", []string{"X-Forwarded-For", "203.0.113.9, ::ffff:10.0.0.2"}, "203.0.113.9"},
		{"IPv6 trusted peer", trust, "[2001:db8:ffff::1]:443", []string{"X-Forwarded-For", "203.0.113.9"}, "203.0.113.9"},
		{"IPv4-mapped trusted peer", trust, "[::ffff:10.0.0.1]:443", []string{"X-Forwarded-For", "203.0.113.9"}, "203.0.113.9"},
		{"IPv4-mapped untrusted peer", trust, "[::ffff:198.51.100.7]:443", []string{"X-Forwarded-For", "203.0.113.9"}, "198.51.100.7"},
		{"IPv4-mapped peer, no proxies", ProxyTrust{}, "[::ffff:198.51.100.7]:443", nil, "198.51.100.7"},
		{"peer without port", trust, "198.51.100.7", nil, "198.51.100.7"},
		{"trusted peer without port", trust, "10.0.0.1", []string{"X-Forwarded-For", "203.0.113.9"}, "203.0.113.9"},
		{"IPv6 peer without port", trust, "2001:db8::7", nil, "2001:db8::7"},
		{"unparseable peer", trust, "pipe", []string{"X-Forwarded-For", "203.0.113.9"}, ""},
		{"empty peer", trust, "", []string{"X-Forwarded-For", "203.0.113.9"}, ""},

		{"Forwarded", fwd, "10.0.0.1:5000", []string{"Forwarded", "for=203.0.113.9"}, "203.0.113.9"},
		{"Forwarded quoted IPv6 with port", fwd, "10.0.0.1:5000", []string{"Forwarded", `for="[2001:db8::1]:4711"`}, "2001:db8::1"},
		{"Forwarded quoted IPv6", fwd, "10.0.0.1:5000", []string{"Forwarded", `for="[2001:db8::1]"`}, "2001:db8::1"},
		{"Forwarded IPv4 with port", fwd, "10.0.0.1:5000", []string{"Forwarded", `for="203.0.113.9:4711"`}, "203.0.113.9"},
		{"Forwarded other params", fwd, "10.0.0.1:5000", []string{"Forwarded", "proto=https;for=203.0.113.9;by=10.0.0.1;host=example.com"}, "203.0.113.9"},
		{"Forwarded case-insensitive", fwd, "10.0.0.1:5000", []string{"Forwarded", "For=203.0.113.9"}, "203.0.113.9"},
		{"Forwarded spaces", fwd, "10.0.0.1:5000", []string{"Forwarded", " for=203.0.113.9 ; proto=https "}, "203.0.113.9"},
		{"Forwarded chain", fwd, "10.0.0.1:5000", []string{"Forwarded", "for=1.1.1.1, for=203.0.113.9, for=10.0.0.2"}, "203.0.113.9"},
		{"Forwarded several headers", fwd, "10.0.0.1:5000", []string{"Forwarded", "for=1.1.1.1, for=203.0.113.9", "Forwarded", `for="[2001:db8:ffff::2]"`}, "203.0.113.9"},
		{"Forwarded unknown stops the walk", fwd, "10.0.0.1:5000", []string{"Forwarded", "for=203.0.113.9, for=unknown, for=10.0.0.2"}, "10.0.0.2"},
		{"Forwarded obfuscated", fwd, "10.0.0.1:5000", []string{"Forwarded", "for=_hidden"}, "10.0.0.1"},
		{"Forwarded element without for", fwd, "10.0.0.1:5000", []string{"Forwarded", "for=203.0.113.9, proto=https"}, "10.0.0.1"},
		{"XFF by default: a Forwarded header is ignored", trust, "10.0.0.1:5000", []string{"Forwarded", "for=203.0.113.9", "X-Forwarded-For", "198.51.100.1"}, "198.51.100.1"},
		{"Forwarded when configured: XFF is ignored", fwd, "10.0.0.1:5000", []string{"Forwarded", "for=203.0.113.9", "X-Forwarded-For", "198.51.100.1"}, "203.0.113.9"},
		{"Forwarded all trusted", fwd, "10.0.0.1:5000", []string{"Forwarded", "for=10.0.0.3, for=10.0.0.2"}, "10.0.0.3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.trust.ClientIP(request(tc.remote, tc.headers...))
			if tc.want == "" {
				if got.IsValid() {
					t.Errorf("ClientIP = %v, want no address", got)
				}
				return
			}
			want := netip.MustParseAddr(tc.want)
			if got != want {
				t.Errorf("ClientIP = %v, want %v", got, want)
			}
			if got.Is4In6() {
				t.Errorf("ClientIP = %v is IPv4-mapped", got)
			}
		})
	}
}

func TestForwardedFor(t *testing.T) {
	got := forwardedFor([]string{`for=1.1.1.1;proto=http, by=x, FOR="[::1]:80"`, `for=2.2.2.2`})
	want := []string{"1.1.1.1", "", `"[::1]:80"`, "2.2.2.2"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("forwardedFor = %q, want %q", got, want)
	}
}

func TestParseTrustedIPv4MappedEntries(t *testing.T) {
	for _, entry := range []string{"::ffff:10.0.0.1", "::ffff:10.0.0.0/104"} {
		pt, err := ParseTrusted([]string{entry})
		if err != nil {
			continue // rejecting the entry would be fine too
		}
		got := pt.ClientIP(request("10.0.0.1:4444", "X-Forwarded-For", "203.0.113.9"))
		if got != netip.MustParseAddr("203.0.113.9") {
			t.Errorf("trusted proxy %q accepted but not trusted: ClientIP = %v", entry, got)
		}
	}
}
