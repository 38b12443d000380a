package collect

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/veil-analytics/veil/internal/auth"
	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/httpx"
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
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxEventBody))
	if err != nil {
		c.reject(w, httpx.JSONError(err))
		return
	}
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
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, lim.MaxBytes))
	if err != nil {
		c.reject(w, httpx.JSONError(err))
		return
	}
	if !utf8.Valid(body) {
		c.reject(w, bad("invalid_utf8", "", "body is not valid UTF-8"))
		return
	}
	raws, perr := splitBatch(body, lim.MaxEvents)
	if perr != nil {
		c.reject(w, perr)
		return
	}
	c.cfg.Metrics.Received.WithLabelValues("batch").Add(float64(len(raws)))
	res := BatchResult{Rejected: []RejectedEvent{}}
	bySite := map[string][]event.Event{}
	var order []string
	for i, raw := range raws {
		ev, site, drop, err := c.batchEvent(r.Context(), tok, raw)
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
		if _, ok := bySite[site]; !ok {
			order = append(order, site)
		}
		bySite[site] = append(bySite[site], ev)
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

func (c *Collector) batchEvent(ctx context.Context, tok store.Token, raw json.RawMessage) (event.Event, string, string, error) {
	var ne nativeEvent
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ne); err != nil {
		return event.Event{}, "", "", httpx.JSONError(err)
	}
	if ne.Site == "" {
		return event.Event{}, "", "", bad("missing_field", "site", "site is required")
	}
	site, err := c.Site(ctx, ne.Site)
	if errors.Is(err, ErrUnknownSite) || (err == nil && !auth.CoversSite(tok, site.ID)) {
		// A token limited to other sites learns nothing about this one.
		return event.Event{}, "", "", httpx.Errorf(http.StatusBadRequest, "unknown_site", "site", "no site is registered for this domain, or the token may not write to it")
	}
	if err != nil {
		return event.Event{}, "", "", err
	}
	in, herr := ne.input()
	if herr != nil {
		return event.Event{}, "", "", herr
	}
	ev, drop, err := c.Process(ctx, site, in)
	return ev, site.ID, drop, err
}

// splitBatch splits a JSON array or NDJSON body into raw events. A syntax
// error anywhere rejects the whole request: nothing is written.
func splitBatch(body []byte, maxEvents int) ([]json.RawMessage, *httpx.Error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, bad("invalid_json", "", "empty body")
	}
	var raws []json.RawMessage
	if trimmed[0] == '[' {
		if err := json.Unmarshal(trimmed, &raws); err != nil {
			return nil, httpx.JSONError(err)
		}
	} else {
		sc := bufio.NewScanner(bytes.NewReader(trimmed))
		sc.Buffer(make([]byte, 0, 64<<10), len(trimmed)+1)
		line := 0
		for sc.Scan() {
			line++
			l := bytes.TrimSpace(sc.Bytes())
			if len(l) == 0 {
				continue
			}
			if !json.Valid(l) {
				return nil, bad("invalid_json", "", "line %d is not valid JSON", line)
			}
			raws = append(raws, json.RawMessage(l))
			if len(raws) > maxEvents {
				break
			}
		}
		if err := sc.Err(); err != nil {
			return nil, bad("invalid_json", "", "unreadable NDJSON")
		}
	}
	if len(raws) == 0 {
		return nil, bad("invalid_json", "", "no events in the batch")
	}
	if len(raws) > maxEvents {
		return nil, httpx.Errorf(http.StatusRequestEntityTooLarge, "too_many_events", "", "at most %d events per request", maxEvents)
	}
	for _, r := range raws {
		if len(r) == 0 || r[0] != '{' {
			return nil, bad("invalid_json", "", "every event must be a JSON object")
		}
	}
	return raws, nil
}
