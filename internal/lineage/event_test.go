package lineage

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var (
	testSource = Source{Namespace: "veil-test"}
	testTime   = time.Date(2025, 3, 1, 13, 0, 0, 0, time.FixedZone("CET", 3600))
)

const testRunID = "3f0a8c4e-5b7d-4e21-9c3a-1d2e3f4a5b6c"

func ingestion() Ingestion {
	return Ingestion{
		Site:                "example.com",
		Endpoint:            Dataset{Namespace: "https://collect.example.com", Name: "/api/event"},
		Stream:              Dataset{Namespace: "nats://127.0.0.1:4222", Name: "VEIL_EVENTS_example_com"},
		PrivacyUnit:         "visitor-day",
		PseudonymKeyVersion: "2025-03-01",
		Fields: map[string]Transform{
			"ip": Generalized, "user_agent": Generalized, "url": Redacted, "referrer": Redacted,
			"props.email": Dropped, "props.order_id": Tokenized, "user_id": Hashed, "name": Kept,
		},
	}
}

func aggregation() Aggregation {
	return Aggregation{
		Site:   "example.com",
		Stream: Dataset{Namespace: "nats://127.0.0.1:4222", Name: "VEIL_EVENTS_example_com"},
		Rollups: []Dataset{
			{Namespace: "sqlite:///var/lib/veil/veil.db", Name: "rollup_hourly"},
			{Namespace: "sqlite:///var/lib/veil/veil.db", Name: "rollup_daily"},
		},
		PrivacyUnit: "visitor-day",
		Bounds:      Bounds{MaxPartitionsContributed: 3, MaxContributionsPerPartition: 1},
	}
}

func release() Release {
	return Release{
		Site:        "example.com",
		Rollups:     []Dataset{{Namespace: "sqlite:///var/lib/veil/veil.db", Name: "rollup_daily"}},
		Released:    Dataset{Namespace: "sqlite:///var/lib/veil/veil.db", Name: "released_daily"},
		PrivacyUnit: "visitor-day",
		Bounds:      Bounds{MaxPartitionsContributed: 3, MaxContributionsPerPartition: 1},
		DP:          DP{Mechanism: "gaussian", Epsilon: 0.6880, Delta: 1e-3, Rho: 1.0 / 32, Composition: Parallel},
	}
}

func TestEventsMatchGolden(t *testing.T) {
	events := map[string]RunEvent{
		"ingest":    testSource.IngestionEvent(Start, testRunID, testTime, ingestion()),
		"aggregate": testSource.AggregationEvent(Complete, testRunID, testTime, aggregation()),
		"release":   testSource.ReleaseEvent(Complete, testRunID, testTime, release()),
	}
	for name, ev := range events {
		t.Run(name, func(t *testing.T) {
			if err := ev.Validate(); err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(ev, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", name+".json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the golden file (go test -update to accept):\n%s", path, got)
			}
			checkShape(t, got)

			// Decoding into RunEvent and re-encoding keeps every field (facets
			// come back as maps, so compare as generic JSON).
			var back RunEvent
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatal(err)
			}
			again, _ := json.Marshal(back)
			var x, y any
			json.Unmarshal(got, &x)
			json.Unmarshal(again, &y)
			if !reflect.DeepEqual(x, y) {
				t.Errorf("round trip changed the event:\n%s", again)
			}
		})
	}
}

// checkShape checks an encoded event against spec 2-0-2 by hand: required
// fields, the RunEvent schema URL, an RFC 3339 time, a UUID run id, and
// _producer and _schemaURL on every facet.
func checkShape(t *testing.T, b []byte) {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"eventTime", "producer", "schemaURL", "eventType", "run", "job"} {
		if _, ok := ev[k]; !ok {
			t.Errorf("required field %q missing", k)
		}
	}
	if ev["schemaURL"] != "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent" {
		t.Errorf("schemaURL = %v", ev["schemaURL"])
	}
	if !eventTypes[EventType(ev["eventType"].(string))] {
		t.Errorf("eventType = %v", ev["eventType"])
	}
	ts, _ := ev["eventTime"].(string)
	if tm, err := time.Parse(time.RFC3339, ts); err != nil || !tm.Equal(testTime) || !strings.HasSuffix(ts, "Z") {
		t.Errorf("eventTime %q: %v", ts, err)
	}
	run := ev["run"].(map[string]any)
	if _, err := uuid.Parse(run["runId"].(string)); err != nil {
		t.Errorf("runId: %v", err)
	}
	job := ev["job"].(map[string]any)
	if job["namespace"] != testSource.Namespace || !strings.HasPrefix(job["name"].(string), "veil.") {
		t.Errorf("job = %v", job)
	}
	var datasets []any
	for _, k := range []string{"inputs", "outputs"} {
		ds, _ := ev[k].([]any)
		if len(ds) == 0 {
			t.Errorf("%s empty", k)
		}
		datasets = append(datasets, ds...)
	}
	privacy := 0
	for _, d := range datasets {
		d := d.(map[string]any)
		if d["namespace"] == "" || d["name"] == "" {
			t.Errorf("dataset without namespace or name: %v", d)
		}
		facets, _ := d["facets"].(map[string]any)
		for name, f := range facets {
			f := f.(map[string]any)
			if f["_producer"] != Producer || f["_schemaURL"] == nil {
				t.Errorf("facet %s lacks _producer or _schemaURL: %v", name, f)
			}
			if name == PrivacyFacetKey {
				privacy++
			}
		}
	}
	if privacy == 0 {
		t.Error("no dataset carries the privacy facet")
	}
}

// The facet must say only what its published schema declares.
func TestPrivacyFacetMatchesSchema(t *testing.T) {
	b, err := os.ReadFile("privacy_facet.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		ID   string `json:"$id"`
		Defs struct {
			Facet struct {
				AllOf []struct {
					Ref        string                     `json:"$ref"`
					Properties map[string]json.RawMessage `json:"properties"`
				} `json:"allOf"`
			} `json:"VeilPrivacyFacet"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	if schema.ID+"#/$defs/VeilPrivacyFacet" != PrivacyFacetSchemaURL {
		t.Errorf("schema $id %q does not match PrivacyFacetSchemaURL", schema.ID)
	}
	props := schema.Defs.Facet.AllOf[1].Properties
	var sub struct {
		Properties map[string]json.RawMessage `json:"properties"`
		Enum       []string                   `json:"enum"`
		Additional struct {
			Enum []string `json:"enum"`
		} `json:"additionalProperties"`
	}

	full := testSource.ReleaseEvent(Complete, testRunID, testTime, release()).Outputs[0].Facets[PrivacyFacetKey].(PrivacyFacet)
	full.Fields = ingestion().Fields
	full.PseudonymKeyVersion = "v1"
	enc, _ := json.Marshal(full)
	var got map[string]json.RawMessage
	json.Unmarshal(enc, &got)
	for k, v := range got {
		if k == "_producer" || k == "_schemaURL" {
			continue
		}
		if _, ok := props[k]; !ok {
			t.Errorf("facet field %q is not in the schema", k)
			continue
		}
		if k == "contributionBounds" || k == "dp" {
			json.Unmarshal(props[k], &sub)
			var inner map[string]any
			json.Unmarshal(v, &inner)
			for ik := range inner {
				if _, ok := sub.Properties[ik]; !ok {
					t.Errorf("facet field %s.%s is not in the schema", k, ik)
				}
			}
		}
	}
	if len(got) != len(props)+2 {
		t.Errorf("facet has %d fields, schema declares %d besides _producer and _schemaURL", len(got)-2, len(props))
	}

	sub.Additional.Enum = nil
	json.Unmarshal(props["fields"], &sub)
	transforms := []string{string(Kept), string(Dropped), string(Hashed), string(Tokenized), string(Generalized), string(Redacted)}
	if !slices.Equal(sub.Additional.Enum, transforms) {
		t.Errorf("schema transforms %v, Go has %v", sub.Additional.Enum, transforms)
	}
	var dp struct {
		Properties struct {
			Composition struct {
				Enum []string `json:"enum"`
			} `json:"composition"`
		} `json:"properties"`
	}
	json.Unmarshal(props["dp"], &dp)
	if want := []string{string(Parallel), string(Sequential)}; !slices.Equal(dp.Properties.Composition.Enum, want) {
		t.Errorf("schema compositions %v, Go has %v", dp.Properties.Composition.Enum, want)
	}
}

func TestNewRunID(t *testing.T) {
	a, b := NewRunID(), NewRunID()
	u, err := uuid.Parse(a)
	if err != nil || u.Version() != 4 || u.Variant() != uuid.RFC4122 {
		t.Fatalf("run id %q: %v", a, err)
	}
	if a == b {
		t.Fatal("two run ids are equal")
	}
}

func TestValidate(t *testing.T) {
	good := func() RunEvent { return testSource.IngestionEvent(Start, testRunID, testTime, ingestion()) }
	cases := map[string]func(*RunEvent){
		"eventType":  func(e *RunEvent) { e.EventType = "DONE" },
		"eventTime":  func(e *RunEvent) { e.EventTime = time.Time{} },
		"producer":   func(e *RunEvent) { e.Producer = "veil" },
		"schemaURL":  func(e *RunEvent) { e.SchemaURL = "" },
		"runId":      func(e *RunEvent) { e.Run.RunID = "run-1" },
		"job":        func(e *RunEvent) { e.Job.Name = "" },
		"dataset":    func(e *RunEvent) { e.Outputs[0].Namespace = "" },
		"input name": func(e *RunEvent) { e.Inputs[0].Name = "" },
	}
	for name, breakIt := range cases {
		ev := good()
		breakIt(&ev)
		if err := ev.Validate(); err == nil {
			t.Errorf("%s: invalid event accepted", name)
		}
	}
	ev := good()
	if err := ev.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestBuildersLeaveInputsAlone(t *testing.T) {
	in := ingestion()
	in.Stream.Facets = map[string]any{"other": BaseFacet{Producer: Producer, SchemaURL: "https://example.com/s"}}
	ev := testSource.IngestionEvent(Start, testRunID, testTime, in)
	if len(in.Stream.Facets) != 1 {
		t.Fatal("builder added its facet to the caller's map")
	}
	if f := ev.Outputs[0].Facets; len(f) != 2 || f["other"] == nil || f[PrivacyFacetKey] == nil {
		t.Fatalf("output facets %v", f)
	}
	if ev.Job.Name != "veil.ingest.example.com" || ev.EventTime.Location() != time.UTC {
		t.Fatalf("job %q, time %v", ev.Job.Name, ev.EventTime)
	}
}
