package collect

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/veil-analytics/veil/internal/auth"
	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/httpx"
	"github.com/veil-analytics/veil/internal/jsonscan"
	"github.com/veil-analytics/veil/internal/store"
)

// Request size limits.
const (
	MaxEventBody = 1_000_000 // Plausible's limit for /api/event
)

// BatchLimits bound one native batch request.
type BatchLimits struct {
	MaxEvents int
	MaxBytes  int64
}

// DefaultBatchLimits allow batches large enough to amortize HTTP overhead.
var DefaultBatchLimits = BatchLimits{MaxEvents: 5000, MaxBytes: 8 << 20}

// Request bodies are read into pooled buffers: batches are large, and
// allocating (and zeroing) them per request was a visible share of CPU. The
// parsers copy what they keep, so a buffer can be reused after the request.
var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func readBody(w http.ResponseWriter, r *http.Request, limit int64) (*bytes.Buffer, error) {
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	if n := r.ContentLength; n > 0 && n <= limit {
		buf.Grow(int(n) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		releaseBody(buf)
		return nil, err
	}
	return buf, nil
}

func releaseBody(buf *bytes.Buffer) {
	if buf.Cap() <= 16<<20 {
		bodyPool.Put(buf)
	}
}

func (c *Collector) reject(w http.ResponseWriter, err error) {
	var he *httpx.Error
	if errors.As(err, &he) {
		c.cfg.Metrics.Rejected.WithLabelValues(he.Reason).Inc()
	} else {
		c.cfg.Logger.Error("ingest failed", "err", err)
	}
	httpx.WriteError(w, err)
}

func unavailable(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return httpx.Errorf(http.StatusServiceUnavailable, "unavailable", "", "event log did not acknowledge in time; retry")
	}
	return httpx.Errorf(http.StatusServiceUnavailable, "unavailable", "", "event log unavailable; retry")
}

func setCORS(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Content-Type")
	h.Set("Access-Control-Max-Age", "86400")
}

func accepted(w http.ResponseWriter, dropped string) {
	if dropped != "" {
		w.Header().Set("X-Veil-Dropped", dropped)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, "ok")
}

// HandleEvent serves Plausible's POST /api/event.
func (c *Collector) HandleEvent(w http.ResponseWriter, r *http.Request) {
	setCORS(w)
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		c.reject(w, httpx.Errorf(http.StatusMethodNotAllowed, "method", "", "use POST"))
		return
	}
	c.cfg.Metrics.Received.WithLabelValues("event").Inc()
	switch mt := httpx.MediaType(r); mt {
	case "text/plain", "application/json":
	default:
		c.reject(w, httpx.Errorf(http.StatusUnsupportedMediaType, "content_type", "", "Content-Type must be text/plain or application/json"))
		return
	}
	if r.Header.Get("Sec-GPC") == "1" {
		// Global Privacy Control: the browser opted out of tracking.
		c.cfg.Metrics.Dropped.WithLabelValues(DropGPC).Inc()
		io.Copy(io.Discard, io.LimitReader(r.Body, MaxEventBody))
		accepted(w, DropGPC)
		return
	}
	buf, err := readBody(w, r, MaxEventBody)
	if err != nil {
		c.reject(w, httpx.JSONError(err))
		return
	}
	defer releaseBody(buf)
	body := buf.Bytes()
	if !utf8.Valid(body) {
		c.reject(w, bad("invalid_utf8", "", "body is not valid UTF-8"))
		return
	}
	in, domains, err := ParsePlausible(body)
	if err != nil {
		c.reject(w, err)
		return
	}
	in.IP, in.UA, in.HasClient = c.cfg.Proxies.ClientIP(r), r.Header.Get("User-Agent"), true
	if len(domains) == 0 {
		// Plausible falls back to the page's host.
		if in.URL == "" {
			c.reject(w, bad("missing_field", "url", "url is required"))
			return
		}
		domains = []string{hostOf(in.URL)}
	}
	// Resolve every domain first so that nothing is written when one fails.
	type target struct {
		site store.Site
		ev   event.Event
	}
	var targets []target
	for _, d := range domains {
		site, err := c.Site(r.Context(), d)
		if errors.Is(err, ErrUnknownSite) {
			c.reject(w, httpx.Errorf(http.StatusBadRequest, "unknown_site", "domain", "no site is registered for this domain"))
			return
		}
		if err != nil {
			c.reject(w, err)
			return
		}
		ev, drop, err := c.Process(r.Context(), site, in)
		if err != nil {
			c.reject(w, err)
			return
		}
		if drop != "" {
			c.cfg.Metrics.Dropped.WithLabelValues(drop).Inc()
			accepted(w, drop)
			return
		}
		targets = append(targets, target{site, ev})
	}
	for _, t := range targets {
		if _, err := c.Store(r.Context(), t.site.ID, []event.Event{t.ev}, "event"); err != nil {
			c.cfg.Logger.Warn("append failed", "err", err)
			c.reject(w, unavailable(err))
			return
		}
	}
	accepted(w, "")
}

// hostOf returns the host of a URL without parsing it fully; the result is
// only used to look up a site.
func hostOf(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
	}
	if i := strings.IndexAny(u, "/?#"); i >= 0 {
		u = u[:i]
	}
	if i := strings.LastIndex(u, "@"); i >= 0 {
		u = u[i+1:]
	}
	if i := strings.LastIndex(u, ":"); i >= 0 && !strings.Contains(u[i:], "]") {
		u = u[:i]
	}
	return strings.TrimPrefix(strings.ToLower(u), "www.")
}

// BatchResult is the native batch API's answer.
type BatchResult struct {
	Accepted   int             `json:"accepted"`
	Duplicates int             `json:"duplicates"`
	Dropped    int             `json:"dropped"`
	Rejected   []RejectedEvent `json:"rejected"`
	// Fields says what was done with each prop name in the accepted
	// events, under the site's field policy (e.g. "tokenized").
	Fields map[string]string `json:"fields,omitempty"`
}

// RejectedEvent names one event of a batch that was not accepted and why.
type RejectedEvent struct {
	Index int    `json:"index"`
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// HandleBatch serves POST /api/v1/events: a JSON array or NDJSON of native
// events, authenticated with an ingest token.
func (c *Collector) HandleBatch(tok store.Token, w http.ResponseWriter, r *http.Request) {
	c.HandleBatchLimits(tok, DefaultBatchLimits, w, r)
}

// HandleBatchLimits is HandleBatch with explicit limits.
func (c *Collector) HandleBatchLimits(tok store.Token, lim BatchLimits, w http.ResponseWriter, r *http.Request) {
	mt := httpx.MediaType(r)
	switch mt {
	case "application/json", "application/x-ndjson", "application/jsonl", "application/json-seq", "text/plain":
	default:
		c.reject(w, httpx.Errorf(http.StatusUnsupportedMediaType, "content_type", "", "Content-Type must be application/json (an array) or application/x-ndjson"))
		return
	}
	buf, err := readBody(w, r, lim.MaxBytes)
	if err != nil {
		c.reject(w, httpx.JSONError(err))
		return
	}
	defer releaseBody(buf)
	body := buf.Bytes()
	if !utf8.Valid(body) {
		c.reject(w, bad("invalid_utf8", "", "body is not valid UTF-8"))
		return
	}
	items, perr := parseBatch(body, lim.MaxEvents)
	if perr != nil {
		c.reject(w, perr)
		return
	}
	c.cfg.Metrics.Received.WithLabelValues("batch").Add(float64(len(items)))
	res := BatchResult{Rejected: []RejectedEvent{}}
	bySite := map[string][]event.Event{}
	var order []string
	memo := &siteMemo{}
	for i, it := range items {
		ev, site, drop, err := c.batchEvent(r.Context(), tok, it, memo)
		if err != nil {
			var he *httpx.Error
			if !errors.As(err, &he) {
				c.reject(w, err)
				return
			}
			c.cfg.Metrics.Rejected.WithLabelValues(he.Reason).Inc()
			res.Rejected = append(res.Rejected, RejectedEvent{Index: i, Error: he.Msg, Field: he.Field})
			continue
		}
		if drop != "" {
			c.cfg.Metrics.Dropped.WithLabelValues(drop).Inc()
			res.Dropped++
			continue
		}
		for _, a := range it.in.Applied {
			if res.Fields == nil {
				res.Fields = map[string]string{}
			}
			res.Fields[a.Field] = a.Action
		}
		g, ok := bySite[site]
		if !ok {
			order = append(order, site)
			g = make([]event.Event, 0, len(items)-i)
		}
		bySite[site] = append(g, ev)
	}
	for _, site := range order {
		dups, err := c.Store(r.Context(), site, bySite[site], "batch")
		if err != nil {
			c.cfg.Logger.Warn("append failed", "err", err)
			c.reject(w, unavailable(err))
			return
		}
		res.Duplicates += dups
		res.Accepted += len(bySite[site]) - dups
	}
	status := http.StatusAccepted
	if res.Accepted == 0 && res.Duplicates == 0 && res.Dropped == 0 && len(res.Rejected) > 0 {
		status = http.StatusBadRequest
	}
	httpx.WriteJSON(w, status, res)
}

// batchItem is one parsed event of a batch, or why it was rejected.
type batchItem struct {
	in   *Input
	site string
	err  error
}

// parseBatch parses a JSON array or NDJSON body of native events in one
// pass. A syntax error anywhere rejects the whole request, so nothing of a
// garbled body is written; a semantic error rejects only its event.
func parseBatch(body []byte, maxEvents int) ([]batchItem, *httpx.Error) {
	var items []batchItem
	tooMany := httpx.Errorf(http.StatusRequestEntityTooLarge, "too_many_events", "", "at most %d events per request", maxEvents)
	add := func(r *jsonscan.Reader) error {
		if len(items) >= maxEvents {
			return tooMany
		}
		if k := r.Peek(); k != jsonscan.Object {
			return bad("invalid_json", "", "every event must be a JSON object, not %s", k)
		}
		in, site, err := parseNative(r)
		if isSyntax(err) {
			return err
		}
		items = append(items, batchItem{in: in, site: site, err: err})
		return nil
	}
	r := jsonscan.NewReader(body)
	switch r.Peek() {
	case jsonscan.Array:
		err := r.Array(func(int) error { return add(r) })
		if err == nil {
			err = r.End()
		}
		if err != nil {
			return nil, asBatchErr(err)
		}
	case jsonscan.Object:
		line := 0
		for rest := body; len(rest) > 0; {
			var l []byte
			if i := bytes.IndexByte(rest, '\n'); i >= 0 {
				l, rest = rest[:i], rest[i+1:]
			} else {
				l, rest = rest, nil
			}
			line++
			if len(bytes.TrimSpace(l)) == 0 {
				continue
			}
			lr := jsonscan.NewReader(l)
			err := add(lr)
			if err == nil {
				err = lr.End()
			}
			if err != nil {
				if he := asBatchErr(err); he.Reason == "invalid_json" {
					return nil, bad("invalid_json", "", "line %d: %s", line, he.Msg)
				} else {
					return nil, he
				}
			}
		}
	default:
		return nil, bad("invalid_json", "", "body must be a JSON array of events or NDJSON")
	}
	if len(items) == 0 {
		return nil, bad("invalid_json", "", "no events in the batch")
	}
	return items, nil
}

func asBatchErr(err error) *httpx.Error {
	var he *httpx.Error
	if errors.As(err, &he) {
		return he
	}
	return fieldErr("", err)
}

// siteMemo remembers the last site a batch named: batches from one source
// almost always name one site, so most events skip the site cache.
type siteMemo struct {
	domain string
	site   store.Site
	err    error
}

func (c *Collector) batchEvent(ctx context.Context, tok store.Token, it batchItem, memo *siteMemo) (event.Event, string, string, error) {
	if it.err != nil {
		return event.Event{}, "", "", it.err
	}
	if it.site == "" {
		return event.Event{}, "", "", bad("missing_field", "site", "site is required")
	}
	if memo.domain != it.site || memo.domain == "" {
		memo.site, memo.err = c.Site(ctx, it.site)
		memo.domain = it.site
	}
	site, err := memo.site, memo.err
	if errors.Is(err, ErrUnknownSite) || (err == nil && !auth.CoversSite(tok, site.ID)) {
		// A token limited to other sites learns nothing about this one.
		return event.Event{}, "", "", httpx.Errorf(http.StatusBadRequest, "unknown_site", "site", "no site is registered for this domain, or the token may not write to it")
	}
	if err != nil {
		return event.Event{}, "", "", err
	}
	ev, drop, err := c.Process(ctx, site, it.in)
	return ev, site.ID, drop, err
}
