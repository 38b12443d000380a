package pii

// ssnWord scores one word of a run as a US Social Security number.
func ssnWord(w string, sc *scores) {
	switch len(w) {
	case 11:
		sep := w[3]
		if (sep != '-' && sep != '.') || w[6] != sep {
			return
		}
		var d [9]byte
		if !digitsAt(w, &d, 0, 3, 0) || !digitsAt(w, &d, 4, 2, 3) || !digitsAt(w, &d, 7, 4, 5) {
			return
		}
		if ssnValid(&d) {
			if sep == '-' {
				sc.add(kSSN, 0.85)
			} else {
				sc.add(kSSN, 0.5)
			}
		}
	case 9:
		var d [9]byte
		if digitsAt(w, &d, 0, 9, 0) && ssnValid(&d) {
			sc.add(kSSN, 0.4)
		}
	}
}

// ssnSpaced scores a whole run written "AAA GG SSSS".
func ssnSpaced(r string, sc *scores) {
	if len(r) != 11 || r[3] != ' ' || r[6] != ' ' {
		return
	}
	var d [9]byte
	if digitsAt(r, &d, 0, 3, 0) && digitsAt(r, &d, 4, 2, 3) && digitsAt(r, &d, 7, 4, 5) && ssnValid(&d) {
		sc.add(kSSN, 0.5)
	}
}

// digitsAt copies n digits of w starting at from into d[to:], reporting
// whether they were all digits.
func digitsAt(w string, d *[9]byte, from, n, to int) bool {
	for k := 0; k < n; k++ {
		c := w[from+k]
		if !isDigit(c) {
			return false
		}
		d[to+k] = c
	}
	return true
}

// ssnValid excludes numbers the SSA never issues: area 000, 666 and
// 900-999, group 00, serial 0000. Advertising samples such as 123-45-6789
// are kept: redacting a fake number costs nothing.
func ssnValid(d *[9]byte) bool {
	if (d[0] == '0' && d[1] == '0' && d[2] == '0') || (d[0] == '6' && d[1] == '6' && d[2] == '6') || d[0] == '9' {
		return false
	}
	if d[3] == '0' && d[4] == '0' {
		return false
	}
	return !(d[5] == '0' && d[6] == '0' && d[7] == '0' && d[8] == '0')
}

// scanNINO matches a UK National Insurance number at s[i:]: two prefix
// letters, six digits (optionally in spaced pairs), and a suffix A-D.
// It returns the end of the match, or 0.
func scanNINO(s string, i int, sc *scores) int {
	if i+8 > len(s) || !ninoPrefix(s[i], s[i+1]) {
		return 0
	}
	p := i + 2
	spaced := false
	for k := 0; k < 3; k++ { // three pairs of digits
		if p < len(s) && s[p] == ' ' && (k == 0 || spaced) {
			spaced = true
			p++
		}
		if p+2 > len(s) || !isDigit(s[p]) || !isDigit(s[p+1]) {
			return 0
		}
		p += 2
		if k == 0 && !spaced && p < len(s) && s[p] == ' ' {
			return 0 // "AB12 3456" is not a NINO layout
		}
	}
	score := 0.3
	end := p
	q := p
	if q < len(s) && s[q] == ' ' && spaced {
		q++
	}
	if q < len(s) && s[q] >= 'A' && s[q] <= 'D' {
		end = q + 1
		score = 0.6
		if spaced {
			score = 0.7
		}
	}
	if end < len(s) && isWordByte(s[end]) {
		return 0
	}
	sc.add(kNINO, score)
	return end
}

// ninoPrefix applies HMRC's prefix rules: D, F, I, Q, U, V never appear;
// O is not used second; BG, GB, KN, NK, NT, TN and ZZ are not allocated.
func ninoPrefix(a, b byte) bool {
	if !isUpper(a) || !isUpper(b) {
		return false
	}
	switch a {
	case 'D', 'F', 'I', 'Q', 'U', 'V':
		return false
	}
	switch b {
	case 'D', 'F', 'I', 'O', 'Q', 'U', 'V':
		return false
	}
	switch uint16(a)<<8 | uint16(b) {
	case 'B'<<8 | 'G', 'G'<<8 | 'B', 'K'<<8 | 'N', 'N'<<8 | 'K', 'N'<<8 | 'T', 'T'<<8 | 'N', 'Z'<<8 | 'Z':
		return false
	}
	return true
}
