// Package collect is Veil's edge: it validates incoming events, drops bots
// and events without consent, redacts personal data, replaces identifiers
// with keyed pseudonyms and hands minimized events to the event log. Nothing
// raw — IP address, user agent, declared user id — leaves this package.
package collect

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/geo"
	"github.com/veil-analytics/veil/internal/httpx"
	"github.com/veil-analytics/veil/internal/pii"
	"github.com/veil-analytics/veil/internal/pseudo"
	"github.com/veil-analytics/veil/internal/store"
	"github.com/veil-analytics/veil/internal/uaparse"
	"github.com/veil-analytics/veil/internal/urlnorm"
)

// Limits bound what one event may carry.
type Limits struct {
	MaxNameLen    int           // 120, as Plausible
	MaxProps      int           // 30, as Plausible
	MaxPropKeyLen int           // 300
	MaxPropValLen int           // 2000
	MaxURLLen     int           // 2000
	MaxFuture     time.Duration // how far ahead of the server clock a timestamp may be
}

// DefaultLimits match Plausible's so its tracker's events always fit.
var DefaultLimits = Limits{MaxNameLen: 120, MaxProps: 30, MaxPropKeyLen: 300, MaxPropValLen: 2000, MaxURLLen: 2000, MaxFuture: 5 * time.Minute}

// Appender is the event log as the collector sees it.
type Appender interface {
	Append(ctx context.Context, siteID string, evs []event.Event) error
	EnsureSite(ctx context.Context, s store.Site) error
}

// Config wires a Collector.
type Config struct {
	Store   store.Store
	Log     Appender
	Pseudo  *pseudo.Pseudonymizer
	Geo     geo.Locator
	Proxies ProxyTrust
	Metrics *Metrics
	Logger  *slog.Logger
	Now     func() time.Time
	Limits  Limits
	// PIIThreshold is the score at which a value is treated as personal data.
	PIIThreshold float64
	// DedupeWindow is how long an event id is remembered.
	DedupeWindow time.Duration
	// Vault tokenizes fields declared "tokenize"; nil refuses them.
	Vault Tokenizer
	// Consent says whether a declared user allows analytics; nil allows.
	Consent ConsentChecker
	// PIIReport counts what kinds of personal data each prop carries, for
	// the site owner's PII report (counts only, never values).
	PIIReport interface {
		Observe(siteID, field string, findings ...pii.Finding)
	}
}

// ConsentChecker is the consent registry as ingestion sees it.
type ConsentChecker interface {
	AllowedUser(ctx context.Context, site store.Site, userID, purpose string) (bool, error)
}

// Collector processes events.
type Collector struct {
	cfg    Config
	ua     *uaparse.Cache
	dedupe *Dedupe
	sites  *siteCache
}

// New returns a Collector.
func New(cfg Config) *Collector {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Limits == (Limits{}) {
		cfg.Limits = DefaultLimits
	}
	if cfg.PIIThreshold == 0 {
		cfg.PIIThreshold = pii.DefaultThreshold
	}
	if cfg.DedupeWindow == 0 {
		cfg.DedupeWindow = 10 * time.Minute
	}
	if cfg.Geo == nil {
		cfg.Geo = geo.None{}
	}
	return &Collector{
		cfg:    cfg,
		ua:     uaparse.NewCache(50000),
		dedupe: NewDedupe(cfg.DedupeWindow, 500_000, cfg.Now),
		sites:  &siteCache{store: cfg.Store, log: cfg.Log, ttl: 15 * time.Second, entries: map[string]siteEntry{}},
	}
}

// Input is one event as received, before minimization. It holds raw
// personal data and must never be logged or stored.
type Input struct {
	Name        string
	URL         string
	Referrer    string
	Props       []Prop // in order received
	Interactive bool
	HashRoute   bool
	ScrollDepth int // -1 when absent
	EngagedMS   int64
	Time        time.Time // zero: now
	EventID     string
	// Applied collects what ingestion did with each prop (output).
	Applied []Applied
	// scans holds pii.Best of each prop value, computed once.
	scans     []valueScan
	UserID    string
	IP        netip.Addr
	UA        string
	HasClient bool // IP and UA describe the end user (not a server)
	Consent   *bool
}

// Prop is a raw custom property.
type Prop struct{ Key, Value string }

// Drop reasons: the event is answered as accepted but not stored.
const (
	DropBot       = "bot"
	DropGPC       = "gpc"
	DropConsent   = "consent"
	DropDuplicate = "duplicate"
)

func bad(reason, field, format string, args ...any) *httpx.Error {
	return httpx.Errorf(http.StatusBadRequest, reason, field, format, args...)
}

// validText checks a short free-text field: valid UTF-8, no control
// characters, bounded length.
func validText(s string, max int) string {
	switch {
	case len(s) > max:
		return "longer than " + itoa(max) + " bytes"
	case !utf8.ValidString(s):
		return "not valid UTF-8"
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return "contains control characters"
		}
	}
	return ""
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// Process minimizes in for site. It returns the event, or a drop reason, or
// a client error naming the problem.
func (c *Collector) Process(ctx context.Context, site store.Site, in *Input) (event.Event, string, error) {
	lim := c.cfg.Limits
	if in.Consent != nil && !*in.Consent {
		return event.Event{}, DropConsent, nil
	}
	now := c.cfg.Now().UTC()
	var info uaparse.Info
	if in.HasClient {
		info = c.ua.Parse(in.UA)
		if info.Bot {
			return event.Event{}, DropBot, nil
		}
	}
	ev := event.Event{SiteID: site.ID, ScrollDepth: -1, Interactive: in.Interactive}

	name := strings.TrimSpace(in.Name)
	if name == "" {
		return ev, "", bad("missing_field", "name", "event name is required")
	}
	if msg := validText(name, lim.MaxNameLen); msg != "" {
		return ev, "", bad("invalid_field", "name", "event name %s", msg)
	}
	if f, ok := pii.Best(name); ok && f.Score >= c.cfg.PIIThreshold {
		c.cfg.Metrics.Redactions.WithLabelValues(string(f.Kind), "name").Inc()
		return ev, "", bad("pii", "name", "event name looks like personal data (%s); use a fixed name and put details in props", f.Kind)
	}
	ev.Name = name

	if in.URL == "" {
		return ev, "", bad("missing_field", "url", "url is required")
	}
	if len(in.URL) > lim.MaxURLLen {
		return ev, "", bad("invalid_field", "url", "url longer than %d bytes", lim.MaxURLLen)
	}
	page, err := urlnorm.ParsePage(in.URL, urlnorm.Options{AllowedParams: site.AllowedParams, KeepRouteFragment: in.HashRoute})
	if err != nil {
		return ev, "", bad("invalid_field", "url", "%v", err)
	}
	ev.Host, ev.Query = page.Host, page.Query
	ev.Path = c.redactPath(page.Path)
	ev.UTMSource, ev.UTMMedium, ev.UTMCamp, ev.UTMTerm, ev.UTMContent = page.UTMSource, page.UTMMedium, page.UTMCampaign, page.UTMTerm, page.UTMContent

	var ref urlnorm.Referrer
	hasRef := false
	if in.Referrer != "" {
		if len(in.Referrer) > lim.MaxURLLen {
			return ev, "", bad("invalid_field", "referrer", "referrer longer than %d bytes", lim.MaxURLLen)
		}
		ref, hasRef = urlnorm.ParseReferrer(in.Referrer, page.Host)
		if hasRef {
			ev.Referrer = ref.Host
		}
	}
	ev.Source = urlnorm.Source(page, ref, hasRef)

	if len(in.Props) > lim.MaxProps {
		return ev, "", bad("too_many_props", "props", "at most %d props per event, got %d", lim.MaxProps, len(in.Props))
	}
	for _, p := range in.Props {
		if p.Key == "" {
			return ev, "", bad("invalid_prop", "props", "prop keys must not be empty")
		}
		if msg := validText(p.Key, lim.MaxPropKeyLen); msg != "" {
			return ev, "", bad("invalid_prop", "props", "a prop key is %s", msg)
		}
		if !utf8.ValidString(p.Value) {
			return ev, "", bad("invalid_prop", "props", "a prop value is not valid UTF-8")
		}
		if len(p.Value) > lim.MaxPropValLen {
			return ev, "", bad("invalid_prop", "props", "a prop value is longer than %d bytes", lim.MaxPropValLen)
		}
	}
	in.scans = make([]valueScan, len(in.Props))
	for i, p := range in.Props {
		in.scans[i].f, in.scans[i].ok = pii.Best(p.Value)
		if c.cfg.PIIReport == nil {
			continue
		}
		if in.scans[i].ok {
			c.cfg.PIIReport.Observe(site.ID, p.Key, in.scans[i].f)
		} else {
			c.cfg.PIIReport.Observe(site.ID, p.Key)
		}
	}
	if err := checkFields(site, in); err != nil {
		return ev, "", err
	}

	if in.ScrollDepth >= 0 {
		if in.ScrollDepth > 100 {
			return ev, "", bad("invalid_field", "sd", "scroll depth must be between 0 and 100")
		}
		ev.ScrollDepth = int16(in.ScrollDepth)
	}
	if in.EngagedMS < 0 || in.EngagedMS > 24*3600*1000 {
		return ev, "", bad("invalid_field", "e", "engagement time must be between 0 and 86400000 ms")
	}
	ev.EngagedMS = uint32(in.EngagedMS)

	ev.Time = now
	if !in.Time.IsZero() {
		t := in.Time.UTC()
		if t.After(now.Add(lim.MaxFuture)) {
			return ev, "", bad("bad_timestamp", "timestamp", "timestamp is more than %s in the future", lim.MaxFuture)
		}
		if t.Before(now.Add(-site.Retention)) {
			return ev, "", bad("bad_timestamp", "timestamp", "timestamp is older than the site's retention (%s)", site.Retention)
		}
		ev.Time = t
	}
	ev.Time = ev.Time.Truncate(time.Millisecond)

	if in.HasClient {
		if in.IP.IsValid() {
			ev.Country = c.cfg.Geo.Country(in.IP)
		}
		ev.Browser, ev.BrowserV, ev.OS, ev.OSV, ev.Device = info.Browser, info.BrowserVersion, info.OS, info.OSVersion, info.Device
	}

	switch {
	case in.UserID != "":
		if len(in.UserID) > 256 || !utf8.ValidString(in.UserID) {
			return ev, "", bad("invalid_field", "user_id", "user_id must be valid UTF-8 of at most 256 bytes")
		}
		if c.cfg.Consent != nil {
			// A user who withdrew analytics consent is not collected.
			ok, err := c.cfg.Consent.AllowedUser(ctx, site, in.UserID, store.PurposeAnalytics)
			if err != nil {
				return ev, "", err
			}
			if !ok {
				return event.Event{}, DropConsent, nil
			}
		}
		ev.Unit = event.UnitUser
		ev.Pseudonym, ev.KeyVersion, err = c.cfg.Pseudo.User(ctx, site.ID, in.UserID)
	case in.HasClient && in.IP.IsValid():
		ev.Unit = event.UnitVisitorDay
		ev.Pseudonym, ev.KeyVersion, err = c.cfg.Pseudo.Visitor(ctx, site.ID, in.IP, in.UA, ev.Time)
	default:
		// Nothing identifies a person: the event is its own unit.
		ev.Unit = event.UnitEvent
		_, err = rand.Read(ev.Pseudonym[:])
	}
	if err != nil {
		return ev, "", err
	}
	if in.EventID != "" {
		if len(in.EventID) > 256 {
			return ev, "", bad("invalid_field", "id", "event id must be at most 256 bytes")
		}
		ev.IDHash, err = c.cfg.Pseudo.EventID(ctx, site.ID, in.EventID)
		if err != nil {
			return ev, "", err
		}
		ev.HasID = true
	}
	if ev.Props, err = c.applyFields(ctx, site, in); err != nil {
		return ev, "", err
	}
	return ev, "", nil
}

// redactPath replaces path segments that look like personal data
// (/users/jane@example.com → /users/:email).
func (c *Collector) redactPath(p string) string {
	var b []byte
	start := 1
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		seg := p[start:i]
		if f, ok := pii.Best(seg); ok && f.Score >= c.cfg.PIIThreshold {
			if b == nil {
				b = append(b, p[:start]...)
			}
			b = append(b, ':')
			b = append(b, f.Kind...)
			c.cfg.Metrics.Redactions.WithLabelValues(string(f.Kind), "path").Inc()
		} else if b != nil {
			b = append(b, seg...)
		}
		if b != nil && i < len(p) {
			b = append(b, '/')
		}
		start = i + 1
	}
	if b == nil {
		return p
	}
	return string(b)
}

// redactProps keeps props whose values do not look like personal data;
// personal data in a value is replaced by a marker naming its kind, and a
// prop whose key itself looks like personal data is dropped.
func (c *Collector) redactProps(site store.Site, in *Input) []event.Prop {
	if len(in.Props) == 0 {
		return nil
	}
	out := make([]event.Prop, 0, len(in.Props))
	for i, p := range in.Props {
		if !site.PropAllowed(p.Key) {
			c.cfg.Metrics.PropsDropped.Inc()
			in.Applied = append(in.Applied, Applied{p.Key, FieldDroppedNotAllowed})
			continue
		}
		if f, ok := pii.Best(p.Key); ok && f.Score >= c.cfg.PIIThreshold {
			c.cfg.Metrics.Redactions.WithLabelValues(string(f.Kind), "prop_key").Inc()
			in.Applied = append(in.Applied, Applied{p.Key, FieldDropped})
			continue
		}
		v := p.Value
		if s := in.scans[i]; s.ok && s.f.Score >= c.cfg.PIIThreshold {
			c.cfg.Metrics.Redactions.WithLabelValues(string(s.f.Kind), "prop").Inc()
			v = "[redacted " + string(s.f.Kind) + "]"
			in.Applied = append(in.Applied, Applied{p.Key, FieldRedacted})
		}
		out = append(out, event.Prop{Key: p.Key, Value: v})
	}
	return out
}

// Store appends accepted events of one site, deduplicating by event id.
// It returns how many were duplicates.
func (c *Collector) Store(ctx context.Context, siteID string, evs []event.Event, endpoint string) (dups int, err error) {
	var ids []event.Pseudonym
	kept := evs
	for i := range evs {
		dup := evs[i].HasID && c.dedupe.Seen(evs[i].IDHash)
		switch {
		case dup && dups == 0: // copy only once something is dropped
			kept = append(make([]event.Event, 0, len(evs)), evs[:i]...)
		case !dup && dups > 0:
			kept = append(kept, evs[i])
		}
		if dup {
			dups++
		} else if evs[i].HasID {
			ids = append(ids, evs[i].IDHash)
		}
	}
	if dups > 0 {
		c.cfg.Metrics.Dropped.WithLabelValues(DropDuplicate).Add(float64(dups))
	}
	if len(kept) == 0 {
		return dups, nil
	}
	start := time.Now()
	err = c.cfg.Log.Append(ctx, siteID, kept)
	c.cfg.Metrics.AppendTime.Observe(time.Since(start).Seconds())
	if err != nil {
		c.dedupe.Forget(ids)
		return dups, err
	}
	c.cfg.Metrics.Accepted.WithLabelValues(endpoint).Add(float64(len(kept)))
	return dups, nil
}

// siteCache resolves domains to sites, making sure each site's stream exists
// with its current retention before its first event is appended.
type siteCache struct {
	store store.Store
	log   Appender
	ttl   time.Duration

	mu      sync.Mutex
	entries map[string]siteEntry
}

type siteEntry struct {
	site    store.Site
	ok      bool
	expires time.Time
}

// ErrUnknownSite is returned for a domain that is not registered.
var ErrUnknownSite = errors.New("unknown site")

func (sc *siteCache) get(ctx context.Context, domain string) (store.Site, error) {
	now := time.Now()
	sc.mu.Lock()
	e, hit := sc.entries[domain]
	sc.mu.Unlock()
	if hit && now.Before(e.expires) {
		if !e.ok {
			return store.Site{}, ErrUnknownSite
		}
		return e.site, nil
	}
	s, err := sc.store.SiteByDomain(ctx, domain)
	switch {
	case errors.Is(err, store.ErrNotFound):
		e = siteEntry{expires: now.Add(sc.ttl / 3)}
	case err != nil:
		return store.Site{}, err
	default:
		if err := sc.log.EnsureSite(ctx, s); err != nil {
			return store.Site{}, err
		}
		e = siteEntry{site: s, ok: true, expires: now.Add(sc.ttl)}
	}
	sc.mu.Lock()
	if len(sc.entries) > 100000 {
		clear(sc.entries) // bound memory against floods of made-up domains
	}
	sc.entries[domain] = e
	sc.mu.Unlock()
	if !e.ok {
		return store.Site{}, ErrUnknownSite
	}
	return e.site, nil
}

// Invalidate forgets a cached domain, after an admin changed its site.
func (c *Collector) Invalidate(domain string) {
	c.sites.mu.Lock()
	delete(c.sites.entries, domain)
	c.sites.mu.Unlock()
}

// Site resolves a (normalized) domain to its site.
func (c *Collector) Site(ctx context.Context, domain string) (store.Site, error) {
	d, err := urlnorm.NormalizeDomain(domain)
	if err != nil {
		return store.Site{}, ErrUnknownSite
	}
	return c.sites.get(ctx, d)
}
