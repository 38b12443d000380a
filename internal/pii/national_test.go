package pii

import (
	"math"
	"strings"
	"testing"
)

func TestNational(t *testing.T) {
	cases := []struct {
		in    string
		kind  Kind
		score float64 // 0: no finding
	}{
		// Spanish DNI/NIF: 12345678 mod 23 = 14 -> Z.
		{"12345678Z", ESNIF, 0.85},
		{"12345678-Z", ESNIF, 0.85},
		{"12345678 z", ESNIF, 0.85},
		{"12.345.678-Z", ESNIF, 0.85},
		{"DNI: 12345678Z.", ESNIF, 0.85},
		{"ref-87654321X", ESNIF, 0.85},
		{"12345678A", "", 0},    // wrong letter
		{"123456789Z", "", 0},   // nine digits
		{"a12345678Z", "", 0},   // glued to a word
		{"12345678Zb", "", 0},   // glued to a word
		{"1.2345.678-Z", "", 0}, // not the dotted layout
		{"20240131T", "", 0},    // date-like, and its letter would be Q
		// Spanish NIE: X=0, Y=1, Z=2.
		{"X1234567L", ESNIE, 0.85},
		{"x1234567l", ESNIE, 0.85},
		{"X-1234567-L", ESNIE, 0.85},
		{"Y1234567X", ESNIE, 0.85},
		{"Z1234567R", ESNIE, 0.85},
		{"X1234567A", "", 0},
		{"W1234567L", "", 0},
		{"AX1234567L", "", 0},
		// Aadhaar (Verhoeff).
		{"2345 6789 0124", INAadhaar, 0.7},
		{"2345-6789-0124", INAadhaar, 0.7},
		{"aadhaar 4987 6543 2102, thanks", INAadhaar, 0.7},
		{"234567890124", INAadhaar, 0.4},
		{"2345 6789 0125", "", 0},      // check digit
		{"2345 6789 1024", "", 0},      // transposition
		{"2345 6789-0124", "", 0},      // mixed separators
		{"23456789 0124", "", 0},       // not 4-4-4
		{"4111 2345 6789 0124", "", 0}, // tail of a longer run (a card)
		{"2345 6789 0124 5678", "", 0}, // head of a longer run
		{"1234 5678 9012", "", 0},      // first digit 0 or 1 is never issued
		{"2222 2222 2222", "", 0},
		{"2345678901245", "", 0}, // thirteen digits
		// French NIR.
		{"2 55 08 14 168 025 38", FRNIR, 0.85},
		{"255081416802538", FRNIR, 0.7},
		{"1 85 05 78 006 084 91", FRNIR, 0.85},
		{"1850578006084 91", FRNIR, 0.85},
		{"1 85 05 2A 006 084 35", FRNIR, 0.85}, // Corsica: 2A counts as 19
		{"185052a00608435", FRNIR, 0.7},
		{"1 85 05 2B 006 084 62", FRNIR, 0.85}, // 2B counts as 18
		{"1 85 05 2B 006 084 35", "", 0},
		{"2 55 08 14 168 025 39", "", 0}, // key
		{"2 55 13 14 168 025 21", "", 0}, // month 13 (key right)
		{"3 55 08 14 168 025 38", "", 0}, // sex digit
		{"2 55 08 14 168 02538", FRNIR, 0.85},
		{"2 55 08 14 168 025 38 11", "", 0}, // head of a longer run
		{"1A 85 05 78 006 084 91", "", 0},
		// Harmless values.
		{"", "", 0}, {"signup", "", 0}, {"1700000000", "", 0}, {"2024-01-31", "", 0},
		{"4111 1111 1111 1111", "", 0}, {"+44 20 7946 0958", "", 0}, {"ORD-2024-000123", "", 0},
		{"550e8400-e29b-41d4-a716-446655440000", "", 0}, {"1700000000123", "", 0},
	}
	for _, c := range cases {
		f, ok := National(c.in)
		if c.score == 0 {
			if ok {
				t.Errorf("National(%q) = %v, want none", c.in, f)
			}
			continue
		}
		if !ok || f.Kind != c.kind || f.Score != c.score {
			t.Errorf("National(%q) = %v, %v; want {%s %v}", c.in, f, ok, c.kind, c.score)
		}
	}
}

func TestVerhoeff(t *testing.T) {
	if !verhoeff([]byte("2363")) { // the textbook example: 236 -> 3
		t.Error("2363 rejected")
	}
	// Every single-digit error and adjacent transposition of a valid number
	// is caught.
	valid := []byte("234567890124")
	for i := range valid {
		for d := byte('0'); d <= '9'; d++ {
			if d == valid[i] {
				continue
			}
			bad := append([]byte(nil), valid...)
			bad[i] = d
			if verhoeff(bad) {
				t.Errorf("verhoeff accepted %s", bad)
			}
		}
		if i+1 < len(valid) && valid[i] != valid[i+1] {
			sw := append([]byte(nil), valid...)
			sw[i], sw[i+1] = sw[i+1], sw[i]
			if verhoeff(sw) {
				t.Errorf("verhoeff accepted transposition %s", sw)
			}
		}
	}
}

func TestNationalAllocs(t *testing.T) {
	for _, v := range []string{"signup", "1700000000", "12345678Z", "X1234567L", "2345 6789 0124", "2 55 08 14 168 025 38"} {
		if n := testing.AllocsPerRun(100, func() { National(v) }); n != 0 {
			t.Errorf("National(%q): %v allocs", v, n)
		}
	}
}

func TestNationalOddInput(t *testing.T) {
	for _, s := range []string{
		strings.Repeat("1", 5000), strings.Repeat("2345 ", 2000), strings.Repeat("X1234567", 500),
		"12.345.", "12.345.678", "X-", "2 55 08 14 168 025 3", "2 55 08 2", "2345 6789 ", "\xff1234567\xff",
	} {
		if f, ok := National(s); ok && (f.Score <= 0 || f.Score > 1) {
			t.Errorf("National(%.20q) = %v", s, f)
		}
	}
}

var nationalKinds = map[Kind]bool{ESNIF: true, ESNIE: true, INAadhaar: true, FRNIR: true}

// FuzzNational checks that National never panics, reports only national
// kinds with scores in (0,1], and finds nothing in values too short to
// hold an identifier.
func FuzzNational(f *testing.F) {
	for _, s := range []string{
		"12345678Z", "12.345.678-Z", "X-1234567-L", "2345 6789 0124", "234567890124",
		"1 85 05 2A 006 084 35", "255081416802538", "4111 2345 6789 0124", "signup",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fd, ok := National(s)
		if !ok {
			if fd != (Finding{}) {
				t.Fatalf("National(%q) = %v with ok=false", s, fd)
			}
			return
		}
		if !nationalKinds[fd.Kind] || !(fd.Score > 0 && fd.Score <= 1) || math.IsNaN(fd.Score) {
			t.Fatalf("National(%q) = %v", s, fd)
		}
		if len(s) < 9 {
			t.Fatalf("National(%q) = %v from fewer than 9 bytes", s, fd)
		}
	})
}

func BenchmarkNationalHarmless(b *testing.B) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sink, _ = National(harmless[i%len(harmless)])
	}
}

func BenchmarkNationalIDs(b *testing.B) {
	ids := []string{"12345678Z", "X1234567L", "2345 6789 0124", "2 55 08 14 168 025 38", "1700000000123"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sink, _ = National(ids[i%len(ids)])
	}
}
