package geo

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"testing"
)

func FuzzParseTor(f *testing.F) {
	// More seeds live in testdata/fuzz/FuzzParseTor.
	v4, _ := os.ReadFile(fixtureV4)
	v6, _ := os.ReadFile(fixtureV6)
	f.Add(v4, v6)
	f.Add([]byte("10,20,US\n1,9,DE\n"), []byte("::1:0,::1:ffff,us\r\n"))

	f.Fuzz(func(t *testing.T, v4, v6 []byte) {
		tor, err := ParseTor(bytes.NewReader(v4), bytes.NewReader(v6))
		if err != nil {
			if tor != nil {
				t.Fatal("non-nil Tor with error")
			}
			return
		}
		checkTorInvariants(t, tor)

		// Probe the boundaries of every range, plus addresses made of the
		// input bytes, through the public API.
		probes := []netip.Addr{netip.IPv4Unspecified(), netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("2001:db8::1")}
		for i := range tor.v4Start {
			for _, x := range []uint32{uint32(tor.v4Start[i]), uint32(tor.v4End[i]), uint32(tor.v4Start[i]) - 1, uint32(tor.v4End[i]) + 1} {
				probes = append(probes, netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, x))))
			}
		}
		for i := range tor.v6Start {
			for _, x := range []ip6{tor.v6Start[i], tor.v6End[i]} {
				var b [16]byte
				binary.BigEndian.PutUint64(b[:8], x.hi)
				binary.BigEndian.PutUint64(b[8:], x.lo)
				probes = append(probes, netip.AddrFrom16(b))
			}
		}
		for _, b := range [][]byte{v4, v6} {
			if len(b) >= 16 {
				probes = append(probes, netip.AddrFrom16([16]byte(b[:16])))
			}
			if len(b) >= 4 {
				probes = append(probes, netip.AddrFrom4([4]byte(b[:4])))
			}
		}
		for _, ip := range probes {
			if s := tor.Country(ip); s != "" && !isUpperCode(s) {
				t.Fatalf("Country(%s) = %q", ip, s)
			}
		}
	})
}

func isUpperCode(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}

// checkTorInvariants verifies what lookups rely on: sorted, disjoint,
// non-empty ranges with real codes, and an index that agrees.
func checkTorInvariants(t *testing.T, tor *Tor) {
	t.Helper()
	if len(tor.v4Start) != len(tor.v4End) || len(tor.v4Start) != len(tor.v4Code) ||
		len(tor.v6Start) != len(tor.v6End) || len(tor.v6Start) != len(tor.v6Code) {
		t.Fatal("slice lengths differ")
	}
	for i := range tor.v4Start {
		if tor.v4Start[i] > tor.v4End[i] || i > 0 && tor.v4Start[i] <= tor.v4End[i-1] {
			t.Fatalf("v4 range %d out of order", i)
		}
		if !isUpperCode(codeString(tor.v4Code[i])) {
			t.Fatalf("v4 range %d has code %d", i, tor.v4Code[i])
		}
		for _, x := range []uint32{uint32(tor.v4Start[i]), uint32(tor.v4End[i])} {
			if got := tor.lookup4(x); got != tor.v4Code[i] {
				t.Fatalf("lookup4(%d) = %d, want %d", x, got, tor.v4Code[i])
			}
		}
	}
	for i := range tor.v6Start {
		if tor.v6Start[i].compare(tor.v6End[i]) > 0 || i > 0 && tor.v6Start[i].compare(tor.v6End[i-1]) <= 0 {
			t.Fatalf("v6 range %d out of order", i)
		}
		if !isUpperCode(codeString(tor.v6Code[i])) {
			t.Fatalf("v6 range %d has code %d", i, tor.v6Code[i])
		}
		for _, x := range []ip6{tor.v6Start[i], tor.v6End[i]} {
			if got := tor.lookup6(x); got != tor.v6Code[i] {
				t.Fatalf("lookup6(%v) = %d, want %d", x, got, tor.v6Code[i])
			}
		}
	}
}

// FuzzParseIP6 checks the allocation-free parser against net/netip.
func FuzzParseIP6(f *testing.F) {
	for _, s := range []string{
		"::", "::1", "1::", "2001:db8::1", "2001:0db8:0000:0000:0000:0000:0000:0001",
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::ffff:1.2.3.4", "1:2:3:4:5:6:1.2.3.4",
		"1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::",
		"1.2.3.4", "::1.2.3.04", "fe80::1%eth0", ":1::", "1:", "", "2001:DB8::A",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseIP6([]byte(s))
		a, err := netip.ParseAddr(s)
		wantOK := err == nil && a.Is6() && a.Zone() == ""
		if ok != wantOK {
			t.Fatalf("parseIP6(%q) ok = %v; netip: %v, %v", s, ok, a, err)
		}
		if ok {
			b := a.As16()
			want := ip6{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
			if got != want {
				t.Fatalf("parseIP6(%q) = %x, netip says %s", s, got, a)
			}
		}
	})
}
