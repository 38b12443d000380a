package piireport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/auth"
	"github.com/veil-analytics/veil/internal/httpx"
	"github.com/veil-analytics/veil/internal/pii"
	"github.com/veil-analytics/veil/internal/store"
	"github.com/veil-analytics/veil/internal/store/sqlitestore"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func open(t testing.TB, cfg Config) (*Reporter, *sqlitestore.DB, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlitestore.Open(filepath.Join(dir, "veil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg.DB = st.SQL()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return t0 }
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r, st, dir
}

// observe feeds a raw value through the detector, as the collector does:
// only the finding reaches the reporter.
func observe(r *Reporter, site, field, value string) {
	if f, ok := pii.Best(value); ok {
		r.Observe(site, field, f)
	} else {
		r.Observe(site, field)
	}
}

func find(t *testing.T, reps []FieldReport, field string) FieldReport {
	t.Helper()
	for _, r := range reps {
		if r.Field == field {
			return r
		}
	}
	t.Fatalf("no report for %q in %+v", field, reps)
	return FieldReport{}
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	r, _, _ := open(t, Config{})
	site := store.Site{ID: "s1", Domain: "example.com"}
	// 1,168 of 1,204 values are emails: 97%.
	for i := 0; i < 1204; i++ {
		v := "jane@example.com"
		if i%34 == 0 {
			v = "no thanks"
		}
		observe(r, "s1", "contact", v)
	}
	for i := 0; i < 10; i++ {
		observe(r, "s1", "plan", "pro")
		observe(r, "other", "contact", "+44 20 7946 0958")
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// A second flush adds to the stored counts.
	observe(r, "s1", "plan", "4111 1111 1111 1111")
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	reps, err := r.Report(ctx, site)
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 2 {
		t.Fatalf("reports = %+v, want contact and plan only (other sites excluded)", reps)
	}
	c := reps[0]
	if c.Field != "contact" || c.Seen != 1204 || len(c.Kinds) != 1 || c.Kinds[0].Kind != pii.Email ||
		c.Kinds[0].Hits != 1168 || c.Kinds[0].MaxScore != 0.95 || c.Status != StatusAction || !c.LastSeen.Equal(t0) {
		t.Errorf("contact = %+v", c)
	}
	if want := "values look like emails in 97% of 1,204 events: declare this field as tokenize or hash, or stop sending it"; c.Advice != want {
		t.Errorf("advice = %q\nwant     %q", c.Advice, want)
	}
	p := reps[1]
	if p.Field != "plan" || p.Seen != 11 || len(p.Kinds) != 1 || p.Kinds[0].Kind != pii.CreditCard || p.Kinds[0].Hits != 1 {
		t.Errorf("plan = %+v", p)
	}
	if got := p.Kinds[0].Share; got != 1.0/11 {
		t.Errorf("plan share = %v", got)
	}
}

// TestNoRawValues checks that neither the report nor any database file holds
// a raw value or a personal-data field name, even after values and names
// full of personal data were observed.
func TestNoRawValues(t *testing.T) {
	ctx := context.Background()
	r, st, dir := open(t, Config{})
	raw := []string{"jane@example.com", "4111 1111 1111 1111", "DE89 3704 0044 0532 0130 00", "+44 20 7946 0958", "203.0.113.7", "123-45-6789"}
	for _, v := range raw {
		for i := 0; i < 5; i++ {
			observe(r, "s1", "note", v)
			observe(r, "s1", v, "x") // a prop named with personal data
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	reps, err := r.Report(ctx, store.Site{ID: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(reps)
	var text bytes.Buffer
	if err := WriteText(&text, reps); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SQL().Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "veil.db*"))
	if len(files) == 0 {
		t.Fatal("no database files")
	}
	blobs := map[string][]byte{"json": js, "text": text.Bytes()}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		blobs[f] = b
	}
	for name, b := range blobs {
		for _, v := range append(raw, "example.com", "4111", "7946") {
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("%s contains %q", name, v)
			}
		}
	}
	for _, kind := range []pii.Kind{pii.Email, pii.CreditCard, pii.IBAN, pii.Phone, pii.IPAddress, pii.USSSN} {
		f := find(t, reps, "(redacted "+string(kind)+")")
		if f.Seen != 5 || f.Status != StatusAction {
			t.Errorf("%s: %+v", f.Field, f)
		}
	}
	note := find(t, reps, "note")
	if note.Seen != 30 || len(note.Kinds) != 6 {
		t.Errorf("note = %+v", note)
	}
}

func TestAdvice(t *testing.T) {
	ctx := context.Background()
	r, _, _ := open(t, Config{})
	schema := store.Site{ID: "s1", Fields: map[string]store.FieldAction{
		"email": store.FieldTokenize, "customer": store.FieldHash, "debug": store.FieldDrop,
		"plan": store.FieldKeep, "comment": store.FieldKeep, "never": store.FieldKeep,
	}}
	for i := 0; i < 100; i++ {
		observe(r, "s1", "email", "jane@example.com")
		observe(r, "s1", "customer", "c-42")
		observe(r, "s1", "debug", "x")
		observe(r, "s1", "plan", "pro")
		observe(r, "s1", "comment", "call me at +44 20 7946 0958")
		observe(r, "s1", "extra", "jane@example.com")
		observe(r, "s1", "color", "blue")
		// No schema on s2: props are scanned and redacted.
		observe(r, "s2", "ssn", "234567890") // weak alone, strong with the name
		observe(r, "s2", "order", "234567890")
		observe(r, "s2", "first_name", "Jane")
		observe(r, "s2", "e_mail", "pending")
		observe(r, "s2", "secret_plan", "x")
		observe(r, "s2", "blocked", "x")
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		site          store.Site
		field         string
		status        Status
		advice        string // a substring
		declared      store.FieldAction
		seen          int64
		firstNameHint pii.Kind
	}{
		{schema, "email", StatusOK, "values look like emails in 100% of 100 events; declared tokenize: replaced by a vault token before storage", store.FieldTokenize, 100, pii.Email},
		{schema, "customer", StatusOK, "declared hash: replaced by a keyed pseudonym", store.FieldHash, 100, ""},
		{schema, "debug", StatusOK, "declared drop: never stored, though 100 events still send it", store.FieldDrop, 100, ""},
		{schema, "plan", StatusOK, "no personal data seen in 100 events", store.FieldKeep, 100, ""},
		{schema, "comment", StatusAction, "declared keep, but values look like phone numbers in 100% of 100 events", store.FieldKeep, 100, ""},
		{schema, "never", StatusOK, "declared keep; not sent since counting began", store.FieldKeep, 0, ""},
		{schema, "extra", StatusReview, "not declared (dropped at ingestion), and values look like emails in 100% of 100 events", "", 100, ""},
		{schema, "color", StatusReview, "not declared: dropped at ingestion (100 events sent it)", "", 100, ""},
		{store.Site{ID: "s2"}, "ssn", StatusAction, "values look like US social security numbers in 100% of 100 events", "", 100, pii.USSSN},
		{store.Site{ID: "s2"}, "order", StatusReview, "100% of 100 values weakly resemble US social security numbers (score 0.40 at most)", "", 100, ""},
		{store.Site{ID: "s2"}, "first_name", StatusReview, "the name suggests person names, which values cannot be checked for", "", 100, pii.Name},
		{store.Site{ID: "s2"}, "e_mail", StatusReview, "the name suggests emails, but no value in 100 events looked like one", "", 100, pii.Email},
		{store.Site{ID: "s2", AllowedProps: []string{"ssn", "order", "first_name", "e_mail", "secret_plan"}}, "blocked", StatusReview, "not an allowed prop: dropped at ingestion", "", 100, ""},
	}
	for _, c := range cases {
		reps, err := r.Report(ctx, c.site)
		if err != nil {
			t.Fatal(err)
		}
		f := find(t, reps, c.field)
		if f.Status != c.status || !strings.Contains(f.Advice, c.advice) || f.Declared != c.declared || f.Seen != c.seen {
			t.Errorf("%s: status %s, declared %q, seen %d, advice %q\nwant status %s, declared %q, seen %d, advice containing %q",
				c.field, f.Status, f.Declared, f.Seen, f.Advice, c.status, c.declared, c.seen, c.advice)
		}
		if c.firstNameHint != "" && (len(f.NameSuggests) == 0 || f.NameSuggests[0].Kind != c.firstNameHint) {
			t.Errorf("%s: name suggests %+v, want %s first", c.field, f.NameSuggests, c.firstNameHint)
		}
	}
	reps, err := r.Report(ctx, store.Site{ID: "s2"})
	if err != nil {
		t.Fatal(err)
	}
	if d := find(t, reps, "ssn").Detected; len(d) != 1 || d[0] != pii.USSSN {
		t.Errorf("ssn detected %v, want us_ssn (weak value, corroborated by the name)", d)
	}
	if d := find(t, reps, "order").Detected; len(d) != 0 {
		t.Errorf("order detected %v, want none", d)
	}
	// Rejecting undeclared fields changes the advice.
	schema.Undeclared = store.UndeclaredReject
	reps, err = r.Report(ctx, schema)
	if err != nil {
		t.Fatal(err)
	}
	if f := find(t, reps, "color"); !strings.Contains(f.Advice, "events carrying it are rejected") {
		t.Errorf("color with reject: %q", f.Advice)
	}
	// Fields needing action come first.
	if reps[0].Status != StatusAction || reps[len(reps)-1].Status != StatusOK {
		t.Errorf("order: first %s, last %s", reps[0].Status, reps[len(reps)-1].Status)
	}
}

func TestFieldLimits(t *testing.T) {
	ctx := context.Background()
	r, st, _ := open(t, Config{MaxFields: 3})
	for _, f := range []string{"a", "b", "c", "d", "e"} {
		r.Observe("s1", f)
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	r.Observe("s1", "e") // stays folded after its first flush
	r.Observe("s1", "a")
	r.Observe("s2", "z") // other sites have their own limit
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	reps, err := r.Report(ctx, store.Site{ID: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, f := range reps {
		got[f.Field] = f.Seen
	}
	want := map[string]int64{"a": 2, "b": 1, "c": 1, OtherFields: 3}
	if len(got) != len(want) {
		t.Fatalf("fields = %v, want %v", got, want)
	}
	for f, n := range want {
		if got[f] != n {
			t.Errorf("fields = %v, want %v", got, want)
		}
	}
	// A restarted reporter respects the stored fields.
	r2, err := New(Config{DB: st.SQL(), MaxFields: 3})
	if err != nil {
		t.Fatal(err)
	}
	r2.Observe("s1", "b")
	r2.Observe("s1", "f")
	if err := r2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	reps, _ = r2.Report(ctx, store.Site{ID: "s1"})
	if b, o := find(t, reps, "b"), find(t, reps, OtherFields); b.Seen != 2 || o.Seen != 4 || len(reps) != 4 {
		t.Errorf("after restart: %+v", reps)
	}

	// Memory is bounded too: past MaxEntries, new fields share a counter.
	r3, _, _ := open(t, Config{MaxEntries: 2})
	for _, f := range []string{"a", "b", "c", "d"} {
		r3.Observe("s1", f)
	}
	if r3.entries > 2+numShards {
		t.Errorf("%d counters in memory", r3.entries)
	}
	if err := r3.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	reps, _ = r3.Report(ctx, store.Site{ID: "s1"})
	if o := find(t, reps, OtherFields); o.Seen != 2 {
		t.Errorf("memory bound: %+v", reps)
	}
}

func TestFlushFailureKeepsCounts(t *testing.T) {
	r, _, _ := open(t, Config{})
	r.Observe("s1", "email", pii.Finding{Kind: pii.Email, Score: 0.95})
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Flush(cancelled); err == nil {
		t.Fatal("flush with a cancelled context succeeded")
	}
	r.Observe("s1", "email", pii.Finding{Kind: pii.Email, Score: 0.85})
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	reps, _ := r.Report(context.Background(), store.Site{ID: "s1"})
	if len(reps) != 1 || reps[0].Seen != 2 || reps[0].Kinds[0].Hits != 2 || reps[0].Kinds[0].MaxScore != 0.95 {
		t.Errorf("after a failed flush: %+v", reps)
	}
}

func TestRunFlushesOnStop(t *testing.T) {
	r, _, _ := open(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.Run(ctx, time.Hour)
		close(done)
	}()
	r.Observe("s1", "plan")
	cancel()
	<-done
	reps, err := r.Report(context.Background(), store.Site{ID: "s1"})
	if err != nil || len(reps) != 1 || reps[0].Seen != 1 {
		t.Errorf("after stop: %+v, %v", reps, err)
	}
}

func TestDeleteSite(t *testing.T) {
	ctx := context.Background()
	r, _, _ := open(t, Config{})
	r.Observe("s1", "a")
	r.Observe("s2", "a")
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r.Observe("s1", "b") // pending in memory
	if err := r.DeleteSite(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if reps, _ := r.Report(ctx, store.Site{ID: "s1"}); len(reps) != 0 {
		t.Errorf("s1 after delete: %+v", reps)
	}
	if reps, _ := r.Report(ctx, store.Site{ID: "s2"}); len(reps) != 1 {
		t.Errorf("s2 after deleting s1: %+v", reps)
	}
	if r.entries != 1 {
		t.Errorf("%d counters in memory, want 1", r.entries)
	}
}

// TestConcurrent observes from many goroutines while flushing; run with
// -race. Every observation must be stored exactly once.
func TestConcurrent(t *testing.T) {
	ctx := context.Background()
	r, _, _ := open(t, Config{})
	const workers, per = 4, 2000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	flushed := make(chan error, 1)
	go func() {
		var err error
		for {
			select {
			case <-stop:
				flushed <- err
				return
			default:
				err = errors.Join(err, r.Flush(ctx))
			}
		}
	}()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				r.Observe("s1", []string{"a", "b", "c"}[i%3], pii.Finding{Kind: pii.Email, Score: 0.95})
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	reps, _ := r.Report(ctx, store.Site{ID: "s1"})
	var seen, hits int64
	for _, f := range reps {
		seen += f.Seen
		hits += f.Kinds[0].Hits
	}
	if seen != workers*per || hits != workers*per {
		t.Errorf("seen %d, hits %d, want %d", seen, hits, workers*per)
	}
}

func TestObserveAllocs(t *testing.T) {
	r, _, _ := open(t, Config{})
	f := pii.Finding{Kind: pii.Email, Score: 0.95}
	r.Observe("s1", "email", f)
	r.Observe("s1", "jane@example.com", f)
	r.Observe("s1", "plan")
	for _, c := range []struct {
		field string
		f     []pii.Finding
	}{{"email", []pii.Finding{f}}, {"jane@example.com", nil}, {"plan", nil}} {
		if n := testing.AllocsPerRun(100, func() { r.Observe("s1", c.field, c.f...) }); n != 0 {
			t.Errorf("Observe(%q): %v allocs", c.field, n)
		}
	}
	// The collector passes a finding it just computed.
	if n := testing.AllocsPerRun(100, func() {
		if g, ok := pii.Best("jane@example.com"); ok {
			r.Observe("s1", "email", g)
		}
	}); n != 0 {
		t.Errorf("Best + Observe: %v allocs", n)
	}
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	if err := WriteText(&b, nil); err != nil || !strings.Contains(b.String(), "No fields") {
		t.Errorf("empty: %q, %v", b.String(), err)
	}
	b.Reset()
	reps := []FieldReport{
		{Field: "contact", Seen: 1204, Kinds: []KindStat{{Kind: pii.Email, Hits: 1168, Share: 0.97, MaxScore: 0.95}},
			NameSuggests: []NameHint{}, Status: StatusAction, Advice: "values look like emails"},
		{Field: "plan", Seen: 3, Declared: store.FieldKeep, Kinds: []KindStat{}, NameSuggests: []NameHint{}, Status: StatusOK, Advice: "no personal data seen in 3 events"},
	}
	if err := WriteText(&b, reps); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"FIELD", "contact  1,204  -", "email 97% (0.95)", "plan", "keep", "contact: values look like emails\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "no personal data seen") {
		t.Errorf("advice for a field that needs none:\n%s", out)
	}
}

func TestHTTP(t *testing.T) {
	r, _, _ := open(t, Config{})
	r.Observe("s1", "contact", pii.Finding{Kind: pii.Email, Score: 0.95})
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// authed stands in for the server's check: the role comes from a header.
	authed := func(h func(store.Token, http.ResponseWriter, *http.Request), roles ...store.Role) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			tok := store.Token{Role: store.Role(req.Header.Get("X-Role")), Sites: strings.Fields(req.Header.Get("X-Sites"))}
			if !auth.Allows(tok, roles...) {
				httpx.WriteError(w, httpx.Errorf(http.StatusForbidden, "forbidden", "", "no"))
				return
			}
			h(tok, w, req)
		})
	}
	sites := func(_ context.Context, tok store.Token, domain string) (store.Site, error) {
		if domain == "example.com" && auth.CoversSite(tok, "s1") {
			return store.Site{ID: "s1", Domain: domain}, nil
		}
		return store.Site{}, httpx.Errorf(http.StatusNotFound, "unknown_site", "domain", "no site")
	}
	mux := http.NewServeMux()
	r.Register(mux, authed, sites)
	for _, c := range []struct {
		role   store.Role
		sites  string
		domain string
		code   int
	}{
		{store.RoleAdmin, "", "example.com", 200},
		{store.RolePrivacyOfficer, "", "example.com", 200},
		{store.RolePrivacyOfficer, "s1", "example.com", 200},
		{store.RolePrivacyOfficer, "s2", "example.com", 404},
		{store.RoleAnalyst, "", "example.com", 403},
		{store.RoleViewer, "", "example.com", 403},
		{store.RoleIngest, "", "example.com", 403},
		{store.RoleAdmin, "", "other.org", 404},
	} {
		req := httptest.NewRequest("GET", "/api/v1/sites/"+c.domain+"/pii", nil)
		req.Header.Set("X-Role", string(c.role))
		req.Header.Set("X-Sites", c.sites)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		if w.Code != c.code {
			t.Errorf("%s %q %s: %d %s, want %d", c.role, c.sites, c.domain, w.Code, w.Body, c.code)
			continue
		}
		if c.code != 200 {
			continue
		}
		var body struct {
			Site   string        `json:"site"`
			Fields []FieldReport `json:"fields"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		if body.Site != "example.com" || len(body.Fields) != 1 || body.Fields[0].Field != "contact" || body.Fields[0].Kinds[0].Kind != pii.Email {
			t.Errorf("body = %s", w.Body)
		}
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 1204: "1,204", 1234567: "1,234,567"} {
		if got := count(n); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
	for _, c := range []struct {
		hits, seen int64
		want       string
	}{{1, 1000, "<1%"}, {999, 1000, "99%"}, {1000, 1000, "100%"}, {1168, 1204, "97%"}, {0, 0, "0%"}} {
		if got := percent(c.hits, c.seen); got != c.want {
			t.Errorf("percent(%d, %d) = %q, want %q", c.hits, c.seen, got, c.want)
		}
	}
}

func BenchmarkObserve(b *testing.B) {
	r, _, _ := open(b, Config{})
	fields := []string{"plan", "email", "button", "step", "referral_code", "color"}
	f := pii.Finding{Kind: pii.Email, Score: 0.95}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%4 == 0 {
			r.Observe("s1", fields[i%len(fields)], f)
		} else {
			r.Observe("s1", fields[i%len(fields)])
		}
	}
}

func BenchmarkObserveParallel(b *testing.B) {
	r, _, _ := open(b, Config{})
	fields := []string{"plan", "email", "button", "step", "referral_code", "color"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r.Observe("s1", fields[i%len(fields)])
			i++
		}
	})
}

// BenchmarkBestBaseline is the detector call the collector already makes
// per prop: the cost Observe adds is measured against it.
func BenchmarkBestBaseline(b *testing.B) {
	values := []string{"pro", "blue", "42", "/pricing", "true", "signup"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		pii.Best(values[i%len(values)])
	}
}
