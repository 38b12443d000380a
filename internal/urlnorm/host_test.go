package urlnorm

import (
	"errors"
	"strings"
	"testing"
)

func TestHostMatches(t *testing.T) {
	tests := []struct {
		host, site string
		want       bool
	}{
		{"example.com", "example.com", true},
		{"blog.example.com", "example.com", true},
		{"a.b.example.com", "example.com", true},
		{"Example.COM", "example.com", true},
		{"example.com", "Example.COM", true},
		{"www.example.com", "example.com", true},
		{"example.com", "www.example.com", true},
		{"example.com.", "example.com", true},
		{"shop.example.co.uk", "example.co.uk", true},

		{"example.com.evil.io", "example.com", false},
		{"notexample.com", "example.com", false},
		{"example.org", "example.com", false},
		{"com", "example.com", false},
		{"example.com", "blog.example.com", false},
		{"xexample.com", "example.com", false},
		{".example.com", "example.com", false},
		{"", "example.com", false},
		{"example.com", "", false},
		{"", "", false},
		{"[::1]", "example.com", false},
	}
	for _, tt := range tests {
		if got := HostMatches(tt.host, tt.site); got != tt.want {
			t.Errorf("HostMatches(%q, %q) = %v, want %v", tt.host, tt.site, got, tt.want)
		}
	}
}

func TestHostMatchesParsePage(t *testing.T) {
	// The host ParsePage gives and the domain NormalizeDomain gives agree.
	site, err := NormalizeDomain("WWW.Example.com")
	if err != nil {
		t.Fatal(err)
	}
	for raw, want := range map[string]bool{
		"https://www.example.com/":        true,
		"https://EXAMPLE.com:8080/":       true,
		"https://docs.example.com/a":      true,
		"https://example.com.evil.io/":    false,
		"https://evil.io/?x=example.com":  false,
		"https://example.com@evil.io/":    false,
		"https://evil.io/example.com":     false,
		"https://evilexample.com/":        false,
		"https://user@docs.example.com/x": true,
	} {
		p, err := ParsePage(raw, Options{})
		if err != nil {
			t.Fatalf("ParsePage(%q): %v", raw, err)
		}
		if got := HostMatches(p.Host, site); got != want {
			t.Errorf("HostMatches(%q from %q, %q) = %v, want %v", p.Host, raw, site, got, want)
		}
	}
}

func TestNormalizeDomain(t *testing.T) {
	ok := []struct{ in, want string }{
		{"example.com", "example.com"},
		{"Example.COM", "example.com"},
		{"  example.com  ", "example.com"},
		{"example.com.", "example.com"},
		{"www.example.com", "example.com"},
		{"WWW.example.com", "example.com"},
		{"blog.example.co.uk", "blog.example.co.uk"},
		{"xn--bcher-kva.de", "xn--bcher-kva.de"},
		{"my-site.io", "my-site.io"},
		{"localhost", "localhost"},
		{"a1.b2", "a1.b2"},
		{strings.Repeat("a", 63) + ".com", strings.Repeat("a", 63) + ".com"},
	}
	for _, tt := range ok {
		got, err := NormalizeDomain(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("NormalizeDomain(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	bad := []struct{ in, reason string }{
		{"", "empty"},
		{"   ", "empty"},
		{"https://example.com", "scheme"},
		{"example.com/blog", "path"},
		{"example.com?x", "path"},
		{"example.com#x", "path"},
		{"example.com:8080", "port"},
		{"user@example.com", "user info"},
		{"example..com", "empty label"},
		{".example.com", "empty label"},
		{"example.com..", "empty label"},
		{".", "empty label"},
		{strings.Repeat("a", 64) + ".com", "63"},
		{strings.Repeat("abcdefghi.", 26) + "com", "253"},
		{"-example.com", "'-'"},
		{"example-.com", "'-'"},
		{"ex_ample.com", "letters"},
		{"exa mple.com", "letters"},
		{"bücher.de", "punycode"},
		{"例え.jp", "punycode"},
		{"[::1]", "port"},
	}
	for _, tt := range bad {
		got, err := NormalizeDomain(tt.in)
		if err == nil {
			t.Errorf("NormalizeDomain(%q) = %q, want error", tt.in, got)
			continue
		}
		if !errors.Is(err, ErrInvalidDomain) {
			t.Errorf("NormalizeDomain(%q) error %v does not wrap ErrInvalidDomain", tt.in, err)
		}
		if !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("NormalizeDomain(%q) error %q does not mention %q", tt.in, err, tt.reason)
		}
	}
}
