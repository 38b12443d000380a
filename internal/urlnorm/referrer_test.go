package urlnorm

import (
	"strings"
	"testing"
)

func TestParseReferrer(t *testing.T) {
	tests := []struct {
		raw, pageHost string
		host, source  string // host "" means ok=false
	}{
		// Reduced to the host.
		{"https://www.google.com/search?q=jane+doe+diagnosis", "example.com", "google.com", "Google"},
		{"https://news.example.org/2024/05/story.html?utm_source=x#comments", "example.com", "news.example.org", "news.example.org"},
		{"https://Blog.Example.ORG:8443/path", "example.com", "blog.example.org", "blog.example.org"},
		{"http://user:pw@other.net/", "example.com", "other.net", "other.net"},
		{"https://other.net", "example.com", "other.net", "other.net"},
		{"https://other.net?x=1", "example.com", "other.net", "other.net"},
		{"https://other.net#x", "example.com", "other.net", "other.net"},
		{"https://other.net.", "example.com", "other.net", "other.net"},
		{"  https://other.net/  ", "example.com", "other.net", "other.net"},
		{"http://[2001:db8::1]:8080/x", "example.com", "[2001:db8::1]", "[2001:db8::1]"},
		{"https://other.net/" + strings.Repeat("x", 5000), "example.com", "other.net", "other.net"},

		// Not usable.
		{"", "example.com", "", ""},
		{"   ", "example.com", "", ""},
		{"about:blank", "example.com", "", ""},
		{"data:text/html,hi", "example.com", "", ""},
		{"javascript://x", "example.com", "", ""},
		{"file:///etc/passwd", "example.com", "", ""},
		{"other.net/path", "example.com", "", ""},
		{"//other.net/path", "example.com", "", ""},
		{"https:///path", "example.com", "", ""},
		{"https://exa mple.com/", "example.com", "", ""},
		{"https://bad..host/", "example.com", "", ""},
		{"https://host:port/", "example.com", "", ""},
		{"https://host\x00.com/", "example.com", "", ""},

		// Internal.
		{"https://example.com/pricing", "example.com", "", ""},
		{"https://www.example.com/pricing", "example.com", "", ""},
		{"https://EXAMPLE.com:443/", "example.com", "", ""},
		{"https://example.com/", "www.Example.com", "", ""},
		{"https://example.com/", "example.com:8080", "", ""},
		{"http://[::1]:3000/", "[::1]", "", ""},
		{"https://blog.example.com/", "example.com", "blog.example.com", "blog.example.com"},
		{"https://example.com/", "blog.example.com", "example.com", "example.com"},
		{"https://example.com/", "", "example.com", "example.com"},

		// Search engines, with country variants.
		{"https://www.google.com/", "example.com", "google.com", "Google"},
		{"https://google.de/", "example.com", "google.de", "Google"},
		{"https://www.google.co.uk/", "example.com", "google.co.uk", "Google"},
		{"https://www.google.com.br/url?q=x", "example.com", "google.com.br", "Google"},
		{"https://news.google.com/", "example.com", "news.google.com", "Google"},
		{"https://mail.google.com/mail/u/0/", "example.com", "mail.google.com", "Gmail"},
		{"https://www.bing.com/search?q=x", "example.com", "bing.com", "Bing"},
		{"https://cn.bing.com/", "example.com", "cn.bing.com", "Bing"},
		{"https://duckduckgo.com/", "example.com", "duckduckgo.com", "DuckDuckGo"},
		{"https://search.yahoo.com/", "example.com", "search.yahoo.com", "Yahoo!"},
		{"https://search.yahoo.co.jp/", "example.com", "search.yahoo.co.jp", "Yahoo!"},
		{"https://yandex.ru/search", "example.com", "yandex.ru", "Yandex"},
		{"https://yandex.com.tr/", "example.com", "yandex.com.tr", "Yandex"},
		{"https://ya.ru/", "example.com", "ya.ru", "Yandex"},
		{"https://www.baidu.com/link?url=x", "example.com", "baidu.com", "Baidu"},
		{"https://www.ecosia.org/search?q=x", "example.com", "ecosia.org", "Ecosia"},
		{"https://search.brave.com/search?q=x", "example.com", "search.brave.com", "Brave Search"},

		// Social and others.
		{"https://www.facebook.com/", "example.com", "facebook.com", "Facebook"},
		{"https://m.facebook.com/", "example.com", "m.facebook.com", "Facebook"},
		{"https://l.facebook.com/l.php?u=x", "example.com", "l.facebook.com", "Facebook"},
		{"https://lm.facebook.com/", "example.com", "lm.facebook.com", "Facebook"},
		{"https://l.instagram.com/", "example.com", "l.instagram.com", "Instagram"},
		{"https://www.instagram.com/", "example.com", "instagram.com", "Instagram"},
		{"https://twitter.com/", "example.com", "twitter.com", "Twitter"},
		{"https://mobile.twitter.com/", "example.com", "mobile.twitter.com", "Twitter"},
		{"https://x.com/", "example.com", "x.com", "Twitter"},
		{"https://t.co/abc", "example.com", "t.co", "Twitter"},
		{"https://www.linkedin.com/feed/", "example.com", "linkedin.com", "LinkedIn"},
		{"https://lnkd.in/abc", "example.com", "lnkd.in", "LinkedIn"},
		{"https://www.reddit.com/r/golang/", "example.com", "reddit.com", "Reddit"},
		{"https://old.reddit.com/", "example.com", "old.reddit.com", "Reddit"},
		{"https://out.reddit.com/", "example.com", "out.reddit.com", "Reddit"},
		{"https://www.youtube.com/", "example.com", "youtube.com", "YouTube"},
		{"https://m.youtube.com/", "example.com", "m.youtube.com", "YouTube"},
		{"https://youtu.be/x", "example.com", "youtu.be", "YouTube"},
		{"https://www.tiktok.com/", "example.com", "tiktok.com", "TikTok"},
		{"https://www.pinterest.com/", "example.com", "pinterest.com", "Pinterest"},
		{"https://www.pinterest.co.uk/", "example.com", "pinterest.co.uk", "Pinterest"},
		{"https://de.pinterest.com/", "example.com", "de.pinterest.com", "Pinterest"},
		{"https://github.com/veil-analytics/veil", "example.com", "github.com", "GitHub"},
		{"https://gist.github.com/", "example.com", "gist.github.com", "GitHub"},
		{"https://news.ycombinator.com/item?id=1", "example.com", "news.ycombinator.com", "Hacker News"},
		{"https://en.wikipedia.org/wiki/Go", "example.com", "en.wikipedia.org", "Wikipedia"},
		{"https://de.m.wikipedia.org/", "example.com", "de.m.wikipedia.org", "Wikipedia"},
		{"https://chatgpt.com/", "example.com", "chatgpt.com", "ChatGPT"},
		{"https://chat.openai.com/", "example.com", "chat.openai.com", "ChatGPT"},
		{"https://www.perplexity.ai/", "example.com", "perplexity.ai", "Perplexity"},

		// Look-alikes are not the brand.
		{"https://google.com.evil.io/", "example.com", "google.com.evil.io", "google.com.evil.io"},
		{"https://google.evil.io/", "example.com", "google.evil.io", "google.evil.io"},
		{"https://notgoogle.com/", "example.com", "notgoogle.com", "notgoogle.com"},
		{"https://facebook.com.evil.io/", "example.com", "facebook.com.evil.io", "facebook.com.evil.io"},
		{"https://myx.com/", "example.com", "myx.com", "myx.com"},
		{"https://ycombinator.com/", "example.com", "ycombinator.com", "ycombinator.com"},
		{"https://user.github.io/", "example.com", "user.github.io", "user.github.io"},

		// Android apps.
		{"android-app://com.google.android.gm/", "example.com", "com.google.android.gm", "Gmail"},
		{"android-app://com.google.android.googlequicksearchbox/https/www.google.com", "example.com", "com.google.android.googlequicksearchbox", "Google"},
		{"android-app://com.facebook.katana", "example.com", "com.facebook.katana", "Facebook"},
		{"android-app://com.twitter.android/", "example.com", "com.twitter.android", "Twitter"},
		{"android-app://com.linkedin.android/", "example.com", "com.linkedin.android", "LinkedIn"},
		{"android-app://com.reddit.frontpage/", "example.com", "com.reddit.frontpage", "Reddit"},
		{"android-app://org.telegram.messenger/", "example.com", "org.telegram.messenger", "Telegram"},
		{"android-app://com.example.unknown/", "example.com", "com.example.unknown", "com.example.unknown"},
		{"ANDROID-APP://com.Slack/", "example.com", "com.slack", "Slack"},
	}
	for _, tt := range tests {
		got, ok := ParseReferrer(tt.raw, tt.pageHost)
		if tt.host == "" {
			if ok || got != (Referrer{}) {
				t.Errorf("ParseReferrer(%.60q, %q) = %+v, %v; want not ok", tt.raw, tt.pageHost, got, ok)
			}
			continue
		}
		want := Referrer{Host: tt.host, Source: tt.source}
		if !ok || got != want {
			t.Errorf("ParseReferrer(%.60q, %q) = %+v, %v; want %+v", tt.raw, tt.pageHost, got, ok, want)
		}
	}
}

func TestSource(t *testing.T) {
	google := Referrer{Host: "google.com", Source: "Google"}
	tests := []struct {
		name   string
		p      Page
		r      Referrer
		hasRef bool
		want   string
	}{
		{"utm wins", Page{UTMSource: "newsletter"}, google, true, "newsletter"},
		{"utm without referrer", Page{UTMSource: "Newsletter"}, Referrer{}, false, "Newsletter"},
		{"referrer", Page{}, google, true, "Google"},
		{"referrer not ok", Page{}, google, false, ""},
		{"direct", Page{}, Referrer{}, false, ""},
		{"utm medium alone is not a source", Page{UTMMedium: "email"}, Referrer{}, false, ""},
	}
	for _, tt := range tests {
		if got := Source(tt.p, tt.r, tt.hasRef); got != tt.want {
			t.Errorf("%s: Source = %q, want %q", tt.name, got, tt.want)
		}
	}

	// End to end: utm_source as given, trimmed.
	p, err := ParsePage("https://example.com/?utm_source=%20Product%20Hunt%20", Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, ok := ParseReferrer("https://www.google.com/", p.Host)
	if got := Source(p, r, ok); got != "Product Hunt" {
		t.Errorf("Source = %q, want %q", got, "Product Hunt")
	}
	r, ok = ParseReferrer("https://www.example.com/other", p.Host)
	if got := Source(Page{Host: p.Host}, r, ok); got != "" {
		t.Errorf("internal referrer: Source = %q, want \"\"", got)
	}
}

func TestParseReferrerAllocs(t *testing.T) {
	n := testing.AllocsPerRun(100, func() {
		if _, ok := ParseReferrer("https://www.google.com/search?q=veil+analytics", "example.com"); !ok {
			t.Fatal("not ok")
		}
	})
	if n > 1 {
		t.Errorf("ParseReferrer allocates %v times, want at most 1", n)
	}
	n = testing.AllocsPerRun(100, func() {
		if _, ok := ParseReferrer("https://www.example.com/pricing", "example.com"); ok {
			t.Fatal("internal referrer ok")
		}
	})
	if n != 0 {
		t.Errorf("ParseReferrer internal path allocates %v times, want 0", n)
	}
}
