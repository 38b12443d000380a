package geo

import (
	"errors"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

const (
	fixtureV4 = "testdata/geoip"
	fixtureV6 = "testdata/geoip6"
)

func loadFixture(t testing.TB) *Tor {
	t.Helper()
	tor, err := LoadTor(fixtureV4, fixtureV6)
	if err != nil {
		t.Fatal(err)
	}
	return tor
}

type lookupCase struct {
	ip   string
	want string
}

func checkLookups(t *testing.T, l Locator, cases []lookupCase) {
	t.Helper()
	for _, c := range cases {
		var ip netip.Addr // the zero Addr for ""
		if c.ip != "" {
			ip = netip.MustParseAddr(c.ip)
		}
		if got := l.Country(ip); got != c.want {
			t.Errorf("Country(%q) = %q, want %q", c.ip, got, c.want)
		}
	}
}

// Addresses that never have a country, whatever the data says.
var nonPublicCases = []lookupCase{
	{"", ""},
	{"0.0.0.0", ""},
	{"10.1.2.3", ""},
	{"172.16.0.1", ""},
	{"192.168.1.1", ""},
	{"127.0.0.1", ""},
	{"169.254.10.10", ""},
	{"224.0.0.251", ""},
	{"::", ""},
	{"::1", ""},
	{"fe80::1", ""},
	{"fe80::1%eth0", ""},
	{"fd12:3456::1", ""},
	{"ff02::1", ""},
	{"::ffff:10.0.0.1", ""},
	{"::ffff:127.0.0.1", ""},
}

func TestTorFixture(t *testing.T) {
	tor := loadFixture(t)
	checkLookups(t, tor, []lookupCase{
		{"1.0.0.0", "AU"},
		{"1.0.0.255", "AU"},
		{"1.0.1.0", ""}, // gap
		{"1.1.1.1", "AU"},
		{"8.8.4.4", "US"},
		{"8.8.6.1", ""},
		{"8.8.8.8", "US"},
		{"81.2.69.142", "GB"},
		{"192.0.2.127", "DE"},
		{"192.0.2.128", "FR"},
		{"198.51.100.1", "GB"}, // UK normalised
		{"198.51.100.200", ""}, // EU placeholder
		{"203.0.113.5", ""},    // ??
		{"203.0.113.200", "JP"},
		{"203.0.114.0", ""},
		{"255.255.255.255", ""},
		{"::ffff:8.8.8.8", "US"}, // IPv4-mapped is unmapped first
		{"::ffff:192.0.2.128", "FR"},
		{"2001:200::1", "JP"},
		{"2001:4860:4860::8888", "US"},
		{"2001:db8::", "DE"},
		{"2001:db8:7fff:ffff:ffff:ffff:ffff:ffff", "DE"},
		{"2001:db8:8000::", "FR"},
		{"2606:4700:4700::1111", "US"},
		{"2a00:1450:4807:ff::1", "IE"},
		{"2a00:1450:4807:100::1", ""},
		{"2a00:1450:4807:200::1", ""},
		{"2c0f:fb50::1", ""},
		{"::ffff:0:0", ""},
	})
	checkLookups(t, tor, nonPublicCases)
}

func TestTorReal(t *testing.T) {
	if _, err := os.Stat(torV4Path); err != nil {
		t.Skipf("tor-geoipdb not installed (%v); install Debian package tor-geoipdb to run", err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	tor, err := LoadTor(torV4Path, torV6Path)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	retained := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	n4, n6 := tor.Len()
	t.Logf("loaded %d v4 + %d v6 ranges in %v; retained heap %.1f MiB, allocated during load %.1f MiB",
		n4, n6, elapsed, float64(retained)/(1<<20), float64(after.TotalAlloc-before.TotalAlloc)/(1<<20))
	// Generous bounds: the machine is shared, the point is catching an
	// order-of-magnitude regression.
	if elapsed > 5*time.Second {
		t.Errorf("load took %v", elapsed)
	}
	if retained > 50<<20 {
		t.Errorf("retained %d bytes", retained)
	}
	if n4 < 100000 || n6 < 50000 {
		t.Errorf("suspiciously few ranges: %d v4, %d v6", n4, n6)
	}

	// Long-standing allocations only, so data updates don't break this.
	checkLookups(t, tor, []lookupCase{
		{"8.8.8.8", "US"},              // Google
		{"1.1.1.1", "AU"},              // APNIC research prefix, registered in AU
		{"17.0.0.1", "US"},             // Apple's /8
		{"193.0.0.1", "NL"},            // RIPE NCC
		{"133.1.1.1", "JP"},            // Japanese academic /8
		{"::ffff:8.8.8.8", "US"},       // mapped
		{"2001:4860:4860::8888", "US"}, // Google
		{"2001:67c:2e8::1", "NL"},      // RIPE NCC
		{"2001:200::1", "JP"},          // WIDE
		{"192.0.2.1", ""},              // documentation
		{"2001:db8::1", ""},            // documentation
	})
	checkLookups(t, tor, nonPublicCases)
	runtime.KeepAlive(tor)
}

func parse(t *testing.T, v4, v6 string) (*Tor, error) {
	t.Helper()
	return ParseTor(strings.NewReader(v4), strings.NewReader(v6))
}

func TestParseTorErrors(t *testing.T) {
	cases := []struct {
		name     string
		v4, v6   string
		line     int
		contains string
	}{
		{"two fields", "# c\n1,2\n", "", 2, "START,END,CC"},
		{"four fields", "1,2,US,x\n", "", 1, "START,END,CC"},
		{"empty field", ",2,US\n", "", 1, "IPv4"},
		{"not a number", "1,2x,US\n", "", 1, "IPv4"},
		{"signed", "+1,2,US\n", "", 1, "IPv4"},
		{"negative", "-1,2,US\n", "", 1, "IPv4"},
		{"too big", "4294967296,4294967296,US\n", "", 1, "IPv4"},
		{"dotted quad in v4 file", "1.2.3.4,1.2.3.5,US\n", "", 1, "IPv4"},
		{"start after end", "\n\n10,9,US\n", "", 3, "after its end"},
		{"code too long", "1,2,USA\n", "", 1, "country"},
		{"code too short", "1,2,U\n", "", 1, "country"},
		{"code junk", "1,2,U$\n", "", 1, "country"},
		{"code missing", "1,2,\n", "", 1, "country"},
		{"truncated last line", "1,2,US\n3,4,U", "", 2, "country"},
		{"truncated mid-number", "1,2,US\n3,4", "", 2, "START,END,CC"},
		{"overlap", "1,10,US\n10,20,DE\n", "", 2, "line 1"},
		{"duplicate", "1,10,US\n1,10,US\n", "", 2, "line 1"},
		{"overlap after sort", "10,20,US\n1,10,DE\n", "", 1, "line 2"},
		{"nested", "1,100,US\n50,60,US\n", "", 2, "line 1"},
		{"v6 bad address", "", "2001:db8::,2001:db8::g,US\n", 1, "IPv6"},
		{"v6 dotted quad", "", "1.2.3.4,1.2.3.5,US\n", 1, "IPv6"},
		{"v6 zone", "", "fe80::%eth0,fe80::1,US\n", 1, "IPv6"},
		{"v6 number", "", "1,2,US\n", 1, "IPv6"},
		{"v6 start after end", "", "2001:db8::2,2001:db8::1,US\n", 1, "after its end"},
		{"v6 overlap", "", "# x\n2001:db8::,2001:db8::ff,US\n2001:db8::ff,2001:db8::1ff,DE\n", 3, "line 2"},
		{"very long line", strings.Repeat("1", 70000) + ",2,US\n", "", 1, "too long"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tor, err := parse(t, c.v4, c.v6)
			if err == nil {
				t.Fatalf("no error; Len = %v", tor)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *ParseError", err, err)
			}
			if pe.Line != c.line || !strings.Contains(err.Error(), c.contains) {
				t.Errorf("error %q: want line %d and %q", err, c.line, c.contains)
			}
			wantFile := "ipv4 data"
			if c.v4 == "" {
				wantFile = "ipv6 data"
			}
			if pe.File != wantFile {
				t.Errorf("File = %q, want %q", pe.File, wantFile)
			}
		})
	}
}

func TestParseTorLenient(t *testing.T) {
	// Unsorted input, CRLF, spaces, lower case, placeholders, extremes.
	v4 := "# header\r\n" +
		"\r\n" +
		"  134744064 , 134744319 , us \r\n" + // 8.8.8.0/24
		"16777216,16777471,AU\r\n" + // 1.0.0.0/24
		"16777472,16777727,A1\n" + // 1.0.1.0/24 anonymous proxy
		"4294967040,4294967295,ZZ\n" + // 255.255.255.0/24
		"0,255,US\n" +
		"   # indented comment\n" +
		"\t\n"
	v6 := "ffff::,ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff,Nz\n" +
		"2001:DB8::,2001:db8::ffff,ch\n"
	tor, err := parse(t, v4, v6)
	if err != nil {
		t.Fatal(err)
	}
	checkLookups(t, tor, []lookupCase{
		{"8.8.8.8", "US"},
		{"1.0.0.1", "AU"},
		{"1.0.1.1", ""},
		{"255.255.255.255", ""},
		{"2001:db8::1", "CH"},
		{"fffe::", ""},
	})
	// ff00::/8 is multicast, so Country never gets there; check the table.
	if got := codeString(tor.lookup6(ip6{1<<64 - 1, 1<<64 - 1})); got != "NZ" {
		t.Errorf("lookup6(max) = %q, want NZ", got)
	}
}

func TestParseTorMerge(t *testing.T) {
	v4 := "1,10,US\n11,20,US\n21,30,DE\n31,40,??\n41,50,DE\n" +
		"4294967200,4294967294,FR\n4294967295,4294967295,FR\n"
	v6 := "::1:0,::1:ffff,US\n::2:0,::2:ffff,US\n" +
		"1::,1::ffff:ffff:ffff:ffff,JP\n1:0:0:1::,1:0:0:1::5,JP\n" +
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0,ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff,SE\n"
	tor, err := parse(t, v4, v6)
	if err != nil {
		t.Fatal(err)
	}
	n4, n6 := tor.Len()
	if n4 != 4 || n6 != 3 {
		t.Errorf("Len = %d, %d; want 4, 3 (adjacent same-country ranges merged, ?? dropped)", n4, n6)
	}
	checkLookups(t, tor, []lookupCase{
		{"1:0:0:1::5", "JP"},
		{"1:0:0:1::6", ""},
	})
	if got := codeString(tor.lookup6(ip6{1<<64 - 1, 1<<64 - 1})); got != "SE" {
		t.Errorf("lookup6(max) = %q, want SE", got)
	}
	// Lookups below the data or at max-uint32 edges.
	for x, want := range map[uint32]uint16{0: noCode, 1: codeIndexString("US"), 20: codeIndexString("US"),
		21: codeIndexString("DE"), 35: noCode, 50: codeIndexString("DE"), 51: noCode,
		4294967199: noCode, 4294967200: codeIndexString("FR"), 4294967295: codeIndexString("FR")} {
		if got := tor.lookup4(x); got != want {
			t.Errorf("lookup4(%d) = %q, want %q", x, codeString(got), codeString(want))
		}
	}
}

func TestParseTorEmpty(t *testing.T) {
	tor, err := ParseTor(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkLookups(t, tor, []lookupCase{{"8.8.8.8", ""}, {"2001:4860::1", ""}})
	tor, err = parse(t, "# only comments\n", "")
	if err != nil {
		t.Fatal(err)
	}
	checkLookups(t, tor, []lookupCase{{"8.8.8.8", ""}})
	var nilTor *Tor
	checkLookups(t, nilTor, []lookupCase{{"8.8.8.8", ""}})
}

func TestLoadTor(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// v6 optional: "" or missing.
	for _, v6 := range []string{"", dir + "/missing6"} {
		tor, err := LoadTor(fixtureV4, v6)
		if err != nil {
			t.Fatalf("LoadTor(fixture, %q): %v", v6, err)
		}
		checkLookups(t, tor, []lookupCase{{"8.8.8.8", "US"}, {"2001:4860::1", ""}})
	}

	if _, err := LoadTor(dir+"/missing", fixtureV6); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing v4: err = %v", err)
	}
	if _, err := LoadTor(write("empty", ""), ""); err == nil {
		t.Error("empty v4 file accepted")
	}
	if _, err := LoadTor(fixtureV4, write("empty6", "# nothing\n")); err == nil {
		t.Error("empty v6 file accepted")
	}
	_, err := LoadTor(fixtureV4, write("bad6", "2001:db8::,2001:db8::1,US\ngarbage\n"))
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 2 || !strings.HasSuffix(pe.File, "/bad6") {
		t.Errorf("bad v6: err = %v", err)
	}
	if _, err := LoadTor(fixtureV4, dir); err == nil {
		t.Error("directory as v6 file accepted")
	}
}

func BenchmarkLoadTor(b *testing.B) {
	v4, v6 := torV4Path, torV6Path
	if _, err := os.Stat(v4); err != nil {
		v4, v6 = fixtureV4, fixtureV6
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := LoadTor(v4, v6); err != nil {
			b.Fatal(err)
		}
	}
}
