// Package eventlog is Veil's durable event log on NATS JetStream: an
// in-process server with file storage by default, or an external NATS
// cluster through the same code path.
//
// Each site has its own stream, VEIL_EV_<site>, whose MaxAge is the site's
// retention, so expired events are removed from disk by JetStream itself.
// Subjects are veil.ev.<site>.a for cookieless (visitor-day) events and
// veil.ev.<site>.u.<pseudonym> for events of a declared user, one subject per
// user pseudonym: erasing or exporting a user touches only that user's
// messages, never the rest of the stream (and a message never mixes users).
package eventlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/store"
)

// Config configures the log.
type Config struct {
	// URL of an external NATS server; empty runs one in-process.
	URL string
	// Dir holds the embedded server's file store.
	Dir string
	// SyncAlways makes the embedded server fsync every write before it
	// acknowledges; otherwise it fsyncs every SyncInterval (acknowledged
	// events then survive a process crash but not a power loss in between).
	SyncAlways   bool
	SyncInterval time.Duration
	// Replicas for streams on an external cluster (1 or 3).
	Replicas int
	// DedupeWindow is JetStream's duplicate window for message ids.
	DedupeWindow time.Duration
	// MaxBatchBytes bounds one log message (NATS max_payload is 1 MiB).
	MaxBatchBytes int
}

// Log is the event log.
type Log struct {
	cfg Config
	srv *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	log *slog.Logger

	reqs    chan *appendReq
	flights chan *flight
	closeMu sync.RWMutex
	closed  bool
	wg      sync.WaitGroup

	ensured sync.Map // site id -> retention already applied
}

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("event log is closed")

// Open starts (or connects to) NATS and returns the log.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*Log, error) {
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = 512 << 10
	}
	if cfg.DedupeWindow <= 0 {
		cfg.DedupeWindow = 10 * time.Minute
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	l := &Log{cfg: cfg, log: logger,
		reqs: make(chan *appendReq, 4096), flights: make(chan *flight, 2)}
	var opts []nats.Option
	opts = append(opts, nats.Name("veil"), nats.MaxReconnects(-1))
	url := cfg.URL
	if url == "" {
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("event log: %w", err)
		}
		sopts := &server.Options{
			ServerName:         "veil-embedded",
			JetStream:          true,
			StoreDir:           cfg.Dir,
			DontListen:         true,
			NoSigs:             true,
			NoLog:              true,
			JetStreamMaxMemory: 64 << 20,
			SyncAlways:         cfg.SyncAlways,
			SyncInterval:       cfg.SyncInterval,
			MaxPayload:         2 << 20,
		}
		srv, err := server.NewServer(sopts)
		if err != nil {
			return nil, fmt.Errorf("embedded NATS: %w", err)
		}
		srv.Start()
		if !srv.ReadyForConnections(30 * time.Second) {
			srv.Shutdown()
			return nil, errors.New("embedded NATS did not become ready within 30s")
		}
		l.srv = srv
		opts = append(opts, nats.InProcessServer(srv))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		l.shutdownServer()
		return nil, fmt.Errorf("connect to NATS %s: %w", redactURL(url), err)
	}
	l.nc = nc
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		nc.Close()
		l.shutdownServer()
		return nil, err
	}
	l.js = js
	if _, err := js.AccountInfo(ctx); err != nil {
		nc.Close()
		l.shutdownServer()
		return nil, fmt.Errorf("NATS %s has no JetStream: %w", redactURL(url), err)
	}
	l.wg.Add(2)
	go l.batcher()
	go l.completer()
	return l, nil
}

// redactURL drops credentials from a NATS URL before it reaches a log line.
func redactURL(u string) string {
	if u == "" {
		return "(embedded)"
	}
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i {
			return u[:j+3] + "***" + u[i:]
		}
	}
	return u
}

// Embedded reports whether the NATS server runs in-process.
func (l *Log) Embedded() bool { return l.srv != nil }

// JetStream exposes the JetStream context to consumers of the log.
func (l *Log) JetStream() jetstream.JetStream { return l.js }

// StreamName is the stream holding a site's events.
func StreamName(siteID string) string { return "VEIL_EV_" + siteID }

// SubjectPrefix is the subject prefix of all of a site's events.
func SubjectPrefix(siteID string) string { return "veil.ev." + siteID + "." }

// Subject is the subject an event is stored under.
func Subject(siteID string, e *event.Event) string {
	if e.Unit == event.UnitUser {
		return UserSubject(siteID, e.Pseudonym)
	}
	return SubjectPrefix(siteID) + "a"
}

// UserSubject is the subject of one declared user's events.
func UserSubject(siteID string, p event.Pseudonym) string {
	return SubjectPrefix(siteID) + "u." + p.String()
}

// EnsureSite creates or updates the stream of a site so that its retention
// is enforced by JetStream (MaxAge).
func (l *Log) EnsureSite(ctx context.Context, s store.Site) error {
	if v, ok := l.ensured.Load(s.ID); ok && v.(time.Duration) == s.Retention {
		return nil
	}
	dup := l.cfg.DedupeWindow
	if dup > s.Retention {
		dup = s.Retention
	}
	_, err := l.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName(s.ID),
		Description: "veil events of one site",
		Subjects:    []string{SubjectPrefix(s.ID) + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      s.Retention,
		Duplicates:  dup,
		Replicas:    l.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("stream for site %s: %w", s.ID, err)
	}
	l.ensured.Store(s.ID, s.Retention)
	return nil
}

// RemoveSite deletes a site's stream and everything in it.
func (l *Log) RemoveSite(ctx context.Context, siteID string) error {
	l.ensured.Delete(siteID)
	err := l.js.DeleteStream(ctx, StreamName(siteID))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	return err
}

// appendReq is one caller's events waiting to be written.
type appendReq struct {
	siteID string
	evs    []event.Event
	done   chan error
}

// flight is one group commit: the messages published for a set of requests.
type flight struct {
	reqs    []*appendReq
	futures []jetstream.PubAckFuture
	err     error
}

// Append writes evs (all of one site) to the log and returns once JetStream
// has acknowledged them as stored. Concurrent calls are group-committed:
// events of many requests travel in shared messages, so the per-message cost
// of the log is paid once per group rather than once per event.
func (l *Log) Append(ctx context.Context, siteID string, evs []event.Event) error {
	if len(evs) == 0 {
		return nil
	}
	l.closeMu.RLock()
	if l.closed {
		l.closeMu.RUnlock()
		return ErrClosed
	}
	req := &appendReq{siteID: siteID, evs: evs, done: make(chan error, 1)}
	l.reqs <- req
	l.closeMu.RUnlock()
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		// The events may still be stored; the caller reports failure and a
		// client retry is deduplicated by event id where one was given.
		return ctx.Err()
	}
}

// batcher collects waiting requests into group commits.
func (l *Log) batcher() {
	defer l.wg.Done()
	defer close(l.flights)
	const maxGroupEvents = 8192
	for {
		first, ok := <-l.reqs
		if !ok {
			return
		}
		reqs := []*appendReq{first}
		n := len(first.evs)
	drain:
		for n < maxGroupEvents {
			select {
			case r, ok := <-l.reqs:
				if !ok {
					break drain
				}
				reqs = append(reqs, r)
				n += len(r.evs)
			default:
				break drain
			}
		}
		l.flights <- l.publish(reqs)
	}
}

// publish encodes the events of reqs grouped by subject and publishes them
// asynchronously.
func (l *Log) publish(reqs []*appendReq) *flight {
	f := &flight{reqs: reqs}
	groups := map[string][]*event.Event{}
	var order []string
	for _, r := range reqs {
		for i := range r.evs {
			s := Subject(r.siteID, &r.evs[i])
			g, ok := groups[s]
			if !ok {
				order = append(order, s)
				g = make([]*event.Event, 0, len(r.evs))
			}
			groups[s] = append(g, &r.evs[i])
		}
	}
	var scratch []byte
	for _, subj := range order {
		evs := groups[subj]
		for len(evs) > 0 {
			var data []byte
			var used int
			scratch, data, used = l.encode(scratch, evs)
			evs = evs[used:]
			fut, err := l.js.PublishMsgAsync(&nats.Msg{Subject: subj, Data: data})
			if err != nil {
				f.err = err
				return f
			}
			f.futures = append(f.futures, fut)
		}
	}
	return f
}

// encode packs as many of evs as fit in one message (at least one). It
// encodes into scratch and returns an exact-size copy, because the client
// keeps the message until it is acknowledged.
func (l *Log) encode(scratch []byte, evs []*event.Event) ([]byte, []byte, int) {
	n := len(evs)
	for {
		scratch = event.AppendBatchPtr(scratch[:0], evs[:n])
		if len(scratch) <= l.cfg.MaxBatchBytes || n == 1 {
			return scratch, append([]byte(nil), scratch...), n
		}
		n = (n + 1) / 2
	}
}

// completer waits for each group commit's acknowledgements in order and
// releases its callers.
func (l *Log) completer() {
	defer l.wg.Done()
	for f := range l.flights {
		err := f.err
		for _, fut := range f.futures {
			select {
			case <-fut.Ok():
			case e := <-fut.Err():
				if err == nil {
					err = e
				}
			case <-time.After(30 * time.Second):
				if err == nil {
					err = errors.New("event log: no acknowledgement within 30s")
				}
			}
		}
		if err != nil {
			err = fmt.Errorf("append to event log: %w", err)
		}
		for _, r := range f.reqs {
			r.done <- err
		}
	}
}

// Close stops accepting appends, finishes those in flight, and shuts the log
// down (and the embedded server with it).
func (l *Log) Close() error {
	l.closeMu.Lock()
	if l.closed {
		l.closeMu.Unlock()
		return nil
	}
	l.closed = true
	close(l.reqs)
	l.closeMu.Unlock()
	l.wg.Wait()
	err := l.nc.Drain()
	for l.nc.IsDraining() {
		time.Sleep(10 * time.Millisecond)
	}
	l.shutdownServer()
	return err
}

func (l *Log) shutdownServer() {
	if l.srv != nil {
		l.srv.Shutdown()
		l.srv.WaitForShutdown()
	}
}

// StoreDir returns where the embedded server keeps its files.
func StoreDir(dataDir string) string { return filepath.Join(dataDir, "nats") }
