package pii

import "testing"

func TestFieldName(t *testing.T) {
	cases := []struct {
		name  string
		kind  Kind
		score float64 // 0 means "no finding"
	}{
		{"email", Email, 0.9},
		{"user_email", Email, 0.9},
		{"userEmail", Email, 0.9},
		{"useremail", Email, 0.9},
		{"EMAIL_ADDRESS", Email, 0.95},
		{"emailAddress", Email, 0.95},
		{"e-mail", Email, 0.9},
		{"E Mail", Email, 0.9},
		{"cc_email", Email, 0.9},
		{"phone", Phone, 0.9},
		{"phoneNumber", Phone, 0.95},
		{"phone.number", Phone, 0.95},
		{"mobile", Phone, 0.85},
		{"Telefon", Phone, 0.9},
		{"tel", Phone, 0.7},
		{"ssn", USSSN, 0.95},
		{"social_security_number", USSSN, 0.95},
		{"nino", UKNINO, 0.9},
		{"ni_number", UKNINO, 0.9},
		{"iban", IBAN, 0.95},
		{"IBAN", IBAN, 0.95},
		{"card_number", CreditCard, 0.95},
		{"cardNumber", CreditCard, 0.95},
		{"credit-card", CreditCard, 0.95},
		{"cvv2", CreditCard, 0.9},
		{"card", CreditCard, 0.4},
		{"ip", IPAddress, 0.9},
		{"ip_address", IPAddress, 0.95},
		{"IPAddress", IPAddress, 0.95},
		{"ipv6", IPAddress, 0.9},
		{"client_ip", IPAddress, 0.9},
		{"clientIp", IPAddress, 0.9},
		{"X-Forwarded-For", IPAddress, 0.9},
		{"first_name", Name, 0.85},
		{"firstName", Name, 0.85},
		{"FirstName", Name, 0.85},
		{"firstname", Name, 0.85},
		{"last_name", Name, 0.85},
		{"full_name", Name, 0.85},
		{"customer_name", Name, 0.85},
		{"Prénom", Name, 0.85},
		{"name", Name, 0.4},
		{"address", Address, 0.8},
		{"billing_address", Address, 0.9},
		{"address_line_1", Address, 0.9},
		{"addressLine2", Address, 0.9},
		{"birthdate", DateOfBirth, 0.95},
		{"dob", DateOfBirth, 0.9},
		{"DOB", DateOfBirth, 0.9},
		{"date_of_birth", DateOfBirth, 0.95},
		{"passport", Passport, 0.9},
		{"passport_no", Passport, 0.95},
		{"user_id", UserID, 0.7},
		{"userID", UserID, 0.7},
		{"customer_id", UserID, 0.7},
		{"username", UserID, 0.75},
		{"password", Credential, 0.95},
		{"api_key", Credential, 0.9},
		// Metadata about the data, not the data.
		{"email_verified", Email, 0.36},
		{"is_mobile", Phone, 0.34},
		{"mobile_menu", Phone, 0.34},
		{"ip_country", IPAddress, 0.36},
		{"phone_country_code", Phone, 0.36},
		// Not personal data.
		{"product_name", "", 0},
		{"event_name", "", 0},
		{"mac_address", "", 0},
		{"card_last4", "", 0},
		{"zip_file", "", 0},
		{"skip", "", 0},
		{"tip", "", 0},
		{"hotel", "", 0},
		{"iphone_model", "", 0},
		{"smartphone", "", 0},
		{"plan", "", 0},
		{"utm_source", "", 0},
		{"id", "", 0},
		{"", "", 0},
		{"___", "", 0},
		{"\xff\xfe", "", 0},
	}
	for _, c := range cases {
		f, ok := FieldName(c.name)
		if c.score == 0 {
			if ok {
				t.Errorf("FieldName(%q) = %v, want none", c.name, f)
			}
			continue
		}
		if !ok || f.Kind != c.kind || f.Score != c.score {
			t.Errorf("FieldName(%q) = %v, %v; want {%s %v}", c.name, f, ok, c.kind, c.score)
		}
	}
}

func TestFieldNameAllocs(t *testing.T) {
	for _, n := range []string{"user_email", "firstName", "utm_source", "IPAddress", "email_verified"} {
		if a := testing.AllocsPerRun(100, func() { FieldName(n) }); a != 0 {
			t.Errorf("FieldName(%q): %v allocs", n, a)
		}
	}
}
