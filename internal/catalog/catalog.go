// Package catalog describes Veil's data products the way a data-mesh catalog
// does. A site is a data product owned by a domain (its OwnerDomain, or
// "default"); each product lists its owner, retention, privacy unit,
// budget, allowed purposes, the datasets it produces, and its schema: every
// field of the stored event, and every incoming field Veil drops at the edge,
// each with what Veil does to it and a privacy classification tagged with
// OpenMetadata-style names (PII.Sensitive, PII.NonSensitive, PII.None).
//
// Everything is derived, read-only, from site settings, the event schema and
// the PII report; nothing here reads events. The catalog carries no event
// counts: analysts and viewers may read it, and exact counts are for the
// DP releases to publish.
package catalog

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/veil-analytics/veil/internal/eventlog"
	"github.com/veil-analytics/veil/internal/lineage"
	"github.com/veil-analytics/veil/internal/pii"
	"github.com/veil-analytics/veil/internal/piireport"
	"github.com/veil-analytics/veil/internal/site"
	"github.com/veil-analytics/veil/internal/store"
)

// DefaultDomain owns the sites that name no owner domain.
const DefaultDomain = "default"

// Catalog is every data product, grouped by domain.
type Catalog struct {
	Domains []Domain `json:"domains"`
}

// Domain is a data-mesh domain and the products it owns.
type Domain struct {
	Name string `json:"name"`
	// Owners are the distinct owners of the domain's products.
	Owners   []string  `json:"owners"`
	Products []Product `json:"products"`
}

// Product is one site as a data product.
type Product struct {
	ID     string `json:"id"`
	Name   string `json:"name"`   // the site's domain name
	Domain string `json:"domain"` // the owning data-mesh domain
	Owner  string `json:"owner"`
	// RetentionDays is how long the event log keeps events.
	RetentionDays int `json:"retention_days"`
	// PrivacyUnit is what differential privacy protects: "visitor-day"
	// or "user".
	PrivacyUnit string `json:"privacy_unit"`
	Budget      Budget `json:"budget"`
	// ContributionBounds cap what one unit contributes per day.
	ContributionBounds map[string]int `json:"contribution_bounds"`
	Purposes           []string       `json:"purposes"`
	Schema             []Field        `json:"schema"`
	// Outputs are the datasets the product's pipeline writes, named as
	// in its OpenLineage events.
	Outputs []lineage.Dataset `json:"outputs"`
	// PII summarizes the PII report; nil when none is available.
	PII *PIISummary `json:"pii,omitempty"`
}

// Budget is a product's privacy budget per unit.
type Budget struct {
	EpsilonPerPeriod float64 `json:"epsilon_per_period"`
	Delta            float64 `json:"delta"`
	Period           string  `json:"period"` // "day" or "month"
	// Composition says how releases add up: visitor-days on different
	// days are disjoint (parallel); a user appears in every day of the
	// month (sequential).
	Composition lineage.Composition `json:"composition"`
}

// PIISummary counts the fields the PII report wants looked at.
type PIISummary struct {
	FieldsObserved int `json:"fields_observed"`
	NeedAction     int `json:"need_action"`
	NeedReview     int `json:"need_review"`
}

// Transform is what Veil does to a field before (or instead of) storing it.
// The values shared with lineage are spelled as there; Pseudonymized
// refines lineage's "hashed" for keyed pseudonyms that link a unit's or a
// value's events, as opposed to an unlinkable hash.
type Transform string

const (
	Kept          = Transform(lineage.Kept)
	Generalized   = Transform(lineage.Generalized)
	Pseudonymized = Transform("pseudonymized")
	Hashed        = Transform(lineage.Hashed)
	Tokenized     = Transform(lineage.Tokenized)
	Dropped       = Transform(lineage.Dropped)
	Redacted      = Transform(lineage.Redacted)
)

// Classification is what a field's data is, for privacy.
type Classification string

const (
	// DirectIdentifier identifies a person on its own (an email, an IP
	// address, a declared user id).
	DirectIdentifier Classification = "direct_identifier"
	// QuasiIdentifier identifies in combination (time, country, browser,
	// pages visited).
	QuasiIdentifier Classification = "quasi_identifier"
	// Sensitive is personal data that is not directly identifying but links
	// or reveals a person's data (pseudonyms, free text that may hold
	// personal data).
	Sensitive Classification = "sensitive"
	// Public says nothing about any person.
	Public Classification = "public"
)

// Field is one field of a product's schema.
type Field struct {
	Name           string         `json:"name"`
	Type           string         `json:"type"`
	Description    string         `json:"description"`
	Transform      Transform      `json:"transform"`
	Classification Classification `json:"classification"`
	Tags           []string       `json:"tags"`
	// Declared is the site's declared action for a prop.
	Declared store.FieldAction `json:"declared,omitempty"`
	// Detected are the kinds of personal data the PII report found in the
	// field's incoming values.
	Detected []pii.Kind `json:"detected,omitempty"`
	// Flag says why the field needs its owner's attention.
	Flag string `json:"flag,omitempty"`
}

// Tags.
const (
	TagPIISensitive    = "PII.Sensitive"
	TagPIINonSensitive = "PII.NonSensitive"
	TagPIINone         = "PII.None"
	TagQuasiIdentifier = "Veil.QuasiIdentifier"
	TagDirect          = "Veil.DirectIdentifier"
	// TagPIIDetected marks a field whose stored values the PII report says
	// carry personal data its declaration does not protect.
	TagPIIDetected = "Veil.PIIDetected"
)

var transformTags = map[Transform]string{
	Generalized: "Veil.Generalized", Pseudonymized: "Veil.Pseudonymized", Hashed: "Veil.Hashed",
	Tokenized: "Veil.Tokenized", Dropped: "Veil.Dropped", Redacted: "Veil.Redacted",
}

// tags derives a field's tags from its classification and transform.
func tags(c Classification, t Transform) []string {
	var out []string
	switch c {
	case DirectIdentifier:
		out = []string{TagPIISensitive, TagDirect}
	case Sensitive:
		out = []string{TagPIISensitive}
	case QuasiIdentifier:
		out = []string{TagPIINonSensitive, TagQuasiIdentifier}
	default:
		out = []string{TagPIINone}
	}
	if tt, ok := transformTags[t]; ok {
		out = append(out, tt)
	}
	return out
}

func field(name, typ string, t Transform, c Classification, desc string) Field {
	return Field{Name: name, Type: typ, Description: desc, Transform: t, Classification: c, Tags: tags(c, t)}
}

// PIISource gives a site's PII report (piireport.Reporter).
type PIISource interface {
	Report(ctx context.Context, s store.Site) ([]piireport.FieldReport, error)
}

// Locations name where a deployment keeps its datasets, as OpenLineage
// namespaces.
type Locations struct {
	EventLog string // e.g. "nats://127.0.0.1:4222"; default "nats://embedded"
	Store    string // e.g. "sqlite:///var/lib/veil/veil.db"; default "sqlite://veil.db"
}

func (l Locations) withDefaults() Locations {
	if l.EventLog == "" {
		l.EventLog = "nats://embedded"
	}
	if l.Store == "" {
		l.Store = "sqlite://veil.db"
	}
	return l
}

// Build describes sites as products grouped by domain, domains and
// products sorted by name. src may be nil.
func Build(ctx context.Context, sites []store.Site, src PIISource, loc Locations) (Catalog, error) {
	byDomain := map[string]*Domain{}
	for _, s := range sites {
		p, err := ProductOf(ctx, s, src, loc)
		if err != nil {
			return Catalog{}, err
		}
		d := byDomain[p.Domain]
		if d == nil {
			d = &Domain{Name: p.Domain, Owners: []string{}}
			byDomain[p.Domain] = d
		}
		d.Products = append(d.Products, p)
		if p.Owner != "" && !slices.Contains(d.Owners, p.Owner) {
			d.Owners = append(d.Owners, p.Owner)
		}
	}
	c := Catalog{Domains: []Domain{}}
	for _, d := range byDomain {
		slices.Sort(d.Owners)
		slices.SortFunc(d.Products, func(a, b Product) int { return strings.Compare(a.Name, b.Name) })
		c.Domains = append(c.Domains, *d)
	}
	slices.SortFunc(c.Domains, func(a, b Domain) int { return strings.Compare(a.Name, b.Name) })
	return c, nil
}

// ProductOf describes one site. src may be nil.
func ProductOf(ctx context.Context, s store.Site, src PIISource, loc Locations) (Product, error) {
	v := site.ViewOf(s)
	loc = loc.withDefaults()
	p := Product{
		ID: s.ID, Name: s.Domain, Domain: cmp.Or(s.OwnerDomain, DefaultDomain), Owner: s.Owner,
		RetentionDays: v.RetentionDays, PrivacyUnit: v.PrivacyUnit,
		Budget:             Budget{EpsilonPerPeriod: v.DailyEpsilon, Delta: v.Delta, Period: v.BudgetPeriod, Composition: lineage.Parallel},
		ContributionBounds: v.Caps, Purposes: v.Purposes,
		Outputs: []lineage.Dataset{
			{Namespace: loc.EventLog, Name: eventlog.StreamName(s.ID)},
			{Namespace: loc.Store, Name: "agg_rollup"},
			{Namespace: loc.Store, Name: "agg_pairs"},
			{Namespace: loc.Store, Name: "released"},
		},
	}
	if s.UserUnit {
		p.Budget.Composition = lineage.Sequential
	}
	for _, a := range s.Fields {
		if a == store.FieldTokenize {
			// Tokenized values are held apart, in the vault.
			p.Outputs = append(p.Outputs, lineage.Dataset{Namespace: loc.Store, Name: "vault_values"})
			break
		}
	}
	var reps []piireport.FieldReport
	if src != nil {
		var err error
		if reps, err = src.Report(ctx, s); err != nil {
			return Product{}, fmt.Errorf("pii report of %s: %w", s.Domain, err)
		}
		p.PII = summarize(reps)
	}
	p.Schema = append(eventSchema(s, v), propSchema(s, reps)...)
	p.Schema = append(p.Schema, edgeDrops(s)...)
	return p, nil
}

func summarize(reps []piireport.FieldReport) *PIISummary {
	sum := &PIISummary{}
	for _, r := range reps {
		if r.Seen > 0 {
			sum.FieldsObserved++
		}
		switch r.Status {
		case piireport.StatusAction:
			sum.NeedAction++
		case piireport.StatusReview:
			sum.NeedReview++
		}
	}
	return sum
}
