package pii

import (
	"strings"
	"testing"
)

// scoreOf returns the score Scan gives kind k in s (0 when absent).
func scoreOf(s string, k Kind) float64 {
	for _, f := range Scan(s) {
		if f.Kind == k {
			return f.Score
		}
	}
	return 0
}

type want struct {
	in   string
	kind Kind
	lo   float64 // inclusive
	hi   float64 // inclusive
}

func runWants(t *testing.T, cases []want) {
	t.Helper()
	for _, c := range cases {
		got := scoreOf(c.in, c.kind)
		if got < c.lo || got > c.hi {
			t.Errorf("Scan(%q)[%s] = %v, want in [%v, %v]; all findings: %v", c.in, c.kind, got, c.lo, c.hi, Scan(c.in))
		}
	}
}

const redact = DefaultThreshold

func TestEmail(t *testing.T) {
	runWants(t, []want{
		{"a@b.co", Email, 0.95, 0.95},
		{"john.doe+news@example.co.uk", Email, 0.95, 0.95},
		{"contact me at john.doe@example.com.", Email, 0.95, 0.95},
		{"<jane@example.org>", Email, 0.95, 0.95},
		{"mailto:jane@example.org", Email, 0.95, 0.95},
		{"/signup?email=jane@example.org&plan=pro", Email, 0.95, 0.95},
		{"jane%40example.org", Email, 0.85, 0.85},
		{"https://x.io/?e=jane%40example.org", Email, 0.85, 0.85},
		{"josé@exämple.de", Email, 0.85, 0.85},
		{"user@xn--80ak6aa92e.xn--p1ai", Email, 0.95, 0.95},
		// Negatives.
		{"@handle", Email, 0, 0},
		{"user@localhost", Email, 0, 0},
		{"user@example.c", Email, 0, 0},
		{"user@example.123", Email, 0, 0},
		{"pkg@1.2.3", Email, 0, 0},
		{"logo@2x.png", Email, 0, 0},
		{"icon@3x.webp", Email, 0, 0},
		{"bundle@main.js", Email, 0, 0},
		{".@example.com", Email, 0, 0},
		{"a..b@example.com", Email, 0, 0},
		{"a@-example.com", Email, 0, 0},
		{"a@example..com", Email, 0, 0},
		{"a@", Email, 0, 0},
		{"a@\xff\xfe.com", Email, 0, 0},
		{"50%40off", Email, 0, 0},
	})
}

func TestCreditCard(t *testing.T) {
	runWants(t, []want{
		{"4111111111111111", CreditCard, 0.9, 0.9},      // Visa, bare
		{"4111 1111 1111 1111", CreditCard, 0.95, 0.95}, // Visa, grouped
		{"4111-1111-1111-1111", CreditCard, 0.95, 0.95}, // dashes
		{"4222222222222", CreditCard, 0.9, 0.9},         // 13-digit Visa
		{"5555555555554444", CreditCard, 0.9, 0.9},      // Mastercard 51-55
		{"5105 1051 0510 5100", CreditCard, 0.95, 0.95}, // Mastercard
		{"2223003122003222", CreditCard, 0.9, 0.9},      // Mastercard 2221-2720
		{"378282246310005", CreditCard, 0.9, 0.9},       // Amex
		{"3782 822463 10005", CreditCard, 0.95, 0.95},   // Amex 4-6-5
		{"6011111111111117", CreditCard, 0.9, 0.9},      // Discover
		{"3530111333300000", CreditCard, 0.9, 0.9},      // JCB
		{"30569309025904", CreditCard, 0.9, 0.9},        // Diners 14 digits
		{"my card is 4111 1111 1111 1111 exp 12/25", CreditCard, 0.95, 0.95},
		{"qty 2 4111 1111 1111 1111", CreditCard, 0.95, 0.95}, // window starts mid-run
		{"/orders/4111111111111111", CreditCard, 0.9, 0.9},
		{"1234 5678 9012 3452", CreditCard, 0.6, 0.6},  // Luhn-valid, unknown prefix, grouped
		{"1234567890123452", CreditCard, 0.4, 0.4},     // same, bare: sub-threshold
		{"4111 11 11 1111 1111", CreditCard, 0.4, 0.4}, // known prefix, odd grouping
		// Luhn-invalid: nothing.
		{"4111111111111112", CreditCard, 0, 0},
		{"4111 1111 1111 1112", CreditCard, 0, 0},
		{"378282246310006", CreditCard, 0, 0},
		// Wrong shapes.
		{"4111.1111.1111.1111", CreditCard, 0, 0},
		{"4111 1111 1111 1111 1111 1111", CreditCard, 0.95, 0.95}, // first 16 digits still a card
		{"id_4111111111111111", CreditCard, 0, 0},
		{"12345678901234567890123", CreditCard, 0, 0},
		{"1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6", CreditCard, 0, 0},
	})
}

func TestIBAN(t *testing.T) {
	runWants(t, []want{
		{"DE89370400440532013000", IBAN, 0.95, 0.95},
		{"DE89 3704 0044 0532 0130 00", IBAN, 0.95, 0.95},
		{"de89370400440532013000", IBAN, 0.95, 0.95},
		{"GB82WEST12345698765432", IBAN, 0.95, 0.95},
		{"GB82 WEST 1234 5698 7654 32", IBAN, 0.95, 0.95},
		{"FR1420041010050500013M02606", IBAN, 0.95, 0.95},
		{"FR14 2004 1010 0505 0001 3M02 606", IBAN, 0.95, 0.95},
		{"NL91ABNA0417164300", IBAN, 0.95, 0.95},
		{"BE68539007547034", IBAN, 0.95, 0.95},
		{"NO9386011117947", IBAN, 0.95, 0.95},
		{"CH93 0076 2011 6238 5295 7", IBAN, 0.95, 0.95},
		{"ES9121000418450200051332", IBAN, 0.95, 0.95},
		{"IT60X0542811101000000123456", IBAN, 0.95, 0.95},
		{"please pay to IBAN: DE89 3704 0044 0532 0130 00, thanks", IBAN, 0.95, 0.95},
		// Invalid check digits, length or country.
		{"DE88370400440532013000", IBAN, 0, 0},
		{"GB83WEST12345698765432", IBAN, 0, 0},
		{"FR1520041010050500013M02606", IBAN, 0, 0},
		{"DE8937040044053201300", IBAN, 0, 0},   // one short
		{"DE893704004405320130001", IBAN, 0, 0}, // one long
		{"XX89370400440532013000", IBAN, 0, 0},  // no such country
		{"DE89370400440532013000X", IBAN, 0, 0}, // glued to more text
	})
	// A spaced IBAN's tail must not also read as a card or phone.
	if got := Scan("DE89 3704 0044 0532 0130 00"); len(got) != 1 {
		t.Errorf("spaced IBAN: got %v, want only iban", got)
	}
}

func TestIPAddress(t *testing.T) {
	runWants(t, []want{
		{"1.2.3.4", IPAddress, 0.6, 0.6}, // could be a version; still redacted
		{"192.168.0.1", IPAddress, 0.6, 0.6},
		{"my ip is 203.0.113.7.", IPAddress, 0.6, 0.6},
		{"203.0.113.7:8080", IPAddress, 0.6, 0.6},
		{"10.0.0.1/24", IPAddress, 0.6, 0.6},
		{"http://203.0.113.7/admin", IPAddress, 0.6, 0.6},
		{"2001:db8::1", IPAddress, 0.8, 0.8},
		{"fe80::1", IPAddress, 0.8, 0.8},
		{"2001:0db8:85a3:0000:0000:8a2e:0370:7334", IPAddress, 0.8, 0.8},
		{"[2001:db8::1]:443", IPAddress, 0.8, 0.8},
		{"::ffff:192.0.2.1", IPAddress, 0.8, 0.8},
		{"127.0.0.1", IPAddress, 0.3, 0.3},
		{"::1", IPAddress, 0.3, 0.3},
		{"0.0.0.0", IPAddress, 0.3, 0.3},
		// Negatives.
		{"v1.2.3.4", IPAddress, 0, 0},
		{"1.2.3", IPAddress, 0, 0},
		{"120.0.6099.109", IPAddress, 0, 0},
		{"256.1.1.1", IPAddress, 0, 0},
		{"01.02.03.04", IPAddress, 0, 0},
		{"1.2.3.4.5", IPAddress, 0, 0},
		{"10:30:00", IPAddress, 0, 0},
		{"12::30", IPAddress, 0, 0},
		{"dead::beef", IPAddress, 0, 0},
		{"std::vector", IPAddress, 0, 0},
		{"00:1A:2B:3C:4D:5E", IPAddress, 0, 0},
		{"::", IPAddress, 0, 0},
	})
}

func TestUSSSN(t *testing.T) {
	runWants(t, []want{
		{"123-45-6789", USSSN, 0.85, 0.85},
		{"ssn: 234-56-7890", USSSN, 0.85, 0.85},
		{"234 56 7890", USSSN, 0.5, 0.5},
		{"234.56.7890", USSSN, 0.5, 0.5},
		{"234567890", USSSN, 0.4, 0.4}, // bare: below threshold
		// SSA never-issued ranges.
		{"000-12-3456", USSSN, 0, 0},
		{"666-12-3456", USSSN, 0, 0},
		{"900-12-3456", USSSN, 0, 0},
		{"999-12-3456", USSSN, 0, 0},
		{"123-00-4567", USSSN, 0, 0},
		{"123-45-0000", USSSN, 0, 0},
		{"000123456", USSSN, 0, 0},
		// Other layouts.
		{"123-456-789", USSSN, 0, 0},
		{"1234-56-789", USSSN, 0, 0},
		{"123-45-67890", USSSN, 0, 0},
		{"123-45.6789", USSSN, 0, 0},
	})
}

func TestUKNINO(t *testing.T) {
	runWants(t, []want{
		{"AB123456C", UKNINO, 0.6, 0.6},
		{"AB 12 34 56 C", UKNINO, 0.7, 0.7},
		{"nino: JG103759A", UKNINO, 0.6, 0.6},
		{"AB123456", UKNINO, 0.3, 0.3}, // no suffix: too SKU-like
		{"QQ123456C", UKNINO, 0, 0},    // Q never first
		{"AO123456C", UKNINO, 0, 0},    // O never second
		{"GB123456C", UKNINO, 0, 0},    // unallocated prefix
		{"AB123456E", UKNINO, 0, 0},    // E is no suffix, and glued on
		{"ab123456c", UKNINO, 0, 0},
		{"AB1234567", UKNINO, 0, 0},
		{"XAB123456C", UKNINO, 0, 0},
	})
}

func TestPhone(t *testing.T) {
	runWants(t, []want{
		{"+44 20 7946 0958", Phone, 0.75, 0.75},
		{"+44 (0)20 7946 0958", Phone, 0.75, 0.75},
		{"(415) 555-2671", Phone, 0.75, 0.75},
		{"+49 30 901820", Phone, 0.75, 0.75},
		{"415-555-2671", Phone, 0.75, 0.75},
		{"415.555.2671", Phone, 0.75, 0.75},
		{"415 555 2671", Phone, 0.75, 0.75},
		{"+14155552671", Phone, 0.75, 0.75},
		{"tel:+14155552671", Phone, 0.75, 0.75},
		{"+1 (201) 555-0123", Phone, 0.75, 0.75},
		{"1-800-555-0199", Phone, 0.75, 0.75},
		{"+33 1 42 68 53 00", Phone, 0.75, 0.75},
		{"+81 3-1234-5678", Phone, 0.75, 0.75},
		{"+91 98765 43210", Phone, 0.75, 0.75},
		{"+61 2 9374 4000", Phone, 0.75, 0.75},
		{"011 44 20 7946 0958", Phone, 0.75, 0.75},
		{"call me at 415 555 2671 thanks", Phone, 0.75, 0.75},
		{"Phone:415-555-2671", Phone, 0.75, 0.75},
		{"2 +44 20 7946 0958", Phone, 0.75, 0.75},
		// Possible but not valid, or unparsed weak signals: below threshold.
		{"(555) 555-0111", Phone, 0.4, 0.4},
		{"123-456-7890", Phone, 0.4, 0.4},
		{"4155552671", Phone, 0.3, 0.3},
		{"555-2671", Phone, 0.3, 0.3},
		// Not phones.
		{"2024-01-31", Phone, 0, 0},
		{"31/01/2024", Phone, 0, 0},
		{"31.01.2024", Phone, 0, 0},
		{"2024-01-31 10:00:00", Phone, 0, 0},
		{"01/31/2024 10:00 AM", Phone, 0, 0},
		{"1700000000", Phone, 0, 0},
		{"1700000000000", Phone, 0, 0},
		{"v1.2.3", Phone, 0, 0},
		{"120.0.6099.109", Phone, 0, 0},
		{"1 234 567", Phone, 0, 0},
		{"1234567.89", Phone, 0, 0},
		{"10-20-30-40", Phone, 0, 0},
		{"94105-1234", Phone, 0, 0},
		{"+1", Phone, 0, 0},
		{"+999 1234 5678", Phone, 0, 0},
		{"415--555-2671", Phone, 0, 0},
		{"(415 555-2671", Phone, 0, 0.3}, // only "555-2671" remains
	})
}

// TestHarmless lists typical prop values that must stay below the
// redaction threshold; most must produce no finding at all.
func TestHarmless(t *testing.T) {
	none := []string{
		"", " ", "signup", "blue", "42", "2024", "/pricing", "true", "false", "null",
		"EUR", "de-DE", "en_US", "1920x1080", "#ff00aa", "#123456", "rgb(255, 0, 0)",
		"19.99", "$19.99", "1,299.00", "1700000000", "2024-01-31", "31/01/2024", "31.01.2024",
		"2024-01-31T10:00:00Z", "2024-01-31 10:00:00", "10:30", "10:30:00", "v1.2.3",
		"1.2.3", "10.15.7", "550e8400-e29b-41d4-a716-446655440000",
		"d41d8cd98f00b204e9800998ecf8427e", "ORD-2024-000123", "SKU-123456789",
		"0.123456789", "-73.9857, 40.7484", "40.748817,-73.985428", "0x1234abcd",
		"3.14159265358979", "978-3-16-148410-0", "1Z999AA10123456784", "94105-1234",
		"1700000000.123", "https://example.com/blog/2024/01/31/post", "utm_source=google",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36",
		"page 2 of 10", "100%", "@", "%40", "::", "+", "(((", "Foo::Bar", "12::30",
		"logo@2x.png", "@scope/pkg@1.2.3",
	}
	for _, s := range none {
		if got := Scan(s); got != nil {
			t.Errorf("Scan(%q) = %v, want nil", s, got)
		}
		if f, ok := Best(s); ok {
			t.Errorf("Best(%q) = %v, want none", s, f)
		}
	}
	below := []string{
		"1234567890123452", // Luhn-valid ID
		"234567890",        // nine digits
		"4155552671",       // bare NANP-shaped
		"555-2671",
		"AB123456",
		"127.0.0.1",
	}
	for _, s := range below {
		if f, ok := Best(s); !ok || f.Score >= redact {
			t.Errorf("Best(%q) = %v, %v; want a finding below %v", s, f, ok, redact)
		}
	}
}

func TestScanOrderAndMultiple(t *testing.T) {
	got := Scan("mail a@b.co, card 4111 1111 1111 1111, call +1 415 555 2671 from 2001:db8::1")
	// Email and card tie at 0.95; email comes first in the fixed order.
	wantKinds := []Kind{Email, CreditCard, IPAddress, Phone}
	if len(got) != len(wantKinds) {
		t.Fatalf("got %v, want kinds %v", got, wantKinds)
	}
	for i, k := range wantKinds {
		if got[i].Kind != k {
			t.Errorf("got[%d] = %v, want kind %s (all: %v)", i, got[i], k, got)
		}
	}
	b, ok := Best("mail a@b.co, card 4111 1111 1111 1111")
	if !ok || b.Kind != Email || b.Score != 0.95 {
		t.Errorf("Best = %v, %v", b, ok)
	}
	// Equal scores keep the fixed kind order in both Scan and Best.
	s := "1234567890123452 234567890"
	sc := Scan(s)
	b, _ = Best(s)
	if len(sc) != 2 || sc[0] != b {
		t.Errorf("tie: Scan = %v, Best = %v", sc, b)
	}
}

func TestLuhn(t *testing.T) {
	for s, ok := range map[string]bool{
		"79927398713": true, "79927398710": false, "0": true, "4111111111111111": true, "4111111111111121": false,
	} {
		if luhn([]byte(s)) != ok {
			t.Errorf("luhn(%s) != %v", s, ok)
		}
	}
}

func TestMod97(t *testing.T) {
	if !mod97([]byte("GB82WEST12345698765432")) || mod97([]byte("GB82WEST12345698765433")) {
		t.Error("mod97")
	}
	if mod97([]byte("GB01WEST12345698765432")) {
		t.Error("check digits 01 accepted")
	}
}

func TestNoPanicOddInput(t *testing.T) {
	for _, s := range []string{
		"\xff", "\xff\xfe@\xff.com", "@@@@", "a@b@c.de", "%40%40", "+(", "()", "(1)", "-", "--1234567--",
		strings.Repeat("1 ", 5000), strings.Repeat("4111 ", 2000), strings.Repeat("+1 415 555 2671 ", 500),
		strings.Repeat("a@", 3000) + "b.co", strings.Repeat("1.", 4000), strings.Repeat(":", 4000),
		strings.Repeat("DE89 ", 1000), strings.Repeat("AB 12 ", 1000), "5;phone-context=+1;tel:x",
	} {
		for _, f := range Scan(s) {
			if f.Score <= 0 || f.Score > 1 {
				t.Errorf("Scan(%.20q): bad score %v", s, f)
			}
		}
		Best(s)
	}
}

func TestBestAllocs(t *testing.T) {
	values := []string{
		"signup", "blue", "42", "/pricing", "2024", "1700000000", "19.99", "2024-01-31",
		"#ff00aa", "550e8400-e29b-41d4-a716-446655440000", "v1.2.3", "10:30:00",
		"https://example.com/blog/2024/01/31/post", "Chrome/120.0.6099.109", "1,299.00",
		// Findings (Best returns a value, so these stay allocation-free too).
		"4111 1111 1111 1111", "DE89370400440532013000", "1.2.3.4", "2001:db8::1", "123-45-6789",
		"a@b.co", "AB123456C",
	}
	for _, v := range values {
		if n := testing.AllocsPerRun(100, func() { Best(v) }); n != 0 {
			t.Errorf("Best(%q): %v allocs, want 0", v, n)
		}
	}
}

// TestConcurrent exercises the shared phonenumbers state under -race.
func TestConcurrent(t *testing.T) {
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 50; i++ {
				Scan("call +44 20 7946 0958 or (415) 555-2671, a@b.co")
				FieldName("userPhoneNumber")
			}
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
}
