// Package uaparse reduces a User-Agent header to coarse, non-identifying
// facts — browser family and major version, OS family and major version,
// device class — and flags crawlers, monitors and HTTP tooling as bots.
//
// It sits on the ingest hot path, so Parse does not allocate and never
// panics, whatever the input. Every string in an Info comes from static
// tables rather than from the header itself, so keeping an Info never keeps
// the raw User-Agent alive in memory.
//
// Detection is deliberately token based (no regular expressions): the order
// of checks encodes which vendor tokens override which, because most
// browsers also claim to be Chrome, Safari and Mozilla.
package uaparse

import "strings"

// Info is what survives of a user agent after the edge drops the raw string.
type Info struct {
	// Browser is one of "Chrome", "Firefox", "Safari", "Edge", "Opera",
	// "Samsung Internet", "UC Browser", "Yandex Browser", "Brave",
	// "Vivaldi", "Internet Explorer", "Android WebView", "Chromium", "Other".
	Browser string
	// BrowserVersion is the major version (at most 4 digits), "" if unknown.
	BrowserVersion string
	// OS is one of "Windows", "macOS", "iOS", "iPadOS", "Android", "Linux",
	// "Chrome OS", "FreeBSD", "Other".
	OS string
	// OSVersion is the major version ("17" for iOS 17_1, "14" for Android
	// 14), the marketing name for Windows ("10", "8.1", "7", "XP", ...), or
	// "10.x" for macOS 10.x; "" if unknown. At most 8 characters.
	OSVersion string
	// Device is one of "desktop", "mobile", "tablet", "tv", "console",
	// "unknown".
	Device string
	// Bot is set for crawlers, link previewers, monitors, headless browsers,
	// HTTP libraries, and empty or oversized headers.
	Bot bool
}

// maxLen is the longest header we parse; anything longer is treated as a bot
// (real browsers stay far below it) and bounds the work done per call.
const maxLen = 1000

// Browser identifiers; index into browserNames. Zero is "Other" so that a
// zero result is a valid "know nothing" answer.
const (
	bOther uint8 = iota
	bChrome
	bFirefox
	bSafari
	bEdge
	bOpera
	bSamsung
	bUC
	bYandex
	bBrave
	bVivaldi
	bIE
	bWebView
	bChromium
)

var browserNames = [...]string{
	bOther:    "Other",
	bChrome:   "Chrome",
	bFirefox:  "Firefox",
	bSafari:   "Safari",
	bEdge:     "Edge",
	bOpera:    "Opera",
	bSamsung:  "Samsung Internet",
	bUC:       "UC Browser",
	bYandex:   "Yandex Browser",
	bBrave:    "Brave",
	bVivaldi:  "Vivaldi",
	bIE:       "Internet Explorer",
	bWebView:  "Android WebView",
	bChromium: "Chromium",
}

// OS identifiers; index into osNames.
const (
	osOther uint8 = iota
	osWindows
	osMacOS
	osIOS
	osIPadOS
	osAndroid
	osLinux
	osChromeOS
	osFreeBSD
)

var osNames = [...]string{
	osOther:    "Other",
	osWindows:  "Windows",
	osMacOS:    "macOS",
	osIOS:      "iOS",
	osIPadOS:   "iPadOS",
	osAndroid:  "Android",
	osLinux:    "Linux",
	osChromeOS: "Chrome OS",
	osFreeBSD:  "FreeBSD",
}

// Device identifiers; index into deviceNames.
const (
	devUnknown uint8 = iota
	devDesktop
	devMobile
	devTablet
	devTV
	devConsole
)

var deviceNames = [...]string{
	devUnknown: "unknown",
	devDesktop: "desktop",
	devMobile:  "mobile",
	devTablet:  "tablet",
	devTV:      "tv",
	devConsole: "console",
}

// Version codes. Versions are carried as small integers so that results can
// be packed into one word for the cache and turned back into strings without
// allocating:
//
//	0                       unknown
//	1..maxNum+1             the number n-1
//	macBase..macBase+99     macOS "10.<minor>"
//	winBase..               winNames[n-winBase]
const (
	maxNum  = 9999
	macBase = 20000
	winBase = 30000
)

var winNames = [...]string{"10", "8.1", "8", "7", "Vista", "XP", "2000", "ME", "98", "95"}

const (
	win10 = winBase + iota
	win81
	win8
	win7
	winVista
	winXP
	win2000
	winME
	win98
	win95
)

var (
	// numbers is "0123…9999" without separators; numString slices it so
	// that version strings never point into (and pin) the input.
	numbers string
	// mac10 holds "10.0" … "10.99".
	mac10 [100]string
)

func init() {
	b := make([]byte, 0, 38890)
	for n := 0; n <= maxNum; n++ {
		b = appendUint(b, n)
	}
	numbers = string(b)
	for i := range mac10 {
		mac10[i] = "10." + numString(i)
	}
}

func appendUint(b []byte, n int) []byte {
	var tmp [8]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

// numString returns the decimal form of n (0 ≤ n ≤ maxNum) from the static
// numbers table.
func numString(n int) string {
	var off, d int
	switch {
	case n < 0 || n > maxNum:
		return ""
	case n < 10:
		off, d = n, 1
	case n < 100:
		off, d = 10+(n-10)*2, 2
	case n < 1000:
		off, d = 190+(n-100)*3, 3
	default:
		off, d = 2890+(n-1000)*4, 4
	}
	return numbers[off : off+d]
}

func verString(c uint16) string {
	switch {
	case c == 0:
		return ""
	case c <= maxNum+1:
		return numString(int(c) - 1)
	case c >= macBase && c < macBase+uint16(len(mac10)):
		return mac10[c-macBase]
	case c >= winBase && c < winBase+uint16(len(winNames)):
		return winNames[c-winBase]
	}
	return ""
}

// result is the compact form of Info used internally and by the cache.
type result struct {
	browser, os, device uint8
	bot                 bool
	bver, osver         uint16
}

func (r result) pack() uint64 {
	v := uint64(r.browser) | uint64(r.os)<<8 | uint64(r.device)<<16 |
		uint64(r.bver)<<24 | uint64(r.osver)<<40
	if r.bot {
		v |= 1 << 56
	}
	return v
}

func unpack(v uint64) result {
	return result{
		browser: uint8(v),
		os:      uint8(v >> 8),
		device:  uint8(v >> 16),
		bver:    uint16(v >> 24),
		osver:   uint16(v >> 40),
		bot:     v&(1<<56) != 0,
	}
}

func name(tbl []string, i uint8) string {
	if int(i) < len(tbl) {
		return tbl[i]
	}
	return tbl[0]
}

func (r result) info() Info {
	return Info{
		Browser:        name(browserNames[:], r.browser),
		BrowserVersion: verString(r.bver),
		OS:             name(osNames[:], r.os),
		OSVersion:      verString(r.osver),
		Device:         name(deviceNames[:], r.device),
		Bot:            r.bot,
	}
}

// Parse extracts coarse facts from a User-Agent header. It does not allocate
// and never panics.
func Parse(ua string) Info {
	return parse(ua).info()
}

func parse(ua string) result {
	if len(ua) > maxLen || blank(ua) {
		return result{bot: true}
	}
	flags := scan(ua)
	var r result
	r.browser, r.bver = detectBrowser(ua, flags)
	r.os, r.osver = detectOS(ua, flags)
	r.device = detectDevice(r.os, flags)
	r.bot = flags&fBot != 0
	return r
}

func blank(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\r', '\v', '\f':
		default:
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// leadingInt parses up to 5 leading digits of s and reports how many digits
// there were (6 meaning "too many", so callers can reject junk).
func leadingInt(s string) (n, d int) {
	for d < len(s) && isDigit(s[d]) {
		if d == 5 {
			return 0, 6
		}
		n = n*10 + int(s[d]-'0')
		d++
	}
	return n, d
}

// major encodes the leading major version of s as a version code; more than
// four digits is not a real version and yields unknown.
func major(s string) uint16 {
	n, d := leadingInt(s)
	if d == 0 || d > 4 {
		return 0
	}
	return uint16(n + 1)
}

// verAfter finds tok in ua and returns the major version that follows it.
func verAfter(ua, tok string) (uint16, bool) {
	i := strings.Index(ua, tok)
	if i < 0 {
		return 0, false
	}
	return major(ua[i+len(tok):]), true
}

// verIf is verAfter behind the scan prefilter: bit is set whenever tok occurs
// in any case, so a clear bit saves a search that could not succeed.
func verIf(f, bit uint64, ua, tok string) (uint16, bool) {
	if f&bit == 0 {
		return 0, false
	}
	return verAfter(ua, tok)
}

// has reports whether ua contains tok (case-sensitively), using the
// prefilter bit first.
func has(f, bit uint64, ua, tok string) bool {
	return f&bit != 0 && strings.Contains(ua, tok)
}

// detectBrowser checks vendor tokens most specific first: Edge, Opera,
// Samsung, Yandex, UC, Vivaldi, … all also carry "Chrome/" and "Safari/",
// so those generic tokens are only trusted once the others are ruled out.
// Tokens are matched case-sensitively, as browsers send them.
func detectBrowser(ua string, f uint64) (uint8, uint16) {
	if f&tEdg != 0 {
		// Chromium Edge (desktop, Android, iOS) and EdgeHTML "Edge/".
		for _, t := range [...]string{"Edg/", "EdgA/", "EdgiOS/", "Edge/"} {
			if v, ok := verAfter(ua, t); ok {
				return bEdge, v
			}
		}
	}
	if f&tOpera != 0 {
		for _, t := range [...]string{"OPR/", "OPiOS/", "OPT/"} {
			if v, ok := verAfter(ua, t); ok {
				return bOpera, v
			}
		}
		if strings.Contains(ua, "Opera") {
			// Presto-era Opera and Opera Mini report "Opera/9.80" and put
			// the real version in Version/.
			if v, ok := verAfter(ua, "Version/"); ok {
				return bOpera, v
			}
			if v, ok := verAfter(ua, "Opera/"); ok {
				return bOpera, v
			}
			v, _ := verAfter(ua, "Opera ")
			return bOpera, v
		}
	}
	if v, ok := verIf(f, tSamsung, ua, "SamsungBrowser/"); ok {
		return bSamsung, v
	}
	if v, ok := verIf(f, tYandex, ua, "YaBrowser/"); ok {
		return bYandex, v
	}
	if f&tUC != 0 {
		for _, t := range [...]string{"UCBrowser/", "UBrowser/", "UCWEB/"} {
			if v, ok := verAfter(ua, t); ok {
				return bUC, v
			}
		}
	}
	if v, ok := verIf(f, tVivaldi, ua, "Vivaldi/"); ok {
		return bVivaldi, v
	}
	// Brave normally hides behind a plain Chrome UA; only some builds say so.
	if v, ok := verIf(f, tBrave, ua, "Brave/"); ok {
		return bBrave, v
	}
	// Amazon Silk says "like Chrome/"; it is its own browser, not Chrome.
	if has(f, tSilk, ua, "Silk/") {
		return bOther, 0
	}
	if v, ok := verIf(f, tCriOS, ua, "CriOS/"); ok {
		return bChrome, v
	}
	if v, ok := verIf(f, tFxiOS, ua, "FxiOS/"); ok {
		return bFirefox, v
	}
	if has(f, tWV, ua, "; wv)") {
		v, _ := verIf(f, tChrome, ua, "Chrome/")
		return bWebView, v
	}
	if v, ok := verIf(f, tChromium, ua, "Chromium/"); ok {
		return bChromium, v
	}
	// Also matches "HeadlessChrome/"; the bot flag tells those apart.
	if v, ok := verIf(f, tChrome, ua, "Chrome/"); ok {
		return bChrome, v
	}
	if has(f, tSafari, ua, "Safari/") {
		// Only real Safari carries Version/; in-app WebViews (GSA, Facebook)
		// do not. Pre-Chrome Android stock browsers look like Safari too.
		if v, ok := verIf(f, tVersion, ua, "Version/"); ok && !has(f, tAndroid, ua, "Android") {
			return bSafari, v
		}
		return bOther, 0
	}
	if v, ok := verIf(f, tFirefox, ua, "Firefox/"); ok {
		return bFirefox, v
	}
	if f&tIE == 0 {
		return bOther, 0
	}
	if i := strings.Index(ua, "Trident/"); i >= 0 {
		// Trident is the engine; it maps to IE reliably even when compat
		// view lies with "MSIE 7.0".
		if n, d := leadingInt(ua[i+len("Trident/"):]); d > 0 && d <= 4 && n >= 4 && n <= 7 {
			return bIE, uint16(n + 4 + 1)
		}
		if v, ok := verAfter(ua, "rv:"); ok {
			return bIE, v
		}
	}
	if v, ok := verAfter(ua, "MSIE "); ok {
		return bIE, v
	}
	return bOther, 0
}

func detectOS(ua string, f uint64) (uint8, uint16) {
	switch {
	case has(f, tWinPhone, ua, "Windows Phone"):
		// Not in the closed set, and must not count as desktop Windows.
		return osOther, 0
	case has(f, tIPad, ua, "iPad"):
		return osIPadOS, appleVer(ua)
	case has(f, tIPhone, ua, "iPhone") || has(f, tIPhone, ua, "iPod"):
		return osIOS, appleVer(ua)
	case has(f, tCrOS, ua, "CrOS"):
		// Checked before Linux: Chrome OS UAs say "X11; CrOS".
		return osChromeOS, 0
	case has(f, tAndroid, ua, "Android"):
		// Checked before Linux: Android UAs say "Linux; Android".
		v, _ := verAfter(ua, "Android ")
		return osAndroid, v
	case has(f, tMacintosh, ua, "Macintosh"):
		// "Macintosh", not "Mac OS X": iOS and tvOS say "like Mac OS X".
		return osMacOS, macVer(ua)
	case has(f, tWindows, ua, "Windows"):
		return osWindows, windowsVer(ua)
	case has(f, tFreeBSD, ua, "FreeBSD"):
		return osFreeBSD, 0
	case f&fLinux != 0:
		return osLinux, 0
	}
	return osOther, 0
}

// appleVer reads the major from "CPU iPhone OS 17_1" or "CPU OS 17_1".
func appleVer(ua string) uint16 {
	for s := ua; ; {
		i := strings.Index(s, " OS ")
		if i < 0 {
			return 0
		}
		s = s[i+len(" OS "):]
		if s != "" && isDigit(s[0]) {
			return major(s)
		}
	}
}

// macVer reports 10.x releases as "10.15" (the minor was the release), later
// ones by major. Safari and Chrome freeze the token at 10_15_7, so newer
// Macs mostly show up as "10.15".
func macVer(ua string) uint16 {
	i := strings.Index(ua, "Mac OS X ")
	if i < 0 {
		return 0
	}
	s := ua[i+len("Mac OS X "):]
	n, d := leadingInt(s)
	if d == 0 || d > 4 {
		return 0
	}
	if n != 10 {
		return uint16(n + 1)
	}
	if d < len(s) && (s[d] == '_' || s[d] == '.') {
		if m, md := leadingInt(s[d+1:]); md > 0 && m < len(mac10) {
			return macBase + uint16(m)
		}
	}
	return uint16(n + 1)
}

// windowsVer maps NT kernel versions to marketing names. Windows 11 still
// sends "Windows NT 10.0", so it cannot be told apart from 10 here (only the
// Sec-CH-UA-Platform-Version client hint can).
func windowsVer(ua string) uint16 {
	if i := strings.Index(ua, "Windows NT "); i >= 0 {
		s := ua[i+len("Windows NT "):]
		maj, d := leadingInt(s)
		if d == 0 || d > 2 {
			return 0
		}
		min := 0
		if d < len(s) && s[d] == '.' {
			min, _ = leadingInt(s[d+1:])
		}
		switch {
		case maj == 10 && min == 0:
			return win10
		case maj == 6 && min == 3:
			return win81
		case maj == 6 && min == 2:
			return win8
		case maj == 6 && min == 1:
			return win7
		case maj == 6 && min == 0:
			return winVista
		case maj == 5 && (min == 1 || min == 2):
			return winXP
		case maj == 5 && min == 0:
			return win2000
		}
		return 0
	}
	switch {
	case strings.Contains(ua, "Windows XP"):
		return winXP
	case strings.Contains(ua, "Windows ME") || strings.Contains(ua, "Win 9x 4.90"):
		return winME
	case strings.Contains(ua, "Windows 98") || strings.Contains(ua, "Win98"):
		return win98
	case strings.Contains(ua, "Windows 95") || strings.Contains(ua, "Win95"):
		return win95
	}
	return 0
}

func detectDevice(os uint8, flags uint64) uint8 {
	switch {
	case flags&fConsole != 0:
		return devConsole
	case flags&fTV != 0:
		// Before tablet: Android TVs and Fire TV lack "Mobile" too.
		return devTV
	case os == osIPadOS:
		return devTablet
	case flags&fTablet != 0 && os != osWindows:
		// Windows "Tablet PC 2.0" is a touch laptop, not a tablet.
		return devTablet
	case os == osIOS:
		return devMobile
	case os == osAndroid:
		// Android convention: phones say "Mobile", tablets do not.
		if flags&fMobile != 0 {
			return devMobile
		}
		return devTablet
	case flags&fMobile != 0:
		return devMobile
	case os == osWindows, os == osMacOS, os == osLinux, os == osChromeOS, os == osFreeBSD:
		return devDesktop
	}
	return devUnknown
}
