package dsr

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The request register: one row per request, naming the subject only by
// its keyed reference. It is the privacy officer's evidence of what was
// asked, when, by whom and whether it was answered in time, so it is kept
// (it holds nothing that identifies the subject without the key).
const registerSchema = `
CREATE TABLE IF NOT EXISTS dsr_requests (
	id TEXT PRIMARY KEY,
	site TEXT NOT NULL,
	kind TEXT NOT NULL,        -- export | erase
	subject_ref TEXT NOT NULL, -- keyed hash of the subject, never the raw id
	received INTEGER NOT NULL, -- unix milliseconds
	completed INTEGER,         -- unix milliseconds; NULL while open
	status TEXT NOT NULL,      -- in_progress | failed | completed
	actor TEXT NOT NULL,
	reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dsr_requests_subject ON dsr_requests (site, kind, subject_ref, status);
CREATE INDEX IF NOT EXISTS dsr_requests_status ON dsr_requests (status, received);
`

// Request kinds and statuses.
const (
	KindExport = "export"
	KindErase  = "erase"

	StatusInProgress = "in_progress"
	StatusFailed     = "failed" // open: waits for a retry
	StatusCompleted  = "completed"
)

// Request is one registered request, as the register API shows it.
type Request struct {
	ID         string     `json:"id"`
	Site       string     `json:"site"` // site id
	Kind       string     `json:"kind"`
	SubjectRef string     `json:"subject_ref"`
	Status     string     `json:"status"`
	Actor      string     `json:"actor"`
	Reason     string     `json:"reason"`
	Received   time.Time  `json:"received"`
	Completed  *time.Time `json:"completed,omitempty"`
	Deadline   time.Time  `json:"deadline"`
	// AgeSeconds is the time from receipt to completion, or to now while
	// the request is open.
	AgeSeconds float64 `json:"age_seconds"`
	// Overdue: not completed by the deadline.
	Overdue bool `json:"overdue"`
}

// Filter selects requests.
type Filter struct {
	// Status is "open" (in progress or failed), one of the statuses, or ""
	// for all.
	Status string
	// Sites limits the result to these site ids; nil means all.
	Sites []string
	// Limit caps the result (newest first); 0 means 1000.
	Limit int
}

// ValidStatusFilter reports whether s is a Filter.Status value.
func ValidStatusFilter(s string) bool {
	switch s {
	case "", "open", StatusInProgress, StatusFailed, StatusCompleted:
		return true
	}
	return false
}

// open registers a request, or resumes the open one of the same kind for
// the same subject: a retry after a failure continues it, and its deadline
// still runs from the first receipt.
func (s *Service) open(ctx context.Context, siteID, kind, ref, actor, reason string) (Request, error) {
	tx, err := s.cfg.DB.BeginTx(ctx, nil)
	if err != nil {
		return Request{}, fmt.Errorf("dsr register: %w", err)
	}
	defer tx.Rollback()
	req := Request{Site: siteID, Kind: kind, SubjectRef: ref, Status: StatusInProgress, Actor: actor, Reason: reason}
	var received int64
	err = tx.QueryRowContext(ctx, `SELECT id, received FROM dsr_requests
		WHERE site=? AND kind=? AND subject_ref=? AND status != ? ORDER BY received LIMIT 1`,
		siteID, kind, ref, StatusCompleted).Scan(&req.ID, &received)
	switch {
	case err == nil:
		req.Received = time.UnixMilli(received).UTC()
		_, err = tx.ExecContext(ctx, `UPDATE dsr_requests SET status=? WHERE id=?`, StatusInProgress, req.ID)
	case errors.Is(err, sql.ErrNoRows):
		req.ID = newID()
		req.Received = s.cfg.Now().UTC()
		_, err = tx.ExecContext(ctx, `INSERT INTO dsr_requests (id, site, kind, subject_ref, received, status, actor, reason)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, req.ID, siteID, kind, ref, req.Received.UnixMilli(), StatusInProgress, actor, reason)
	}
	if err != nil {
		return Request{}, fmt.Errorf("dsr register: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Request{}, fmt.Errorf("dsr register: %w", err)
	}
	return req, nil
}

func newID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return "dsr_" + hex.EncodeToString(b)
}

// finish records a request's outcome.
func (s *Service) finish(ctx context.Context, req Request, status string) error {
	var completed any
	if status == StatusCompleted {
		completed = s.cfg.Now().UnixMilli()
	}
	if _, err := s.cfg.DB.ExecContext(ctx, `UPDATE dsr_requests SET status=?, completed=? WHERE id=?`, status, completed, req.ID); err != nil {
		return fmt.Errorf("dsr register: %w", err)
	}
	s.done.WithLabelValues(req.Kind, status).Inc()
	return nil
}

// fail marks a request failed after err. The request stays open; if even
// that cannot be written it stays in_progress, which is open too.
func (s *Service) fail(ctx context.Context, req Request, err error) {
	// The error may name a vault token or a log sequence, never a subject.
	s.cfg.Logger.Error("data subject request failed", "request", req.ID, "kind", req.Kind, "site", req.Site, "err", err)
	if ferr := s.finish(context.WithoutCancel(ctx), req, StatusFailed); ferr != nil {
		s.cfg.Logger.Error("data subject request: marking it failed", "request", req.ID, "err", ferr)
	}
}

// Requests lists registered requests, newest first.
func (s *Service) Requests(ctx context.Context, f Filter) ([]Request, error) {
	if !ValidStatusFilter(f.Status) {
		return nil, fmt.Errorf("dsr: unknown status filter %q", f.Status)
	}
	q := `SELECT id, site, kind, subject_ref, status, actor, reason, received, completed FROM dsr_requests WHERE 1=1`
	var args []any
	switch f.Status {
	case "":
	case "open":
		q += ` AND status != ?`
		args = append(args, StatusCompleted)
	default:
		q += ` AND status = ?`
		args = append(args, f.Status)
	}
	if f.Sites != nil {
		if len(f.Sites) == 0 {
			return []Request{}, nil
		}
		q += ` AND site IN (?` + strings.Repeat(`, ?`, len(f.Sites)-1) + `)`
		for _, id := range f.Sites {
			args = append(args, id)
		}
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	q += ` ORDER BY received DESC, id LIMIT ?`
	args = append(args, limit)
	rows, err := s.cfg.DB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("dsr register: %w", err)
	}
	defer rows.Close()
	now := s.cfg.Now().UTC()
	out := []Request{}
	for rows.Next() {
		var (
			r         Request
			received  int64
			completed sql.NullInt64
		)
		if err := rows.Scan(&r.ID, &r.Site, &r.Kind, &r.SubjectRef, &r.Status, &r.Actor, &r.Reason, &received, &completed); err != nil {
			return nil, fmt.Errorf("dsr register: %w", err)
		}
		r.Received = time.UnixMilli(received).UTC()
		r.Deadline = r.Received.Add(s.cfg.Deadline)
		end := now
		if completed.Valid {
			c := time.UnixMilli(completed.Int64).UTC()
			r.Completed, end = &c, c
		}
		r.AgeSeconds = end.Sub(r.Received).Seconds()
		r.Overdue = end.After(r.Deadline)
		out = append(out, r)
	}
	return out, rows.Err()
}

// openCollector exports the open requests from the register at scrape
// time, so requests made through the CLI (another process) count too.
type openCollector struct{ s *Service }

var (
	openDesc   = prometheus.NewDesc("veil_dsr_open_requests", "Data subject requests received and not yet completed.", nil, nil)
	oldestDesc = prometheus.NewDesc("veil_dsr_oldest_open_age_seconds", "Age of the oldest open data subject request (0 when none); alert well before the deadline.", nil, nil)
)

func (c *openCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- openDesc
	ch <- oldestDesc
}

func (c *openCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var (
		n      int
		oldest sql.NullInt64
	)
	err := c.s.cfg.DB.QueryRowContext(ctx, `SELECT COUNT(*), MIN(received) FROM dsr_requests WHERE status != ?`, StatusCompleted).Scan(&n, &oldest)
	if err != nil {
		// A scrape error is itself the signal that compliance is unknown.
		ch <- prometheus.NewInvalidMetric(openDesc, err)
		return
	}
	age := 0.0
	if oldest.Valid {
		age = c.s.cfg.Now().Sub(time.UnixMilli(oldest.Int64)).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(openDesc, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, age)
}
