package geo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter"
)

// setTorPaths points Open at other tor files for one test. Not parallel-safe;
// none of this package's tests run in parallel.
func setTorPaths(t *testing.T, v4, v6 string) {
	t.Helper()
	o4, o6 := torV4Path, torV6Path
	torV4Path, torV6Path = v4, v6
	t.Cleanup(func() { torV4Path, torV6Path = o4, o6 })
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	mmdbPath := writeMMDB(t, mmdbwriter.Options{}, testRecords[1:2])

	t.Run("mmdb beats tor", func(t *testing.T) {
		setTorPaths(t, fixtureV4, fixtureV6)
		l, src, err := Open(mmdbPath)
		if err != nil {
			t.Fatal(err)
		}
		db, ok := l.(*MMDB)
		if !ok {
			t.Fatalf("Locator is %T, want *MMDB", l)
		}
		defer db.Close()
		if want := Source("mmdb:" + mmdbPath); src != want {
			t.Errorf("Source = %q, want %q", src, want)
		}
		checkLookups(t, l, []lookupCase{{"81.2.69.142", "GB"}, {"8.8.8.8", ""}})
	})

	t.Run("configured mmdb missing is an error", func(t *testing.T) {
		setTorPaths(t, fixtureV4, fixtureV6)
		missing := filepath.Join(dir, "GeoLite2-Country.mmdb")
		l, src, err := Open(missing)
		if err == nil || l != nil || src != "" {
			t.Fatalf("Open(missing) = %v, %q, %v; want error", l, src, err)
		}
		if !strings.Contains(err.Error(), missing) {
			t.Errorf("error %q does not name the file", err)
		}
	})

	t.Run("configured mmdb corrupt is an error", func(t *testing.T) {
		setTorPaths(t, fixtureV4, fixtureV6)
		if _, _, err := Open(fixtureV4); err == nil {
			t.Fatal("Open(text file) succeeded")
		}
	})

	t.Run("tor", func(t *testing.T) {
		setTorPaths(t, fixtureV4, fixtureV6)
		l, src, err := Open("")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := l.(*Tor); !ok || src != SourceTor {
			t.Fatalf("Open(\"\") = %T, %q", l, src)
		}
		checkLookups(t, l, []lookupCase{{"8.8.8.8", "US"}, {"2001:4860::1", "US"}})
	})

	t.Run("tor without v6", func(t *testing.T) {
		setTorPaths(t, fixtureV4, filepath.Join(dir, "nope6"))
		l, src, err := Open("")
		if err != nil || src != SourceTor {
			t.Fatalf("Open(\"\") = %T, %q, %v", l, src, err)
		}
		checkLookups(t, l, []lookupCase{{"8.8.8.8", "US"}, {"2001:4860::1", ""}})
	})

	t.Run("corrupt tor is an error", func(t *testing.T) {
		bad := filepath.Join(dir, "geoip")
		os.WriteFile(bad, []byte("16777216,16777471,AU\n16777472,167\n"), 0o644)
		setTorPaths(t, bad, fixtureV6)
		_, _, err := Open("")
		if err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Fatalf("err = %v, want a line-2 parse error", err)
		}
	})

	t.Run("none", func(t *testing.T) {
		setTorPaths(t, filepath.Join(dir, "nope"), filepath.Join(dir, "nope6"))
		l, src, err := Open("")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := l.(None); !ok || src != SourceNone {
			t.Fatalf("Open(\"\") = %T, %q", l, src)
		}
		checkLookups(t, l, []lookupCase{{"8.8.8.8", ""}, {"2001:4860::1", ""}})
	})
}

func TestCodes(t *testing.T) {
	for i := range uint16(numCodes) {
		s := codeString(i)
		if len(s) != 2 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z' {
			t.Fatalf("codeString(%d) = %q", i, s)
		}
		want := i
		switch s {
		case "AP", "EU", "XX", "ZZ":
			want = noCode
		case "UK":
			want = codeIndexString("GB")
		}
		if got := codeIndexString(s); got != want {
			t.Errorf("codeIndexString(%q) = %d, want %d", s, got, want)
		}
		if got := codeIndexString(strings.ToLower(s)); got != want {
			t.Errorf("codeIndexString(%q) = %d, want %d", strings.ToLower(s), got, want)
		}
	}
	for _, s := range []string{"", "U", "USA", "??", "A1", "A2", "O1", "--", "U1", "\xff\xff", "Ü"} {
		if got := codeIndexString(s); got != noCode {
			t.Errorf("codeIndexString(%q) = %q, want unknown", s, codeString(got))
		}
	}
	if codeString(noCode) != "" || codeString(65535) != "" {
		t.Error("codeString out of range is not empty")
	}
	if got := codeString(codeIndexString("UK")); got != "GB" {
		t.Errorf("UK -> %q", got)
	}
}
