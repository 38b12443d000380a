package urlnorm

import "strings"

// Referrer is a minimized referrer: its host and the traffic source it
// stands for.
type Referrer struct {
	// Host is lower-case, without port, user info or "www." prefix. For
	// android-app referrers it is the package name.
	Host string
	// Source is a friendly name for well-known hosts ("Google", "Twitter")
	// and the host itself otherwise.
	Source string
}

// ParseReferrer reduces a referrer to its host; the path and query (which
// may hold search terms or tokens) are never looked at beyond finding where
// the host ends. ok is false when raw is empty, unparsable, of a blocked
// scheme (about:blank, data:, ...), or internal: on the same host as
// pageHost, ignoring case, port and "www.". Subdomains of pageHost count as
// external, as in Plausible.
func ParseReferrer(raw string, pageHost string) (Referrer, bool) {
	raw = strings.TrimSpace(raw)
	scheme, rest, ok := splitScheme(raw)
	if !ok || blockedScheme(scheme) || !strings.HasPrefix(rest, "//") {
		return Referrer{}, false
	}
	rest = rest[2:]
	var arr [272]byte // a valid host is at most 253 bytes
	b, err := appendHost(arr[:0], rest[:authorityEnd(rest)])
	if err != nil || len(b) == 0 || sameHost(b, pageHost) {
		return Referrer{}, false
	}
	host := string(b) // the only allocation; host never aliases raw
	var src string
	if strings.EqualFold(scheme, "android-app") {
		src = appSources[host]
	} else {
		src = webSource(host)
	}
	if src == "" {
		src = host
	}
	return Referrer{Host: host, Source: src}, true
}

// sameHost reports whether the normalized host b is the page's host. The
// page host is normalized the same way (case, port, user info, "www.", the
// many spellings of an IPv6 literal), so the comparison cannot be fooled by
// how either side was written.
func sameHost(b []byte, pageHost string) bool {
	var arr [272]byte
	ph, err := appendHost(arr[:0], pageHost)
	return err == nil && len(ph) > 0 && string(ph) == string(b)
}

// Source picks the visit source the way Plausible does: utm_source if
// present, else the referrer's Source, else "" (Direct / None).
func Source(p Page, r Referrer, hasRef bool) string {
	if p.UTMSource != "" {
		return p.UTMSource
	}
	if hasRef {
		return r.Source
	}
	return ""
}

// webSource names a well-known web host: an exact entry for the host or one
// of its parent domains (so "l.facebook.com" is Facebook), else a brand
// label followed by a country-style suffix ("google.co.uk", "google.com.br").
// It returns "" for unknown hosts.
func webSource(host string) string {
	for h := host; ; {
		if s, ok := domainSources[h]; ok {
			return s
		}
		i := strings.IndexByte(h, '.')
		if i < 0 {
			break
		}
		h = h[i+1:]
	}
	for h := host; ; {
		i := strings.IndexByte(h, '.')
		if i < 0 {
			return ""
		}
		if s, ok := brandSources[h[:i]]; ok && countrySuffix(h[i+1:]) {
			return s
		}
		h = h[i+1:]
	}
}

// countrySuffix accepts "com", a two-letter country code, or "co.", "com."
// followed by one: the shapes of the big brands' national domains. It
// rejects "evil.io" so that "google.evil.io" is not Google.
func countrySuffix(s string) bool {
	switch {
	case s == "com" || isCC(s):
		return true
	case strings.HasPrefix(s, "co."):
		return isCC(s[3:])
	case strings.HasPrefix(s, "com."):
		return isCC(s[4:])
	}
	return false
}

func isCC(s string) bool {
	return len(s) == 2 && 'a' <= s[0] && s[0] <= 'z' && 'a' <= s[1] && s[1] <= 'z'
}

// domainSources maps domains (matched with their subdomains) to sources.
var domainSources = map[string]string{
	"mail.google.com":      "Gmail",
	"bing.com":             "Bing",
	"duckduckgo.com":       "DuckDuckGo",
	"ya.ru":                "Yandex",
	"baidu.com":            "Baidu",
	"ecosia.org":           "Ecosia",
	"search.brave.com":     "Brave Search",
	"facebook.com":         "Facebook",
	"fb.com":               "Facebook",
	"fb.me":                "Facebook",
	"instagram.com":        "Instagram",
	"twitter.com":          "Twitter",
	"x.com":                "Twitter",
	"t.co":                 "Twitter",
	"linkedin.com":         "LinkedIn",
	"lnkd.in":              "LinkedIn",
	"reddit.com":           "Reddit",
	"redd.it":              "Reddit",
	"youtube.com":          "YouTube",
	"youtu.be":             "YouTube",
	"tiktok.com":           "TikTok",
	"pin.it":               "Pinterest",
	"github.com":           "GitHub",
	"news.ycombinator.com": "Hacker News",
	"wikipedia.org":        "Wikipedia",
	"chatgpt.com":          "ChatGPT",
	"chat.openai.com":      "ChatGPT",
	"perplexity.ai":        "Perplexity",
}

// brandSources maps brand labels that have national domains to sources.
var brandSources = map[string]string{
	"google":     "Google",
	"bing":       "Bing",
	"yahoo":      "Yahoo!",
	"yandex":     "Yandex",
	"baidu":      "Baidu",
	"duckduckgo": "DuckDuckGo",
	"pinterest":  "Pinterest",
}

// appSources maps Android package names (android-app://PACKAGE/) to sources.
var appSources = map[string]string{
	"com.google.android.gm":                   "Gmail",
	"com.google.android.googlequicksearchbox": "Google",
	"com.google.android.apps.searchlite":      "Google",
	"com.google.android.youtube":              "YouTube",
	"com.facebook.katana":                     "Facebook",
	"com.facebook.lite":                       "Facebook",
	"com.facebook.orca":                       "Facebook",
	"com.instagram.android":                   "Instagram",
	"com.twitter.android":                     "Twitter",
	"com.linkedin.android":                    "LinkedIn",
	"com.reddit.frontpage":                    "Reddit",
	"com.pinterest":                           "Pinterest",
	"com.zhiliaoapp.musically":                "TikTok",
	"com.ss.android.ugc.trill":                "TikTok",
	"com.slack":                               "Slack",
	"org.telegram.messenger":                  "Telegram",
	"com.whatsapp":                            "WhatsApp",
	"com.microsoft.office.outlook":            "Outlook",
}
