package pii

// Token layer for the numeric recognizers (card, SSN, phone) and the
// letter-led ones (IBAN, NINO).
//
// s is split into tokens on delimiter bytes. A "numeric" token holds only
// digits and - . ( ) +. Consecutive numeric tokens separated by exactly one
// space or '/' form a run, so "+44 20 7946 0958", "(415) 555-2671" and
// "4111 1111 1111 1111" are each one run while "1,234,567" is three.

// delim marks bytes that end a token. ':' and '/' are included so
// "tel:+14155552671" and "/users/4111111111111111" expose the number.
var delim = func() (t [256]bool) {
	for _, c := range " \t\n\r\v\f,;\"'`<>[]{}|=&?:/\\!*" {
		t[c] = true
	}
	return t
}()

func isNumPunct(c byte) bool {
	return c == '-' || c == '.' || c == '(' || c == ')' || c == '+'
}

func scanTokens(s string, sc *scores) {
	budget := maxPhoneParses
	runStart, runEnd := -1, -1
	for i := 0; i < len(s); {
		if delim[s[i]] {
			i++
			continue
		}
		j := i
		numeric, nd := true, 0
		for ; j < len(s) && !delim[s[j]]; j++ {
			c := s[j]
			if isDigit(c) {
				nd++
			} else if !isNumPunct(c) {
				numeric = false
			}
		}
		if numeric && nd > 0 {
			if runStart >= 0 && i == runEnd+1 && (s[runEnd] == ' ' || s[runEnd] == '/') {
				runEnd = j
			} else {
				if runStart >= 0 {
					evalRun(s[runStart:runEnd], sc, &budget)
				}
				runStart, runEnd = i, j
			}
			i = j
			continue
		}
		if runStart >= 0 {
			evalRun(s[runStart:runEnd], sc, &budget)
			runStart = -1
		}
		if isLetter(s[i]) && j-i >= 2 {
			// A matched IBAN or NINO swallows the spaced groups after it so
			// they are not re-read as a card or phone number.
			if end := scanIBAN(s, i, sc); end > 0 {
				j = end
			} else if end := scanNINO(s, i, sc); end > 0 {
				j = end
			}
		}
		i = j
	}
	if runStart >= 0 {
		evalRun(s[runStart:runEnd], sc, &budget)
	}
}

// nextWord returns the start of the word after the one at p in a run
// (words are separated by one ' ' or '/'), or len(r).
func nextWord(r string, p int) int {
	for ; p < len(r); p++ {
		if r[p] == ' ' || r[p] == '/' {
			return p + 1
		}
	}
	return len(r)
}

// wordEnd returns the end of the word starting at p.
func wordEnd(r string, p int) int {
	for ; p < len(r); p++ {
		if r[p] == ' ' || r[p] == '/' {
			return p
		}
	}
	return len(r)
}

// evalRun applies the card, SSN and phone recognizers to one run.
func evalRun(r string, sc *scores, budget *int) {
	// Sentence punctuation and signs are not part of a number.
	for len(r) > 0 && (r[0] == '.' || r[0] == '-') {
		r = r[1:]
	}
	for len(r) > 0 && (r[len(r)-1] == '.' || r[len(r)-1] == '-') {
		r = r[:len(r)-1]
	}
	nd := 0
	for i := 0; i < len(r); i++ {
		if isDigit(r[i]) {
			nd++
		}
	}
	if nd < 7 {
		return
	}
	cardBefore := sc[kCard]
	for p := 0; p < len(r); p = nextWord(r, p) {
		if nd >= 13 {
			cardFrom(r[p:], sc)
		}
		if nd >= 9 {
			ssnWord(r[p:wordEnd(r, p)], sc)
		}
	}
	if nd >= 9 {
		ssnSpaced(r, sc)
	}
	// A card layout such as 4-6-5 also parses as a "possible" phone; once
	// the run is a card, spare the parse.
	if sc[kCard] >= 0.9 && cardBefore < 0.9 {
		return
	}
	phonesIn(r, sc, budget)
}
