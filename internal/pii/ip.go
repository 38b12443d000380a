package pii

import "net/netip"

func isHex(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isIPByte(c byte) bool { return isHex(c) || c == '.' || c == ':' }

// scanIPs finds stretches of hex digits, dots and colons that stand alone
// (not glued to letters, as in "v1.2.3.4") and checks each as an address.
func scanIPs(s string, sc *scores) {
	for i := 0; i < len(s); {
		if !isIPByte(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isIPByte(s[j]) {
			j++
		}
		if (i == 0 || !isWordByte(s[i-1])) && (j == len(s) || !isWordByte(s[j])) {
			sc.add(kIP, ipScore(s[i:j]))
		}
		i = j
	}
}

// ipScore validates the shape cheaply before netip parses it: netip's error
// path allocates, and times ("10:30:00") or MACs must not pay for it.
func ipScore(r string) float64 {
	// Sentence punctuation: "my ip is 1.2.3.4." / "ip: 1.2.3.4:".
	for len(r) > 0 && r[len(r)-1] == '.' {
		r = r[:len(r)-1]
	}
	if len(r) > 1 && r[len(r)-1] == ':' && r[len(r)-2] != ':' {
		r = r[:len(r)-1]
	}
	var dots, colons, hexLetters, digits int
	for k := 0; k < len(r); k++ {
		switch c := r[k]; {
		case c == '.':
			dots++
		case c == ':':
			colons++
		case isDigit(c):
			digits++
		default:
			hexLetters++
		}
	}
	if dots == 3 && colons <= 1 && hexLetters == 0 {
		if colons == 1 { // "1.2.3.4:8080"
			k := 0
			for r[k] != ':' {
				k++
			}
			port := r[k+1:]
			if len(port) == 0 || len(port) > 5 {
				return 0
			}
			r = r[:k]
		}
		if !v4Shape(r) {
			return 0
		}
		a, err := netip.ParseAddr(r)
		if err != nil {
			return 0
		}
		if a.IsLoopback() || a.IsUnspecified() {
			return 0.3
		}
		return 0.6
	}
	if colons < 2 || colons > 7 || digits == 0 || !v6Shape(r, colons) {
		return 0
	}
	a, err := netip.ParseAddr(r)
	if err != nil {
		return 0
	}
	if a.IsLoopback() || a.IsUnspecified() {
		return 0.3
	}
	return 0.8
}

// v4Shape: four dot-separated groups of one to three digits.
func v4Shape(r string) bool {
	g, n := 0, 0
	for k := 0; k <= len(r); k++ {
		if k == len(r) || r[k] == '.' {
			if n == 0 || n > 3 {
				return false
			}
			g++
			n = 0
			continue
		}
		if !isDigit(r[k]) {
			return false
		}
		n++
	}
	return g == 4
}

// v6Shape: groups of at most four hex digits, and either "::" or all eight
// groups (seven colons; six when the tail is dotted IPv4). "10:30:00" fails.
func v6Shape(r string, colons int) bool {
	n, longest, double := 0, 0, false
	for k := 0; k < len(r); k++ {
		switch r[k] {
		case ':':
			if k+1 < len(r) && r[k+1] == ':' {
				if double {
					return false
				}
				double = true
			}
			n = 0
		case '.':
			n = 0
		default:
			n++
			if n > 4 {
				return false
			}
			longest = max(longest, n)
		}
	}
	if double {
		// "12::30" is a score or a verse, not an address: real compressed
		// forms carry a group of 3+ hex digits ("fe80::1"), or are "::1".
		return longest >= 3 || colons >= 3 || r == "::1"
	}
	tailV4 := false
	for k := 0; k < len(r); k++ {
		if r[k] == '.' {
			tailV4 = true
			break
		}
	}
	return colons == 7 || (tailV4 && colons == 6)
}
