// Package audit keeps Veil's tamper-evident audit trail.
package audit

import (
	"context"
	"time"
)

// Entry is one audited action. It holds no raw personal data: subjects and
// values appear only as keyed pseudonyms or opaque ids.
type Entry struct {
	Time   time.Time         `json:"time"`
	Actor  string            `json:"actor"`  // token or account id, or "system"
	Action string            `json:"action"` // e.g. "site.create", "vault.detokenize", "dsr.erase", "dp.release", "policy.deny"
	Target string            `json:"target"` // what the action was on: a site id, token id, subject pseudonym
	Reason string            `json:"reason,omitempty"`
	Detail map[string]string `json:"detail,omitempty"`
}

// Recorder appends entries durably: Record returns only after the entry is
// on stable storage, so the action it records may then be acknowledged.
type Recorder interface {
	Record(ctx context.Context, e Entry) error
}
