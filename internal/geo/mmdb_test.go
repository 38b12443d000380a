package geo

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

type mmdbRecord struct {
	cidr string
	data mmdbtype.DataType
}

// writeMMDB builds a small database in a temp dir; binary fixtures are not
// committed.
func writeMMDB(t testing.TB, opts mmdbwriter.Options, recs []mmdbRecord) string {
	t.Helper()
	if opts.DatabaseType == "" {
		opts.DatabaseType = "Veil-Test-Country"
	}
	w, err := mmdbwriter.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		_, n, err := net.ParseCIDR(r.cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Insert(n, r.data); err != nil {
			t.Fatalf("insert %s: %v", r.cidr, err)
		}
	}
	path := filepath.Join(t.TempDir(), "test.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// geoCountry is shaped like a GeoIP2 country block.
func geoCountry(iso string, id uint32) mmdbtype.Map {
	return mmdbtype.Map{
		"geoname_id": mmdbtype.Uint32(id),
		"iso_code":   mmdbtype.String(iso),
		"names": mmdbtype.Map{
			"en": mmdbtype.String("Name " + iso),
			"de": mmdbtype.String("Name " + iso),
		},
	}
}

var europe = mmdbtype.Map{"code": mmdbtype.String("EU"), "geoname_id": mmdbtype.Uint32(6255148)}

var testRecords = []mmdbRecord{
	// Catch-all, inserted first so the rest override it. Private space is
	// never looked up even though the database claims it.
	{"::/0", mmdbtype.Map{"country": geoCountry("AQ", 6697173)}},
	// City-style record: country wins over registered_country.
	{"81.2.69.0/24", mmdbtype.Map{
		"city":               mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String("London")}},
		"continent":          europe,
		"country":            geoCountry("GB", 2635167),
		"location":           mmdbtype.Map{"latitude": mmdbtype.Float64(51.5), "longitude": mmdbtype.Float64(-0.09)},
		"registered_country": geoCountry("US", 6252001),
		"subdivisions":       mmdbtype.Slice{mmdbtype.Map{"iso_code": mmdbtype.String("ENG")}},
	}},
	// Only registered_country (GeoLite2 has these for some networks).
	{"2.125.160.0/19", mmdbtype.Map{
		"continent":          europe,
		"registered_country": geoCountry("DE", 2921044),
	}},
	// Placeholder country falls back to registered_country.
	{"1.1.1.0/24", mmdbtype.Map{
		"country":            geoCountry("EU", 6255148),
		"registered_country": geoCountry("FR", 3017382),
	}},
	// No country information at all.
	{"5.0.0.0/16", mmdbtype.Map{"continent": europe}},
	// IPinfo-style flat string, upper and lower case.
	{"3.0.0.0/8", mmdbtype.Map{"country": mmdbtype.String("US"), "country_name": mmdbtype.String("United States")}},
	{"7.0.0.0/8", mmdbtype.Map{"country": mmdbtype.String("ca")}},
	// Malformed data must yield "", not a panic or garbage.
	{"4.0.0.0/8", mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.Uint32(5)}}},
	{"6.0.0.0/8", mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String("USA")}}},
	{"9.0.0.0/8", mmdbtype.String("US")},
	{"11.0.0.0/8", mmdbtype.Map{"country": mmdbtype.Slice{mmdbtype.String("US")}, "registered_country": geoCountry("JP", 1)}},
	// UK normalised.
	{"12.0.0.0/8", mmdbtype.Map{"country": geoCountry("UK", 2635167)}},
	// IPv6.
	{"2001:4860::/32", mmdbtype.Map{"country": geoCountry("us", 6252001)}},
	{"2a00:1450::/32", mmdbtype.Map{"country": geoCountry("IE", 2963597), "registered_country": geoCountry("US", 6252001)}},
}

var mmdbCases = []lookupCase{
	{"81.2.69.142", "GB"},
	{"::ffff:81.2.69.142", "GB"},
	{"2.125.160.216", "DE"},
	{"1.1.1.1", "FR"},
	{"5.0.0.1", ""}, // record without country beats the catch-all
	{"3.3.3.3", "US"},
	{"7.7.7.7", "CA"},
	{"4.4.4.4", ""},
	{"6.6.6.6", ""},
	{"9.9.9.9", ""},
	{"11.1.1.1", "JP"},
	{"12.1.1.1", "GB"},
	{"2001:4860:4860::8888", "US"},
	{"2a00:1450:4001::1", "IE"},
	{"2c0f:fb50::1", "AQ"},
}

func openTestMMDB(t testing.TB, opts mmdbwriter.Options, recs []mmdbRecord) *MMDB {
	t.Helper()
	db, err := OpenMMDB(writeMMDB(t, opts, recs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMMDB(t *testing.T) {
	db := openTestMMDB(t, mmdbwriter.Options{IncludeReservedNetworks: true}, testRecords)
	if got := db.DatabaseType(); got != "Veil-Test-Country" {
		t.Errorf("DatabaseType = %q", got)
	}
	// Twice: first pass fills the cache, second reads it.
	for range 2 {
		checkLookups(t, db, mmdbCases)
		checkLookups(t, db, nonPublicCases)
	}
}

func TestMMDBIPv4Only(t *testing.T) {
	db := openTestMMDB(t, mmdbwriter.Options{IPVersion: 4}, []mmdbRecord{
		{"81.2.69.0/24", mmdbtype.Map{"country": geoCountry("GB", 1)}},
	})
	checkLookups(t, db, []lookupCase{
		{"81.2.69.1", "GB"},
		{"::ffff:81.2.69.1", "GB"},
		{"2001:4860::1", ""}, // the library errors; we say unknown
		{"8.8.8.8", ""},
	})
	v6 := netip.MustParseAddr("2001:4860::1")
	if n := testing.AllocsPerRun(100, func() { db.Country(v6) }); n != 0 {
		t.Errorf("IPv6 lookup in IPv4-only database allocates %.1f times", n)
	}
}

// More distinct records than will fit without collisions, so evictions and
// slot reuse are exercised.
func TestMMDBCacheCollisions(t *testing.T) {
	const n = 3 * cacheSlots / 2
	recs := make([]mmdbRecord, 0, n)
	want := make([]lookupCase, 0, n)
	for i := range n {
		// Distinct geoname_id gives each network its own data record.
		code := codeString(uint16(i % numCodes))
		if codeIndexString(code) != uint16(i%numCodes) {
			code = "SE" // placeholder or UK; keep the expectation simple
		}
		cidr := fmt.Sprintf("20.%d.%d.0/24", i>>8, i&0xff)
		recs = append(recs, mmdbRecord{cidr, mmdbtype.Map{"country": geoCountry(code, uint32(i))}})
		want = append(want, lookupCase{fmt.Sprintf("20.%d.%d.9", i>>8, i&0xff), code})
	}
	db := openTestMMDB(t, mmdbwriter.Options{}, recs)
	for range 2 {
		checkLookups(t, db, want)
	}
}

func TestMMDBConcurrent(t *testing.T) {
	db := openTestMMDB(t, mmdbwriter.Options{IncludeReservedNetworks: true}, testRecords)
	tor := loadFixture(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				c := mmdbCases[(g+i)%len(mmdbCases)]
				ip := netip.MustParseAddr(c.ip)
				if got := db.Country(ip); got != c.want {
					t.Errorf("mmdb Country(%s) = %q, want %q", c.ip, got, c.want)
					return
				}
				_ = tor.Country(ip)
			}
		})
	}
	wg.Wait()
}

func TestMMDBClose(t *testing.T) {
	db, err := OpenMMDB(writeMMDB(t, mmdbwriter.Options{}, testRecords[1:2]))
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("81.2.69.142")
	if got := db.Country(ip); got != "GB" {
		t.Fatalf("Country = %q", got)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if got := db.Country(ip); got != "" {
		t.Errorf("Country after Close = %q, want \"\"", got)
	}
	var nilDB *MMDB
	if got := nilDB.Country(ip); got != "" {
		t.Errorf("nil MMDB Country = %q", got)
	}
}

func TestOpenMMDBErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.mmdb")
	garbage := filepath.Join(dir, "garbage.mmdb")
	os.WriteFile(empty, nil, 0o644)
	os.WriteFile(garbage, []byte("16777216,16777471,AU\n"), 0o644)
	for _, p := range []string{filepath.Join(dir, "missing.mmdb"), empty, garbage, dir} {
		if db, err := OpenMMDB(p); err == nil {
			db.Close()
			t.Errorf("OpenMMDB(%s) succeeded", p)
		}
	}
}

func TestMMDBAllocs(t *testing.T) {
	db := openTestMMDB(t, mmdbwriter.Options{IncludeReservedNetworks: true}, testRecords)
	ips := []netip.Addr{
		netip.MustParseAddr("81.2.69.142"),
		netip.MustParseAddr("::ffff:2.125.160.216"),
		netip.MustParseAddr("2001:4860:4860::8888"),
		netip.MustParseAddr("8.8.8.8"),
		netip.MustParseAddr("10.0.0.1"),
	}
	for _, ip := range ips {
		db.Country(ip) // warm the cache
	}
	if n := testing.AllocsPerRun(100, func() {
		for _, ip := range ips {
			db.Country(ip)
		}
	}); n != 0 {
		t.Errorf("warm MMDB lookups allocate %.1f times", n)
	}
}
