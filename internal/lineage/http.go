package lineage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrDropped is returned by HTTPEmitter.Emit after Close, or when its queue
// is full, as it is while the lineage server is down for long: the event is
// discarded, so that a slow lineage server never slows the pipeline or grows
// its memory.
var ErrDropped = errors.New("lineage: event dropped: queue full or emitter closed")

// HTTPConfig configures an HTTPEmitter. Zero fields take the defaults shown.
type HTTPConfig struct {
	URL        string
	Client     *http.Client  // default: 10 s timeout
	Header     http.Header   // extra request headers, e.g. Authorization
	QueueSize  int           // events waiting to be sent; default 1000
	MaxRetries int           // after the first attempt; default 5
	Backoff    time.Duration // first retry delay, doubled each time; default 500 ms
	MaxBackoff time.Duration // default 30 s
	// Registerer, if not nil, gets the counters veil_lineage_events_sent_total,
	// _failed_total, _dropped_total and veil_lineage_send_retries_total.
	Registerer prometheus.Registerer
	// Logger gets one line per event given up on, with the reason (never
	// the event). Default: slog.Default().
	Logger *slog.Logger
}

// HTTPStats counts what became of emitted events.
type HTTPStats struct {
	Sent    uint64 // accepted by the server (2xx)
	Failed  uint64 // rejected (4xx) or still failing after every retry
	Dropped uint64 // queue full, or still queued when Close gave up
	Retries uint64 // attempts after a first one failed
}

// HTTPEmitter POSTs events as JSON to a lineage endpoint from a background
// worker. Emit only queues, so the pipeline never waits on the network.
type HTTPEmitter struct {
	cfg    HTTPConfig
	queue  chan []byte
	ctx    context.Context // cancelled when Close gives up
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.RWMutex // orders Emit's sends before Close closes the queue
	closed bool

	sent, failed, dropped, retries atomic.Uint64
}

// NewHTTPEmitter starts an emitter posting to cfg.URL.
func NewHTTPEmitter(cfg HTTPConfig) (*HTTPEmitter, error) {
	if err := validURL(cfg.URL); err != nil {
		return nil, err
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1000
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = 5
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	e := &HTTPEmitter{cfg: cfg, queue: make(chan []byte, cfg.QueueSize), done: make(chan struct{})}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	if cfg.Registerer != nil {
		if err := e.register(cfg.Registerer); err != nil {
			return nil, err
		}
	}
	go e.run()
	return e, nil
}

func (e *HTTPEmitter) register(reg prometheus.Registerer) error {
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	for _, c := range []prometheus.Collector{
		counter("veil_lineage_events_sent_total", "Lineage events accepted by the lineage server.", &e.sent),
		counter("veil_lineage_events_failed_total", "Lineage events rejected by the lineage server or given up after retries.", &e.failed),
		counter("veil_lineage_events_dropped_total", "Lineage events discarded because the send queue was full or the emitter shut down.", &e.dropped),
		counter("veil_lineage_send_retries_total", "Retried lineage sends.", &e.retries),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("lineage: %w", err)
		}
	}
	return nil
}

// Emit validates ev and queues it. It never blocks: when the queue is full
// the event is dropped, counted, and ErrDropped returned.
func (e *HTTPEmitter) Emit(ctx context.Context, ev RunEvent) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := encode(ev)
	if err != nil {
		return err
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		e.dropped.Add(1)
		return ErrDropped
	}
	select {
	case e.queue <- b:
		return nil
	default:
		e.dropped.Add(1)
		return ErrDropped
	}
}

// Stats returns the counters.
func (e *HTTPEmitter) Stats() HTTPStats {
	return HTTPStats{Sent: e.sent.Load(), Failed: e.failed.Load(), Dropped: e.dropped.Load(), Retries: e.retries.Load()}
}

// Close stops accepting events and waits for the queue to drain. If ctx ends
// first, the send in flight is abandoned and what is left is counted as
// dropped.
func (e *HTTPEmitter) Close(ctx context.Context) error {
	e.mu.Lock()
	if !e.closed {
		e.closed = true
		close(e.queue)
	}
	e.mu.Unlock()
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
		e.cancel()
		<-e.done
		return ctx.Err()
	}
}

func (e *HTTPEmitter) run() {
	defer close(e.done)
	for body := range e.queue {
		if e.ctx.Err() != nil {
			e.dropped.Add(1)
			continue
		}
		e.deliver(body)
	}
}

// deliver sends one event, retrying server errors and network failures with
// jittered exponential backoff. A 4xx other than 408 and 429 means the server
// will never take this event, so it is not retried.
func (e *HTTPEmitter) deliver(body []byte) {
	delay := e.cfg.Backoff
	for attempt := 0; ; attempt++ {
		retry, err := e.post(body)
		if err == nil {
			e.sent.Add(1)
			return
		}
		if !retry || attempt == e.cfg.MaxRetries {
			e.failed.Add(1)
			e.cfg.Logger.Warn("lineage event not delivered", "attempts", attempt+1, "err", err)
			return
		}
		// Full jitter within [delay/2, delay) keeps many Veil nodes from
		// retrying against a recovering server in step.
		wait := delay/2 + rand.N(delay/2+1)
		select {
		case <-time.After(wait):
		case <-e.ctx.Done():
			e.dropped.Add(1)
			return
		}
		e.retries.Add(1)
		delay = min(2*delay, e.cfg.MaxBackoff)
	}
}

func (e *HTTPEmitter) post(body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(e.ctx, http.MethodPost, e.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	if e.cfg.Header != nil {
		req.Header = e.cfg.Header.Clone()
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.cfg.Client.Do(req)
	if err != nil {
		return true, err
	}
	// Drain a little so the connection can be reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		return true, fmt.Errorf("lineage server answered %s", resp.Status)
	default:
		return false, fmt.Errorf("lineage server answered %s", resp.Status)
	}
}
