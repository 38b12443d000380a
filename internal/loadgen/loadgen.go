// Package loadgen drives Veil's ingestion endpoints with realistic synthetic
// traffic for benchmarks. It only targets the URL it is given; the
// benchmark scripts point it at loopback.
package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes one load run.
type Config struct {
	URL         string // base URL, e.g. http://127.0.0.1:8080
	Mode        string // "event" (POST /api/event) or "batch" (POST /api/v1/events)
	Site        string // domain
	Token       string // ingest token (batch mode)
	Duration    time.Duration
	Concurrency int
	BatchSize   int   // events per batch request
	SpoofIPs    bool  // send X-Forwarded-For with varied client IPs (server must trust the peer)
	Users       int   // batch mode: distinct user ids (0: anonymous visitors with ip/user_agent)
	Days        int   // batch mode: spread event timestamps over the last Days days (0: now)
	MaxEvents   int64 // stop after this many events (0: run for Duration)
	Seed        uint64
}

// Result summarizes a run.
type Result struct {
	Mode        string  `json:"mode"`
	Requests    int64   `json:"requests"`
	Events      int64   `json:"events"`
	Errors      int64   `json:"errors"`
	Seconds     float64 `json:"seconds"`
	RPS         float64 `json:"requests_per_second"`
	EPS         float64 `json:"events_per_second"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	FirstError  string  `json:"first_error,omitempty"`
	Concurrency int     `json:"concurrency"`
}

var (
	paths  = []string{"/", "/pricing", "/blog", "/docs", "/docs/getting-started", "/about", "/contact", "/blog/privacy-by-design", "/features", "/signup"}
	refs   = []string{"", "", "https://www.google.com/search?q=x", "https://news.ycombinator.com/item?id=1", "https://duckduckgo.com/", "https://twitter.com/"}
	agents = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
		"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
	}
)

// eventBody returns a Plausible event body.
func eventBody(r *rand.Rand, site string) []byte {
	b, _ := json.Marshal(map[string]any{
		"n": "pageview", "d": site,
		"u": fmt.Sprintf("https://%s%s?utm_source=bench&session=%d", site, paths[r.IntN(len(paths))], r.IntN(1000)),
		"r": refs[r.IntN(len(refs))],
	})
	return b
}

type nativeEvent struct {
	ID        string            `json:"id"`
	Timestamp int64             `json:"timestamp,omitempty"`
	Site      string            `json:"site"`
	Name      string            `json:"name"`
	URL       string            `json:"url"`
	Referrer  string            `json:"referrer,omitempty"`
	UserID    string            `json:"user_id,omitempty"`
	IP        string            `json:"ip,omitempty"`
	UserAgent string            `json:"user_agent,omitempty"`
	Props     map[string]string `json:"props,omitempty"`
}

func randIP(r *rand.Rand) string {
	return fmt.Sprintf("%d.%d.%d.%d", 1+r.IntN(222), r.IntN(256), r.IntN(256), 1+r.IntN(254))
}

// pagePath draws from a few hundred pages with a Zipf-like popularity.
func pagePath(r *rand.Rand) string {
	n := int(1/(r.Float64()+1e-3)) + 1 // P(n) ~ 1/n^2: a long tail
	if n <= len(paths) {
		return paths[n-1]
	}
	return fmt.Sprintf("/blog/post-%d", n%300)
}

// idPlaceholder is patched with a fresh counter before every send, so
// repeated bodies are not deduplicated by event id.
const idPlaceholder = "ev-XXXXXXXXXXXXXXXX"

// backfill places events in time order over the last cfg.Days days, the way
// a bulk import should send them (days then close one after another), with
// a fixed pool of visitors per day who each make several events.
type backfill struct {
	start   time.Time
	span    time.Duration
	total   int64
	perDay  int // visitors per day
	nextIdx atomic.Int64
}

func newBackfill(cfg Config) *backfill {
	total := cfg.MaxEvents
	if total <= 0 {
		total = 1_000_000
	}
	span := time.Duration(cfg.Days) * 24 * time.Hour
	return &backfill{start: time.Now().Add(-span - 10*time.Minute), span: span, total: total,
		perDay: max(1, int(float64(total)/float64(cfg.Days)/2.5))}
}

// next returns the time, client IP and user agent of the next event.
func (b *backfill) next(r *rand.Rand) (time.Time, string, string) {
	idx := min(b.nextIdx.Add(1)-1, b.total-1) // never past now
	t := b.start.Add(time.Duration(float64(b.span) * float64(idx) / float64(b.total)))
	day := t.Unix() / 86400
	v := r.IntN(b.perDay)
	ip := fmt.Sprintf("%d.%d.%d.%d", 1+(day*7+int64(v))%222, (v>>16)&255, (v>>8)&255, v&255)
	return t, ip, agents[(int(day)+v)%len(agents)]
}

// batchBody returns a native batch template and the offsets of its event ids.
func batchBody(r *rand.Rand, cfg Config, bf *backfill) ([]byte, []int) {
	evs := make([]nativeEvent, cfg.BatchSize)
	for i := range evs {
		e := nativeEvent{
			ID: idPlaceholder, Site: cfg.Site, Name: "pageview",
			URL:      fmt.Sprintf("https://%s%s", cfg.Site, pagePath(r)),
			Referrer: refs[r.IntN(len(refs))],
		}
		if r.IntN(10) == 0 {
			e.Name, e.Props = "signup", map[string]string{"plan": []string{"free", "pro", "team"}[r.IntN(3)]}
		}
		switch {
		case bf != nil:
			var t time.Time
			t, e.IP, e.UserAgent = bf.next(r)
			e.Timestamp = t.UnixMilli()
		case cfg.Users > 0:
			e.UserID = fmt.Sprintf("user-%d", r.IntN(cfg.Users))
		default:
			e.IP, e.UserAgent = randIP(r), agents[r.IntN(len(agents))]
		}
		evs[i] = e
	}
	b, _ := json.Marshal(evs)
	var offs []int
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte(idPlaceholder))
		if j < 0 {
			return b, offs
		}
		offs = append(offs, i+j+3)
		i += j + len(idPlaceholder)
	}
}

// patchIDs writes unique ids into a copy of a batch template.
func patchIDs(dst, tmpl []byte, offs []int, seed uint64, seq *atomic.Int64) []byte {
	dst = append(dst[:0], tmpl...)
	for _, o := range offs {
		n := uint64(seq.Add(1)) ^ seed<<40
		for k := 15; k >= 0; k-- {
			dst[o+k] = "0123456789abcdef"[n&15]
			n >>= 4
		}
	}
	return dst
}

// Run executes the load and returns its summary.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 32
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1000
	}
	if cfg.Mode != "event" && cfg.Mode != "batch" {
		return Result{}, fmt.Errorf("mode must be event or batch, not %q", cfg.Mode)
	}
	tr := &http.Transport{MaxIdleConns: cfg.Concurrency * 2, MaxIdleConnsPerHost: cfg.Concurrency * 2,
		DisableCompression: true, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}

	// Pre-build bodies so the generator spends its CPU sending, not encoding.
	r := rand.New(rand.NewPCG(cfg.Seed, 7))
	var seq atomic.Int64
	var bodies [][]byte
	var offsets [][]int
	if cfg.Mode == "event" {
		for range 512 {
			bodies = append(bodies, eventBody(r, cfg.Site))
		}
	} else {
		for range 8 {
			b, offs := batchBody(r, cfg, nil)
			bodies, offsets = append(bodies, b), append(offsets, offs)
		}
	}
	var bf *backfill
	if cfg.Days > 0 {
		bf = newBackfill(cfg)
	}

	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var reqs, evs, errs atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, cfg.Concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wr := rand.New(rand.NewPCG(cfg.Seed, uint64(w)+100))
			var buf []byte
			for i := w; ctx.Err() == nil && (cfg.MaxEvents == 0 || evs.Load() < cfg.MaxEvents); i++ {
				body := bodies[i%len(bodies)]
				if cfg.Mode == "batch" {
					offs := offsets[i%len(bodies)]
					if cfg.Days > 0 {
						// A backfill needs fresh visitors and times in every
						// request, or the same few units hit their caps.
						body, offs = batchBody(wr, cfg, bf)
					}
					buf = patchIDs(buf, body, offs, cfg.Seed, &seq)
					body = buf
				}
				var req *http.Request
				if cfg.Mode == "event" {
					req, _ = http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL+"/api/event", bytes.NewReader(body))
					req.Header.Set("Content-Type", "text/plain")
					req.Header.Set("User-Agent", agents[wr.IntN(len(agents))])
					if cfg.SpoofIPs {
						req.Header.Set("X-Forwarded-For", randIP(wr))
					}
				} else {
					req, _ = http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL+"/api/v1/events", bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "Bearer "+cfg.Token)
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg)))
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
				reqs.Add(1)
				if cfg.Mode == "event" {
					evs.Add(1)
				} else {
					evs.Add(int64(cfg.BatchSize))
				}
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	res := Result{Mode: cfg.Mode, Requests: reqs.Load(), Events: evs.Load(), Errors: errs.Load(), Seconds: secs,
		RPS: float64(reqs.Load()) / secs, EPS: float64(evs.Load()) / secs, Concurrency: cfg.Concurrency}
	if len(all) > 0 {
		res.P50ms = float64(all[len(all)/2]) / 1e6
		res.P99ms = float64(all[len(all)*99/100]) / 1e6
	}
	if v := firstErr.Load(); v != nil {
		res.FirstError = v.(string)
	}
	return res, nil
}

// Baseline is the bare handler the ingest benchmark compares against: it
// reads the body and answers 202, doing nothing else.
func Baseline() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "ok")
	})
}
