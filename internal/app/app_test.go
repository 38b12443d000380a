package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/aggregate"
	"github.com/veil-analytics/veil/internal/auth"
	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/eventlog"
	"github.com/veil-analytics/veil/internal/site"
	"github.com/veil-analytics/veil/internal/store"
)

// lockedBuffer collects log output from concurrent goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// running is a Veil served on a loopback port for a test.
type running struct {
	app    *App
	url    string
	admin  string
	ingest string
	logs   *lockedBuffer
	stop   func()
	dir    string
}

func start(t *testing.T, dir string) *running {
	t.Helper()
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := Open(context.Background(), Config{DataDir: dir, TrustedProxies: []string{"127.0.0.1/32"}, SyncInterval: time.Second}, logger)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	r := &running{app: a, url: "http://" + ln.Addr().String(), logs: logs, dir: dir}
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
			if err := a.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(r.stop)
	ctxb := context.Background()
	r.admin, _, err = auth.NewToken(ctxb, a.Store, "admin", store.RoleAdmin, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r.ingest, _, err = auth.NewToken(ctxb, a.Store, "ingest", store.RoleIngest, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r *running) do(t *testing.T, method, path, token, ctype string, body []byte, hdr map[string]string) resp {
	t.Helper()
	req, err := http.NewRequest(method, r.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, b}
}

func (r *running) addSite(t *testing.T, domain string) store.Site {
	t.Helper()
	res := r.do(t, "POST", "/api/v1/sites", r.admin, "application/json", []byte(`{"domain":"`+domain+`"}`), nil)
	if res.status != http.StatusCreated {
		t.Fatalf("create site: %d %s", res.status, res.body)
	}
	s, err := site.Lookup(context.Background(), r.app.Store, domain)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (r *running) events(t *testing.T, siteID string) []event.Event {
	t.Helper()
	var out []event.Event
	if err := r.app.Log.Scan(context.Background(), siteID, func(_ uint64, evs []event.Event) error {
		out = append(out, evs...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

const (
	rawIP     = "198.51.100.23"
	rawUA     = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0 VeilTestMarker/7.7.7"
	rawUser   = "user-raw-id-4242-secret"
	rawEmail  = "jane.doe.marker@example.org"
	rawUserIP = "192.0.2.77"
)

func pageview(domain, path string) []byte {
	return []byte(`{"n":"pageview","u":"https://` + domain + path + `","d":"` + domain + `","r":"https://www.google.com/search?q=secret"}`)
}

// After ingesting events that carry a known IP, user agent, user id and an
// email in a prop, none of those byte strings is anywhere under the data
// directory, in the logs or in the metrics.
func TestNoRawIdentifiersReachDiskLogsOrMetrics(t *testing.T) {
	dir := t.TempDir()
	r := start(t, dir)
	s := r.addSite(t, "example.com")

	body := []byte(`{"n":"signup","u":"https://example.com/pricing?utm_source=news&email=` + rawEmail + `#token","d":"example.com","p":{"plan":"pro","contact":"` + rawEmail + `"}}`)
	res := r.do(t, "POST", "/api/event", "", "text/plain", body, map[string]string{"User-Agent": rawUA, "X-Forwarded-For": rawIP})
	if res.status != http.StatusAccepted {
		t.Fatalf("event: %d %s", res.status, res.body)
	}
	res = r.do(t, "POST", "/api/event", "", "text/plain", pageview("example.com", "/users/"+rawEmail+"/profile"), map[string]string{"User-Agent": rawUA, "X-Forwarded-For": rawIP})
	if res.status != http.StatusAccepted {
		t.Fatalf("event: %d %s", res.status, res.body)
	}
	batch := fmt.Sprintf(`[{"site":"example.com","name":"purchase","url":"https://example.com/checkout","user_id":%q,"ip":%q,"user_agent":%q,"props":{"note":%q}}]`,
		rawUser, rawUserIP, rawUA, "mail me at "+rawEmail)
	res = r.do(t, "POST", "/api/v1/events", r.ingest, "application/json", []byte(batch), nil)
	if res.status != http.StatusAccepted || !strings.Contains(string(res.body), `"accepted":1`) {
		t.Fatalf("batch: %d %s", res.status, res.body)
	}

	evs := r.events(t, s.ID)
	if len(evs) != 3 {
		t.Fatalf("stored %d events, want 3", len(evs))
	}
	// What survives is useful: country-free here (documentation IPs), but
	// browser, OS, path, allowed utm parameter and redaction markers.
	signup := evs[0]
	if signup.Browser != "Firefox" || signup.OS != "Linux" || signup.Query != "utm_source=news" || signup.Path != "/pricing" {
		t.Errorf("minimized event lost useful facts: %+v", signup)
	}
	if evs[1].Path != "/users/:email/profile" {
		t.Errorf("email in path not redacted: %q", evs[1].Path)
	}
	if evs[2].Unit != event.UnitUser || evs[2].KeyVersion == 0 {
		t.Errorf("declared user not pseudonymized as a user unit: %+v", evs[2])
	}

	if res := r.do(t, "GET", "/metrics", "", "", nil, nil); res.status != 401 {
		t.Errorf("metrics without a token: %d (they count events exactly)", res.status)
	}
	metrics := r.do(t, "GET", "/metrics", r.admin, "", nil, nil)
	if !strings.Contains(string(metrics.body), `veil_pii_redactions_total{kind="email",where="prop"} 2`) {
		t.Errorf("redactions not counted in metrics")
	}
	r.stop() // flush everything to disk

	needles := []string{rawIP, rawUA, "VeilTestMarker", rawUser, rawEmail, rawUserIP, "jane.doe.marker", "secret"}
	for _, f := range grepDir(t, dir, needles...) {
		t.Errorf("raw value on disk: %s", f)
	}
	for _, n := range needles {
		if strings.Contains(r.logs.String(), n) {
			t.Errorf("logs contain raw %q", n)
		}
		if strings.Contains(string(metrics.body), n) {
			t.Errorf("metrics contain raw %q", n)
		}
	}
}

func TestRestartKeepsAcknowledgedEvents(t *testing.T) {
	dir := t.TempDir()
	r := start(t, dir)
	s := r.addSite(t, "example.com")
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := r.do(t, "POST", "/api/event", "", "text/plain", pageview("example.com", fmt.Sprintf("/p%d", i)),
				map[string]string{"User-Agent": rawUA, "X-Forwarded-For": fmt.Sprintf("203.0.113.%d", i%250+1)})
			if res.status != http.StatusAccepted {
				t.Errorf("event %d: %d %s", i, res.status, res.body)
			}
		}()
	}
	wg.Wait()
	r.stop()

	r2 := start(t, dir)
	if got := len(r2.events(t, s.ID)); got != 200 {
		t.Fatalf("after restart %d events, want 200", got)
	}
	// The restarted server still knows the site and accepts its events.
	res := r2.do(t, "POST", "/api/event", "", "text/plain", pageview("example.com", "/after"), map[string]string{"User-Agent": rawUA})
	if res.status != http.StatusAccepted {
		t.Fatalf("after restart: %d %s", res.status, res.body)
	}
}

// Bad input gets a 4xx JSON error naming the problem, and nothing is written.
func TestBadInputIsRejectedAndWritesNothing(t *testing.T) {
	r := start(t, t.TempDir())
	s := r.addSite(t, "example.com")
	ua := map[string]string{"User-Agent": rawUA}
	many := map[string]string{}
	for i := range 31 {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	manyJSON, _ := json.Marshal(many)
	cases := []struct {
		name, ctype string
		body        []byte
		status      int
		field       string
	}{
		{"invalid json", "text/plain", []byte(`{"n":"pageview",`), 400, ""},
		{"not an object", "text/plain", []byte(`[1,2]`), 400, ""},
		{"invalid utf-8", "text/plain", []byte("{\"n\":\"page\xff\",\"u\":\"https://example.com/\",\"d\":\"example.com\"}"), 400, ""},
		{"missing name", "text/plain", []byte(`{"u":"https://example.com/","d":"example.com"}`), 400, "name"},
		{"missing url", "text/plain", []byte(`{"n":"pageview","d":"example.com"}`), 400, "url"},
		{"data url", "text/plain", []byte(`{"n":"pageview","u":"data:text/html,hi","d":"example.com"}`), 400, "url"},
		{"unknown site", "text/plain", pageview("unknown.example", "/"), 400, "domain"},
		{"too many props", "text/plain", []byte(`{"n":"x","u":"https://example.com/","d":"example.com","p":` + string(manyJSON) + `}`), 400, "props"},
		{"long prop", "text/plain", []byte(`{"n":"x","u":"https://example.com/","d":"example.com","p":{"k":"` + strings.Repeat("v", 2001) + `"}}`), 400, "props"},
		{"long name", "text/plain", []byte(`{"n":"` + strings.Repeat("n", 121) + `","u":"https://example.com/","d":"example.com"}`), 400, "name"},
		{"bad props type", "text/plain", []byte(`{"n":"x","u":"https://example.com/","d":"example.com","p":42}`), 400, "props"},
		{"bad scroll depth", "text/plain", []byte(`{"n":"engagement","u":"https://example.com/","d":"example.com","sd":101}`), 400, "sd"},
		{"wrong content type", "application/xml", pageview("example.com", "/"), 415, ""},
		{"oversized", "text/plain", append(append([]byte(`{"n":"x","u":"https://example.com/","d":"example.com","r":"`), bytes.Repeat([]byte("a"), 1_000_001)...), '"', '}'), 413, ""},
	}
	for _, c := range cases {
		res := r.do(t, "POST", "/api/event", "", c.ctype, c.body, ua)
		var e struct{ Error, Field string }
		if err := json.Unmarshal(res.body, &e); err != nil || e.Error == "" {
			t.Errorf("%s: body %q is not a JSON error", c.name, res.body)
		}
		if res.status != c.status || e.Field != c.field {
			t.Errorf("%s: got %d field %q (%s), want %d field %q", c.name, res.status, e.Field, e.Error, c.status, c.field)
		}
	}
	now := time.Now().UTC()
	batchCases := []struct {
		name, ctype, body string
		status            int
	}{
		{"batch invalid json", "application/json", `[{"site":"example.com"`, 400},
		{"batch empty", "application/json", `[]`, 400},
		{"batch not objects", "application/json", `[1]`, 400},
		{"batch ndjson bad line", "application/x-ndjson", "{\"site\":\"example.com\"}\n{oops\n", 400},
		{"batch wrong type", "text/csv", `a,b`, 415},
		{"batch all rejected: future", "application/json", `[{"site":"example.com","name":"x","url":"https://example.com/","timestamp":"` + now.Add(time.Hour).Format(time.RFC3339) + `"}]`, 400},
		{"batch all rejected: ancient", "application/json", `[{"site":"example.com","name":"x","url":"https://example.com/","timestamp":946684800}]`, 400},
		{"batch unknown field", "application/json", `[{"site":"example.com","name":"x","url":"https://example.com/","email":"x"}]`, 400},
	}
	for _, c := range batchCases {
		res := r.do(t, "POST", "/api/v1/events", r.ingest, c.ctype, []byte(c.body), nil)
		if res.status != c.status || !bytes.Contains(res.body, []byte(`"`)) {
			t.Errorf("%s: got %d %s, want %d", c.name, res.status, res.body, c.status)
		}
	}
	// Too many events in one batch.
	var sb strings.Builder
	for range 5001 {
		sb.WriteString(`{"site":"example.com","name":"x","url":"https://example.com/"}` + "\n")
	}
	if res := r.do(t, "POST", "/api/v1/events", r.ingest, "application/x-ndjson", []byte(sb.String()), nil); res.status != 413 {
		t.Errorf("oversized batch: %d %s", res.status, res.body)
	}
	if n := len(r.events(t, s.ID)); n != 0 {
		t.Fatalf("%d events written by rejected requests", n)
	}
	if strings.Contains(r.logs.String(), `"level":"ERROR"`) {
		t.Errorf("bad input logged as an error: %s", r.logs.String())
	}
}

func TestBatchReportsPerEventRejectionsAndDeduplicates(t *testing.T) {
	r := start(t, t.TempDir())
	s := r.addSite(t, "example.com")
	body := `{"id":"e1","site":"example.com","name":"pageview","url":"https://example.com/a","ip":"203.0.113.9","user_agent":"` + rawUA + `"}
{"id":"e2","site":"example.com","name":"","url":"https://example.com/b"}
{"id":"e3","site":"nope.example","name":"pageview","url":"https://nope.example/"}
{"id":"e4","site":"example.com","name":"pageview","url":"https://example.com/c","timestamp":"` + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339) + `"}
{"id":"e5","site":"example.com","name":"pageview","url":"https://example.com/d","ip":"203.0.113.9","user_agent":"Googlebot/2.1 (+http://www.google.com/bot.html)"}
`
	res := r.do(t, "POST", "/api/v1/events", r.ingest, "application/x-ndjson", []byte(body), nil)
	var out struct {
		Accepted, Duplicates, Dropped int
		Rejected                      []struct {
			Index        int
			Error, Field string
		}
	}
	json.Unmarshal(res.body, &out)
	if res.status != 202 || out.Accepted != 2 || out.Dropped != 1 || len(out.Rejected) != 2 ||
		out.Rejected[0].Index != 1 || out.Rejected[0].Field != "name" || out.Rejected[1].Index != 2 || out.Rejected[1].Field != "site" {
		t.Fatalf("got %d %s", res.status, res.body)
	}
	// A retry of the same batch stores nothing twice.
	res = r.do(t, "POST", "/api/v1/events", r.ingest, "application/x-ndjson", []byte(body), nil)
	json.Unmarshal(res.body, &out)
	if out.Accepted != 0 || out.Duplicates != 2 {
		t.Fatalf("retry: %s", res.body)
	}
	if n := len(r.events(t, s.ID)); n != 2 {
		t.Fatalf("%d events stored, want 2", n)
	}
}

func TestOptOutsAndBotsAreNotStored(t *testing.T) {
	r := start(t, t.TempDir())
	s := r.addSite(t, "example.com")
	cases := []struct {
		name string
		body []byte
		hdr  map[string]string
		drop string
	}{
		{"gpc", pageview("example.com", "/"), map[string]string{"User-Agent": rawUA, "Sec-GPC": "1"}, "gpc"},
		{"consent refused", []byte(`{"n":"pageview","u":"https://example.com/","d":"example.com","consent":false}`), map[string]string{"User-Agent": rawUA}, "consent"},
		{"bot", pageview("example.com", "/"), map[string]string{"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}, "bot"},
		{"no user agent", pageview("example.com", "/"), map[string]string{"User-Agent": ""}, "bot"},
	}
	for _, c := range cases {
		res := r.do(t, "POST", "/api/event", "", "text/plain", c.body, c.hdr)
		if res.status != 202 || res.header.Get("X-Veil-Dropped") != c.drop {
			t.Errorf("%s: %d dropped=%q", c.name, res.status, res.header.Get("X-Veil-Dropped"))
		}
	}
	if n := len(r.events(t, s.ID)); n != 0 {
		t.Fatalf("%d opted-out or bot events stored", n)
	}
	m := string(r.do(t, "GET", "/metrics", r.admin, "", nil, nil).body)
	for _, want := range []string{`veil_events_dropped_total{reason="bot"} 2`, `veil_events_dropped_total{reason="gpc"} 1`, `veil_events_dropped_total{reason="consent"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// Forwarding headers are believed only from a configured trusted proxy.
func TestUntrustedForwardedForIsIgnored(t *testing.T) {
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := Open(context.Background(), Config{DataDir: dir}, logger) // no trusted proxies
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	st, _ := site.Create(context.Background(), a.Store, "example.com", site.Settings{}, time.Now())
	post := func(xff string) event.Pseudonym {
		req, _ := http.NewRequest("POST", "/api/event", bytes.NewReader(pageview("example.com", "/")))
		req.RemoteAddr = "192.0.2.1:5555"
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("User-Agent", rawUA)
		req.Header.Set("X-Forwarded-For", xff)
		rec := &recorder{h: http.Header{}}
		a.Handler.ServeHTTP(rec, req)
		if rec.status != 202 {
			t.Fatalf("status %d", rec.status)
		}
		var last event.Event
		a.Log.Scan(context.Background(), st.ID, func(_ uint64, evs []event.Event) error { last = evs[len(evs)-1]; return nil })
		return last.Pseudonym
	}
	if post("203.0.113.1") != post("203.0.113.2") {
		t.Fatal("an untrusted client chose its own IP through X-Forwarded-For")
	}
}

type recorder struct {
	h      http.Header
	status int
}

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *recorder) WriteHeader(s int)           { r.status = s }

func TestAdminAPIAndRoles(t *testing.T) {
	r := start(t, t.TempDir())
	viewer, _, _ := auth.NewToken(context.Background(), r.app.Store, "v", store.RoleViewer, nil, time.Now())

	if res := r.do(t, "GET", "/api/v1/sites", "", "", nil, nil); res.status != 401 {
		t.Errorf("no token: %d", res.status)
	}
	if res := r.do(t, "GET", "/api/v1/sites", "veil_bogus", "", nil, nil); res.status != 401 {
		t.Errorf("bad token: %d", res.status)
	}
	if res := r.do(t, "GET", "/api/v1/sites", viewer, "", nil, nil); res.status != 403 {
		t.Errorf("viewer on admin API: %d", res.status)
	}
	if res := r.do(t, "POST", "/api/v1/events", viewer, "application/json", []byte(`[{}]`), nil); res.status != 403 {
		t.Errorf("viewer ingesting: %d", res.status)
	}
	if res := r.do(t, "POST", "/api/v1/sites", r.admin, "application/json", []byte(`{"domain":"https://bad/path"}`), nil); res.status != 400 {
		t.Errorf("bad domain: %d %s", res.status, res.body)
	}
	r.addSite(t, "Example.COM")
	if res := r.do(t, "POST", "/api/v1/sites", r.admin, "application/json", []byte(`{"domain":"example.com"}`), nil); res.status != 409 {
		t.Errorf("duplicate site: %d %s", res.status, res.body)
	}
	res := r.do(t, "PATCH", "/api/v1/sites/example.com", r.admin, "application/json", []byte(`{"retention_days":90,"allowed_params":["utm_*","ref"]}`), nil)
	if res.status != 200 || !strings.Contains(string(res.body), `"retention_days":90`) {
		t.Fatalf("patch: %d %s", res.status, res.body)
	}
	if res := r.do(t, "PATCH", "/api/v1/sites/example.com", r.admin, "application/json", []byte(`{"retention_days":0}`), nil); res.status != 400 {
		t.Errorf("zero retention: %d", res.status)
	}
	// The stream follows the site's retention.
	st, _ := r.app.Store.SiteByDomain(context.Background(), "example.com")
	info, err := r.app.Log.JetStream().Stream(context.Background(), "VEIL_EV_"+st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.CachedInfo().Config.MaxAge; got != 90*24*time.Hour {
		t.Errorf("stream MaxAge = %s, want 90 days", got)
	}
	res = r.do(t, "POST", "/api/v1/tokens", r.admin, "application/json", []byte(`{"role":"ingest","name":"server","sites":["example.com"]}`), nil)
	var tok struct{ ID, Token string }
	json.Unmarshal(res.body, &tok)
	if res.status != 201 || !strings.HasPrefix(tok.Token, "veil_") {
		t.Fatalf("create token: %d %s", res.status, res.body)
	}
	if list := r.do(t, "GET", "/api/v1/tokens", r.admin, "", nil, nil); strings.Contains(string(list.body), tok.Token) {
		t.Error("token list reveals a secret")
	}
	if res := r.do(t, "DELETE", "/api/v1/tokens/"+tok.ID, r.admin, "", nil, nil); res.status != 204 {
		t.Errorf("revoke: %d", res.status)
	}
	if res := r.do(t, "DELETE", "/api/v1/sites/example.com", r.admin, "", nil, nil); res.status != 204 {
		t.Errorf("delete site: %d %s", res.status, res.body)
	}
	if res := r.do(t, "GET", "/api/v1/sites/example.com", r.admin, "", nil, nil); res.status != 404 {
		t.Errorf("deleted site: %d", res.status)
	}
	for _, p := range []string{"/healthz", "/readyz", "/js/script.js"} {
		if res := r.do(t, "GET", p, "", "", nil, nil); res.status != 200 {
			t.Errorf("%s: %d", p, res.status)
		}
	}
}

// Shutdown finishes requests already in flight: every one that was answered
// 202 is in the log after a restart.
func TestGracefulShutdownLosesNothingAcknowledged(t *testing.T) {
	dir := t.TempDir()
	r := start(t, dir)
	s := r.addSite(t, "example.com")
	var mu sync.Mutex
	acked := 0
	var wg sync.WaitGroup
	stopSending := make(chan struct{})
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stopSending:
					return
				default:
				}
				req, _ := http.NewRequest("POST", r.url+"/api/event", bytes.NewReader(pageview("example.com", fmt.Sprintf("/w%d/%d", w, i))))
				req.Header.Set("Content-Type", "text/plain")
				req.Header.Set("User-Agent", rawUA)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					return // server gone
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode == 202 {
					mu.Lock()
					acked++
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	r.stop()
	close(stopSending)
	wg.Wait()
	if acked == 0 {
		t.Fatal("nothing was acknowledged; the test proves nothing")
	}
	r2 := start(t, dir)
	if got := len(r2.events(t, s.ID)); got < acked {
		t.Fatalf("%d events acknowledged but %d stored after restart", acked, got)
	}
}

// grepDir lists every file under dir holding one of needles, as
// "path: needle".
// waitAggregated waits until the aggregator has committed everything the
// site's log holds.
func waitAggregated(t *testing.T, a *App, siteID string) {
	t.Helper()
	info, err := a.Log.JetStream().Stream(context.Background(), eventlog.StreamName(siteID))
	if err != nil {
		t.Fatal(err)
	}
	last := info.CachedInfo().State.LastSeq
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, _ := aggregate.Position(context.Background(), a.Store.SQL(), siteID)
		if p >= last {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("aggregator at %d of %d", p, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func grepDir(t *testing.T, dir string, needles ...string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				found = append(found, p+": "+n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}
