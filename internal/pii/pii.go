// Package pii detects personal data in short strings: custom event property
// values and the names of the fields that carry them.
//
// Detection is Presidio-style. Each recognizer (email, phone, credit card,
// IBAN, IP address, US SSN, UK NINO) yields a Kind and a confidence score in
// [0,1]; ingestion redacts a value whose best score is at least
// DefaultThreshold, and the per-site field report uses FieldName together
// with the same recognizers.
//
// Scan and Best sit on the ingest hot path. Almost every value is harmless
// ("signup", "blue", "42", "/pricing"), so one byte scan counts digits, dots,
// colons and '@' and rejects anything no recognizer could match before any
// tokenizing, parsing or allocation happens. No regular expressions are used;
// the phone recognizer calls github.com/nyaruka/phonenumbers (which is
// regexp-based and takes microseconds) only for candidates that already have
// the shape of a phone number.
//
// Scores (value recognizers):
//
//	email        0.95  local@domain.tld, ASCII, TLD of >= 2 letters
//	             0.85  IDN/UTF-8 address, or '@' written as %40 (URL-encoded)
//	credit_card  0.95  Luhn-valid, known IIN prefix and length, grouped 4-4-4-4 (or 4-6-5 / 4-6-4)
//	             0.90  same, bare digits
//	             0.60  Luhn-valid, unknown prefix/length, grouped in fours
//	             0.40  Luhn-valid known prefix with odd grouping, or unknown prefix bare
//	                   (1 in 10 random IDs and millisecond timestamps pass Luhn)
//	             none  Luhn-invalid
//	iban         0.95  known country, correct length, mod-97 == 1 (spaces allowed); else none
//	ip_address   0.80  IPv6 (netip)
//	             0.60  IPv4 (netip); ambiguous with 4-part version strings, still redacted
//	             0.30  loopback or unspecified address
//	us_ssn       0.85  AAA-GG-SSSS outside the SSA never-issued ranges
//	             0.50  AAA GG SSSS or AAA.GG.SSSS
//	             0.40  nine bare digits (too many order numbers look like this)
//	phone        0.75  valid per phonenumbers (region US unless '+'), written with '+' or separators
//	             0.40  possible (right length) but not valid
//	             0.30  bare 10/11-digit NANP-shaped number, or local "555-2671" (no parse)
//	uk_nino      0.70  "AB 12 34 56 C"
//	             0.60  "AB123456C"
//	             0.30  without the suffix letter
//
// Plain integers ("42", "2024", "1700000000"), prices, dates ("2024-01-31",
// "31/01/2024"), hex colours, UUIDs and semantic versions score nothing or
// below DefaultThreshold.
package pii

// Kind names a category of personal data.
type Kind string

// Kinds found in values by Scan and Best (and in names by FieldName).
const (
	Email      Kind = "email"
	Phone      Kind = "phone"
	CreditCard Kind = "credit_card"
	IBAN       Kind = "iban"
	IPAddress  Kind = "ip_address"
	USSSN      Kind = "us_ssn"
	UKNINO     Kind = "uk_nino"
)

// Kinds only FieldName reports: values of these have no reliable shape.
const (
	Name        Kind = "name"
	Address     Kind = "address"
	DateOfBirth Kind = "date_of_birth"
	Passport    Kind = "passport"
	UserID      Kind = "user_id"
	// Credential covers passwords, tokens and API keys: not personal data as
	// such, but never something an analytics store should keep.
	Credential Kind = "credential"
)

// Finding is one detected kind with its confidence score in [0,1].
type Finding struct {
	Kind  Kind
	Score float64
}

// DefaultThreshold is the score at or above which ingestion redacts a value.
const DefaultThreshold = 0.5

// Value-recognizer indexes; the order is also the tie-break order (earlier
// wins) so Scan and Best agree on equal scores.
const (
	kEmail = iota
	kCard
	kIBAN
	kSSN
	kNINO
	kPhone
	kIP
	numKinds
)

var kindOf = [numKinds]Kind{
	kEmail: Email,
	kCard:  CreditCard,
	kIBAN:  IBAN,
	kSSN:   USSSN,
	kNINO:  UKNINO,
	kPhone: Phone,
	kIP:    IPAddress,
}

// scores keeps the best score per kind. It lives on the caller's stack so the
// no-finding path never allocates.
type scores [numKinds]float64

func (sc *scores) add(k int, v float64) {
	if v > sc[k] {
		sc[k] = v
	}
}

// Scan returns every kind of personal data found in s, whether s is the whole
// value or contains it ("contact me at a@b.co"), highest score first (ties in
// a fixed kind order). Each kind appears at most once, with its best score.
// It returns nil when nothing is found.
func Scan(s string) []Finding {
	var sc scores
	detect(s, &sc)
	var out []Finding
	for k, v := range sc {
		if v > 0 {
			out = insertByScore(out, Finding{Kind: kindOf[k], Score: v})
		}
	}
	if n, ok := National(s); ok {
		out = insertByScore(out, n)
	}
	return out
}

// insertByScore inserts f into out, highest score first; equal scores keep
// the order they were inserted in.
func insertByScore(out []Finding, f Finding) []Finding {
	i := len(out)
	out = append(out, f)
	for i > 0 && out[i-1].Score < f.Score {
		out[i] = out[i-1]
		i--
	}
	out[i] = f
	return out
}

// Best returns the highest-scoring finding in s, ok=false when there is none.
// It does not allocate when nothing is found.
func Best(s string) (Finding, bool) {
	var sc scores
	detect(s, &sc)
	best := -1
	for k, v := range sc {
		if v > 0 && (best < 0 || v > sc[best]) {
			best = k
		}
	}
	f, ok := Finding{}, false
	if best >= 0 {
		f, ok = Finding{Kind: kindOf[best], Score: sc[best]}, true
	}
	// National identifiers with a checksum (Spanish DNI/NIE, French NIR,
	// Aadhaar) are recognized separately.
	if n, nok := National(s); nok && (!ok || n.Score > f.Score) {
		f, ok = n, true
	}
	return f, ok
}

// Byte classes for the pre-check scan.
const (
	clDigit = 1 + iota
	clDot
	clColon
	clAt
	clPct
)

var byteClass = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = clDigit
	}
	t['.'] = clDot
	t[':'] = clColon
	t['@'] = clAt
	t['%'] = clPct
	return t
}()

// detect runs the pre-checks and then only the recognizers that could match.
func detect(s string, sc *scores) {
	var digits, dots, colons int
	var at, pct bool
	for i := 0; i < len(s); i++ {
		switch byteClass[s[i]] {
		case 0:
		case clDigit:
			digits++
		case clDot:
			dots++
		case clColon:
			colons++
		case clAt:
			at = true
		case clPct:
			pct = true
		}
	}
	if at || (pct && digits >= 2) {
		scanEmails(s, at, pct, sc)
	}
	if (digits >= 4 && dots >= 3) || colons >= 2 {
		scanIPs(s, sc)
	}
	// Every numeric recognizer needs at least six digits (NINO); phones need
	// seven, SSNs nine, cards thirteen.
	if digits >= 6 {
		scanTokens(s, sc)
	}
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isUpper(c byte) bool  { return c >= 'A' && c <= 'Z' }
func isLower(c byte) bool  { return c >= 'a' && c <= 'z' }
func isLetter(c byte) bool { return isUpper(c) || isLower(c) }
func isAlnum(c byte) bool  { return isDigit(c) || isLetter(c) }

// isWordByte reports bytes that glue a candidate to surrounding text, so
// "v1.2.3.4" or "id_4111111111111111" are not read as an IP or a card.
// Non-ASCII bytes count as word bytes (letters of other scripts).
func isWordByte(c byte) bool { return isAlnum(c) || c == '_' || c >= 0x80 }
