package urlnorm

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParsePage(t *testing.T) {
	long := strings.Repeat("a", 1000)
	tests := []struct {
		name string
		raw  string
		opt  Options
		want Page
	}{
		// Hosts.
		{"plain", "https://example.com/blog/post", Options{}, Page{Host: "example.com", Path: "/blog/post"}},
		{"no path", "https://example.com", Options{}, Page{Host: "example.com", Path: "/"}},
		{"root", "https://example.com/", Options{}, Page{Host: "example.com", Path: "/"}},
		{"http", "http://example.com/a", Options{}, Page{Host: "example.com", Path: "/a"}},
		{"uppercase scheme and host", "HTTPS://WWW.Example.COM/About", Options{}, Page{Host: "example.com", Path: "/About"}},
		{"www stripped", "https://www.example.com/", Options{}, Page{Host: "example.com", Path: "/"}},
		{"repeated www stripped", "https://www.www.example.com/", Options{}, Page{Host: "example.com", Path: "/"}},
		{"www alone kept", "https://www/", Options{}, Page{Host: "www", Path: "/"}},
		{"subdomain kept", "https://blog.example.com/", Options{}, Page{Host: "blog.example.com", Path: "/"}},
		{"port dropped", "https://example.com:8443/a", Options{}, Page{Host: "example.com", Path: "/a"}},
		{"empty port", "https://example.com:/a", Options{}, Page{Host: "example.com", Path: "/a"}},
		{"userinfo dropped", "https://jane:secret@example.com/a", Options{}, Page{Host: "example.com", Path: "/a"}},
		{"trailing dot", "https://example.com./a", Options{}, Page{Host: "example.com", Path: "/a"}},
		{"localhost", "http://localhost:3000/", Options{}, Page{Host: "localhost", Path: "/"}},
		{"ipv4", "http://192.168.1.10:8080/x", Options{}, Page{Host: "192.168.1.10", Path: "/x"}},
		{"ipv6", "http://[2001:DB8::1]:8080/x", Options{}, Page{Host: "[2001:db8::1]", Path: "/x"}},
		{"ipv6 canonical", "http://[2001:0db8:0:0:0:0:0:1]/", Options{}, Page{Host: "[2001:db8::1]", Path: "/"}},
		{"ipv6 loopback", "http://[::1]/", Options{}, Page{Host: "[::1]", Path: "/"}},
		{"underscore host", "https://my_host.example.com/", Options{}, Page{Host: "my_host.example.com", Path: "/"}},
		{"punycode host", "https://xn--bcher-kva.de/", Options{}, Page{Host: "xn--bcher-kva.de", Path: "/"}},
		{"surrounding space", "  https://example.com/a  ", Options{}, Page{Host: "example.com", Path: "/a"}},

		// App schemes.
		{"app scheme", "app://localhost/index.html", Options{}, Page{Host: "localhost", Path: "/index.html"}},
		{"capacitor", "capacitor://localhost/#/home", Options{KeepRouteFragment: true}, Page{Host: "localhost", Path: "/#/home"}},
		{"android-app", "android-app://com.example.app/screen", Options{}, Page{Host: "com.example.app", Path: "/screen"}},
		{"app scheme no host", "app:///index.html", Options{}, Page{Host: "", Path: "/index.html"}},

		// Paths.
		{"trailing slash", "https://example.com/blog/", Options{}, Page{Host: "example.com", Path: "/blog"}},
		{"double slashes", "https://example.com//a///b//", Options{}, Page{Host: "example.com", Path: "/a/b"}},
		{"only slashes", "https://example.com////", Options{}, Page{Host: "example.com", Path: "/"}},
		{"dot segments", "https://example.com/a/./b/../c", Options{}, Page{Host: "example.com", Path: "/a/c"}},
		{"dotdot above root", "https://example.com/../../a", Options{}, Page{Host: "example.com", Path: "/a"}},
		{"encoded dot segments", "https://example.com/a/%2E%2e/b", Options{}, Page{Host: "example.com", Path: "/b"}},
		{"dots in names kept", "https://example.com/a.b/..c/.d", Options{}, Page{Host: "example.com", Path: "/a.b/..c/.d"}},
		{"utf8 escapes kept", "https://example.com/caf%C3%A9", Options{}, Page{Host: "example.com", Path: "/caf%C3%A9"}},
		{"lower hex upper-cased", "https://example.com/caf%c3%a9", Options{}, Page{Host: "example.com", Path: "/caf%C3%A9"}},
		{"raw utf8 escaped", "https://example.com/café", Options{}, Page{Host: "example.com", Path: "/caf%C3%A9"}},
		{"encoded slash kept", "https://example.com/a%2Fb", Options{}, Page{Host: "example.com", Path: "/a%2Fb"}},
		{"encoded slash lower", "https://example.com/a%2fb", Options{}, Page{Host: "example.com", Path: "/a%2Fb"}},
		{"unreserved decoded", "https://example.com/%7Euser/%41%2D%5F", Options{}, Page{Host: "example.com", Path: "/~user/A-_"}},
		{"space escaped", "https://example.com/a b", Options{}, Page{Host: "example.com", Path: "/a%20b"}},
		{"encoded space kept", "https://example.com/a%20b", Options{}, Page{Host: "example.com", Path: "/a%20b"}},
		{"stray percent", "https://example.com/100%", Options{}, Page{Host: "example.com", Path: "/100%25"}},
		{"bad escape", "https://example.com/%zz%4", Options{}, Page{Host: "example.com", Path: "/%25zz%254"}},
		{"encoded null stays encoded", "https://example.com/a%00b", Options{}, Page{Host: "example.com", Path: "/a%00b"}},
		{"sub-delims literal", "https://example.com/a:b@c!$&'()*+,=", Options{}, Page{Host: "example.com", Path: "/a:b@c!$&'()*+,="}},
		{"unsafe escaped", `https://example.com/<a>"{b}|\^` + "`", Options{}, Page{Host: "example.com", Path: "/%3Ca%3E%22%7Bb%7D%7C%5C%5E%60"}},
		{"path params dropped", "https://example.com/shop;jsessionid=ABC123/cart;v=1", Options{}, Page{Host: "example.com", Path: "/shop/cart"}},
		{"path param only segment", "https://example.com/a/;x=1/b", Options{}, Page{Host: "example.com", Path: "/a/b"}},
		{"encoded semicolon kept", "https://example.com/a%3Bb", Options{}, Page{Host: "example.com", Path: "/a%3Bb"}},
		{"long path ok", "https://example.com/" + long, Options{}, Page{Host: "example.com", Path: "/" + long}},

		// Query.
		{"query dropped", "https://example.com/a?email=jane%40example.com&id=42", Options{}, Page{Host: "example.com", Path: "/a"}},
		{"utm kept", "https://example.com/?utm_source=newsletter&utm_medium=email&fbclid=IwAR2&utm_campaign=spring",
			Options{}, Page{Host: "example.com", Path: "/", Query: "utm_source=newsletter&utm_medium=email&utm_campaign=spring",
				UTMSource: "newsletter", UTMMedium: "email", UTMCampaign: "spring"}},
		{"all utm", "https://example.com/?utm_term=t&utm_content=c&utm_source=s&utm_medium=m&utm_campaign=k",
			Options{}, Page{Host: "example.com", Path: "/", Query: "utm_term=t&utm_content=c&utm_source=s&utm_medium=m&utm_campaign=k",
				UTMSource: "s", UTMMedium: "m", UTMCampaign: "k", UTMTerm: "t", UTMContent: "c"}},
		{"other utm_ kept in query", "https://example.com/?utm_id=7", Options{}, Page{Host: "example.com", Path: "/", Query: "utm_id=7"}},
		{"empty query", "https://example.com/a?", Options{}, Page{Host: "example.com", Path: "/a"}},
		{"empty params", "https://example.com/?&&utm_source=x&&", Options{}, Page{Host: "example.com", Path: "/", Query: "utm_source=x", UTMSource: "x"}},
		{"empty value", "https://example.com/?utm_source=&utm_medium", Options{}, Page{Host: "example.com", Path: "/", Query: "utm_source=&utm_medium="}},
		{"empty key", "https://example.com/?=x&=utm_source", Options{}, Page{Host: "example.com", Path: "/"}},
		{"repeated param", "https://example.com/?utm_source=&utm_source=%20%20&utm_source=a&utm_source=b", Options{},
			Page{Host: "example.com", Path: "/", Query: "utm_source=&utm_source=%20%20&utm_source=a&utm_source=b", UTMSource: "a"}},
		{"utm decoded and trimmed", "https://example.com/?utm_campaign=+Spring%20Sale%21+&utm_source=Google%2BAds",
			Options{}, Page{Host: "example.com", Path: "/", Query: "utm_campaign=%20Spring%20Sale%21%20&utm_source=Google%2BAds",
				UTMCampaign: "Spring Sale!", UTMSource: "Google+Ads"}},
		{"utm keeps case", "https://example.com/?utm_source=NewsLetter", Options{}, Page{Host: "example.com", Path: "/", Query: "utm_source=NewsLetter", UTMSource: "NewsLetter"}},
		{"utm utf8", "https://example.com/?utm_campaign=caf%C3%A9", Options{}, Page{Host: "example.com", Path: "/", Query: "utm_campaign=caf%C3%A9", UTMCampaign: "café"}},
		{"utm raw utf8", "https://example.com/?utm_campaign=café", Options{}, Page{Host: "example.com", Path: "/", Query: "utm_campaign=caf%C3%A9", UTMCampaign: "café"}},
		{"utm controls and bad utf8 dropped", "https://example.com/?utm_source=a%00b%0A%FFc", Options{},
			Page{Host: "example.com", Path: "/", Query: "utm_source=a%00b%0A%FFc", UTMSource: "abc"}},
		{"uppercase utm key", "https://example.com/?UTM_Source=x", Options{}, Page{Host: "example.com", Path: "/", Query: "UTM_Source=x", UTMSource: "x"}},
		{"encoded utm key", "https://example.com/?utm%5Fsource=x", Options{}, Page{Host: "example.com", Path: "/", Query: "utm_source=x", UTMSource: "x"}},
		{"equals in value", "https://example.com/?utm_term=a=b", Options{}, Page{Host: "example.com", Path: "/", Query: "utm_term=a%3Db", UTMTerm: "a=b"}},
		{"query canonical", "https://example.com/?utm_content=a/b:c~d%7e%2f*", Options{}, Page{Host: "example.com", Path: "/", Query: "utm_content=a%2Fb%3Ac~d~%2F%2A", UTMContent: "a/b:c~d~/*"}},
		{"semicolon not a separator", "https://example.com/?utm_source=a;email=x", Options{}, Page{Host: "example.com", Path: "/", Query: "utm_source=a%3Bemail%3Dx", UTMSource: "a;email=x"}},
		{"custom exact", "https://example.com/?ref=hn&refx=1&utm_source=x&gclid=9", Options{AllowedParams: []string{"ref", "utm_*"}},
			Page{Host: "example.com", Path: "/", Query: "ref=hn&utm_source=x", UTMSource: "x"}},
		{"custom prefix", "https://example.com/?ref=1&referrer=2&re=3", Options{AllowedParams: []string{"ref*"}},
			Page{Host: "example.com", Path: "/", Query: "ref=1&referrer=2"}},
		{"utm not allowed", "https://example.com/?utm_source=x&ref=1", Options{AllowedParams: []string{"ref"}},
			Page{Host: "example.com", Path: "/", Query: "ref=1"}},
		{"empty allow-list", "https://example.com/?utm_source=x", Options{AllowedParams: []string{}}, Page{Host: "example.com", Path: "/"}},
		{"bare star ignored", "https://example.com/?email=a%40b.c&utm_source=x", Options{AllowedParams: []string{"*", ""}}, Page{Host: "example.com", Path: "/"}},
		{"utm exact only", "https://example.com/?utm_source=x&utm_medium=y", Options{AllowedParams: []string{"utm_medium"}},
			Page{Host: "example.com", Path: "/", Query: "utm_medium=y", UTMMedium: "y"}},
		{"query after fragment is fragment", "https://example.com/a#x?utm_source=s", Options{}, Page{Host: "example.com", Path: "/a"}},
		{"question mark in query", "https://example.com/?utm_term=a?b", Options{}, Page{Host: "example.com", Path: "/", Query: "utm_term=a%3Fb", UTMTerm: "a?b"}},

		// Fragments.
		{"fragment dropped", "https://example.com/a#section", Options{}, Page{Host: "example.com", Path: "/a"}},
		{"route dropped without h", "https://example.com/#/users/42", Options{}, Page{Host: "example.com", Path: "/"}},
		{"route kept", "https://example.com/#/users/42", Options{KeepRouteFragment: true}, Page{Host: "example.com", Path: "/#/users/42"}},
		{"route after path", "https://example.com/app/#/users/", Options{KeepRouteFragment: true}, Page{Host: "example.com", Path: "/app#/users"}},
		{"hashbang route", "https://example.com/#!/users", Options{KeepRouteFragment: true}, Page{Host: "example.com", Path: "/#/users"}},
		{"route query dropped", "https://example.com/#/route?token=x", Options{KeepRouteFragment: true}, Page{Host: "example.com", Path: "/#/route"}},
		{"route params dropped", "https://example.com/#/route;sid=x/y", Options{KeepRouteFragment: true}, Page{Host: "example.com", Path: "/#/route"}},
		{"route with equals dropped", "https://example.com/#/cb&access_token=abc", Options{KeepRouteFragment: true}, Page{Host: "example.com", Path: "/"}},
		{"route with encoded equals dropped", "https://example.com/#/cb%3dabc", Options{KeepRouteFragment: true}, Page{Host: "example.com", Path: "/"}},
		{"oauth fragment dropped", "https://example.com/cb#access_token=abc&token_type=bearer", Options{KeepRouteFragment: true}, Page{Host: "example.com", Path: "/cb"}},
		{"anchor not route", "https://example.com/docs#install", Options{KeepRouteFragment: true}, Page{Host: "example.com", Path: "/docs"}},
		{"root route dropped", "https://example.com/#/", Options{KeepRouteFragment: true}, Page{Host: "example.com", Path: "/"}},
		{"empty fragment", "https://example.com/#", Options{KeepRouteFragment: true}, Page{Host: "example.com", Path: "/"}},
		{"route normalized", "https://example.com/#//a/./b/../c/%7e/", Options{KeepRouteFragment: true}, Page{Host: "example.com", Path: "/#/a/c/~"}},
		{"hash in route escaped", "https://example.com/#/a#b", Options{KeepRouteFragment: true}, Page{Host: "example.com", Path: "/#/a%23b"}},
		{"route with query and utm", "https://example.com/app?utm_source=x&sid=1#/home?x=1", Options{KeepRouteFragment: true},
			Page{Host: "example.com", Path: "/app#/home", Query: "utm_source=x", UTMSource: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePage(tt.raw, tt.opt)
			if err != nil {
				t.Fatalf("ParsePage(%q) error: %v", tt.raw, err)
			}
			if got != tt.want {
				t.Errorf("ParsePage(%q)\n got %+v\nwant %+v", tt.raw, got, tt.want)
			}
			checkIdempotent(t, tt.raw, got, tt.opt)
		})
	}
}

func TestParsePageWorstCaseReparses(t *testing.T) {
	// Longest host, path and query at once: the minimized URL must still be
	// within MaxURLLen so that it parses again.
	host := strings.Repeat(strings.Repeat("h", 63)+".", 3) + strings.Repeat("h", 61)
	raw := "https://" + host + "/" + strings.Repeat("%C3%A9", 170) + "?utm_term=" + strings.Repeat("%C3%A9", 80)
	if len(raw) > MaxURLLen {
		t.Fatalf("bad test setup: %d bytes", len(raw))
	}
	p, err := ParsePage(raw, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Host) != 253 || len(p.Path) != 1021 || len(p.Query) != 9+480 {
		t.Fatalf("bad test setup: %d %d %d", len(p.Host), len(p.Path), len(p.Query))
	}
	checkIdempotent(t, raw, p, Options{})
}

func TestParsePageErrors(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		opt  Options
		want error
	}{
		{"empty", "", Options{}, ErrEmpty},
		{"blank", "   ", Options{}, ErrEmpty},
		{"too long", "https://example.com/?x=" + strings.Repeat("a", 2000), Options{}, ErrTooLong},
		{"path too long", "https://example.com/" + strings.Repeat("a", 1024), Options{}, ErrPathTooLong},
		{"path too long after escaping", "https://example.com/" + strings.Repeat("a ", 400), Options{}, ErrPathTooLong},
		{"route makes path too long", "https://example.com/" + strings.Repeat("a", 600) + "#/" + strings.Repeat("b", 600), Options{KeepRouteFragment: true}, ErrPathTooLong},
		{"invalid utf8", "https://example.com/\xff", Options{}, ErrInvalidUTF8},
		{"tab", "https://example.com/a\tb", Options{}, ErrControlChar},
		{"newline", "https://example.com/a\nb", Options{}, ErrControlChar},
		{"nul", "https://example.com/\x00", Options{}, ErrControlChar},
		{"del", "https://example.com/\x7f", Options{}, ErrControlChar},
		{"c1 control", "https://example.com/a\u0085b", Options{}, ErrControlChar},
		{"data", "data:text/html;base64,PHNjcmlwdD4=", Options{}, ErrScheme},
		{"data with slashes", "data://text/html", Options{}, ErrScheme},
		{"javascript", "javascript:alert(1)", Options{}, ErrScheme},
		{"javascript uppercase", "JavaScript://example.com/%0aalert(1)", Options{}, ErrScheme},
		{"vbscript", "vbscript://x", Options{}, ErrScheme},
		{"file", "file:///etc/passwd", Options{}, ErrScheme},
		{"blob", "blob:https://example.com/uuid", Options{}, ErrScheme},
		{"about", "about:blank", Options{}, ErrScheme},
		{"no scheme", "example.com/path", Options{}, ErrScheme},
		{"scheme relative", "//example.com/path", Options{}, ErrScheme},
		{"path only", "/path", Options{}, ErrScheme},
		{"opaque", "mailto:jane@example.com", Options{}, ErrScheme},
		{"single slash", "https:/example.com", Options{}, ErrScheme},
		{"bad scheme char", "ht_tp://example.com", Options{}, ErrScheme},
		{"digit first", "1http://example.com", Options{}, ErrScheme},
		{"no host", "https:///path", Options{}, ErrNoHost},
		{"no host with port", "https://:443/", Options{}, ErrNoHost},
		{"no host userinfo", "http://user@/", Options{}, ErrNoHost},
		{"bad port", "https://example.com:http/", Options{}, ErrHost},
		{"long port", "https://example.com:123456/", Options{}, ErrHost},
		{"empty label", "https://example..com/", Options{}, ErrHost},
		{"leading dot", "https://.example.com/", Options{}, ErrHost},
		{"two trailing dots", "https://example.com../", Options{}, ErrHost},
		{"label too long", "https://" + strings.Repeat("a", 64) + ".com/", Options{}, ErrHost},
		{"host too long", "https://" + strings.Repeat("a.", 127) + "com/", Options{}, ErrHost},
		{"percent in host", "https://ex%61mple.com/", Options{}, ErrHost},
		{"idn host", "https://bücher.de/", Options{}, ErrHost},
		{"space in host", "https://exa mple.com/", Options{}, ErrHost},
		{"backslash host", `https://example.com\@evil.com/`, Options{}, ErrHost},
		{"unclosed ipv6", "http://[::1/", Options{}, ErrHost},
		{"bad ipv6", "http://[::g]/", Options{}, ErrHost},
		{"ipv4 in brackets", "http://[127.0.0.1]/", Options{}, ErrHost},
		{"ipv6 zone", "http://[fe80::1%25eth0]/", Options{}, ErrHost},
		{"ipv6 junk after", "http://[::1]x/", Options{}, ErrHost},
		{"ipv6 unbracketed", "http://::1/", Options{}, ErrHost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePage(tt.raw, tt.opt)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParsePage(%.60q) = %+v, %v; want error %v", tt.raw, got, err, tt.want)
			}
			if got != (Page{}) {
				t.Errorf("ParsePage(%.60q) returned a non-zero Page with an error: %+v", tt.raw, got)
			}
		})
	}
}

func TestParsePageLimits(t *testing.T) {
	// Exactly at the limits is fine.
	raw := "https://example.com/" + strings.Repeat("a", MaxPathLen-1)
	if p, err := ParsePage(raw, Options{}); err != nil || len(p.Path) != MaxPathLen {
		t.Errorf("path of %d bytes: len %d, err %v", MaxPathLen, len(p.Path), err)
	}
	raw = "https://example.com/?utm_term=" + strings.Repeat("x", 400) + "&ref=" + strings.Repeat("y", 1000)
	raw += "&utm_source=" + strings.Repeat("z", MaxURLLen-len(raw)-len("&utm_source="))
	if len(raw) != MaxURLLen {
		t.Fatal("bad test setup")
	}
	p, err := ParsePage(raw, Options{AllowedParams: []string{"ref", "utm_*"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.UTMTerm) != MaxUTMLen {
		t.Errorf("UTMTerm length %d, want %d", len(p.UTMTerm), MaxUTMLen)
	}
	// ref and utm_source no longer fit in MaxQueryLen: dropped whole, and
	// UTMSource follows Query.
	if want := "utm_term=" + strings.Repeat("x", 400); p.Query != want || p.UTMSource != "" {
		t.Errorf("Query = %q, UTMSource = %q; want %q and none", p.Query, p.UTMSource, want)
	}

	// A later parameter that still fits is kept.
	p, _ = ParsePage("https://example.com/?utm_term="+strings.Repeat("%C3%A9", 100)+"&utm_source=x", Options{})
	if p.Query != "utm_source=x" || p.UTMSource != "x" || p.UTMTerm != "" {
		t.Errorf("got %+v", p)
	}
	p, _ = ParsePage("https://example.com/?utm_term="+strings.Repeat("t", MaxQueryLen-len("utm_term=")), Options{})
	if len(p.Query) != MaxQueryLen {
		t.Errorf("Query of exactly MaxQueryLen dropped: %d bytes", len(p.Query))
	}

	// Truncation never splits a rune and leaves no trailing space.
	v := strings.Repeat("é", 70) // 140 bytes
	p, err = ParsePage("https://example.com/?utm_source="+v, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.UTMSource != strings.Repeat("é", 64) {
		t.Errorf("UTMSource = %q (%d bytes)", p.UTMSource, len(p.UTMSource))
	}
	v = "a" + strings.Repeat("é", 63) + strings.Repeat(" ", 10) + "zzz"
	p, _ = ParsePage("https://example.com/?utm_source="+strings.ReplaceAll(v, " ", "%20"), Options{})
	if want := "a" + strings.Repeat("é", 63); p.UTMSource != want {
		t.Errorf("UTMSource = %q, want %q", p.UTMSource, want)
	}
}

// TestPrivacy checks that personal data outside the allow-list never survives
// in any field, whatever the options.
func TestPrivacy(t *testing.T) {
	secrets := []string{"jane.doe", "s3ss10nT0ken", "hunter2"}
	raws := []string{
		"https://example.com/p?email=jane.doe%40example.com&utm_source=x",
		"https://example.com/p?utm_source=x&session=s3ss10nT0ken",
		"https://example.com/p?EMAIL=jane.doe@example.com",
		"https://example.com/p#access_token=s3ss10nT0ken&email=jane.doe",
		"https://example.com/p#/callback?token=s3ss10nT0ken",
		"https://example.com/p#!/callback;token=s3ss10nT0ken",
		"https://example.com/p#/callback&access_token=s3ss10nT0ken",
		"https://example.com/p#/s3ss10nT0ken%3Dx",
		"https://example.com/p#jane.doe@example.com",
		"https://jane.doe:hunter2@example.com/p",
		"https://example.com/p;jsessionid=s3ss10nT0ken",
		"https://example.com/p?utm_source=x&utm_source2=y&email=jane.doe%40example.com#/r?email=jane.doe",
	}
	opts := []Options{
		{},
		{KeepRouteFragment: true},
		{AllowedParams: []string{"ref", "utm_*"}, KeepRouteFragment: true},
		{AllowedParams: []string{"*"}, KeepRouteFragment: true},
	}
	for _, raw := range raws {
		for _, opt := range opts {
			p, err := ParsePage(raw, opt)
			if err != nil {
				t.Errorf("ParsePage(%q): %v", raw, err)
				continue
			}
			v := reflect.ValueOf(p)
			for i := 0; i < v.NumField(); i++ {
				f := v.Field(i).String()
				for _, s := range secrets {
					if strings.Contains(strings.ToLower(f), strings.ToLower(s)) {
						t.Errorf("ParsePage(%q, %+v).%s = %q contains %q", raw, opt, v.Type().Field(i).Name, f, s)
					}
				}
			}
		}
	}
}

func TestParsePageDefaultsUnchanged(t *testing.T) {
	// DefaultAllowedParams is what nil means; guard against accidental edits.
	if !reflect.DeepEqual(DefaultAllowedParams, []string{"utm_*"}) {
		t.Errorf("DefaultAllowedParams = %q", DefaultAllowedParams)
	}
}

func TestParsePageErrorMessages(t *testing.T) {
	// Errors must not echo the URL, which may carry personal data.
	for _, raw := range []string{
		"javascript:alert('jane.doe@example.com')",
		"https://jane.doe@exa mple.com/",
		"https://example.com/jane.doe\x00",
		"https://example.com/jane.doe" + strings.Repeat("x", 3000),
	} {
		_, err := ParsePage(raw, Options{})
		if err == nil {
			t.Fatalf("ParsePage(%.40q): no error", raw)
		}
		if strings.Contains(err.Error(), "jane") {
			t.Errorf("error %q echoes the URL", err)
		}
	}
}

func TestParsePageAllocs(t *testing.T) {
	raw := "https://www.example.com/blog/post-title/?utm_source=newsletter&utm_medium=email&utm_campaign=spring&fbclid=IwAR2xyz"
	n := testing.AllocsPerRun(100, func() {
		if _, err := ParsePage(raw, Options{}); err != nil {
			t.Fatal(err)
		}
	})
	if n > 1 {
		t.Errorf("ParsePage allocates %v times, want at most 1", n)
	}
	n = testing.AllocsPerRun(100, func() {
		if _, err := ParsePage("javascript:alert(1)", Options{}); err == nil {
			t.Fatal("no error")
		}
	})
	if n != 0 {
		t.Errorf("ParsePage error path allocates %v times, want 0", n)
	}
}
