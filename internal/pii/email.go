package pii

import (
	"strings"
	"unicode/utf8"
)

// scanEmails checks every '@' (and, when the value may be URL-encoded, every
// "%40") by growing the address outward from it, so "mailto:a@b.co",
// "<a@b.co>" and "?email=a@b.co&x=1" are all found without tokenizing.
func scanEmails(s string, at, pct bool, sc *scores) {
	if at {
		for i := 0; i < len(s); i++ {
			if s[i] == '@' {
				sc.add(kEmail, emailAt(s, i, 1))
			}
		}
	}
	if pct {
		for off := 0; ; {
			k := strings.Index(s[off:], "%40")
			if k < 0 {
				break
			}
			v := emailAt(s, off+k, 3)
			if v > 0.85 {
				v = 0.85 // decoding is a guess; stay below the plain form
			}
			sc.add(kEmail, v)
			off += k + 3
		}
	}
}

// isLocalByte is the practical local-part alphabet (Presidio's is wider, but
// '/', '=', '&', '?' would swallow URL and query-string context).
func isLocalByte(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-' || c >= 0x80
}

func isDomainByte(c byte) bool {
	return isAlnum(c) || c == '.' || c == '-' || c >= 0x80
}

// emailAt scores the address around the separator s[at:at+w].
func emailAt(s string, at, w int) float64 {
	a := at
	for a > 0 && isLocalByte(s[a-1]) {
		a--
	}
	for a < at && s[a] == '.' {
		a++
	}
	b := at + w
	for b < len(s) && isDomainByte(s[b]) {
		b++
	}
	// A sentence may end right after the address.
	for b > at+w && (s[b-1] == '.' || s[b-1] == '-') {
		b--
	}
	local, domain := s[a:at], s[at+w:b]
	if len(local) == 0 || len(local) > 64 || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return 0
	}
	if len(domain) < 4 || len(domain) > 253 {
		return 0
	}
	ascii := true
	labels := 0
	for len(domain) > 0 {
		dot := strings.IndexByte(domain, '.')
		label := domain
		if dot >= 0 {
			label, domain = domain[:dot], domain[dot+1:]
		} else {
			domain = ""
		}
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return 0
		}
		labels++
		if domain == "" && !validTLD(label) {
			return 0
		}
		if labels == 1 && retinaSuffix(label) {
			return 0 // "logo@2x.png"
		}
	}
	if labels < 2 {
		return 0
	}
	for k := a; k < b; k++ {
		if s[k] >= 0x80 {
			ascii = false
			break
		}
	}
	if !ascii {
		if !utf8.ValidString(s[a:b]) {
			return 0
		}
		return 0.85
	}
	return 0.95
}

// validTLD accepts two or more ASCII letters that are not a file extension
// (there is no .png or .js TLD), punycode ("xn--p1ai"), or an all-non-ASCII
// IDN label. Digits alone mean a version or IP ("pkg@1.2.3").
func validTLD(t string) bool {
	if strings.HasPrefix(t, "xn--") && len(t) > 4 {
		return true
	}
	if t[0] >= 0x80 {
		for k := 0; k < len(t); k++ {
			if t[k] < 0x80 {
				return false
			}
		}
		return len(t) >= 2
	}
	if len(t) < 2 {
		return false
	}
	for k := 0; k < len(t); k++ {
		if !isLetter(t[k]) {
			return false
		}
	}
	return !fileExt(t)
}

// fileExt lists extensions that show up after "@2x"-style asset names and
// are not delegated TLDs.
func fileExt(t string) bool {
	var b [5]byte
	if len(t) > len(b) {
		return false
	}
	for k := 0; k < len(t); k++ {
		b[k] = t[k] | 0x20
	}
	switch string(b[:len(t)]) {
	case "png", "jpg", "jpeg", "gif", "svg", "webp", "avif", "ico", "bmp", "tif", "tiff",
		"js", "mjs", "css", "htm", "html", "json", "txt", "xml", "pdf", "woff", "ttf":
		return true
	}
	return false
}

// retinaSuffix matches the "2x" in "icon@2x.png".
func retinaSuffix(l string) bool {
	if len(l) < 2 || (l[len(l)-1] != 'x' && l[len(l)-1] != 'X') {
		return false
	}
	for k := 0; k < len(l)-1; k++ {
		if !isDigit(l[k]) {
			return false
		}
	}
	return true
}
