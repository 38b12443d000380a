package pii

// National identifiers with check characters. Every format here carries a
// checksum, so a candidate that has the right shape but fails its check is
// no finding at all, and the shape alone decides how sure a pass is:
//
//	es_nif      0.85  8 digits (or "12.345.678") and the mod-23 check letter, "12345678Z", "12345678-Z"
//	es_nie      0.85  X/Y/Z, 7 digits and the mod-23 check letter, "X1234567L", "X-1234567-L"
//	fr_nir      0.85  sex 1|2, year, month 01-12, département (2A/2B for Corsica), commune,
//	                  order and the key 97 - (n mod 97), spaced at its group boundaries
//	            0.70  the same, written as 15 bare characters (1 in 97 random numbers of
//	                  that shape pass the key, and few numbers have that shape)
//	in_aadhaar  0.70  12 digits in groups of four, first digit 2-9, Verhoeff check digit
//	            0.40  the same, bare: 1 in 10 random 12-digit ids pass Verhoeff
//
// A candidate must stand alone: it starts and ends at a word boundary, and
// a grouped number must not be the middle of a longer run of digit groups
// (a card or phone number).

// National returns the highest-scoring national identifier in s,
// ok=false when there is none. Like Best, it does not allocate.
func National(s string) (Finding, bool) {
	digits := 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			digits++
		}
	}
	if digits < 7 { // the shortest, an NIE, has seven
		return Finding{}, false
	}
	var best Finding
	for i := 0; i < len(s); i++ {
		if i > 0 && isWordByte(s[i-1]) {
			continue
		}
		var f Finding
		switch c := s[i]; {
		case isDigit(c):
			f = dniAt(s, i)
			if g := aadhaarAt(s, i); g.Score > f.Score {
				f = g
			}
			if g := nirAt(s, i); g.Score > f.Score {
				f = g
			}
		case c == 'X' || c == 'Y' || c == 'Z' || c == 'x' || c == 'y' || c == 'z':
			f = nieAt(s, i)
		}
		if f.Score > best.Score {
			best = f
		}
	}
	return best, best.Score > 0
}

// dniLetters maps a DNI/NIE number mod 23 to its check letter.
const dniLetters = "TRWAGMYFPDXBNJZSQVHLCKE"

// endsWord reports whether a candidate ending at s[p] stands alone.
func endsWord(s string, p int) bool { return p == len(s) || !isWordByte(s[p]) }

// groupRunBefore reports whether s[:i] ends with a digit group and a
// separator, so a grouped candidate at i would be the tail of a longer run.
func groupRunBefore(s string, i int) bool {
	return i >= 2 && (s[i-1] == ' ' || s[i-1] == '-') && isDigit(s[i-2])
}

// groupRunAfter is groupRunBefore for the end of a candidate at p.
func groupRunAfter(s string, p int) bool {
	return p+1 < len(s) && (s[p] == ' ' || s[p] == '-') && isDigit(s[p+1])
}

// readDigits parses n digits at s[p:], returning the value and the end.
func readDigits(s string, p, n int) (uint64, int, bool) {
	if p+n > len(s) {
		return 0, p, false
	}
	var v uint64
	for k := p; k < p+n; k++ {
		if !isDigit(s[k]) {
			return 0, p, false
		}
		v = v*10 + uint64(s[k]-'0')
	}
	return v, p + n, true
}

// checkLetter matches the DNI/NIE check letter for v at s[p:], after an
// optional '-' or ' ', and returns the end of the match, or -1.
func checkLetter(s string, p int, v uint64) int {
	if p < len(s) && (s[p] == '-' || s[p] == ' ') {
		p++
	}
	if p >= len(s) || upper(s[p]) != dniLetters[v%23] || !endsWord(s, p+1) {
		return -1
	}
	return p + 1
}

// dniAt scores a Spanish DNI/NIF at s[i]: "12345678Z" or "12.345.678-Z".
func dniAt(s string, i int) Finding {
	v, p, ok := readDigits(s, i, 8)
	if !ok {
		// The dotted layout: 2, 3 and 3 digits.
		a, p1, ok1 := readDigits(s, i, 2)
		if !ok1 || p1 >= len(s) || s[p1] != '.' {
			return Finding{}
		}
		b, p2, ok2 := readDigits(s, p1+1, 3)
		if !ok2 || p2 >= len(s) || s[p2] != '.' {
			return Finding{}
		}
		c, p3, ok3 := readDigits(s, p2+1, 3)
		if !ok3 {
			return Finding{}
		}
		v, p = a*1_000_000+b*1000+c, p3
	}
	if checkLetter(s, p, v) < 0 {
		return Finding{}
	}
	return Finding{Kind: ESNIF, Score: 0.85}
}

// nieAt scores a Spanish NIE at s[i]: "X1234567L"; X, Y and Z stand for a
// leading 0, 1 and 2 in the check.
func nieAt(s string, i int) Finding {
	p := i + 1
	if p < len(s) && s[p] == '-' {
		p++
	}
	v, p, ok := readDigits(s, p, 7)
	if !ok {
		return Finding{}
	}
	v += uint64(upper(s[i])-'X') * 10_000_000
	if checkLetter(s, p, v) < 0 {
		return Finding{}
	}
	return Finding{Kind: ESNIE, Score: 0.85}
}

// aadhaarAt scores an Aadhaar number at s[i]: "2345 6789 0124",
// "2345-6789-0124" or twelve bare digits.
func aadhaarAt(s string, i int) Finding {
	if s[i] < '2' {
		return Finding{}
	}
	var d [12]byte
	p := i
	var sep byte // ' ' or '-' between the groups, or none
	for g := 0; g < 3; g++ {
		if g == 1 && p < len(s) && (s[p] == ' ' || s[p] == '-') {
			sep = s[p]
		}
		if g > 0 && sep != 0 {
			if p >= len(s) || s[p] != sep {
				return Finding{}
			}
			p++
		}
		for k := 0; k < 4; k++ {
			if p >= len(s) || !isDigit(s[p]) {
				return Finding{}
			}
			d[g*4+k] = s[p]
			p++
		}
	}
	grouped := sep != 0
	if !endsWord(s, p) || (grouped && (groupRunBefore(s, i) || groupRunAfter(s, p))) {
		return Finding{}
	}
	same := true
	for _, c := range d[1:] {
		same = same && c == d[0]
	}
	if same || !verhoeff(d[:]) {
		return Finding{}
	}
	if grouped {
		return Finding{Kind: INAadhaar, Score: 0.7}
	}
	return Finding{Kind: INAadhaar, Score: 0.4}
}

// Verhoeff's dihedral-group tables.
var (
	verhoeffD = [10][10]uint8{
		{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5},
		{2, 3, 4, 0, 1, 7, 8, 9, 5, 6}, {3, 4, 0, 1, 2, 8, 9, 5, 6, 7},
		{4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
		{6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3},
		{8, 7, 6, 5, 9, 3, 2, 1, 0, 4}, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0},
	}
	verhoeffP = [8][10]uint8{
		{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 5, 7, 6, 2, 8, 3, 0, 9, 4},
		{5, 8, 0, 3, 7, 9, 6, 1, 4, 2}, {8, 9, 1, 6, 0, 4, 3, 5, 2, 7},
		{9, 4, 5, 3, 1, 2, 7, 8, 6, 0}, {4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
		{2, 7, 9, 3, 8, 0, 6, 4, 1, 5}, {7, 0, 4, 6, 9, 1, 3, 2, 5, 8},
	}
)

// verhoeff reports whether the digits, check digit last, pass Verhoeff's
// check, which catches every single-digit error and adjacent transposition.
func verhoeff(d []byte) bool {
	var c uint8
	for i := 0; i < len(d); i++ {
		c = verhoeffD[c][verhoeffP[i%8][d[len(d)-1-i]-'0']]
	}
	return c == 0
}

// nirGroups are the lengths of the NIR's groups: sex, year, month,
// département, commune, order, key.
var nirGroups = [7]int{1, 2, 2, 2, 3, 3, 2}

// nirAt scores a French NIR at s[i]: "2 55 08 14 168 025 38" or compact,
// with 2A/2B (Corsica) in place of the département digits.
func nirAt(s string, i int) Finding {
	if s[i] != '1' && s[i] != '2' {
		return Finding{}
	}
	var c [15]byte
	n, p, spaced := 0, i, false
	for g, l := range nirGroups {
		if g > 0 && p+1 < len(s) && s[p] == ' ' {
			spaced = true
			p++
		}
		for k := 0; k < l; k++ {
			if p >= len(s) {
				return Finding{}
			}
			b := upper(s[p])
			corsica := g == 3 && k == 1 && c[n-1] == '2' && (b == 'A' || b == 'B')
			if !isDigit(b) && !corsica {
				return Finding{}
			}
			c[n] = b
			n++
			p++
		}
	}
	if !endsWord(s, p) || (spaced && (groupRunBefore(s, i) || groupRunAfter(s, p))) {
		return Finding{}
	}
	if month := int(c[3]-'0')*10 + int(c[4]-'0'); month < 1 || month > 12 {
		return Finding{}
	}
	// 2A and 2B count as 19 and 18 in the key.
	var v uint64
	for k := 0; k < 13; k++ {
		d := uint64(c[k] - '0')
		if c[k] >= 'A' {
			v-- // the '2' before it becomes a '1'
			d = 9 - uint64(c[k]-'A')
		}
		v = v*10 + d
	}
	key := uint64(c[13]-'0')*10 + uint64(c[14]-'0')
	if key != 97-v%97 {
		return Finding{}
	}
	if spaced {
		return Finding{Kind: FRNIR, Score: 0.85}
	}
	return Finding{Kind: FRNIR, Score: 0.7}
}
