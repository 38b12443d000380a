// Package event defines the minimized analytics event: what is left of a hit
// after the edge has dropped the IP address, the user agent and any declared
// user id. Only this type is ever written to the event log.
package event

import (
	"encoding/hex"
	"time"
)

// Unit is the kind of privacy unit an event's pseudonym stands for.
type Unit uint8

const (
	// UnitVisitorDay is a cookieless visitor on one UTC day: a keyed hash of
	// site, IP and user agent under that day's salt, which is destroyed after
	// 48 hours.
	UnitVisitorDay Unit = 1
	// UnitUser is a declared user id, pseudonymized under a long-lived
	// per-site key.
	UnitUser Unit = 2
	// UnitEvent marks server-side events that carried neither a user id nor a
	// client IP and user agent: each event is its own unit.
	UnitEvent Unit = 3
)

func (u Unit) String() string {
	switch u {
	case UnitVisitorDay:
		return "visitor-day"
	case UnitUser:
		return "user"
	case UnitEvent:
		return "event"
	}
	return "unknown"
}

// Pseudonym is a 128-bit keyed hash; it never contains the raw identifier.
type Pseudonym [16]byte

func (p Pseudonym) String() string { return hex.EncodeToString(p[:]) }

// Prop is one custom property after PII redaction.
type Prop struct {
	Key, Value string
}

// Event is a minimized event as stored in the log.
type Event struct {
	// IDHash is a keyed hash of the client-supplied event id (idempotency);
	// zero when the client sent none. The raw id is never stored because
	// clients sometimes put personal data into it.
	IDHash     Pseudonym
	HasID      bool
	Time       time.Time // UTC, millisecond precision
	SiteID     string
	Name       string // "pageview", "engagement" or a custom event name
	Host       string
	Path       string
	Query      string // allow-listed query parameters only
	Referrer   string // host only
	Source     string
	UTMSource  string
	UTMMedium  string
	UTMCamp    string
	UTMTerm    string
	UTMContent string
	Country    string // ISO 3166-1 alpha-2 or ""
	Browser    string
	BrowserV   string
	OS         string
	OSV        string
	Device     string
	Unit       Unit
	Pseudonym  Pseudonym
	// KeyVersion identifies the key (or salt day) the pseudonym was made
	// under, so a key rotation is visible instead of silently breaking joins.
	KeyVersion  uint32
	Interactive bool
	ScrollDepth int16 // -1 when absent
	EngagedMS   uint32
	Props       []Prop
}

// IsPageview reports whether the event counts as a pageview.
func (e *Event) IsPageview() bool { return e.Name == "pageview" }
