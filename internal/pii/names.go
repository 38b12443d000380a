package pii

import "math"

// National identifiers: the value recognizers in national.go report the
// specific kinds; names that only say "national id" report NationalID.
const (
	ESNIF     Kind = "es_nif"     // Spanish DNI/NIF: 8 digits and a check letter
	ESNIE     Kind = "es_nie"     // Spanish NIE: X, Y or Z, 7 digits and a check letter
	INAadhaar Kind = "in_aadhaar" // Indian Aadhaar: 12 digits, Verhoeff check digit
	FRNIR     Kind = "fr_nir"     // French NIR (social security number): 13 digits and a mod-97 key
	// NationalID is a field named for some other national, tax or social
	// security number (BSN, PESEL, codice fiscale...): only names reveal it.
	NationalID Kind = "national_id"
)

// nationalDict extends FieldName's dictionary (same rules and scores) to
// the national identifiers above.
var nationalDict = map[string]fieldRule{
	// Spain
	"dni": {ESNIF, 0.8, false}, "nif": {ESNIF, 0.8, false}, "numerodni": {ESNIF, 0.9, false},
	"dninumber": {ESNIF, 0.9, false}, "documentonacionaldeidentidad": {ESNIF, 0.95, false},
	"nie": {ESNIE, 0.8, false}, "numeronie": {ESNIE, 0.9, false}, "nienumber": {ESNIE, 0.9, false},

	// India
	"aadhaar": {INAadhaar, 0.9, false}, "aadhar": {INAadhaar, 0.9, false}, "adhaar": {INAadhaar, 0.85, false},
	"aadhaarnumber": {INAadhaar, 0.95, false}, "aadhaarno": {INAadhaar, 0.95, false}, "uidai": {INAadhaar, 0.8, false},

	// France
	"nir": {FRNIR, 0.8, false}, "numsecu": {FRNIR, 0.9, false}, "numerosecu": {FRNIR, 0.9, false},
	"securitesociale": {FRNIR, 0.85, false}, "numerodesecuritesociale": {FRNIR, 0.95, false},
	"numerosecuritesociale": {FRNIR, 0.95, false}, "sécuritésociale": {FRNIR, 0.85, false},
	"secu": {FRNIR, 0.5, true},

	// Other national, tax and social security numbers.
	"nationalid": {NationalID, 0.85, false}, "nationalidnumber": {NationalID, 0.95, false},
	"nationalidentitynumber": {NationalID, 0.95, false}, "nationalidentifier": {NationalID, 0.85, false},
	"identitynumber": {NationalID, 0.8, false}, "identitycard": {NationalID, 0.8, false},
	"idnumber": {NationalID, 0.6, false}, "idcard": {NationalID, 0.7, false},
	"taxid": {NationalID, 0.8, false}, "taxnumber": {NationalID, 0.8, false}, "taxidnumber": {NationalID, 0.9, false},
	"taxpayerid": {NationalID, 0.85, false}, "tin": {NationalID, 0.5, true},
	"personalnumber": {NationalID, 0.7, false}, "personnummer": {NationalID, 0.9, false},
	"bsn": {NationalID, 0.85, false}, "burgerservicenummer": {NationalID, 0.95, false},
	"pesel": {NationalID, 0.9, false}, "codicefiscale": {NationalID, 0.9, false},
	"cpf": {NationalID, 0.7, false}, "curp": {NationalID, 0.8, false},
	"steuerid": {NationalID, 0.85, false}, "steuernummer": {NationalID, 0.8, false},
	"steueridentifikationsnummer":  {NationalID, 0.95, false},
	"sozialversicherungsnummer":    {NationalID, 0.95, false},
	"socialinsurancenumber":        {NationalID, 0.9, false},
	"personalidentificationnumber": {NationalID, 0.9, false},
}

// ClassifyName returns every kind of personal data the field name suggests,
// highest score first (FieldName's dictionary and the national
// identifiers), or nil. Each kind appears once.
func ClassifyName(name string) []Finding {
	a, okA := FieldName(name)
	b, okB := classifyWords(name, nationalDict)
	switch {
	case okA && okB:
		if b.Score > a.Score {
			a, b = b, a
		}
		return []Finding{a, b}
	case okA:
		return []Finding{a}
	case okB:
		return []Finding{b}
	}
	return nil
}

// classifyWords applies FieldName's algorithm with dict: split the name
// into lower-case words (separators, digits, camelCase and acronym
// boundaries), take the longest dictionary hit over contiguous word runs,
// then the higher score, and damp it when a metadata word ("verified",
// "hash") says the field describes the data rather than holds it.
func classifyWords(name string, dict map[string]fieldRule) (Finding, bool) {
	var buf [maxFieldBytes]byte
	var start [maxFieldWords + 1]int // word k is buf[start[k]:start[k+1]]
	n, nw := 0, 0
	inWord := false
	for i := 0; i < len(name) && i < maxFieldBytes; i++ {
		c := name[i]
		sep := !isLetter(c) && c < 0x80
		if !sep && inWord && isUpper(c) && i > 0 {
			p := name[i-1]
			if isLower(p) || (isUpper(p) && i+1 < len(name) && isLower(name[i+1])) {
				inWord = false
			}
		}
		if sep {
			inWord = false
			continue
		}
		if !inWord {
			if nw == maxFieldWords {
				break
			}
			start[nw] = n
			nw++
			inWord = true
		}
		if isUpper(c) {
			c += 'a' - 'A'
		}
		buf[n] = c
		n++
	}
	start[nw] = n
	var best fieldRule
	bestLen, bi, bj := 0, 0, 0
	for i := 0; i < nw; i++ {
		for j := i + 1; j <= nw; j++ {
			l := start[j] - start[i]
			if l < bestLen {
				continue
			}
			r, ok := dict[string(buf[start[i]:start[j]])]
			if !ok || (r.wholeOnly && (i != 0 || j != nw)) {
				continue
			}
			if l > bestLen || r.score > best.score {
				best, bestLen, bi, bj = r, l, i, j
			}
		}
	}
	if bestLen == 0 || best.kind == veto {
		return Finding{}, false
	}
	score := best.score
	for k := 0; k < nw; k++ {
		if (k < bi || k >= bj) && fieldMeta[string(buf[start[k]:start[k+1]])] {
			score = math.Round(score*40) / 100
			break
		}
	}
	return Finding{Kind: best.kind, Score: score}, true
}
