package lineage

import (
	"maps"
	"time"
)

// PrivacyFacetKey is the facet name under which Veil's privacy facet appears
// in a dataset's facets.
const PrivacyFacetKey = "veil_privacy"

// PrivacyFacetSchemaURL points at the JSON Schema of PrivacyFacet, kept
// beside this file as privacy_facet.json.
const PrivacyFacetSchemaURL = "https://raw.githubusercontent.com/veil-analytics/veil/main/internal/lineage/privacy_facet.json#/$defs/VeilPrivacyFacet"

// Transform is what the collector did to one incoming field before the
// event was stored.
type Transform string

// The transforms a field can go through at the edge.
const (
	Kept        Transform = "kept"        // stored as received (after validation)
	Dropped     Transform = "dropped"     // never stored
	Hashed      Transform = "hashed"      // replaced by a keyed pseudonym
	Tokenized   Transform = "tokenized"   // replaced by a vault token; the value is held apart
	Generalized Transform = "generalized" // coarsened, e.g. IP to country, UA to browser family
	Redacted    Transform = "redacted"    // personal data found inside it was removed
)

// PrivacyFacet is the "veil_privacy" dataset facet: the protections the data
// in a dataset has been through. Zero fields are left out.
type PrivacyFacet struct {
	BaseFacet
	// PrivacyUnit is what differential privacy protects, e.g. "visitor-day"
	// or "user".
	PrivacyUnit string `json:"privacyUnit,omitempty"`
	// PseudonymKeyVersion names the key that made the pseudonyms in the
	// dataset, so a key rotation shows up in lineage.
	PseudonymKeyVersion string               `json:"pseudonymKeyVersion,omitempty"`
	Fields              map[string]Transform `json:"fields,omitempty"`
	Bounds              *Bounds              `json:"contributionBounds,omitempty"`
	DP                  *DP                  `json:"dp,omitempty"`
}

// Bounds are the per-unit contribution caps applied during aggregation; the
// sensitivity of every release follows from them.
type Bounds struct {
	MaxPartitionsContributed     int   `json:"maxPartitionsContributed"`
	MaxContributionsPerPartition int64 `json:"maxContributionsPerPartition"`
}

// DP is the privacy loss of a release, per privacy unit.
type DP struct {
	Mechanism   string      `json:"mechanism"` // "laplace" or "gaussian"
	Epsilon     float64     `json:"epsilon"`
	Delta       float64     `json:"delta"`
	Rho         float64     `json:"rho,omitempty"` // zCDP ρ, for Gaussian releases
	Composition Composition `json:"composition,omitempty"`
}

// Composition says how a release's privacy loss adds to earlier ones.
type Composition string

// The compositions Veil's accountant uses.
const (
	// Parallel: the release touches disjoint units (visitor-days on
	// different days), so each unit's loss is charged once.
	Parallel Composition = "parallel"
	// Sequential: the same units (users) appear in every release, so their
	// losses add up within the budget period.
	Sequential Composition = "sequential"
)

// Source builds the events one Veil deployment emits.
type Source struct {
	Namespace string // job namespace, e.g. "veil" or one per deployment
	Producer  string // producer URI; empty means Producer
}

// Ingestion describes the collector of one site: events come in over HTTP,
// are minimized, and go to the site's stream.
type Ingestion struct {
	Site string
	// Endpoint is the collector's HTTP endpoint, e.g. namespace
	// "https://collect.example.com", name "/api/event".
	Endpoint Dataset
	// Stream is the event log, e.g. namespace "nats://127.0.0.1:4222",
	// name the JetStream stream.
	Stream              Dataset
	PrivacyUnit         string
	PseudonymKeyVersion string
	Fields              map[string]Transform // by incoming field name
}

// Aggregation describes the aggregator of one site: it reads the stream and
// writes exact rollups, bounding each unit's contributions.
type Aggregation struct {
	Site        string
	Stream      Dataset
	Rollups     []Dataset // e.g. namespace "sqlite:///var/lib/veil/veil.db", name "rollup_hourly"
	PrivacyUnit string
	Bounds      Bounds
}

// Release describes a differentially private release from rollups.
type Release struct {
	Site        string
	Rollups     []Dataset
	Released    Dataset
	PrivacyUnit string
	Bounds      Bounds
	DP          DP
}

// IngestionEvent returns the event for a transition of an ingestion run, as
// job "veil.ingest.<site>".
func (s Source) IngestionEvent(t EventType, runID string, at time.Time, in Ingestion) RunEvent {
	out := s.withPrivacy(in.Stream, PrivacyFacet{
		PrivacyUnit:         in.PrivacyUnit,
		PseudonymKeyVersion: in.PseudonymKeyVersion,
		Fields:              in.Fields,
	})
	return s.event(t, runID, at, "veil.ingest."+in.Site, []Dataset{in.Endpoint}, []Dataset{out})
}

// AggregationEvent returns the event for a transition of an aggregation run,
// as job "veil.aggregate.<site>".
func (s Source) AggregationEvent(t EventType, runID string, at time.Time, a Aggregation) RunEvent {
	outs := make([]Dataset, len(a.Rollups))
	for i, r := range a.Rollups {
		outs[i] = s.withPrivacy(r, PrivacyFacet{PrivacyUnit: a.PrivacyUnit, Bounds: nonZero(a.Bounds)})
	}
	return s.event(t, runID, at, "veil.aggregate."+a.Site, []Dataset{a.Stream}, outs)
}

// ReleaseEvent returns the event for a transition of a DP release run, as job
// "veil.release.<site>". The released dataset carries the privacy loss.
func (s Source) ReleaseEvent(t EventType, runID string, at time.Time, r Release) RunEvent {
	dp := r.DP
	out := s.withPrivacy(r.Released, PrivacyFacet{PrivacyUnit: r.PrivacyUnit, Bounds: nonZero(r.Bounds), DP: &dp})
	return s.event(t, runID, at, "veil.release."+r.Site, r.Rollups, []Dataset{out})
}

func nonZero(b Bounds) *Bounds {
	if b == (Bounds{}) {
		return nil
	}
	return &b
}

func (s Source) producer() string {
	if s.Producer == "" {
		return Producer
	}
	return s.Producer
}

func (s Source) event(t EventType, runID string, at time.Time, job string, in, out []Dataset) RunEvent {
	return RunEvent{
		EventType: t,
		EventTime: at.UTC(),
		Producer:  s.producer(),
		SchemaURL: SchemaURL,
		Run:       Run{RunID: runID},
		Job:       Job{Namespace: s.Namespace, Name: job},
		Inputs:    in,
		Outputs:   out,
	}
}

// withPrivacy returns d with the privacy facet added, leaving the caller's
// facet map untouched.
func (s Source) withPrivacy(d Dataset, f PrivacyFacet) Dataset {
	f.BaseFacet = BaseFacet{Producer: s.producer(), SchemaURL: PrivacyFacetSchemaURL}
	facets := maps.Clone(d.Facets)
	if facets == nil {
		facets = map[string]any{}
	}
	facets[PrivacyFacetKey] = f
	d.Facets = facets
	return d
}
