package uaparse

import "strings"

// Flags collected by scan. All case-insensitive substring facts about a UA
// are gathered in a single pass instead of one strings.Index per marker.
const (
	fBot uint64 = 1 << iota
	fConsole
	fTV
	fTablet
	fMobile
	fLinux

	// Prefilter bits for the case-sensitive browser and OS tokens: a bit is
	// set whenever its token occurs in any case, so the detectors only
	// search for tokens that can be there.
	tEdg
	tOpera
	tSamsung
	tYandex
	tUC
	tVivaldi
	tBrave
	tSilk
	tCriOS
	tFxiOS
	tWV
	tChromium
	tChrome
	tSafari
	tVersion
	tFirefox
	tIE
	tWinPhone
	tIPad
	tIPhone
	tCrOS
	tAndroid
	tMacintosh
	tWindows
	tFreeBSD
)

// marker is a lower-case substring (at least 3 bytes) that sets flag, unless
// it is directly preceded by notAfter (used for known false positives such
// as "CUBOT").
type marker struct {
	s        string
	notAfter string
	flag     uint64
	tri      uint32 // first three bytes, as scan's rolling window sees them
}

// botMarkers are matched case-insensitively anywhere in the UA. Markers that
// contain another marker (e.g. "googlebot" contains "bot") are kept for
// documentation and dropped at init, so listing them costs nothing.
var botMarkers = []marker{
	// Generic crawler vocabulary. "CUBOT" is an Android phone brand.
	{s: "bot", notAfter: "cu"}, {s: "crawl"}, {s: "spider"}, {s: "slurp"},
	{s: "scraper"}, {s: "archiver"}, {s: "fetcher"}, {s: "preview"},
	{s: "monitor"}, {s: "scanner"}, {s: "validator"}, {s: "http://"}, {s: "https://"},
	// Search engines and SEO tools.
	{s: "googlebot"}, {s: "google-"}, {s: "-google"}, {s: "googleother"},
	{s: "google favicon"}, {s: "feedfetcher"}, {s: "bingbot"}, {s: "bingpreview"},
	{s: "yandexbot"}, {s: "yandex.com/bots"}, {s: "baiduspider"}, {s: "duckduckbot"},
	{s: "exabot"}, {s: "seznambot"}, {s: "qwantify"}, {s: "applebot"},
	{s: "petalbot"}, {s: "bytespider"}, {s: "ia_archiver"}, {s: "semrush"},
	{s: "ahrefs"}, {s: "mj12bot"}, {s: "dotbot"}, {s: "screaming frog"},
	{s: "sitebulb"}, {s: "nutch"}, {s: "heritrix"}, {s: "httrack"},
	// AI crawlers and agents.
	{s: "gptbot"}, {s: "chatgpt-user"}, {s: "oai-searchbot"}, {s: "claudebot"},
	{s: "claude-web"}, {s: "anthropic-ai"}, {s: "perplexity"}, {s: "ccbot"},
	{s: "cohere-ai"}, {s: "meta-externalagent"}, {s: "meta-externalfetcher"},
	// Link previewers.
	{s: "facebookexternalhit"}, {s: "facebookcatalog"}, {s: "facebot"},
	{s: "slackbot"}, {s: "slack-imgproxy"}, {s: "whatsapp"}, {s: "telegrambot"},
	{s: "discordbot"}, {s: "twitterbot"}, {s: "linkedinbot"}, {s: "redditbot"},
	{s: "embedly"}, {s: "iframely"}, {s: "vkshare"}, {s: "skypeuripreview"},
	{s: "mastodon/"},
	// Headless browsers and test automation.
	{s: "headless"}, {s: "phantomjs"}, {s: "slimerjs"}, {s: "selenium"},
	{s: "webdriver"}, {s: "puppeteer"}, {s: "playwright"}, {s: "cypress"},
	// Performance and uptime monitoring.
	{s: "lighthouse"}, {s: "pagespeed"}, {s: "gtmetrix"}, {s: "pingdom"},
	{s: "uptime"}, {s: "statuscake"}, {s: "site24x7"}, {s: "datadog"},
	{s: "newrelic"}, {s: "nagios"}, {s: "zabbix"}, {s: "check_http"},
	{s: "catchpoint"}, {s: "cloudflare"}, {s: "healthcheck"}, {s: "health-check"},
	// HTTP clients and API tools.
	{s: "curl/"}, {s: "libcurl"}, {s: "wget/"}, {s: "python"}, {s: "aiohttp"},
	{s: "httpx"}, {s: "go-http-client"}, {s: "java/"}, {s: "okhttp"},
	{s: "axios"}, {s: "node-fetch"}, {s: "undici"}, {s: "libwww"}, {s: "lwp-"},
	{s: "httpclient"}, {s: "guzzlehttp"}, {s: "rest-client"}, {s: "scrapy"},
	{s: "postmanruntime"}, {s: "insomnia"}, {s: "httpie"}, {s: "powershell"},
	{s: "winhttp"},
	// Vulnerability and internet-wide scanners.
	{s: "zgrab"}, {s: "masscan"}, {s: "nmap"}, {s: "nikto"}, {s: "sqlmap"},
	{s: "nuclei"}, {s: "censys"},
}

// deviceMarkers classify hardware that the OS token alone does not reveal.
var deviceMarkers = []marker{
	{s: "playstation", flag: fConsole}, {s: "xbox", flag: fConsole},
	{s: "nintendo", flag: fConsole},

	{s: "smart-tv", flag: fTV}, {s: "smarttv", flag: fTV}, {s: "smart tv", flag: fTV},
	{s: "hbbtv", flag: fTV}, {s: "netcast", flag: fTV}, {s: "web0s", flag: fTV},
	{s: "webos", flag: fTV}, {s: "crkey", flag: fTV}, {s: "chromecast", flag: fTV},
	{s: "bravia", flag: fTV}, {s: "appletv", flag: fTV}, {s: "apple tv", flag: fTV},
	{s: "android tv", flag: fTV}, {s: "androidtv", flag: fTV}, {s: "googletv", flag: fTV},
	{s: "google tv", flag: fTV}, {s: "roku", flag: fTV}, {s: "; aft", flag: fTV},
	{s: "philipstv", flag: fTV}, {s: "viera", flag: fTV}, {s: "mitv", flag: fTV},
	{s: "inettvbrowser", flag: fTV},

	{s: "ipad", flag: fTablet | tIPad}, {s: "tablet", flag: fTablet},
	{s: "kindle", flag: fTablet}, {s: "silk/", flag: fTablet | tSilk},

	{s: "mobi", flag: fMobile}, {s: "iphone", flag: fMobile | tIPhone},
	{s: "ipod", flag: fMobile | tIPhone}, {s: "opera mini", flag: fMobile},
	{s: "windows phone", flag: fMobile | tWinPhone},
	{s: "blackberry", flag: fMobile}, {s: "bb10", flag: fMobile},
	{s: "kaios", flag: fMobile}, {s: "symbian", flag: fMobile},

	{s: "linux", flag: fLinux},
}

// tokenMarkers feed the prefilter bits of the browser and OS detectors.
var tokenMarkers = []marker{
	{s: "edg", flag: tEdg},
	{s: "opr/", flag: tOpera}, {s: "opios/", flag: tOpera}, {s: "opt/", flag: tOpera},
	{s: "opera", flag: tOpera},
	{s: "samsungbrowser/", flag: tSamsung}, {s: "yabrowser/", flag: tYandex},
	{s: "ucbrowser/", flag: tUC}, {s: "ubrowser/", flag: tUC}, {s: "ucweb/", flag: tUC},
	{s: "vivaldi/", flag: tVivaldi}, {s: "brave/", flag: tBrave},
	{s: "crios/", flag: tCriOS}, {s: "fxios/", flag: tFxiOS}, {s: "; wv)", flag: tWV},
	{s: "chromium/", flag: tChromium}, {s: "chrome/", flag: tChrome},
	{s: "safari/", flag: tSafari}, {s: "version/", flag: tVersion},
	{s: "firefox/", flag: tFirefox}, {s: "trident/", flag: tIE}, {s: "msie ", flag: tIE},
	{s: "cros", flag: tCrOS}, {s: "android", flag: tAndroid},
	{s: "macintosh", flag: tMacintosh}, {s: "windows", flag: tWindows},
	{s: "freebsd", flag: tFreeBSD},
}

var (
	lowerTab [256]byte
	// trigrams is a hashed bitset of the first three bytes of every marker;
	// it rejects almost every position of a UA with one load.
	trigrams [1 << 16 / 64]uint64
	buckets  [256][]marker
)

func init() {
	for i := range lowerTab {
		c := byte(i)
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		lowerTab[i] = c
	}
	var all []marker
	for _, m := range botMarkers {
		m.flag = fBot
		if !subsumed(m, botMarkers) {
			all = append(all, m)
		}
	}
	all = append(all, deviceMarkers...)
	all = append(all, tokenMarkers...)
	for _, m := range all {
		if len(m.s) < 3 {
			continue // cannot be indexed by trigram; TestMarkerTables prevents this
		}
		m.tri = uint32(m.s[0])<<16 | uint32(m.s[1])<<8 | uint32(m.s[2])
		h := triHash(m.tri)
		trigrams[h>>6] |= 1 << (h & 63)
		buckets[m.s[0]] = append(buckets[m.s[0]], m)
	}
}

// subsumed reports whether a shorter bot marker already matches wherever m
// does, so m need not be scanned for.
func subsumed(m marker, list []marker) bool {
	for _, o := range list {
		if o.s == m.s || len(o.s) >= len(m.s) {
			continue
		}
		for off := 0; ; {
			i := strings.Index(m.s[off:], o.s)
			if i < 0 {
				break
			}
			i += off
			// o's exclusion must be decidable inside m and not triggered.
			if o.notAfter == "" || (i >= len(o.notAfter) && m.s[i-len(o.notAfter):i] != o.notAfter) {
				return true
			}
			off = i + 1
		}
	}
	return false
}

func triHash(t uint32) uint32 { return (t * 0x9E3779B1) >> 16 }

// scan returns the flags of all markers found in ua, case-insensitively. It
// keeps a rolling window of the last three lower-cased bytes and only looks
// at the marker lists when that trigram starts some marker.
func scan(ua string) uint64 {
	var flags uint64
	var tri uint32
	for i := 0; i < len(ua); i++ {
		tri = (tri<<8 | uint32(lowerTab[ua[i]])) & 0xFFFFFF
		if i < 2 {
			continue
		}
		h := triHash(tri)
		if trigrams[h>>6]&(1<<(h&63)) == 0 {
			continue
		}
		start := i - 2
		b := buckets[tri>>16]
		for j := range b {
			m := &b[j]
			if m.tri != tri || flags&m.flag == m.flag || !hasPrefixFold(ua[start:], m.s) {
				continue
			}
			if m.notAfter != "" && start >= len(m.notAfter) && hasPrefixFold(ua[start-len(m.notAfter):], m.notAfter) {
				continue
			}
			flags |= m.flag
		}
	}
	return flags
}

// hasPrefixFold reports whether s starts with the lower-case ASCII prefix p,
// ignoring ASCII case in s.
func hasPrefixFold(s, p string) bool {
	if len(s) < len(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		if lowerTab[s[i]] != p[i] {
			return false
		}
	}
	return true
}
