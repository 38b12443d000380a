package pii

// cardFrom tries every card-number window that starts at the beginning of t:
// consecutive words of digits and dashes, separated by single spaces, ending
// at a word end with 13..19 digits in total. Starting at each word of a run
// lets "qty 2 4111 1111 1111 1111" still find the card.
func cardFrom(t string, sc *scores) {
	var buf [19]byte
	var glen [8]uint8
	nd, ng := 0, 0
	irregular := false // more than 8 groups, empty groups, mixed separators
	var space, dash bool
	cur := 0
	for i := 0; i <= len(t); i++ {
		var c byte = ' '
		if i < len(t) {
			c = t[i]
		}
		switch {
		case isDigit(c):
			if nd == len(buf) {
				return
			}
			buf[nd] = c
			nd++
			cur++
			continue
		case c == '-':
			dash = true
		case c == ' ':
			if i < len(t) {
				space = true
			}
		default:
			return // '(' '+' '.' '/' and friends never appear in card numbers
		}
		// Separator (or end): close the group.
		if cur == 0 {
			return // leading, doubled or trailing separator
		}
		if ng < len(glen) {
			glen[ng] = uint8(cur)
		} else {
			irregular = true
		}
		ng++
		cur = 0
		if c == ' ' && nd >= 13 {
			sc.add(kCard, cardScore(buf[:nd], glen[:min(ng, len(glen))], irregular || (space && dash)))
		}
	}
}

// cardScore scores a 13..19 digit candidate; 0 means "not a card".
func cardScore(d []byte, groups []uint8, irregular bool) float64 {
	if !luhn(d) {
		return 0
	}
	known := knownIIN(d)
	bare := len(groups) == 1
	std := !irregular && !bare && standardGrouping(groups)
	switch {
	case known && std:
		return 0.95
	case known && bare:
		return 0.9
	case known:
		return 0.4
	case std && fours(groups):
		return 0.6
	case bare:
		return 0.4
	}
	return 0
}

func luhn(d []byte) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i] - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

// fours reports groups of four with a shorter (1..4) last group.
func fours(g []uint8) bool {
	for i, n := range g {
		if i < len(g)-1 && n != 4 || n < 1 || n > 4 {
			return false
		}
	}
	return true
}

// standardGrouping accepts how cards are printed: fours, or the Amex/Diners
// 4-6-5 and 4-6-4 layouts.
func standardGrouping(g []uint8) bool {
	if len(g) == 3 && g[0] == 4 && g[1] == 6 && (g[2] == 5 || g[2] == 4) {
		return true
	}
	return fours(g)
}

// knownIIN reports whether the digits start with an issuer prefix whose card
// lengths include len(d).
func knownIIN(d []byte) bool {
	n := len(d)
	p2 := int(d[0]-'0')*10 + int(d[1]-'0')
	p4 := p2*100 + int(d[2]-'0')*10 + int(d[3]-'0')
	switch {
	case d[0] == '4': // Visa
		return n == 13 || n == 16 || n == 19
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720: // Mastercard
		return n == 16
	case p2 == 34 || p2 == 37: // Amex
		return n == 15
	case p4 == 6011 || p2 == 65 || (p4 >= 6440 && p4 <= 6499): // Discover
		return n >= 16
	case p2 == 35: // JCB
		return n >= 16
	case p2 == 36 || p2 == 38 || p2 == 30 || p2 == 39: // Diners Club
		return n >= 14
	case p2 == 62: // UnionPay
		return n >= 16
	case p4 >= 2200 && p4 <= 2204: // Mir
		return n >= 16
	case p2 == 50 || (p2 >= 56 && p2 <= 58) || p2 == 67: // Maestro
		return n >= 13
	}
	return false
}
