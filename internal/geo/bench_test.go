package geo

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

func benchLookups(b *testing.B, l Locator, ips []netip.Addr) {
	b.ReportAllocs()
	i := 0
	known := 0
	for b.Loop() {
		if l.Country(ips[i&(len(ips)-1)]) != "" {
			known++
		}
		i++
	}
	b.ReportMetric(float64(known)/float64(i), "known/op")
}

// torSample returns n addresses inside the loaded ranges (so the search
// runs to a hit) mixed with uniformly random ones.
func torSample(tor *Tor, n int, v6 bool) []netip.Addr {
	r := rand.New(rand.NewPCG(1, 2))
	ips := make([]netip.Addr, 0, n)
	for len(ips) < n {
		var ip netip.Addr
		switch {
		case !v6 && len(ips)%2 == 0:
			ip = netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, r.Uint32())))
		case !v6:
			k := r.IntN(len(tor.v4Start))
			x := uint32(tor.v4Start[k]) + uint32(r.Uint64N(uint64(tor.v4End[k]-tor.v4Start[k])+1))
			ip = netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, x)))
		case len(ips)%2 == 0:
			var a [16]byte
			binary.BigEndian.PutUint64(a[:8], 0x2000_0000_0000_0000|r.Uint64()>>3) // 2000::/3
			binary.BigEndian.PutUint64(a[8:], r.Uint64())
			ip = netip.AddrFrom16(a)
		default:
			k := r.IntN(len(tor.v6Start))
			var a [16]byte
			binary.BigEndian.PutUint64(a[:8], tor.v6Start[k].hi)
			binary.BigEndian.PutUint64(a[8:], tor.v6Start[k].lo)
			ip = netip.AddrFrom16(a)
		}
		ips = append(ips, ip)
	}
	return ips
}

func BenchmarkTorLookup(b *testing.B) {
	v4, v6 := torV4Path, torV6Path
	if _, err := os.Stat(v4); err != nil {
		b.Logf("tor-geoipdb not installed; benchmarking the fixture")
		v4, v6 = fixtureV4, fixtureV6
	}
	tor, err := LoadTor(v4, v6)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("v4", func(b *testing.B) { benchLookups(b, tor, torSample(tor, 1<<14, false)) })
	b.Run("v6", func(b *testing.B) { benchLookups(b, tor, torSample(tor, 1<<14, true)) })
	b.Run("v4-parallel", func(b *testing.B) {
		ips := torSample(tor, 1<<14, false)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				tor.Country(ips[i&(len(ips)-1)])
			}
		})
	})
}

// BenchmarkMMDBLookup uses a Country-shaped database: many networks
// sharing a few hundred country records, like GeoLite2-Country.
func BenchmarkMMDBLookup(b *testing.B) {
	var recs []mmdbRecord
	var v4, v6 []netip.Addr
	for i := range 1 << 14 {
		code := codeString(uint16(i % 250))
		data := mmdbtype.Map{"country": geoCountry(code, uint32(i%250)), "registered_country": geoCountry(code, uint32(i%250))}
		recs = append(recs,
			mmdbRecord{fmt.Sprintf("%d.%d.%d.0/24", 20+i>>12, i>>4&0xff, i<<4&0xff), data},
			mmdbRecord{fmt.Sprintf("2a%02x:%x::/32", i>>12, i&0xfff), data})
		v4 = append(v4, netip.MustParseAddr(fmt.Sprintf("%d.%d.%d.7", 20+i>>12, i>>4&0xff, i<<4&0xff)))
		v6 = append(v6, netip.MustParseAddr(fmt.Sprintf("2a%02x:%x::7", i>>12, i&0xfff)))
	}
	db := openTestMMDB(b, mmdbwriter.Options{}, recs)
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(v4), func(i, j int) { v4[i], v4[j] = v4[j], v4[i] })
	b.Run("v4", func(b *testing.B) { benchLookups(b, db, v4) })
	b.Run("v6", func(b *testing.B) { benchLookups(b, db, v6) })
	b.Run("v4-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				db.Country(v4[i&(len(v4)-1)])
			}
		})
	})
}
