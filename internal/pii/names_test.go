package pii

import (
	"math"
	"testing"
)

func TestClassifyName(t *testing.T) {
	cases := []struct {
		name string
		want []Finding
	}{
		// FieldName's dictionary.
		{"email", []Finding{{Email, 0.9}}},
		{"e_mail", []Finding{{Email, 0.9}}},
		{"mail", []Finding{{Email, 0.6}}},
		{"phone", []Finding{{Phone, 0.9}}},
		{"tel", []Finding{{Phone, 0.7}}},
		{"mobile", []Finding{{Phone, 0.85}}},
		{"ssn", []Finding{{USSSN, 0.95}}},
		{"social_security", []Finding{{USSSN, 0.9}}},
		{"iban", []Finding{{IBAN, 0.95}}},
		{"cc_number", []Finding{{CreditCard, 0.95}}},
		{"credit_card", []Finding{{CreditCard, 0.95}}},
		{"card", []Finding{{CreditCard, 0.4}}},
		{"ip", []Finding{{IPAddress, 0.9}}},
		{"ip_address", []Finding{{IPAddress, 0.95}}},
		{"first_name", []Finding{{Name, 0.85}}},
		{"surname", []Finding{{Name, 0.85}}},
		{"full_name", []Finding{{Name, 0.85}}},
		{"street", []Finding{{Address, 0.8}}},
		{"zip", []Finding{{Address, 0.5}}},
		{"postcode", []Finding{{Address, 0.6}}},
		{"dob", []Finding{{DateOfBirth, 0.9}}},
		{"birthday", []Finding{{DateOfBirth, 0.9}}},
		{"user_id", []Finding{{UserID, 0.7}}},
		{"customerId", []Finding{{UserID, 0.7}}},
		// National identifiers.
		{"dni", []Finding{{ESNIF, 0.8}}},
		{"numero_dni", []Finding{{ESNIF, 0.9}}},
		{"NIE", []Finding{{ESNIE, 0.8}}},
		{"aadhaarNumber", []Finding{{INAadhaar, 0.95}}},
		{"aadhar", []Finding{{INAadhaar, 0.9}}},
		{"numero_de_securite_sociale", []Finding{{FRNIR, 0.95}}},
		{"nir", []Finding{{FRNIR, 0.8}}},
		{"Sécurité sociale", []Finding{{FRNIR, 0.85}}},
		{"secu", []Finding{{FRNIR, 0.5}}},
		{"bsn", []Finding{{NationalID, 0.85}}},
		{"burgerServiceNummer", []Finding{{NationalID, 0.95}}},
		{"national_id", []Finding{{NationalID, 0.85}}},
		{"tax_id", []Finding{{NationalID, 0.8}}},
		{"tin", []Finding{{NationalID, 0.5}}},
		{"PESEL", []Finding{{NationalID, 0.9}}},
		{"dni_verified", []Finding{{ESNIF, 0.32}}}, // about the data, not the data
		// Both dictionaries, highest first.
		{"email_or_dni", []Finding{{Email, 0.9}, {ESNIF, 0.8}}},
		{"bsn_phone", []Finding{{Phone, 0.9}, {NationalID, 0.85}}},
		// Nothing.
		{"plan", nil}, {"tin_can", nil}, {"unified", nil}, {"secu_level", nil},
		{"nier", nil}, {"denied", nil}, {"utm_source", nil}, {"", nil}, {"\xff", nil},
	}
	for _, c := range cases {
		got := ClassifyName(c.name)
		if len(got) != len(c.want) {
			t.Errorf("ClassifyName(%q) = %v, want %v", c.name, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("ClassifyName(%q) = %v, want %v", c.name, got, c.want)
				break
			}
		}
	}
}

// FuzzClassifyName checks ClassifyName's contract: scores in (0,1], highest
// first, each kind once, and FieldName's finding always among them.
func FuzzClassifyName(f *testing.F) {
	for _, s := range []string{"email", "email_or_dni", "aadhaarNumber", "numero_de_securite_sociale", "tin", "plan", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := ClassifyName(s)
		if got != nil && len(got) == 0 {
			t.Fatalf("ClassifyName(%q) = empty non-nil", s)
		}
		seen := map[Kind]bool{}
		for i, fd := range got {
			if fd.Kind == "" || !(fd.Score > 0 && fd.Score <= 1) || math.IsNaN(fd.Score) {
				t.Fatalf("ClassifyName(%q) = %v", s, got)
			}
			if i > 0 && got[i-1].Score < fd.Score {
				t.Fatalf("ClassifyName(%q) not sorted: %v", s, got)
			}
			if seen[fd.Kind] {
				t.Fatalf("ClassifyName(%q): kind twice: %v", s, got)
			}
			seen[fd.Kind] = true
		}
		if fn, ok := FieldName(s); ok && !seen[fn.Kind] {
			t.Fatalf("ClassifyName(%q) = %v misses FieldName's %v", s, got, fn)
		}
	})
}

func BenchmarkClassifyName(b *testing.B) {
	names := []string{"user_email", "firstName", "utm_source", "plan", "dni", "aadhaarNumber"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ClassifyName(names[i%len(names)])
	}
}
