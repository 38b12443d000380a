// Package site registers and configures sites (data products), shared by the
// admin API and the CLI.
package site

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/veil-analytics/veil/internal/aggregate"
	"github.com/veil-analytics/veil/internal/httpx"
	"github.com/veil-analytics/veil/internal/release"
	"github.com/veil-analytics/veil/internal/store"
	"github.com/veil-analytics/veil/internal/urlnorm"
)

// Bounds on retention: at least a day (shorter only in tests, through the
// store), at most ten years.
const (
	MinRetention = 24 * time.Hour
	MaxRetention = 3650 * 24 * time.Hour
)

// Settings are the changeable settings of a site; nil fields stay as they are.
type Settings struct {
	RetentionDays *int     `json:"retention_days,omitempty"`
	AllowedParams []string `json:"allowed_params,omitempty"`
	PrivacyUnit   *string  `json:"privacy_unit,omitempty"` // "visitor-day" or "user"
	// DailyEpsilon is the privacy budget per unit (per day, or per month
	// for user-unit sites); 0 restores the default.
	DailyEpsilon *float64 `json:"daily_epsilon,omitempty"`
	// AllowedProps lists the prop names kept (["*"] keeps all, [] none).
	AllowedProps []string `json:"allowed_props,omitempty"`
	// Fields declares server-side fields: name -> tokenize, hash, drop or
	// keep ({} removes the schema).
	Fields     map[string]store.FieldAction `json:"fields,omitempty"`
	Undeclared *string                      `json:"undeclared,omitempty"` // "drop" or "reject"
	Purposes   []string                     `json:"purposes,omitempty"`
	Owner      *string                      `json:"owner,omitempty"`
	// OwnerDomain is the data-mesh domain owning the site.
	OwnerDomain *string `json:"owner_domain,omitempty"`
	// Caps override contribution bounds by name; only when the site is
	// added (see CapsOf).
	Caps map[string]int `json:"caps,omitempty"`
}

// Names lists the settings set carries, by their JSON names.
func (set Settings) Names() []string {
	var out []string
	for name, present := range map[string]bool{
		"retention_days": set.RetentionDays != nil, "allowed_params": set.AllowedParams != nil,
		"privacy_unit": set.PrivacyUnit != nil, "daily_epsilon": set.DailyEpsilon != nil,
		"allowed_props": set.AllowedProps != nil, "fields": set.Fields != nil, "undeclared": set.Undeclared != nil,
		"purposes": set.Purposes != nil, "owner": set.Owner != nil, "owner_domain": set.OwnerDomain != nil, "caps": set.Caps != nil,
	} {
		if present {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Bounds on a site's budget: below 0.1 nearly every value is suppressed or
// drowned in noise; above 10 the guarantee means little.
const (
	MinEpsilon = 0.1
	MaxEpsilon = 10.0
)

// View is a site as the API shows it.
type View struct {
	ID            string    `json:"id"`
	Domain        string    `json:"domain"`
	RetentionDays int       `json:"retention_days"`
	AllowedParams []string  `json:"allowed_params"`
	PrivacyUnit   string    `json:"privacy_unit"`
	Created       time.Time `json:"created"`
	DailyEpsilon  float64   `json:"daily_epsilon"`
	Delta         float64   `json:"delta"`
	BudgetPeriod  string    `json:"budget_period"` // "day" or "month"
	AllowedProps  []string  `json:"allowed_props"`
	// Caps are the contribution bounds per unit-day (fixed for now).
	Caps        map[string]int               `json:"caps"`
	Fields      map[string]store.FieldAction `json:"fields"`
	Undeclared  string                       `json:"undeclared"`
	Purposes    []string                     `json:"purposes"`
	Owner       string                       `json:"owner"`
	OwnerDomain string                       `json:"owner_domain"`
}

// ViewOf returns the API view of s.
func ViewOf(s store.Site) View {
	b := Budget(s)
	v := View{ID: s.ID, Domain: s.Domain, RetentionDays: int(s.Retention / (24 * time.Hour)),
		AllowedParams: s.AllowedParams, PrivacyUnit: "visitor-day", Created: s.Created,
		DailyEpsilon: b.DailyEpsilon, Delta: b.Delta, BudgetPeriod: "day", AllowedProps: s.AllowedProps,
		Caps: capsView(CapsOf(s)), Fields: s.Fields, Undeclared: s.Undeclared, Purposes: s.SitePurposes(),
		Owner: s.Owner, OwnerDomain: s.OwnerDomain}
	if v.Fields == nil {
		v.Fields = map[string]store.FieldAction{}
	}
	if v.Undeclared == "" {
		v.Undeclared = string(store.FieldDrop)
	}
	if v.AllowedParams == nil {
		v.AllowedParams = urlnorm.DefaultAllowedParams
	}
	if v.AllowedProps == nil {
		v.AllowedProps = []string{"*"}
	}
	if s.UserUnit {
		v.PrivacyUnit, v.BudgetPeriod = "user", "month"
	}
	return v
}

// capFields names the contribution bounds in the API.
func capFields(c *aggregate.Caps) map[string]*int {
	return map[string]*int{"pageviews": &c.Pageviews, "events": &c.Events, "visits": &c.Visits, "hours": &c.Hours,
		"pages": &c.Pages, "pageviews_per_page": &c.PageviewsPerPage, "visit_values": &c.VisitValues,
		"goals": &c.Goals, "events_per_goal": &c.EventsPerGoal, "prop_values": &c.PropValues}
}

func capsView(c aggregate.Caps) map[string]int {
	out := map[string]int{}
	for name, v := range capFields(&c) {
		out[name] = *v
	}
	return out
}

// CapsOf returns s's contribution bounds: the defaults with the site's
// overrides. They bound what one unit adds per day, so every sensitivity,
// and with it the noise, follows from them.
func CapsOf(s store.Site) aggregate.Caps {
	c := aggregate.DefaultCaps
	fields := capFields(&c)
	for name, v := range s.Caps {
		if f := fields[name]; f != nil {
			*f = v
		}
	}
	return c
}

// MaxCap bounds every contribution cap: larger caps mean more noise for
// everyone, and past this the answers are noise.
const MaxCap = 100

func validCaps(caps map[string]int) error {
	known := capFields(&aggregate.Caps{})
	for name, v := range caps {
		if known[name] == nil {
			return bad("caps", "unknown contribution bound %q", name)
		}
		if v < 1 || v > MaxCap || name == "hours" && v > 24 {
			return bad("caps", "contribution bound %s must be from 1 to %d (hours at most 24)", name, MaxCap)
		}
	}
	return nil
}

// Budget is s's privacy budget: per visitor-day, or per user and month for
// sites whose privacy unit is the declared user, with the site's own ε
// when one is set.
func Budget(s store.Site) release.Budget {
	b := release.DefaultBudget
	if s.UserUnit {
		b = release.UserBudget
	}
	if s.DailyEpsilon > 0 {
		b.DailyEpsilon = s.DailyEpsilon
	}
	return b
}

func validNames(field string, names []string) error {
	if len(names) > 50 {
		return bad(field, "at most 50 names")
	}
	for _, p := range names {
		name := strings.TrimSuffix(p, "*")
		if name == "" && p != "*" || len(p) > 64 || strings.ContainsAny(name, "*=&#? /") {
			return bad(field, "names must be exact names or prefixes ending in '*'")
		}
	}
	return nil
}

func bad(field, format string, args ...any) error {
	return httpx.Errorf(http.StatusBadRequest, "invalid_site", field, format, args...)
}

// Apply validates settings and applies them to s.
func Apply(s *store.Site, set Settings) error {
	if set.RetentionDays != nil {
		r := time.Duration(*set.RetentionDays) * 24 * time.Hour
		if r < MinRetention || r > MaxRetention {
			return bad("retention_days", "retention must be between 1 and 3650 days")
		}
		s.Retention = r
	}
	if set.AllowedParams != nil {
		if err := validNames("allowed_params", set.AllowedParams); err != nil {
			return err
		}
		s.AllowedParams = set.AllowedParams
	}
	if set.AllowedProps != nil {
		if err := validNames("allowed_props", set.AllowedProps); err != nil {
			return err
		}
		s.AllowedProps = set.AllowedProps
		if len(s.AllowedProps) == 1 && s.AllowedProps[0] == "*" {
			s.AllowedProps = nil
		}
	}
	if set.Fields != nil {
		if len(set.Fields) > 100 {
			return bad("fields", "at most 100 declared fields")
		}
		for name, a := range set.Fields {
			if name == "" || len(name) > 64 || strings.ContainsAny(name, "*=&#? /") {
				return bad("fields", "field %q: names are 1 to 64 characters without * = & # ? / or spaces", name)
			}
			switch a {
			case store.FieldTokenize, store.FieldHash, store.FieldDrop, store.FieldKeep:
			default:
				return bad("fields", "field %q: action must be tokenize, hash, drop or keep", name)
			}
		}
		s.Fields = set.Fields
		if len(s.Fields) == 0 {
			s.Fields = nil
		}
	}
	if set.Undeclared != nil {
		switch *set.Undeclared {
		case string(store.FieldDrop), store.UndeclaredReject:
			s.Undeclared = *set.Undeclared
		default:
			return bad("undeclared", `undeclared fields are "drop"ped or "reject"ed`)
		}
	}
	if set.Purposes != nil {
		for _, p := range set.Purposes {
			if !slices.Contains(store.AllPurposes, p) {
				return bad("purposes", "unknown purpose %q: want %s", p, strings.Join(store.AllPurposes, ", "))
			}
		}
		s.Purposes = set.Purposes
	}
	for field, v := range map[string]*string{"owner": set.Owner, "owner_domain": set.OwnerDomain} {
		if v == nil {
			continue
		}
		if len(*v) > 200 || !printable(*v) {
			return bad(field, "%s must be at most 200 printable characters", field)
		}
	}
	if set.Owner != nil {
		s.Owner = *set.Owner
	}
	if set.OwnerDomain != nil {
		s.OwnerDomain = *set.OwnerDomain
	}
	if set.DailyEpsilon != nil {
		e := *set.DailyEpsilon
		if e != 0 && !(e >= MinEpsilon && e <= MaxEpsilon) {
			return bad("daily_epsilon", "the daily budget must be from %g to %g (0 restores the default)", MinEpsilon, MaxEpsilon)
		}
		s.DailyEpsilon = e
	}
	if set.PrivacyUnit != nil {
		switch *set.PrivacyUnit {
		case "visitor-day":
			s.UserUnit = false
		case "user":
			s.UserUnit = true
		default:
			return bad("privacy_unit", `privacy unit must be "visitor-day" or "user"`)
		}
	}
	return nil
}

// ParseRetention parses "30d", "12h" or a plain number of days.
func ParseRetention(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * 24 * time.Hour, nil
	}
	if d, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil {
			return 0, fmt.Errorf("retention %q: want e.g. 30d", v)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("retention %q: want e.g. 30d", v)
	}
	return d, nil
}

// Create registers domain with set and returns the new site.
func Create(ctx context.Context, st store.Store, domain string, set Settings, now time.Time) (store.Site, error) {
	d, err := urlnorm.NormalizeDomain(domain)
	if err != nil {
		return store.Site{}, bad("domain", "%v", err)
	}
	var id [6]byte
	if _, err := rand.Read(id[:]); err != nil {
		return store.Site{}, err
	}
	s := store.Site{ID: hex.EncodeToString(id[:]), Domain: d, Retention: store.DefaultRetention, Created: now.UTC()}
	if err := Apply(&s, set); err != nil {
		return store.Site{}, err
	}
	// Bounds are set once: changing them later would change the meaning
	// of days already counted and released.
	if err := validCaps(set.Caps); err != nil {
		return store.Site{}, err
	}
	s.Caps = set.Caps
	if err := st.CreateSite(ctx, s); err != nil {
		if errors.Is(err, store.ErrExists) {
			return store.Site{}, httpx.Errorf(http.StatusConflict, "site_exists", "domain", "a site for %s already exists", d)
		}
		return store.Site{}, err
	}
	return s, nil
}

// Lookup finds a site by domain, answering a 404 error naming the domain
// when there is none.
func Lookup(ctx context.Context, st store.Store, domain string) (store.Site, error) {
	d, err := urlnorm.NormalizeDomain(domain)
	if err != nil {
		return store.Site{}, bad("domain", "%v", err)
	}
	s, err := st.SiteByDomain(ctx, d)
	if errors.Is(err, store.ErrNotFound) {
		return s, httpx.Errorf(http.StatusNotFound, "unknown_site", "domain", "no site is registered for %s", d)
	}
	return s, err
}

func printable(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0
}
