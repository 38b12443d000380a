package pii

import "github.com/nyaruka/phonenumbers"

// maxPhoneParses bounds phonenumbers.Parse calls (several microseconds each)
// per value, so a long list of numbers cannot turn into a slow request.
const maxPhoneParses = 4

// callingCode marks the ITU country calling codes phonenumbers knows, so a
// '+' candidate with an impossible code is dropped before parsing.
var callingCode = func() (t [1000]bool) {
	for cc := range phonenumbers.GetSupportedCallingCodes() {
		if cc > 0 && cc < len(t) {
			t[cc] = true
		}
	}
	return t
}()

// phonesIn looks for phone numbers among the windows of a run: from each
// word, the longest stretch of words with at most 15 digits first.
func phonesIn(r string, sc *scores, budget *int) {
	for p := 0; p < len(r); {
		end := phoneFrom(r[p:], sc, budget)
		if end > 0 {
			p += end
		}
		p = nextWord(r, p)
	}
}

// phoneFrom scores the best phone window starting at t[0] and returns the
// length of a valid match (0 when none), so the caller can skip past it.
func phoneFrom(t string, sc *scores, budget *int) int {
	c := t[0]
	if !isDigit(c) && c != '+' && c != '(' {
		return 0
	}
	var ends [16]int
	ne, nd := 0, 0
	for i := 0; i <= len(t); i++ {
		if i == len(t) || t[i] == ' ' || t[i] == '/' {
			if nd >= 7 && nd <= 15 && ne < len(ends) {
				ends[ne] = i
				ne++
			}
			continue
		}
		if isDigit(t[i]) {
			nd++
			if nd > 15 {
				break
			}
		}
	}
	for k := ne - 1; k >= 0; k-- {
		w := t[:ends[k]]
		v := phoneScore(w, budget)
		sc.add(kPhone, v)
		if v >= 0.75 {
			return ends[k]
		}
	}
	return 0
}

// phoneScore scores one candidate window.
func phoneScore(w string, budget *int) float64 {
	plus := w[0] == '+'
	body := w
	if plus {
		body = w[1:]
	}
	var d [15]byte // the digits
	var glen [8]uint8
	var gsep [8]byte // byte that ended each group
	var seps byte    // separator kinds used: 1 ' ', 2 '-', 4 '.', 8 '/'
	nd, ng, cur := 0, 0, 0
	parens, open, parenGroup := 0, false, -1
	prevSep := false
	closeGroup := func(end byte) {
		if cur > 0 {
			if ng < len(glen) {
				glen[ng] = uint8(cur)
				gsep[ng] = end
			}
			ng++
			cur = 0
		}
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case isDigit(c):
			if nd == len(d) {
				return 0
			}
			d[nd] = c
			nd++
			cur++
			prevSep = false
			continue
		case c == '(':
			if parens > 0 || cur > 0 {
				return 0
			}
			parens++
			open = true
			parenGroup = ng
			continue
		case c == ')':
			if !open || cur == 0 {
				return 0
			}
			open = false
			closeGroup(c)
			continue
		case c == ' ':
			seps |= 1
		case c == '-':
			seps |= 2
		case c == '.':
			seps |= 4
		case c == '/':
			seps |= 8
		default:
			return 0 // a second '+', letters never reach here
		}
		if prevSep {
			return 0 // "1--2", "1 - 2"
		}
		prevSep = true
		closeGroup(c)
	}
	closeGroup(0)
	if open || nd < 7 {
		return 0
	}
	// Without '+' a number needs some formatting to be told apart from the
	// integers, IDs and timestamps that fill analytics props.
	if !plus {
		if ng == 1 {
			return bareNANP(d[:nd])
		}
		for g := 1; g < ng && g < len(glen); g++ {
			if glen[g] == 1 && g != parenGroup {
				return 0 // "120.0.6099.109" and friends
			}
		}
		if parens == 0 && notPhoneLayout(glen[:min(ng, len(glen))], seps) {
			return 0
		}
	}
	if hasDate(glen[:min(ng, len(glen))], gsep[:min(ng, len(glen))]) {
		return 0 // "2024-01-31 10" from "2024-01-31 10:00:00"
	}
	if seps&4 != 0 && ng < 3 {
		return 0 // "1234567.89"
	}
	if !plus {
		switch {
		case nd == 7:
			// US local number; never "valid" without an area code.
			if ng == 2 && glen[0] == 3 && d[0] >= '2' {
				return 0.3
			}
			return 0
		case nd == 10, nd == 11 && d[0] == '1', nd >= 10 && d[0] == '0' && d[1] == '1' && d[2] == '1':
		default:
			// Lengths no US-default parse could call possible: skip the
			// expensive parse.
			return 0
		}
	} else if !knownCallingCode(d[:nd]) {
		return 0
	}
	if *budget <= 0 {
		return 0
	}
	*budget--
	return parsePhone(w)
}

// hasDate reports three consecutive groups joined by the same '-', '/' or
// '.' in a date layout: "2024-01-31", "31/01/2024", "31.01.2024".
func hasDate(g []uint8, sep []byte) bool {
	for k := 0; k+2 < len(g); k++ {
		c := sep[k]
		if (c != '-' && c != '/' && c != '.') || sep[k+1] != c {
			continue
		}
		if (g[k] == 4 && g[k+1] <= 2 && g[k+2] <= 2) || (g[k] <= 2 && g[k+1] <= 2 && g[k+2] == 4) {
			return true
		}
	}
	return false
}

// notPhoneLayout rejects layouts of dotted IPv4 addresses and numbers with
// thousands separators ("1 234 567").
func notPhoneLayout(g []uint8, seps byte) bool {
	single := seps == 1 || seps == 2 || seps == 4 || seps == 8
	if !single {
		return false
	}
	if len(g) == 4 && seps == 4 && g[0] <= 3 && g[1] <= 3 && g[2] <= 3 && g[3] <= 3 {
		return true
	}
	if (seps == 1 || seps == 4) && g[0] <= 3 {
		thousands := true
		for _, n := range g[1:] {
			if n != 3 {
				thousands = false
				break
			}
		}
		if thousands {
			return true
		}
	}
	return false
}

// bareNANP gives unformatted 10- or 11-digit numbers that fit the North
// American plan (area code and exchange start with 2-9) a weak score without
// parsing: they are as likely to be IDs. Second-precision Unix timestamps
// start with 1 and so never match.
func bareNANP(d []byte) float64 {
	if len(d) == 11 && d[0] == '1' {
		d = d[1:]
	}
	if len(d) == 10 && d[0] >= '2' && d[3] >= '2' {
		return 0.3
	}
	return 0
}

func knownCallingCode(d []byte) bool {
	cc := 0
	for k := 0; k < 3 && k < len(d); k++ {
		cc = cc*10 + int(d[k]-'0')
		if callingCode[cc] {
			return true
		}
	}
	return false
}

// parsePhone asks phonenumbers (default region US) whether w is a valid or
// merely possible number. The library has panicked on odd input in past
// releases; a panic here means "not a phone".
func parsePhone(w string) (score float64) {
	defer func() {
		if recover() != nil {
			score = 0
		}
	}()
	n, err := phonenumbers.Parse(w, "US")
	if err != nil {
		return 0
	}
	if phonenumbers.IsValidNumber(n) {
		return 0.75
	}
	if phonenumbers.IsPossibleNumber(n) {
		return 0.4
	}
	return 0
}
