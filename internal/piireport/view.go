package piireport

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/veil-analytics/veil/internal/pii"
	"github.com/veil-analytics/veil/internal/store"
)

// Status says whether a field needs its owner's attention.
type Status string

const (
	StatusOK     Status = "ok"     // nothing to do
	StatusReview Status = "review" // worth a look: the name suggests personal data, or it is sent but dropped
	StatusAction Status = "action" // values look like personal data and the schema does not protect them
)

// FieldReport is what is known about one field of a site. It holds counts,
// kinds and scores only, never a value.
type FieldReport struct {
	Field    string    `json:"field"`
	Seen     int64     `json:"seen"` // values observed
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Kinds are what values looked like, most frequent first.
	Kinds []KindStat `json:"kinds"`
	// NameSuggests is what the field's name suggests it holds.
	NameSuggests []NameHint `json:"name_suggests"`
	// Detected are the kinds the field is taken to carry: confidently
	// detected in values, or weakly detected and named so.
	Detected []pii.Kind `json:"detected"`
	// Declared is the site's declared action for the field; empty when
	// undeclared.
	Declared store.FieldAction `json:"declared,omitempty"`
	Status   Status            `json:"status"`
	Advice   string            `json:"advice"`
}

// KindStat counts the values of a field that looked like one kind.
type KindStat struct {
	Kind     pii.Kind `json:"kind"`
	Hits     int64    `json:"hits"`
	Share    float64  `json:"share"` // Hits / Seen
	MaxScore float64  `json:"max_score"`
}

// NameHint is one kind of personal data a field's name suggests.
type NameHint struct {
	Kind  pii.Kind `json:"kind"`
	Score float64  `json:"score"`
}

// Report returns the fields of site s, those needing action first. Declared
// fields appear even when nothing was observed for them yet.
func (r *Reporter) Report(ctx context.Context, s store.Site) ([]FieldReport, error) {
	rows, err := r.cfg.DB.QueryContext(ctx,
		`SELECT field, kind, seen, hits, max_score, last_seen FROM pii_fields WHERE site = ? ORDER BY field, kind`, s.ID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []FieldReport
	for rows.Next() {
		var field, kind string
		var seen, hits, last int64
		var score float64
		if err := rows.Scan(&field, &kind, &seen, &hits, &score, &last); err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].Field != field {
			out = append(out, FieldReport{Field: field, Kinds: []KindStat{}})
		}
		fr := &out[len(out)-1]
		fr.Seen += seen
		if t := time.Unix(last, 0).UTC(); t.After(fr.LastSeen) {
			fr.LastSeen = t
		}
		if kind != "" {
			fr.Kinds = append(fr.Kinds, KindStat{Kind: pii.Kind(kind), Hits: hits, MaxScore: score})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for name := range s.Fields {
		if !slices.ContainsFunc(out, func(f FieldReport) bool { return f.Field == name }) {
			out = append(out, FieldReport{Field: name, Kinds: []KindStat{}})
		}
	}
	for i := range out {
		finish(&out[i], s)
	}
	slices.SortFunc(out, func(a, b FieldReport) int {
		return cmp.Or(cmp.Compare(rank(b.Status), rank(a.Status)), cmp.Compare(b.Seen, a.Seen), strings.Compare(a.Field, b.Field))
	})
	return out, nil
}

func rank(s Status) int {
	switch s {
	case StatusAction:
		return 2
	case StatusReview:
		return 1
	}
	return 0
}

// Placeholder reports whether field is a name this package counts under in
// place of a field's own (OtherFields, or a redacted field name).
func Placeholder(field string) bool {
	return field == OtherFields || strings.HasPrefix(field, redactedPrefix)
}

// finish fills in shares, name hints, the declaration and advice.
func finish(fr *FieldReport, s store.Site) {
	for i := range fr.Kinds {
		if fr.Seen > 0 {
			fr.Kinds[i].Share = float64(fr.Kinds[i].Hits) / float64(fr.Seen)
		}
	}
	slices.SortFunc(fr.Kinds, func(a, b KindStat) int {
		return cmp.Or(cmp.Compare(b.Hits, a.Hits), cmp.Compare(b.MaxScore, a.MaxScore), strings.Compare(string(a.Kind), string(b.Kind)))
	})
	fr.NameSuggests = []NameHint{}
	if !Placeholder(fr.Field) {
		for _, f := range pii.ClassifyName(fr.Field) {
			fr.NameSuggests = append(fr.NameSuggests, NameHint{Kind: f.Kind, Score: f.Score})
		}
	}
	fr.Detected = []pii.Kind{}
	for _, k := range fr.Kinds {
		if strong(fr, k) {
			fr.Detected = append(fr.Detected, k.Kind)
		}
	}
	fr.Declared = s.Fields[fr.Field]
	fr.Status, fr.Advice = advise(fr, s)
}

// nameOnly are kinds no value recognizer looks for: only a field's name
// can reveal them.
var nameOnly = map[pii.Kind]bool{
	pii.Name: true, pii.Address: true, pii.DateOfBirth: true, pii.Passport: true,
	pii.UserID: true, pii.Credential: true, pii.NationalID: true,
}

// strong reports whether values of kind k were confidently detected, or
// detected weakly in a field whose name suggests the same kind (a weak
// "nine digits" in a field named ssn is an SSN: Presidio calls this
// context enhancement).
func strong(fr *FieldReport, k KindStat) bool {
	if k.MaxScore >= pii.DefaultThreshold {
		return true
	}
	for _, n := range fr.NameSuggests {
		if n.Kind == k.Kind && n.Score >= pii.DefaultThreshold {
			return true
		}
	}
	return false
}

// strongKind returns the most frequent strong kind.
func strongKind(fr *FieldReport) (KindStat, bool) {
	for _, k := range fr.Kinds { // most frequent first
		if strong(fr, k) {
			return k, true
		}
	}
	return KindStat{}, false
}

// weakShare is the share of values above which a weak resemblance is worth
// mentioning.
const weakShare = 0.1

func advise(fr *FieldReport, s store.Site) (Status, string) {
	n := count(fr.Seen)
	top, hasTop := strongKind(fr)
	looks := ""
	if hasTop {
		looks = fmt.Sprintf("values look like %s in %s of %s events", KindLabel(top.Kind), percent(top.Hits, fr.Seen), n)
	}
	switch {
	case fr.Field == OtherFields:
		return StatusReview, fmt.Sprintf("%s values came in fields past the report's limit per site: declare a schema so that undeclared fields are dropped", n)
	case strings.HasPrefix(fr.Field, redactedPrefix):
		return StatusAction, fmt.Sprintf("%s props had a name that itself looks like personal data; such props are dropped: put personal data in declared fields, never in prop names", n)
	case fr.Seen == 0:
		return StatusOK, fmt.Sprintf("declared %s; not sent since counting began", fr.Declared)
	}
	schema := len(s.Fields) > 0
	switch {
	case fr.Declared == store.FieldTokenize || fr.Declared == store.FieldHash:
		how := "replaced by a vault token before storage"
		if fr.Declared == store.FieldHash {
			how = "replaced by a keyed pseudonym before storage"
		}
		return StatusOK, join(looks, fmt.Sprintf("declared %s: %s", fr.Declared, how))
	case fr.Declared == store.FieldDrop:
		return StatusOK, join(looks, fmt.Sprintf("declared drop: never stored, though %s events still send it", n))
	case schema && fr.Declared == "":
		what := "dropped at ingestion"
		if s.Undeclared == store.UndeclaredReject {
			what = "events carrying it are rejected"
		}
		if hasTop {
			return StatusReview, fmt.Sprintf("not declared (%s), and %s: stop sending it, or declare it tokenize or hash if it is needed", what, looks)
		}
		return StatusReview, fmt.Sprintf("not declared: %s (%s events sent it): declare it if it is needed, or stop sending it", what, n)
	case !schema && !s.PropAllowed(fr.Field):
		return StatusReview, join(looks, fmt.Sprintf("not an allowed prop: dropped at ingestion (%s events sent it)", n))
	}
	// Kept: declared keep, or no schema (values are scanned and redacted,
	// which catches what the detectors recognize and nothing else).
	subject := "values"
	if fr.Declared == store.FieldKeep {
		subject = "declared keep, but values"
	}
	if hasTop {
		return StatusAction, fmt.Sprintf("%s look like %s in %s of %s events: declare this field as tokenize or hash, or stop sending it",
			subject, KindLabel(top.Kind), percent(top.Hits, fr.Seen), n)
	}
	if len(fr.NameSuggests) > 0 && fr.NameSuggests[0].Score >= pii.DefaultThreshold {
		k := fr.NameSuggests[0].Kind
		if nameOnly[k] {
			return StatusReview, fmt.Sprintf("the name suggests %s, which values cannot be checked for: if it holds them, declare it tokenize, hash or drop", KindLabel(k))
		}
		return StatusReview, fmt.Sprintf("the name suggests %s, but no value in %s events looked like one: rename it, or declare it tokenize or hash if it holds them", KindLabel(k), n)
	}
	if len(fr.Kinds) > 0 && fr.Kinds[0].Share >= weakShare {
		k := fr.Kinds[0]
		return StatusReview, fmt.Sprintf("%s of %s values weakly resemble %s (score %.2f at most): if they identify people, declare this field as hash",
			percent(k.Hits, fr.Seen), n, KindLabel(k.Kind), k.MaxScore)
	}
	return StatusOK, fmt.Sprintf("no personal data seen in %s events", n)
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

var labels = map[pii.Kind]string{
	pii.Email: "emails", pii.Phone: "phone numbers", pii.CreditCard: "card numbers", pii.IBAN: "IBANs",
	pii.IPAddress: "IP addresses", pii.USSSN: "US social security numbers", pii.UKNINO: "UK National Insurance numbers",
	pii.ESNIF: "Spanish DNI/NIF numbers", pii.ESNIE: "Spanish NIE numbers", pii.INAadhaar: "Aadhaar numbers",
	pii.FRNIR: "French social security numbers (NIR)", pii.NationalID: "national identity or tax numbers",
	pii.Name: "person names", pii.Address: "postal addresses", pii.DateOfBirth: "dates of birth",
	pii.Passport: "passport numbers", pii.UserID: "user identifiers", pii.Credential: "credentials",
}

// KindLabel names a kind for people: "emails", "phone numbers".
func KindLabel(k pii.Kind) string {
	if l, ok := labels[k]; ok {
		return l
	}
	return string(k)
}

// percent formats hits/seen so that it never rounds to 0% or 100% when it
// is not.
func percent(hits, seen int64) string {
	switch {
	case seen == 0:
		return "0%"
	case hits == seen:
		return "100%"
	case hits*100 < seen:
		return "<1%"
	}
	return strconv.FormatInt(hits*100/seen, 10) + "%"
}

// count formats n with thousands separators: 1,204.
func count(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
