package pii

import (
	"math"
	"testing"
)

// FuzzScan checks the invariants ingestion relies on: no panic, scores in
// (0,1], highest first, one finding per kind, and Best agreeing with Scan.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		"signup", "42", "a@b.co", "4111 1111 1111 1111", "DE89 3704 0044 0532 0130 00",
		"+44 20 7946 0958", "(415) 555-2671", "123-45-6789", "AB 12 34 56 C", "2001:db8::1",
		"1.2.3.4:8080", "2024-01-31 10:00:00", "jane%40example.org", "\xff\xfe@\xff.com",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Scan(s)
		best, ok := Best(s)
		if len(got) == 0 {
			if got != nil {
				t.Fatalf("Scan(%q) = empty non-nil slice", s)
			}
			if ok {
				t.Fatalf("Best(%q) = %v but Scan found nothing", s, best)
			}
			return
		}
		seen := map[Kind]bool{}
		for i, fd := range got {
			if !(fd.Score > 0 && fd.Score <= 1) || math.IsNaN(fd.Score) {
				t.Fatalf("Scan(%q): score out of range: %v", s, fd)
			}
			if i > 0 && got[i-1].Score < fd.Score {
				t.Fatalf("Scan(%q) not sorted: %v", s, got)
			}
			if seen[fd.Kind] {
				t.Fatalf("Scan(%q): kind %s twice: %v", s, fd.Kind, got)
			}
			seen[fd.Kind] = true
		}
		if !ok || best != got[0] {
			t.Fatalf("Best(%q) = %v, %v; Scan[0] = %v", s, best, ok, got[0])
		}
	})
}

func FuzzFieldName(f *testing.F) {
	for _, s := range []string{
		"email", "userEmailAddress", "IPAddress", "first_name", "mac_address",
		"email_verified", "Prénom", "x-forwarded-for", "\xff", "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fd, ok := FieldName(s)
		if !ok {
			if fd != (Finding{}) {
				t.Fatalf("FieldName(%q) = %v with ok=false", s, fd)
			}
			return
		}
		if fd.Kind == "" || !(fd.Score > 0 && fd.Score <= 1) {
			t.Fatalf("FieldName(%q) = %v", s, fd)
		}
	})
}
