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
	"strconv"
	"strings"
	"time"

	"github.com/veil-analytics/veil/internal/httpx"
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
}

// View is a site as the API shows it.
type View struct {
	ID            string    `json:"id"`
	Domain        string    `json:"domain"`
	RetentionDays int       `json:"retention_days"`
	AllowedParams []string  `json:"allowed_params"`
	PrivacyUnit   string    `json:"privacy_unit"`
	Created       time.Time `json:"created"`
}

// ViewOf returns the API view of s.
func ViewOf(s store.Site) View {
	v := View{ID: s.ID, Domain: s.Domain, RetentionDays: int(s.Retention / (24 * time.Hour)),
		AllowedParams: s.AllowedParams, PrivacyUnit: "visitor-day", Created: s.Created}
	if v.AllowedParams == nil {
		v.AllowedParams = urlnorm.DefaultAllowedParams
	}
	if s.UserUnit {
		v.PrivacyUnit = "user"
	}
	return v
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
		if len(set.AllowedParams) > 50 {
			return bad("allowed_params", "at most 50 allowed query parameters")
		}
		for _, p := range set.AllowedParams {
			name := strings.TrimSuffix(p, "*")
			if name == "" || len(p) > 64 || strings.ContainsAny(name, "*=&#? /") {
				return bad("allowed_params", "allowed parameters are names or prefixes ending in '*'")
			}
		}
		s.AllowedParams = set.AllowedParams
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
