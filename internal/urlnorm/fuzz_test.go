package urlnorm

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func FuzzParsePage(f *testing.F) {
	// More seeds live in testdata/fuzz/FuzzParsePage.
	f.Add("https://www.example.com/blog/?utm_source=x&fbclid=1#/r", false)
	f.Add("https://example.com/#!/a/../b?token=x", true)
	f.Fuzz(func(t *testing.T, raw string, keep bool) {
		opt := Options{KeepRouteFragment: keep}
		p, err := ParsePage(raw, opt)
		if err != nil {
			if p != (Page{}) {
				t.Fatalf("non-zero Page with error %v: %+v", err, p)
			}
			return
		}
		checkPage(t, p, keep)

		checkIdempotent(t, raw, p, opt)
	})
}

// checkIdempotent checks that the minimized URL parses to the same Page.
func checkIdempotent(t *testing.T, raw string, p Page, opt Options) {
	t.Helper()
	path, route, hasRoute := strings.Cut(p.Path, "#")
	scheme := "https://"
	if p.Host == "" {
		scheme = "app://"
	}
	again := scheme + p.Host + path + "?" + p.Query
	if hasRoute {
		again += "#" + route
	}
	p2, err := ParsePage(again, opt)
	if err != nil {
		t.Fatalf("reparse of %q (from %q): %v", again, raw, err)
	}
	if p2 != p {
		t.Fatalf("not idempotent for %q:\n first %+v\nsecond %+v", raw, p, p2)
	}
}

func checkPage(t *testing.T, p Page, keep bool) {
	t.Helper()
	if !strings.HasPrefix(p.Path, "/") {
		t.Fatalf("Path %q does not start with /", p.Path)
	}
	if len(p.Path) > MaxPathLen {
		t.Fatalf("Path is %d bytes", len(p.Path))
	}
	if strings.ContainsAny(p.Path, "?; \x00") {
		t.Fatalf("Path %q holds a query, path parameter or raw space", p.Path)
	}
	if i := strings.IndexByte(p.Path, '#'); i >= 0 {
		if !keep {
			t.Fatalf("Path %q has a fragment without KeepRouteFragment", p.Path)
		}
		if r := p.Path[i+1:]; !strings.HasPrefix(r, "/") || len(r) < 2 || strings.Contains(r, "#") || strings.Contains(r, "=") {
			t.Fatalf("Path %q has a bad route", p.Path)
		}
	}
	if p.Path != "/" && strings.HasSuffix(p.Path, "/") {
		t.Fatalf("Path %q has a trailing slash", p.Path)
	}
	if strings.Contains(p.Path, "//") {
		t.Fatalf("Path %q has an empty segment", p.Path)
	}
	for i := 0; i < len(p.Host); i++ {
		c := p.Host[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-_.[]:", c) >= 0) {
			t.Fatalf("Host %q has byte %q", p.Host, c)
		}
	}
	if strings.HasPrefix(p.Host, "www.") {
		t.Fatalf("Host %q keeps www.", p.Host)
	}
	if len(p.Query) > MaxQueryLen {
		t.Fatalf("Query is %d bytes", len(p.Query))
	}
	if p.Query != "" {
		for _, param := range strings.Split(p.Query, "&") {
			key, _, ok := strings.Cut(param, "=")
			if !ok || key == "" || !allowed(key, DefaultAllowedParams) {
				t.Fatalf("Query %q has a param that is not allowed: %q", p.Query, param)
			}
		}
		for i := 0; i < len(p.Query); i++ {
			if c := p.Query[i]; !unreserved[c] && c != '%' && c != '=' && c != '&' {
				t.Fatalf("Query %q has raw byte %q", p.Query, c)
			}
		}
	}
	for _, v := range []string{p.UTMSource, p.UTMMedium, p.UTMCampaign, p.UTMTerm, p.UTMContent} {
		if len(v) > MaxUTMLen || !utf8.ValidString(v) || strings.TrimSpace(v) != v {
			t.Fatalf("bad UTM value %q", v)
		}
		for _, r := range v {
			if unicode.IsControl(r) {
				t.Fatalf("UTM value %q has control character %U", v, r)
			}
		}
		if v != "" && p.Query == "" {
			t.Fatalf("UTM value %q without query", v)
		}
	}
}

func FuzzParseReferrer(f *testing.F) {
	// More seeds live in testdata/fuzz/FuzzParseReferrer.
	f.Add("https://www.google.co.uk/search?q=x", "example.com")
	f.Add("android-app://com.google.android.gm/", "")
	f.Fuzz(func(t *testing.T, raw, pageHost string) {
		r, ok := ParseReferrer(raw, pageHost)
		if !ok {
			if r != (Referrer{}) {
				t.Fatalf("non-zero Referrer when not ok: %+v", r)
			}
			return
		}
		if r.Host == "" || r.Source == "" {
			t.Fatalf("empty field: %+v", r)
		}
		// Only the host may come out: never a path, query, user info or port.
		if strings.ContainsAny(r.Host, "/?#@ ") || strings.HasPrefix(r.Host, "www.") ||
			!strings.HasPrefix(r.Host, "[") && strings.Contains(r.Host, ":") {
			t.Fatalf("Host %q is not a bare host", r.Host)
		}
		if r.Host != strings.ToLower(r.Host) {
			t.Fatalf("Host %q is not lower-case", r.Host)
		}
		if ph, err := appendHost(nil, pageHost); err == nil && string(ph) == r.Host {
			t.Fatalf("internal referrer %q for page host %q is ok", r.Host, pageHost)
		}
		scheme, _, _ := splitScheme(strings.TrimSpace(raw))
		r2, ok := ParseReferrer(scheme+"://"+r.Host+"/", pageHost)
		if !ok || r2 != r {
			t.Fatalf("not idempotent for %q: %+v then %+v, %v", raw, r, r2, ok)
		}
	})
}

// TestParsePageProperties runs the fuzz checks on URLs assembled from tricky
// pieces, which random mutation rarely builds (long escaped values, many
// parameters, dot segments next to escapes).
func TestParsePageProperties(t *testing.T) {
	pick := func(r *rand.Rand, s []string) string { return s[r.IntN(len(s))] }
	schemes := []string{"https://", "HTTP://", "app://", "android-app://"}
	hosts := []string{"example.com", "WWW.Example.COM", "www.www.a.io.", "u:p@h.io:8080", "[2001:DB8::1]:443", "", "a_b.c-d.io", strings.Repeat("h", 63) + ".io"}
	segs := []string{"", "a", ".", "..", "%2e", "%2E%2e", "a%2Fb", "caf%c3%a9", "café", "a b", "x;jsessionid=1", ";", "100%", "%zz", "~%7E", "!$&'()*+,=:@", "<>", strings.Repeat("é", 40)}
	keys := []string{"utm_source", "UTM_Source", "utm%5Fmedium", "utm_campaign", "utm_term", "utm_content", "utm_x", "fbclid", "email", "", "utm_source+"}
	vals := []string{"", "x", "+a+", "%20b%20", "a=b", "%zz", "é", "%C3", "%00%0a", "a%2Bb", strings.Repeat("%C3%A9", 70), strings.Repeat("v", 200)}
	frags := []string{"", "#", "#/", "#/a/./b", "#!/r?x=1", "#access_token=t", "#/cb&t=1", "#/a%3db", "#/a#b", "#//x//"}
	r := rand.New(rand.NewPCG(1, 2))
	parsed, withQuery, withRoute := 0, 0, 0
	for n := 0; n < 20000; n++ {
		var sb strings.Builder
		sb.WriteString(pick(r, schemes))
		sb.WriteString(pick(r, hosts))
		for i := r.IntN(6); i > 0; i-- {
			sb.WriteString("/" + pick(r, segs))
		}
		if r.IntN(4) > 0 {
			sb.WriteString("?")
			for i := r.IntN(8); i > 0; i-- {
				sb.WriteString(pick(r, keys) + "=" + pick(r, vals) + "&")
			}
		}
		sb.WriteString(pick(r, frags))
		raw := sb.String()
		keep := r.IntN(2) == 0
		opt := Options{KeepRouteFragment: keep}
		p, err := ParsePage(raw, opt)
		if err != nil {
			continue
		}
		checkPage(t, p, keep)
		checkIdempotent(t, raw, p, opt)
		parsed++
		if p.Query != "" {
			withQuery++
		}
		if strings.Contains(p.Path, "#") {
			withRoute++
		}
	}
	// Guard against the generator drifting into inputs that all fail.
	if parsed < 10000 || withQuery < 5000 || withRoute < 1000 {
		t.Errorf("weak coverage: %d parsed, %d with query, %d with route", parsed, withQuery, withRoute)
	}
	t.Logf("%d parsed, %d with query, %d with route", parsed, withQuery, withRoute)
}
