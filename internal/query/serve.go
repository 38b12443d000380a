package query

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/veil-analytics/veil/internal/auth"
	"github.com/veil-analytics/veil/internal/httpx"
	"github.com/veil-analytics/veil/internal/site"
	"github.com/veil-analytics/veil/internal/statsquery"
	"github.com/veil-analytics/veil/internal/store"
)

// Serve parses body, checks that tok may read the site, and answers. The
// HTTP API and `veil query` share it.
func Serve(ctx context.Context, e *Engine, st store.Store, tok store.Token, body []byte) (Result, error) {
	// "all" starts at the earliest day a site could have data: retention
	// bounds it, so parse with a generous earliest and clamp below.
	now := e.Now().UTC()
	q, err := statsquery.Parse(body, now, now.AddDate(-10, 0, 0))
	if err != nil {
		return Result{}, err
	}
	s, err := SiteFor(ctx, st, tok, q.SiteID, "site_id")
	if err != nil {
		return Result{}, err
	}
	// Nothing older than the site's retention can exist.
	earliest := now.Add(-s.Retention).Truncate(24 * time.Hour)
	if q.From.Before(earliest) {
		q.From = earliest
	}
	if !q.From.Before(q.To) {
		return Result{}, httpx.Errorf(http.StatusBadRequest, "invalid_date_range", "date_range", "the range lies entirely before the site's retention or creation")
	}
	return e.Answer(ctx, s, tok, q)
}

// SiteFor looks up the site of domain for tok. A site the token may not read
// gets the same 404 as one that does not exist, so tokens cannot probe for
// other sites; field names the request field in the error.
func SiteFor(ctx context.Context, st store.Store, tok store.Token, domain, field string) (store.Site, error) {
	s, err := site.Lookup(ctx, st, domain)
	var he *httpx.Error
	if errors.As(err, &he) && he.Status == http.StatusNotFound || err == nil && !auth.CoversSite(tok, s.ID) {
		return store.Site{}, httpx.Errorf(http.StatusNotFound, "unknown_site", field, "no site %s, or the token may not read it", domain)
	}
	return s, err
}
