package pii

// ibanLen holds the IBAN length per country from the SWIFT IBAN registry,
// indexed by the two upper-case letters. Zero means "no IBAN country", which
// rejects most letter-digit-digit codes outright.
var ibanLen = func() (t [26 * 26]uint8) {
	for _, e := range []struct {
		cc string
		n  uint8
	}{
		{"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AX", 18}, {"AZ", 28},
		{"BA", 20}, {"BE", 16}, {"BG", 22}, {"BH", 22}, {"BI", 27}, {"BL", 27},
		{"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24},
		{"DE", 22}, {"DJ", 27}, {"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29},
		{"ES", 24}, {"FI", 18}, {"FK", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22},
		{"GE", 22}, {"GF", 27}, {"GI", 23}, {"GL", 18}, {"GP", 27}, {"GR", 27},
		{"GT", 28}, {"HN", 28}, {"HR", 21}, {"HU", 28}, {"IE", 22}, {"IL", 23},
		{"IQ", 23}, {"IS", 26}, {"IT", 27}, {"JO", 30}, {"KW", 30}, {"KZ", 20},
		{"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20}, {"LU", 20}, {"LV", 21},
		{"LY", 25}, {"MC", 27}, {"MD", 24}, {"ME", 22}, {"MF", 27}, {"MK", 19},
		{"MN", 20}, {"MQ", 27}, {"MR", 27}, {"MT", 31}, {"MU", 30}, {"NC", 27},
		{"NI", 28}, {"NL", 18}, {"NO", 15}, {"OM", 23}, {"PF", 27}, {"PK", 24},
		{"PL", 28}, {"PM", 27}, {"PS", 29}, {"QA", 29}, {"RE", 27}, {"RO", 24},
		{"RS", 22}, {"RU", 33}, {"SA", 24}, {"SC", 31}, {"SD", 18}, {"SE", 24},
		{"SI", 19}, {"SK", 24}, {"SM", 27}, {"SO", 23}, {"ST", 25}, {"SV", 28},
		{"TF", 27}, {"TL", 23}, {"TN", 24}, {"TR", 26}, {"UA", 29}, {"VA", 22},
		{"VG", 24}, {"WF", 27}, {"XK", 20}, {"YE", 30}, {"YT", 27},
	} {
		t[int(e.cc[0]-'A')*26+int(e.cc[1]-'A')] = e.n
	}
	return t
}()

func upper(c byte) byte {
	if isLower(c) {
		return c - 'a' + 'A'
	}
	return c
}

// scanIBAN matches an IBAN starting at s[i] (compact, or in groups separated
// by single spaces; either case) and returns the end of the match, or 0.
// A wrong length or check digits mean no finding: random alphanumerics pass
// mod-97 only about once in 97 tries, and the country table filters further.
func scanIBAN(s string, i int, sc *scores) int {
	if i+4 > len(s) || !isLetter(s[i]) || !isLetter(s[i+1]) || !isDigit(s[i+2]) || !isDigit(s[i+3]) {
		return 0
	}
	want := int(ibanLen[int(upper(s[i])-'A')*26+int(upper(s[i+1])-'A')])
	if want == 0 {
		return 0
	}
	var buf [34]byte
	n, p := 0, i
	for p < len(s) && n < want {
		c := s[p]
		switch {
		case isAlnum(c):
			buf[n] = upper(c)
			n++
			p++
		case c == ' ' && p+1 < len(s) && isAlnum(s[p+1]):
			p++
		default:
			return 0
		}
	}
	if n != want || (p < len(s) && isWordByte(s[p])) {
		return 0
	}
	if !mod97(buf[:n]) {
		return 0
	}
	sc.add(kIBAN, 0.95)
	return p
}

// mod97 checks ISO 13616 / ISO 7064 MOD 97-10: move the first four characters
// to the end, read letters as 10..35, and the remainder must be 1.
func mod97(b []byte) bool {
	// Check digits 00, 01 and 99 are never produced by the algorithm.
	if cd := int(b[2]-'0')*10 + int(b[3]-'0'); cd < 2 || cd > 98 {
		return false
	}
	r := 0
	for k := 0; k < len(b); k++ {
		c := b[(k+4)%len(b)]
		if isDigit(c) {
			r = (r*10 + int(c-'0')) % 97
		} else {
			r = (r*100 + int(c-'A'+10)) % 97
		}
	}
	return r == 1
}
