// Package lineage describes what Veil's pipeline does to data as OpenLineage
// run events (spec 2-0-2), so a lineage server such as Marquez can show where
// every released number came from and what privacy protections it passed
// through on the way. A "veil_privacy" facet carries those protections: how
// each field was transformed at the edge, the privacy unit, contribution
// bounds, and the ε, δ and ρ a release spent.
//
// Events describe datasets and jobs, never their contents: no event value,
// visitor, pseudonym or query answer appears in an event.
package lineage

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/google/uuid"
)

// OpenLineage spec 2-0-2 identifiers.
const (
	SchemaURL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
	// Producer is the default producer URI of Veil's events and facets.
	Producer = "https://github.com/veil-analytics/veil"
)

// EventType is a run's state transition. A run sends one START and one of
// COMPLETE, ABORT or FAIL; RUNNING and OTHER may come in between.
type EventType string

// The event types of spec 2-0-2.
const (
	Start    EventType = "START"
	Running  EventType = "RUNNING"
	Complete EventType = "COMPLETE"
	Abort    EventType = "ABORT"
	Fail     EventType = "FAIL"
	Other    EventType = "OTHER"
)

// RunEvent is an OpenLineage RunEvent.
type RunEvent struct {
	EventType EventType `json:"eventType"`
	EventTime time.Time `json:"eventTime"` // encoded as RFC 3339
	Producer  string    `json:"producer"`
	SchemaURL string    `json:"schemaURL"`
	Run       Run       `json:"run"`
	Job       Job       `json:"job"`
	Inputs    []Dataset `json:"inputs,omitempty"`
	Outputs   []Dataset `json:"outputs,omitempty"`
}

// Run identifies one execution of a job.
type Run struct {
	RunID  string         `json:"runId"` // a UUID; see NewRunID
	Facets map[string]any `json:"facets,omitempty"`
}

// Job is the recurring process a run executes.
type Job struct {
	Namespace string         `json:"namespace"`
	Name      string         `json:"name"`
	Facets    map[string]any `json:"facets,omitempty"`
}

// Dataset is an input or output of a run, named by OpenLineage's naming
// convention: the namespace says where it lives (a URL of the server), the
// name what it is there.
type Dataset struct {
	Namespace string         `json:"namespace"`
	Name      string         `json:"name"`
	Facets    map[string]any `json:"facets,omitempty"`
}

// BaseFacet holds the fields every facet must carry.
type BaseFacet struct {
	Producer  string `json:"_producer"`
	SchemaURL string `json:"_schemaURL"`
}

// NewRunID returns a random (version 4) UUID for Run.RunID. Use one per
// run and send it with each of the run's events.
func NewRunID() string { return uuid.NewString() }

var eventTypes = map[EventType]bool{Start: true, Running: true, Complete: true, Abort: true, Fail: true, Other: true}

// Validate checks the fields spec 2-0-2 requires, so that a malformed event
// is caught where it is built rather than rejected later by a server that
// only logs it.
func (e *RunEvent) Validate() error {
	var errs []error
	if !eventTypes[e.EventType] {
		errs = append(errs, fmt.Errorf("eventType %q is not one of START, RUNNING, COMPLETE, ABORT, FAIL, OTHER", e.EventType))
	}
	if e.EventTime.IsZero() {
		errs = append(errs, errors.New("eventTime is missing"))
	}
	if u, err := url.Parse(e.Producer); err != nil || !u.IsAbs() {
		errs = append(errs, fmt.Errorf("producer %q is not an absolute URI", e.Producer))
	}
	if e.SchemaURL == "" {
		errs = append(errs, errors.New("schemaURL is missing"))
	}
	if _, err := uuid.Parse(e.Run.RunID); err != nil {
		errs = append(errs, fmt.Errorf("run.runId %q is not a UUID", e.Run.RunID))
	}
	if e.Job.Namespace == "" || e.Job.Name == "" {
		errs = append(errs, errors.New("job namespace and name are required"))
	}
	for _, d := range append(e.Inputs[:len(e.Inputs):len(e.Inputs)], e.Outputs...) {
		if d.Namespace == "" || d.Name == "" {
			errs = append(errs, fmt.Errorf("dataset %q/%q: namespace and name are required", d.Namespace, d.Name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lineage: invalid run event: %w", err)
	}
	return nil
}
