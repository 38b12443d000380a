package uaparse

import (
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"testing"
)

// uaCases are real-world User-Agent strings with every expected field.
var uaCases = []struct {
	name string
	ua   string
	want Info
}{
	// Desktop.
	{"chrome-win10", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
		Info{"Chrome", "120", "Windows", "10", "desktop", false}},
	{"chrome-mac", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
		Info{"Chrome", "120", "macOS", "10.15", "desktop", false}},
	{"chrome-linux", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
		Info{"Chrome", "120", "Linux", "", "desktop", false}},
	{"chrome-win7", "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36",
		Info{"Chrome", "109", "Windows", "7", "desktop", false}},
	{"chrome-win81", "Mozilla/5.0 (Windows NT 6.3; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36",
		Info{"Chrome", "109", "Windows", "8.1", "desktop", false}},
	{"chrome-cros", "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
		Info{"Chrome", "120", "Chrome OS", "", "desktop", false}},
	{"firefox-win", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
		Info{"Firefox", "121", "Windows", "10", "desktop", false}},
	{"firefox-mac", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0",
		Info{"Firefox", "121", "macOS", "10.15", "desktop", false}},
	{"firefox-ubuntu", "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
		Info{"Firefox", "121", "Linux", "", "desktop", false}},
	{"firefox-xp", "Mozilla/5.0 (Windows NT 5.1; rv:52.0) Gecko/20100101 Firefox/52.0",
		Info{"Firefox", "52", "Windows", "XP", "desktop", false}},
	{"firefox-freebsd", "Mozilla/5.0 (X11; FreeBSD amd64; rv:109.0) Gecko/20100101 Firefox/115.0",
		Info{"Firefox", "115", "FreeBSD", "", "desktop", false}},
	{"safari-mac", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
		Info{"Safari", "17", "macOS", "10.15", "desktop", false}},
	{"safari-mac-11", "Mozilla/5.0 (Macintosh; Intel Mac OS X 11_2_3) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/14.0.3 Safari/605.1.15",
		Info{"Safari", "14", "macOS", "11", "desktop", false}},
	{"edge-win", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
		Info{"Edge", "120", "Windows", "10", "desktop", false}},
	{"edge-legacy", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.102 Safari/537.36 Edge/18.19582",
		Info{"Edge", "18", "Windows", "10", "desktop", false}},
	{"opera-win", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36 OPR/105.0.0.0",
		Info{"Opera", "105", "Windows", "10", "desktop", false}},
	{"vivaldi-win", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Vivaldi/6.5.3206.53",
		Info{"Vivaldi", "6", "Windows", "10", "desktop", false}},
	{"yandex-win", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 YaBrowser/23.11.0.0 Safari/537.36",
		Info{"Yandex Browser", "23", "Windows", "10", "desktop", false}},
	{"chromium-ubuntu", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Ubuntu Chromium/79.0.3945.79 Chrome/79.0.3945.79 Safari/537.36",
		Info{"Chromium", "79", "Linux", "", "desktop", false}},
	{"ie11-win7", "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
		Info{"Internet Explorer", "11", "Windows", "7", "desktop", false}},
	{"ie9-win7", "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/5.0)",
		Info{"Internet Explorer", "9", "Windows", "7", "desktop", false}},
	{"ie6-xp", "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)",
		Info{"Internet Explorer", "6", "Windows", "XP", "desktop", false}},

	// Phones.
	{"chrome-android", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
		Info{"Chrome", "120", "Android", "10", "mobile", false}},
	{"samsung-phone", "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
		Info{"Samsung Internet", "23", "Android", "13", "mobile", false}},
	{"firefox-android", "Mozilla/5.0 (Android 14; Mobile; rv:121.0) Gecko/121.0 Firefox/121.0",
		Info{"Firefox", "121", "Android", "14", "mobile", false}},
	{"edge-android", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36 EdgA/120.0.2210.115",
		Info{"Edge", "120", "Android", "10", "mobile", false}},
	{"opera-android", "Mozilla/5.0 (Linux; Android 10; VOG-L29) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 Mobile Safari/537.36 OPR/79.1.4195.76436",
		Info{"Opera", "79", "Android", "10", "mobile", false}},
	{"opera-mini", "Opera/9.80 (Android; Opera Mini/36.2.2254/119.132; U; id) Presto/2.12.423 Version/12.16",
		Info{"Opera", "12", "Android", "", "mobile", false}},
	{"uc-android", "Mozilla/5.0 (Linux; U; Android 10; en-US; RMX1911 Build/QKQ1.200209.002) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/78.0.3904.108 UCBrowser/13.4.0.1306 Mobile Safari/537.36",
		Info{"UC Browser", "13", "Android", "10", "mobile", false}},
	{"yandex-android", "Mozilla/5.0 (Linux; arm_64; Android 12; SM-G991B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.5993.117 YaBrowser/23.11.4.117.00 SA/3 Mobile Safari/537.36",
		Info{"Yandex Browser", "23", "Android", "12", "mobile", false}},
	{"webview-android", "Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TQ3A.230901.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/118.0.0.0 Mobile Safari/537.36",
		Info{"Android WebView", "118", "Android", "13", "mobile", false}},
	{"stock-android", "Mozilla/5.0 (Linux; U; Android 4.0.3; ko-kr; LG-L160L Build/IML74K) AppleWebkit/534.30 (KHTML, like Gecko) Version/4.0 Mobile Safari/534.30",
		Info{"Other", "", "Android", "4", "mobile", false}},
	{"cubot-phone", "Mozilla/5.0 (Linux; Android 9; CUBOT P30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.6045.163 Mobile Safari/537.36",
		Info{"Chrome", "119", "Android", "9", "mobile", false}},
	{"cubot-underscore", "Mozilla/5.0 (Linux; Android 10; CUBOT_X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36",
		Info{"Chrome", "119", "Android", "10", "mobile", false}},
	{"safari-iphone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1",
		Info{"Safari", "17", "iOS", "17", "mobile", false}},
	{"chrome-iphone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1",
		Info{"Chrome", "120", "iOS", "17", "mobile", false}},
	{"firefox-iphone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/121.0 Mobile/15E148 Safari/605.1.15",
		Info{"Firefox", "121", "iOS", "17", "mobile", false}},
	{"edge-iphone", "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.0 EdgiOS/120.0.2210.116 Mobile/15E148 Safari/605.1.15",
		Info{"Edge", "120", "iOS", "16", "mobile", false}},
	{"facebook-inapp-iphone", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/444.0.0.31.108;FBBV/543516064;FBDV/iPhone14,5;FBMD/iPhone;FBSN/iOS;FBSV/17.1;FBSS/3;FBCR/;FBID/phone;FBLC/en_US;FBOP/80]",
		Info{"Other", "", "iOS", "17", "mobile", false}},
	{"google-app-iphone", "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) GSA/290.0.579377398 Mobile/15E148 Safari/604.1",
		Info{"Other", "", "iOS", "16", "mobile", false}},

	// Tablets.
	{"safari-ipad", "Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
		Info{"Safari", "17", "iPadOS", "17", "tablet", false}},
	{"chrome-android-tablet", "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
		Info{"Chrome", "120", "Android", "13", "tablet", false}},
	{"samsung-tablet", "Mozilla/5.0 (Linux; Android 12; SM-T870) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/22.0 Chrome/111.0.5563.116 Safari/537.36",
		Info{"Samsung Internet", "22", "Android", "12", "tablet", false}},
	{"firefox-android-tablet", "Mozilla/5.0 (Android 13; Tablet; rv:121.0) Gecko/121.0 Firefox/121.0",
		Info{"Firefox", "121", "Android", "13", "tablet", false}},
	{"kindle-silk", "Mozilla/5.0 (Linux; Android 9; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/120.3.2 like Chrome/120.0.6099.230 Safari/537.36",
		Info{"Other", "", "Android", "9", "tablet", false}},

	// TVs.
	{"samsung-tizen-tv", "Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 76.0.3809.146/6.0 TV Safari/537.36",
		Info{"Other", "", "Linux", "", "tv", false}},
	{"lg-webos-tv", "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.79 Safari/537.36 WebAppManager",
		Info{"Chrome", "79", "Linux", "", "tv", false}},
	{"chromecast", "Mozilla/5.0 (X11; Linux armv7l) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/91.0.4472.120 Safari/537.36 CrKey/1.56.500000",
		Info{"Chrome", "91", "Linux", "", "tv", false}},
	{"sony-bravia", "Mozilla/5.0 (Linux; Android 9; BRAVIA 4K GB ATV3 Build/PTT1.190515.001.S52) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/87.0.4280.101 Safari/537.36",
		Info{"Chrome", "87", "Android", "9", "tv", false}},
	{"fire-tv", "Mozilla/5.0 (Linux; Android 9; AFTMM Build/PS7633) AppleWebKit/537.36 (KHTML, like Gecko) Silk/112.3.1 like Chrome/112.0.5615.213 Safari/537.36",
		Info{"Other", "", "Android", "9", "tv", false}},
	{"apple-tv", "AppleCoreMedia/1.0.0.20K71 (Apple TV; U; CPU OS 16_1 like Mac OS X; en_us)",
		Info{"Other", "", "Other", "", "tv", false}},

	// Consoles.
	{"ps5", "Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 Safari/605.1.15",
		Info{"Safari", "13", "Other", "", "console", false}},
	{"xbox", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox Series X) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/48.0.2564.82 Safari/537.36 Edge/20.02",
		Info{"Edge", "20", "Windows", "10", "console", false}},
	{"switch", "Mozilla/5.0 (Nintendo Switch; WifiWebAuthApplet) AppleWebKit/606.4 (KHTML, like Gecko) NF/6.0.1.15.4 NintendoBrowser/5.1.0.20393",
		Info{"Other", "", "Other", "", "console", false}},

	// Bots and tools.
	{"googlebot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
		Info{"Other", "", "Other", "", "unknown", true}},
	{"googlebot-smartphone", "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.129 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
		Info{"Chrome", "120", "Android", "6", "mobile", true}},
	{"bingbot", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
		Info{"Other", "", "Other", "", "unknown", true}},
	{"yandexbot", "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
		Info{"Other", "", "Other", "", "unknown", true}},
	{"baiduspider", "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
		Info{"Other", "", "Other", "", "unknown", true}},
	{"duckduckbot", "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
		Info{"Other", "", "Other", "", "unknown", true}},
	{"facebookexternalhit", "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
		Info{"Other", "", "Other", "", "unknown", true}},
	{"applebot", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
		Info{"Safari", "13", "macOS", "10.15", "desktop", true}},
	{"gptbot", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; GPTBot/1.0; +https://openai.com/gptbot",
		Info{"Other", "", "Other", "", "unknown", true}},
	{"claudebot", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)",
		Info{"Other", "", "Other", "", "unknown", true}},
	{"ahrefsbot", "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
		Info{"Other", "", "Other", "", "unknown", true}},
	{"semrushbot", "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
		Info{"Other", "", "Other", "", "unknown", true}},
	{"petalbot", "Mozilla/5.0 (Linux; Android 7.0;) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot)",
		Info{"Other", "", "Android", "7", "mobile", true}},
	{"headless-chrome", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.109 Safari/537.36",
		Info{"Chrome", "120", "Linux", "", "desktop", true}},
	{"lighthouse", "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
		Info{"Chrome", "119", "Android", "11", "mobile", true}},
	{"uptimerobot", "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
		Info{"Other", "", "Other", "", "unknown", true}},
	{"slackbot", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
		Info{"Other", "", "Other", "", "unknown", true}},
	{"whatsapp", "WhatsApp/2.23.20.0 A",
		Info{"Other", "", "Other", "", "unknown", true}},
	{"twitterbot", "Twitterbot/1.0",
		Info{"Other", "", "Other", "", "unknown", true}},
	{"curl", "curl/8.4.0", Info{"Other", "", "Other", "", "unknown", true}},
	{"wget", "Wget/1.21.4", Info{"Other", "", "Other", "", "unknown", true}},
	{"python-requests", "python-requests/2.31.0", Info{"Other", "", "Other", "", "unknown", true}},
	{"go-http-client", "Go-http-client/1.1", Info{"Other", "", "Other", "", "unknown", true}},
	{"okhttp", "okhttp/4.12.0", Info{"Other", "", "Other", "", "unknown", true}},
	{"axios", "axios/1.6.2", Info{"Other", "", "Other", "", "unknown", true}},
	{"java", "Java/17.0.2", Info{"Other", "", "Other", "", "unknown", true}},
	{"postman", "PostmanRuntime/7.36.0", Info{"Other", "", "Other", "", "unknown", true}},
	{"scrapy", "Scrapy/2.11.0 (+https://scrapy.org)", Info{"Other", "", "Other", "", "unknown", true}},
	{"powershell", "Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1.22621.2506",
		Info{"Other", "", "Windows", "10", "desktop", true}},
	{"cubot-and-bot", "Mozilla/5.0 (Linux; Android 9; CUBOT P30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36 (compatible; Googlebot/2.1)",
		Info{"Chrome", "119", "Android", "9", "mobile", true}},
	{"empty", "", Info{"Other", "", "Other", "", "unknown", true}},
	{"whitespace", " \t\r\n ", Info{"Other", "", "Other", "", "unknown", true}},
	{"too-long", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0.0.0 " + strings.Repeat("a", 1000),
		Info{"Other", "", "Other", "", "unknown", true}},
}

func TestParse(t *testing.T) {
	for _, tc := range uaCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Parse(tc.ua); got != tc.want {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tc.ua, got, tc.want)
			}
		})
	}
}

// TestBotMarkers checks that the crawlers and tools named in the design are
// all caught, whatever their case and surroundings.
func TestBotMarkers(t *testing.T) {
	names := []string{
		"bot", "crawl", "spider", "slurp", "googlebot", "bingbot", "yandexbot",
		"baiduspider", "duckduckbot", "facebookexternalhit", "facebot",
		"ia_archiver", "semrush", "ahrefs", "mj12bot", "dotbot", "petalbot",
		"bytespider", "gptbot", "claudebot", "ccbot", "applebot",
		"headlesschrome", "phantomjs", "selenium", "puppeteer", "playwright",
		"lighthouse", "pingdom", "uptimerobot", "statuscake", "curl/", "wget/",
		"python-requests", "python-urllib", "aiohttp", "go-http-client", "java/",
		"okhttp", "axios", "node-fetch", "libwww-perl", "httpclient", "scrapy",
		"postmanruntime", "insomnia", "feedfetcher", "monitor", "preview",
		"slackbot-linkexpanding", "whatsapp", "telegrambot", "discordbot",
		"twitterbot", "linkedinbot", "mediapartners-google", "adsbot-google",
		"google-inspectiontool", "chatgpt-user", "meta-externalagent",
		"apache-httpclient", "yandexmetrika/2.0; +http://yandex.com/bots",
	}
	for _, n := range names {
		for _, ua := range []string{n, strings.ToUpper(n), "Mozilla/5.0 (compatible; " + n + "/1.0)"} {
			if !Parse(ua).Bot {
				t.Errorf("Parse(%q).Bot = false, want true", ua)
			}
		}
	}
}

// TestNotBots guards against markers that would catch real people: in-app
// browsers, Electron apps and browsers whose names resemble crawler names.
func TestNotBots(t *testing.T) {
	for _, ua := range []string{
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.35.131 Chrome/118.0.5993.144 Electron/27.1.0 Safari/537.36 Sonic Slack_SSB/4.35.131",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) discord/1.0.9028 Chrome/120.0.6099.291 Electron/28.2.10 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [Pinterest/iOS]",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 307.0.2.19.105 (iPhone14,2; iOS 17_1_1; en_US; en; scale=3.00; 1170x2532; 532277464)",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [LinkedInApp]/9.29.7000",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Twitter for iPhone/10.21",
		"Mozilla/5.0 (Linux; Android 10; V2029) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/87.0.4280.141 Mobile Safari/537.36 SogouMobileBrowser/5.28.16",
		"Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.144 Mobile DuckDuckGo/5 Safari/537.36",
		"Mozilla/5.0 (Linux; arm_64; Android 12; SM-A525F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.5993.111 YaApp_Android/23.112.1 YaSearchBrowser/23.112.1 BroPP/1.0 SA/3 Mobile Safari/537.36",
		"Mozilla/5.0 (Linux; Android 13; SM-S911B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.163 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/442.0.0.33.113;]",
		"Mozilla/5.0 (Linux; Android 12; CUBOT KINGKONG 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36",
		"Mozilla/5.0 (Phone; OpenHarmony 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/114.0.0.0 Safari/537.36 ArkWeb/4.1.6.1 Mobile",
	} {
		if Parse(ua).Bot {
			t.Errorf("Parse(%q).Bot = true, want false", ua)
		}
	}
}

func TestMarkerTables(t *testing.T) {
	for _, list := range [][]marker{botMarkers, deviceMarkers, tokenMarkers} {
		for _, m := range list {
			if len(m.s) < 3 || m.s != strings.ToLower(m.s) || m.notAfter != strings.ToLower(m.notAfter) {
				t.Errorf("marker %q: must be lower case and at least 3 bytes", m.s)
			}
		}
	}
}

var (
	browserSet = set(browserNames[:]...)
	osSet      = set(osNames[:]...)
	deviceSet  = set(deviceNames[:]...)
)

func set(xs ...string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

func TestClosedSetTables(t *testing.T) {
	want := func(name string, got map[string]bool, xs ...string) {
		if len(got) != len(xs) {
			t.Errorf("%s: %d names, want %d", name, len(got), len(xs))
		}
		for _, x := range xs {
			if !got[x] {
				t.Errorf("%s: missing %q", name, x)
			}
		}
	}
	want("browser", browserSet, "Chrome", "Firefox", "Safari", "Edge", "Opera", "Samsung Internet",
		"UC Browser", "Yandex Browser", "Brave", "Vivaldi", "Internet Explorer", "Android WebView",
		"Chromium", "Other")
	want("os", osSet, "Windows", "macOS", "iOS", "iPadOS", "Android", "Linux", "Chrome OS", "FreeBSD", "Other")
	want("device", deviceSet, "desktop", "mobile", "tablet", "tv", "console", "unknown")
}

func checkInfo(t *testing.T, ua string, got Info) {
	t.Helper()
	if !browserSet[got.Browser] || !osSet[got.OS] || !deviceSet[got.Device] {
		t.Fatalf("Parse(%q) = %+v: value outside closed set", ua, got)
	}
	if len(got.BrowserVersion) > 4 || strings.Trim(got.BrowserVersion, "0123456789") != "" {
		t.Fatalf("Parse(%q): bad BrowserVersion %q", ua, got.BrowserVersion)
	}
	if len(got.OSVersion) > 8 {
		t.Fatalf("Parse(%q): OSVersion %q too long", ua, got.OSVersion)
	}
}

// TestClosedSets feeds the table plus mangled variants (truncated, with
// bytes dropped or case-flipped) and checks every field stays in range.
func TestClosedSets(t *testing.T) {
	for _, tc := range uaCases {
		ua := tc.ua
		checkInfo(t, ua, Parse(ua))
		checkInfo(t, ua, Parse(strings.ToUpper(ua)))
		checkInfo(t, ua, Parse(strings.ToLower(ua)))
		for i := 0; i < len(ua) && i < 400; i += 3 {
			checkInfo(t, ua[:i], Parse(ua[:i]))
			checkInfo(t, ua[i:], Parse(ua[i:]))
		}
	}
	for _, ua := range []string{
		"Mozilla/5.0 (Windows NT 99999.0) Chrome/123456789", "Android 99999999999999999999",
		"Mac OS X 10_999", "Mac OS X 10_", "Mac OS X 9999", "CPU OS  like", "Trident/", "Trident/99",
		"MSIE ", "Edg", "Chrome/", "\xff\xfe\x00", "bo", "cubot", "xcubot", "; wv)",
	} {
		checkInfo(t, ua, Parse(ua))
	}
}

func TestNoAllocs(t *testing.T) {
	for _, tc := range uaCases {
		if n := testing.AllocsPerRun(10, func() { Parse(tc.ua) }); n != 0 {
			t.Errorf("Parse(%q): %v allocs, want 0", tc.ua, n)
		}
	}
}

func TestVersionStrings(t *testing.T) {
	for _, n := range []int{0, 9, 10, 99, 100, 999, 1000, 9999} {
		if got, want := numString(n), fmt.Sprint(n); got != want {
			t.Errorf("numString(%d) = %q, want %q", n, got, want)
		}
	}
	for _, s := range []string{"0", "7", "120", "2024", "0120"} {
		want := strings.TrimLeft(s, "0")
		if want == "" {
			want = "0"
		}
		if got := verString(major(s)); got != want {
			t.Errorf("verString(major(%q)) = %q, want %q", s, got, want)
		}
	}
	if major("12345") != 0 || major("") != 0 || major("x1") != 0 {
		t.Error("major accepted a non-version")
	}
}

func TestPackRoundTrip(t *testing.T) {
	for _, tc := range uaCases {
		r := parse(tc.ua)
		if got := unpack(r.pack()); got != r {
			t.Errorf("%s: unpack(pack(%+v)) = %+v", tc.name, r, got)
		}
	}
}

func TestCache(t *testing.T) {
	c := NewCache(1000)
	for i := 0; i < 3; i++ {
		for _, tc := range uaCases {
			if got := c.Parse(tc.ua); got != tc.want {
				t.Fatalf("Cache.Parse(%q) = %+v, want %+v", tc.ua, got, tc.want)
			}
		}
	}
	if n := testing.AllocsPerRun(100, func() { c.Parse(uaCases[0].ua) }); n != 0 {
		t.Errorf("cache hit: %v allocs, want 0", n)
	}

	for _, max := range []int{-1, 0, 1, 2, 3, 7, 100, 257, 5000} {
		c := NewCache(max)
		for i := 0; i < 3*max+50; i++ {
			ua := fmt.Sprintf("Mozilla/5.0 (Linux; Android %d) Chrome/%d", i%20, i)
			if got, want := c.Parse(ua), Parse(ua); got != want {
				t.Fatalf("max=%d: Cache.Parse(%q) = %+v, want %+v", max, ua, got, want)
			}
			if n := c.len(); n > max && !(max <= 0 && n == 0) {
				t.Fatalf("max=%d: cache holds %d entries", max, n)
			}
		}
	}

	var nilCache *Cache
	if got := nilCache.Parse(uaCases[0].ua); got != uaCases[0].want {
		t.Errorf("nil Cache.Parse = %+v", got)
	}
}

// TestCacheHotEntriesSurvive checks the two-generation scheme keeps an entry
// that is used between rotations.
func TestCacheHotEntriesSurvive(t *testing.T) {
	c := NewCache(64)
	hot := uaCases[0].ua
	c.Parse(hot)
	for i := 0; i < 10000; i++ {
		c.Parse(fmt.Sprintf("x/%d", i))
		if i%8 == 0 {
			c.Parse(hot)
		}
	}
	h := hashOf(c, hot)
	s := &c.shards[h&c.mask]
	_, inCur := s.cur[h]
	_, inPrev := s.prev[h]
	if !inCur && !inPrev {
		t.Error("hot entry was evicted")
	}
}

// TestCacheConcurrent hammers small caches (one shard, and several shards)
// from many goroutines while a watcher checks the bound; run with -race.
func TestCacheConcurrent(t *testing.T) {
	uas := make([]string, 0, 4000)
	for _, tc := range uaCases {
		uas = append(uas, tc.ua)
	}
	for i := len(uas); i < cap(uas); i++ {
		uas = append(uas, fmt.Sprintf("Mozilla/5.0 (Windows NT 10.0) Chrome/%d.0", i))
	}
	want := make([]Info, len(uas))
	for i, ua := range uas {
		want[i] = Parse(ua)
	}
	for _, max := range []int{200, 2000} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			c := NewCache(max)
			if max > 1000 && len(c.shards) < 2 {
				t.Fatalf("NewCache(%d) has %d shards, want several", max, len(c.shards))
			}
			errs := make(chan string, 16)
			report := func(msg string) {
				select {
				case errs <- msg:
				default:
				}
			}
			stop := make(chan struct{})
			var watcher sync.WaitGroup
			watcher.Add(1)
			go func() {
				defer watcher.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if n := c.len(); n > max {
						report(fmt.Sprintf("cache holds %d entries, bound %d", n, max))
						return
					}
				}
			}()
			var workers sync.WaitGroup
			for g := 0; g < 8; g++ {
				workers.Add(1)
				go func(g int) {
					defer workers.Done()
					for i := 0; i < 5000; i++ {
						// A hot head and a long tail, so both hits and
						// generation rotations happen.
						k := (i*7919 + g*104729) % len(uas)
						if i%2 == 0 {
							k %= 20
						}
						if got := c.Parse(uas[k]); got != want[k] {
							report(fmt.Sprintf("Cache.Parse(%q) = %+v, want %+v", uas[k], got, want[k]))
							return
						}
					}
				}(g)
			}
			workers.Wait()
			close(stop)
			watcher.Wait()
			close(errs)
			for msg := range errs {
				t.Error(msg)
			}
			if n := c.len(); n > max || n < max/4 {
				t.Errorf("cache holds %d entries, want between %d and %d", n, max/4, max)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range uaCases {
		f.Add(tc.ua)
	}
	c := NewCache(128)
	f.Fuzz(func(t *testing.T, ua string) {
		got := Parse(ua)
		checkInfo(t, ua, got)
		if again := Parse(ua); again != got {
			t.Fatalf("Parse(%q) not deterministic: %+v then %+v", ua, got, again)
		}
		if cached := c.Parse(ua); cached != got {
			t.Fatalf("Cache.Parse(%q) = %+v, Parse = %+v", ua, cached, got)
		}
		if cached := c.Parse(ua); cached != got {
			t.Fatalf("second Cache.Parse(%q) = %+v, Parse = %+v", ua, cached, got)
		}
	})
}

// benchUAs is a traffic-like mix: mostly mainstream browsers, some bots.
func benchUAs() []string {
	var uas []string
	for _, tc := range uaCases {
		if len(tc.ua) <= maxLen {
			uas = append(uas, tc.ua)
		}
	}
	return uas
}

func BenchmarkParse(b *testing.B) {
	uas := benchUAs()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		Parse(uas[i%len(uas)])
		i++
	}
}

func BenchmarkCacheParse(b *testing.B) {
	uas := benchUAs()
	c := NewCache(10000)
	for _, ua := range uas {
		c.Parse(ua)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Parse(uas[i%len(uas)])
		i++
	}
}

func BenchmarkCacheParseParallel(b *testing.B) {
	uas := benchUAs()
	c := NewCache(10000)
	for _, ua := range uas {
		c.Parse(ua)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Parse(uas[i%len(uas)])
			i++
		}
	})
}

func hashOf(c *Cache, ua string) uint64 { return maphash.String(c.seed, ua) }
