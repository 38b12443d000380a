package dsr

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veil-analytics/veil/internal/aggregate"
	"github.com/veil-analytics/veil/internal/audit"
	"github.com/veil-analytics/veil/internal/consent"
	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/eventlog"
	"github.com/veil-analytics/veil/internal/store"
	"github.com/veil-analytics/veil/internal/vault"
)

// Log is what requests need of the event log (eventlog.Log).
type Log interface {
	UserEvents(ctx context.Context, siteID string, p event.Pseudonym, fn func(event.Event) error) error
	EraseUser(ctx context.Context, siteID string, p event.Pseudonym) ([]eventlog.Erased, error)
}

// Vault is what requests need of the vault (vault.Vault).
type Vault interface {
	Export(ctx context.Context, siteID, subject string) ([]vault.Item, error)
	Erase(ctx context.Context, siteID, subject string) (int, error)
	Detokenize(ctx context.Context, token, actor, reason string) (string, error)
}

// Pseudonyms derives a user's pseudonyms (pseudo.Pseudonymizer).
type Pseudonyms interface {
	// UserPseudonyms returns userID's pseudonyms on site under every
	// pseudonym key version, newest first.
	UserPseudonyms(siteID, userID string) ([]event.Pseudonym, error)
}

// Bounding is the aggregation of days not yet released
// (aggregate.Aggregator).
type Bounding interface {
	// EraseUnit pauses the site's counting, calls erase (which deletes p's
	// events from the log and returns them), takes their contribution back
	// from the exact rollups of open days and drops p's bounding state.
	EraseUnit(ctx context.Context, siteID string, p event.Pseudonym, erase func(context.Context) ([]eventlog.Erased, error)) (aggregate.UnitErasure, error)
}

// DefaultDeadline is GDPR's one month to answer (Art. 12(3)).
const DefaultDeadline = 30 * 24 * time.Hour

// Config wires a Service.
type Config struct {
	DB         *sql.DB // holds the request register (SQLite)
	Log        Log
	Vault      Vault
	Pseudonyms Pseudonyms
	// Bounding is nil where no aggregator runs in-process (separate
	// `veil aggregate` workers): the exact rollups of open days then keep
	// the subject's bounded contribution until retention removes them.
	Bounding Bounding
	Consent  *consent.Registry
	Audit    audit.Recorder
	// Ref is the keyed hasher of subjects: the register and the audit trail
	// name a subject only by Ref(site id, subject).
	Ref      func(siteID, subject string) string
	Now      func() time.Time
	Deadline time.Duration // 0: DefaultDeadline
	Logger   *slog.Logger
}

// Service answers data subject requests.
type Service struct {
	cfg  Config
	done *prometheus.CounterVec
}

// New prepares the request register and registers the service's metrics
// with reg.
func New(ctx context.Context, cfg Config, reg prometheus.Registerer) (*Service, error) {
	if cfg.DB == nil || cfg.Log == nil || cfg.Vault == nil || cfg.Pseudonyms == nil || cfg.Consent == nil || cfg.Audit == nil || cfg.Ref == nil {
		return nil, errors.New("dsr: database, log, vault, pseudonyms, consent, audit and subject hasher are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Deadline <= 0 {
		cfg.Deadline = DefaultDeadline
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if _, err := cfg.DB.ExecContext(ctx, registerSchema); err != nil {
		return nil, fmt.Errorf("dsr register: %w", err)
	}
	s := &Service{cfg: cfg}
	s.done = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "veil_dsr_requests_total",
		Help: "Data subject requests finished, by kind (export, erase) and outcome (completed, failed).",
	}, []string{"kind", "status"})
	for _, k := range []string{KindExport, KindErase} {
		for _, st := range []string{StatusCompleted, StatusFailed} {
			s.done.WithLabelValues(k, st)
		}
	}
	if err := reg.Register(s.done); err != nil {
		return nil, err
	}
	if err := reg.Register(&openCollector{s: s}); err != nil {
		return nil, err
	}
	return s, nil
}

// Ident names a data subject: exactly one of a declared user id or an
// e-mail address.
type Ident struct {
	UserID string `json:"user_id,omitempty"`
	Email  string `json:"email,omitempty"`
}

// EmailSubject is the vault subject of values tokenized for an e-mail
// address with no user id. Ingestion must build it with this function so a
// request finds what was stored.
func EmailSubject(email string) string { return "email:" + NormalizeEmail(email) }

// NormalizeEmail is the form of an address Veil keys on: lower case.
// Providers treat the local part case-insensitively in practice, and a
// request must not miss data because of capitalization.
func NormalizeEmail(email string) string { return strings.ToLower(email) }

// subject is the one string that names the request's subject in the
// register and the audit trail (through Ref).
func (id Ident) subject() string {
	if id.Email != "" {
		return EmailSubject(id.Email)
	}
	return consent.UserSubject(id.UserID)
}

// userIDs are the user ids the subject may have been declared under.
func (id Ident) userIDs() []string {
	if id.Email == "" {
		return []string{id.UserID}
	}
	if n := NormalizeEmail(id.Email); n != id.Email {
		return []string{id.Email, n}
	}
	return []string{id.Email}
}

// vaultSubjects are the vault subjects that may hold the subject's values.
func (id Ident) vaultSubjects() []string {
	var out []string
	if id.Email != "" {
		out = append(out, EmailSubject(id.Email))
	}
	for _, u := range id.userIDs() {
		out = append(out, consent.UserSubject(u))
	}
	return out
}

// ref is the keyed reference of the subject on a site.
func (s *Service) ref(siteID string, id Ident) string { return s.cfg.Ref(siteID, id.subject()) }

// notes tell the reader of an export or erasure report what it does not
// cover; they are the same for every subject.
var notes = []string{
	"Cookieless visits are recorded under a daily pseudonym that cannot be linked to a user id or e-mail address; they cannot be included, and their salt is destroyed after 48 hours.",
	"Statistics of days not yet published are computed without you. Statistics already published under differential privacy are not personal data about you and are not changed: differential privacy bounds how much any one person can influence them.",
}

// VaultItem is one tokenized value.
type VaultItem struct {
	Token   string    `json:"token"`
	Field   string    `json:"field"`
	Value   string    `json:"value"`
	Created time.Time `json:"created"`
}

// Event is one stored event of the subject.
type Event struct {
	Time           time.Time         `json:"time"`
	Name           string            `json:"name"`
	Host           string            `json:"host,omitempty"`
	Path           string            `json:"path,omitempty"`
	Query          string            `json:"query,omitempty"`
	Referrer       string            `json:"referrer,omitempty"`
	Source         string            `json:"source,omitempty"`
	UTMSource      string            `json:"utm_source,omitempty"`
	UTMMedium      string            `json:"utm_medium,omitempty"`
	UTMCampaign    string            `json:"utm_campaign,omitempty"`
	UTMTerm        string            `json:"utm_term,omitempty"`
	UTMContent     string            `json:"utm_content,omitempty"`
	Country        string            `json:"country,omitempty"`
	Browser        string            `json:"browser,omitempty"`
	BrowserVersion string            `json:"browser_version,omitempty"`
	OS             string            `json:"os,omitempty"`
	OSVersion      string            `json:"os_version,omitempty"`
	Device         string            `json:"device,omitempty"`
	Interactive    bool              `json:"interactive"`
	ScrollDepth    *int              `json:"scroll_depth,omitempty"`
	EngagedMS      uint32            `json:"engaged_ms,omitempty"`
	Props          map[string]string `json:"props,omitempty"`
	KeyVersion     uint32            `json:"key_version"`
	Pseudonym      string            `json:"pseudonym"`
}

func exportEvent(e event.Event) Event {
	out := Event{
		Time: e.Time.UTC(), Name: e.Name, Host: e.Host, Path: e.Path, Query: e.Query,
		Referrer: e.Referrer, Source: e.Source,
		UTMSource: e.UTMSource, UTMMedium: e.UTMMedium, UTMCampaign: e.UTMCamp, UTMTerm: e.UTMTerm, UTMContent: e.UTMContent,
		Country: e.Country, Browser: e.Browser, BrowserVersion: e.BrowserV, OS: e.OS, OSVersion: e.OSV, Device: e.Device,
		Interactive: e.Interactive, EngagedMS: e.EngagedMS, KeyVersion: e.KeyVersion, Pseudonym: e.Pseudonym.String(),
	}
	if e.ScrollDepth >= 0 {
		d := int(e.ScrollDepth)
		out.ScrollDepth = &d
	}
	if len(e.Props) > 0 {
		out.Props = make(map[string]string, len(e.Props))
		for _, p := range e.Props {
			out.Props[p.Key] = p.Value
		}
	}
	return out
}

// Export is what a data subject receives. It names the subject as the
// request did: the document is for them, and the privacy officer asking
// already holds the identifier. The identifier is never stored: the
// register and the audit trail keep only its keyed reference.
type Export struct {
	Found     bool                     `json:"found"`
	RequestID string                   `json:"request_id"`
	Site      string                   `json:"site"`
	Subject   Ident                    `json:"subject"`
	Generated time.Time                `json:"generated"`
	Vault     []VaultItem              `json:"vault"`
	Events    []Event                  `json:"events"`
	Consent   map[string]consent.State `json:"consent"`
	Notes     []string                 `json:"notes"`
}

// Export collects everything Veil holds about a subject on a site. The
// access is recorded in the audit trail before anything is returned; if it
// cannot be, nothing is.
func (s *Service) Export(ctx context.Context, site store.Site, id Ident, actor, reason string) (Export, error) {
	ref := s.ref(site.ID, id)
	req, err := s.open(ctx, site.ID, KindExport, ref, actor, reason)
	if err != nil {
		return Export{}, err
	}
	out, err := s.collect(ctx, site, id)
	if err == nil {
		err = s.cfg.Audit.Record(ctx, audit.Entry{
			Time: s.cfg.Now().UTC(), Actor: actor, Action: "dsr.export", Target: ref, Reason: reason,
			Detail: map[string]string{
				"site": site.ID, "request": req.ID, "identified_by": id.kind(),
				"vault_values": strconv.Itoa(len(out.Vault)), "events": strconv.Itoa(len(out.Events)),
				"consent_records": strconv.Itoa(len(out.Consent)),
			},
		})
		if err != nil {
			err = fmt.Errorf("dsr: audit record failed, export withheld: %w", err)
		}
	}
	if err != nil {
		s.fail(ctx, req, err)
		return Export{}, err
	}
	if err := s.finish(ctx, req, StatusCompleted); err != nil {
		return Export{}, err
	}
	out.RequestID = req.ID
	return out, nil
}

func (id Ident) kind() string {
	if id.Email != "" {
		return "email"
	}
	return "user_id"
}

func (s *Service) collect(ctx context.Context, site store.Site, id Ident) (Export, error) {
	out := Export{Site: site.Domain, Subject: id, Generated: s.cfg.Now().UTC(),
		Vault: []VaultItem{}, Events: []Event{}, Consent: map[string]consent.State{}, Notes: notes}
	for _, subj := range id.vaultSubjects() {
		items, err := s.cfg.Vault.Export(ctx, site.ID, subj)
		if err != nil {
			return Export{}, fmt.Errorf("dsr: vault export: %w", err)
		}
		for _, it := range items {
			out.Vault = append(out.Vault, VaultItem{Token: it.Token, Field: it.Field, Value: it.Value, Created: it.Created.UTC()})
		}
	}
	for _, uid := range id.userIDs() {
		ps, err := s.cfg.Pseudonyms.UserPseudonyms(site.ID, uid)
		if err != nil {
			return Export{}, fmt.Errorf("dsr: pseudonyms: %w", err)
		}
		for _, p := range ps {
			err := s.cfg.Log.UserEvents(ctx, site.ID, p, func(e event.Event) error {
				out.Events = append(out.Events, exportEvent(e))
				return nil
			})
			if err != nil {
				return Export{}, fmt.Errorf("dsr: event log: %w", err)
			}
		}
		states, err := s.cfg.Consent.Get(ctx, site.ID, s.cfg.Consent.UserRef(site.ID, uid))
		if err != nil {
			return Export{}, err
		}
		for p, st := range states {
			if cur, ok := out.Consent[p]; !ok || st.Updated.After(cur.Updated) {
				out.Consent[p] = st
			}
		}
	}
	sort.SliceStable(out.Events, func(i, j int) bool { return out.Events[i].Time.Before(out.Events[j].Time) })
	out.Found = len(out.Vault) > 0 || len(out.Events) > 0 || len(out.Consent) > 0
	return out, nil
}

// ErasureReport says what an erasure removed. A repeated erasure of the
// same subject reports zeros (and found=false).
type ErasureReport struct {
	RequestID string `json:"request_id"`
	Found     bool   `json:"found"`
	// VaultValues were crypto-shredded: their data keys are destroyed, so
	// no token of the subject resolves again (it answers "erased").
	VaultValues int `json:"vault_values"`
	// Events were deleted from the log, overwritten on disk.
	Events int `json:"events"`
	// PseudonymsSearched counts the pseudonyms looked for in the log: one
	// per pseudonym key version and user id form.
	PseudonymsSearched int `json:"pseudonyms_searched"`
	// BoundingUnits is the unit-days of unreleased aggregation state
	// dropped (0 where no aggregator runs in-process).
	BoundingUnits int `json:"bounding_units"`
	// RollupCells is the exact aggregate cells of days not yet released
	// that the subject's contribution was taken back from (cells only they
	// had contributed to are deleted), so those days are released as if
	// the subject had never been counted.
	RollupCells int `json:"rollup_cells"`
	// ConsentGrants deleted; ConsentWithdrawalsKept are kept as proof that
	// a withdrawal is honoured (see consent.Registry.Erase).
	ConsentGrants          int       `json:"consent_grants"`
	ConsentWithdrawalsKept int       `json:"consent_withdrawals_kept"`
	Completed              time.Time `json:"completed"`
	Notes                  []string  `json:"notes"`
}

func (r ErasureReport) detail(siteID, reqID, identifiedBy, phase string) map[string]string {
	return map[string]string{
		"site": siteID, "request": reqID, "identified_by": identifiedBy, "phase": phase,
		"vault_values": strconv.Itoa(r.VaultValues), "events": strconv.Itoa(r.Events),
		"pseudonyms_searched": strconv.Itoa(r.PseudonymsSearched), "bounding_units": strconv.Itoa(r.BoundingUnits),
		"rollup_cells":   strconv.Itoa(r.RollupCells),
		"consent_grants": strconv.Itoa(r.ConsentGrants), "consent_withdrawals_kept": strconv.Itoa(r.ConsentWithdrawalsKept),
	}
}

// Erase removes a subject from a site: vault values crypto-shredded, events
// deleted from the log under every pseudonym version, unreleased bounding
// state dropped, consent grants deleted.
//
// The order makes a partial failure safe: the request is registered first
// (status in_progress) and the start of the erasure is audited before
// anything irreversible happens, so no data is ever destroyed without a
// durable record. Every step is idempotent; a failed request stays open in
// the register (and in the overdue metrics) and a retry of the same subject
// resumes it, keeping the original received time for the deadline. Only
// after the outcome is audited is the request marked completed.
func (s *Service) Erase(ctx context.Context, site store.Site, id Ident, actor, reason string) (ErasureReport, error) {
	ref := s.ref(site.ID, id)
	req, err := s.open(ctx, site.ID, KindErase, ref, actor, reason)
	if err != nil {
		return ErasureReport{}, err
	}
	rep := ErasureReport{RequestID: req.ID, Notes: notes}
	entry := func(phase string) audit.Entry {
		return audit.Entry{Time: s.cfg.Now().UTC(), Actor: actor, Action: "dsr.erase", Target: ref, Reason: reason,
			Detail: rep.detail(site.ID, req.ID, id.kind(), phase)}
	}
	if err := s.cfg.Audit.Record(ctx, entry("started")); err != nil {
		err = fmt.Errorf("dsr: audit record failed, nothing erased: %w", err)
		s.fail(ctx, req, err)
		return ErasureReport{}, err
	}
	if err := s.erase(ctx, site, id, &rep); err != nil {
		// Best effort: the failure and what was already removed. The
		// "started" entry is on record either way.
		if aerr := s.cfg.Audit.Record(ctx, entry("failed")); aerr != nil {
			err = errors.Join(err, aerr)
		}
		s.fail(ctx, req, err)
		return ErasureReport{}, err
	}
	if err := s.cfg.Audit.Record(ctx, entry("completed")); err != nil {
		err = fmt.Errorf("dsr: erasure done but its audit record failed; retry to complete the request: %w", err)
		s.fail(ctx, req, err)
		return ErasureReport{}, err
	}
	if err := s.finish(ctx, req, StatusCompleted); err != nil {
		return ErasureReport{}, err
	}
	rep.Completed = s.cfg.Now().UTC()
	rep.Found = rep.VaultValues+rep.Events+rep.BoundingUnits+rep.ConsentGrants > 0
	return rep, nil
}

func (s *Service) erase(ctx context.Context, site store.Site, id Ident, rep *ErasureReport) error {
	// The vault first: it holds the raw values, the most identifying data.
	for _, subj := range id.vaultSubjects() {
		n, err := s.cfg.Vault.Erase(ctx, site.ID, subj)
		if err != nil {
			return fmt.Errorf("dsr: vault erase: %w", err)
		}
		rep.VaultValues += n
	}
	seen := map[event.Pseudonym]bool{}
	for _, uid := range id.userIDs() {
		ps, err := s.cfg.Pseudonyms.UserPseudonyms(site.ID, uid)
		if err != nil {
			return fmt.Errorf("dsr: pseudonyms: %w", err)
		}
		for _, p := range ps {
			if seen[p] {
				continue
			}
			seen[p] = true
			rep.PseudonymsSearched++
			var erased []eventlog.Erased
			eraseLog := func(ctx context.Context) ([]eventlog.Erased, error) {
				var err error
				erased, err = s.cfg.Log.EraseUser(ctx, site.ID, p)
				return erased, err
			}
			var err error
			if s.cfg.Bounding != nil {
				var u aggregate.UnitErasure
				u, err = s.cfg.Bounding.EraseUnit(ctx, site.ID, p, eraseLog)
				rep.BoundingUnits += u.UnitDays
				rep.RollupCells += u.Cells
			} else {
				_, err = eraseLog(ctx)
			}
			rep.Events += len(erased)
			if err != nil {
				return fmt.Errorf("dsr: event log erase: %w", err)
			}
		}
		removed, kept, err := s.cfg.Consent.Erase(ctx, site.ID, s.cfg.Consent.UserRef(site.ID, uid))
		rep.ConsentGrants += removed
		rep.ConsentWithdrawalsKept += kept
		if err != nil {
			return err
		}
	}
	return nil
}

// Detokenize resolves a vault token for a privacy officer. The vault audits
// it (actor, token, purpose and reason; never the value) before returning
// the value, and returns nothing if it cannot.
func (s *Service) Detokenize(ctx context.Context, token, actor, purpose, reason string) (string, error) {
	if !slices.Contains(DetokenizePurposes, purpose) {
		return "", fmt.Errorf("dsr: detokenize purpose %q is not one of %v", purpose, DetokenizePurposes)
	}
	return s.cfg.Vault.Detokenize(ctx, token, actor, purpose+": "+reason)
}

// DetokenizePurposes are the reasons a privacy officer may re-identify a
// value. Analytics, personalization and model training are deliberately
// absent: they work on tokens and pseudonyms, and a re-identification for
// them would bypass both the vault and the subject's consent (which the
// vault cannot check: it does not know whose token it is).
var DetokenizePurposes = []string{"data_subject_request", "security", "legal_obligation"}
