package dsr

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/veil-analytics/veil/internal/aggregate"
	"github.com/veil-analytics/veil/internal/audit"
	"github.com/veil-analytics/veil/internal/consent"
	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/eventlog"
	"github.com/veil-analytics/veil/internal/store"
	"github.com/veil-analytics/veil/internal/store/sqlitestore"
	"github.com/veil-analytics/veil/internal/vault"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// recorder keeps audit entries in memory; err makes it fail.
type recorder struct {
	mu      sync.Mutex
	entries []audit.Entry
	err     error
}

func (r *recorder) Record(_ context.Context, e audit.Entry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.entries = append(r.entries, e)
	return nil
}

func (r *recorder) setErr(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

func (r *recorder) actions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.entries {
		a := e.Action
		if p := e.Detail["phase"]; p != "" {
			a += "/" + p
		}
		out = append(out, a)
	}
	return out
}

func (r *recorder) json(t *testing.T) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, err := json.Marshal(r.entries)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// hmacRef stands in for the Tink PRF keyed hasher the server passes.
func hmacRef(siteID, subject string) string {
	m := hmac.New(sha256.New, []byte("ref key"))
	fmt.Fprintf(m, "%d:%s%d:%s", len(siteID), siteID, len(subject), subject)
	return hex.EncodeToString(m.Sum(nil))
}

// pseudonyms derives user pseudonyms under two key versions, as
// pseudo.Pseudonymizer does after one rotation.
type pseudonyms struct{}

var keyVersions = []uint32{2, 1} // newest first

func (pseudonyms) of(version uint32, siteID, userID string) event.Pseudonym {
	m := hmac.New(sha256.New, binary.BigEndian.AppendUint32([]byte("pseudonym key "), version))
	fmt.Fprintf(m, "%d:%s%d:%s", len(siteID), siteID, len(userID), userID)
	var p event.Pseudonym
	copy(p[:], m.Sum(nil))
	return p
}

func (f pseudonyms) UserPseudonyms(siteID, userID string) ([]event.Pseudonym, error) {
	var out []event.Pseudonym
	for _, v := range keyVersions {
		out = append(out, f.of(v, siteID, userID))
	}
	return out, nil
}

// bounding holds a unit-day for every pseudonym ingested and records what
// it was asked to forget.
type bounding struct {
	mu     sync.Mutex
	held   map[event.Pseudonym]int
	forgot []event.Pseudonym
}

func (b *bounding) EraseUnit(ctx context.Context, _ string, p event.Pseudonym, erase func(context.Context) ([]eventlog.Erased, error)) (aggregate.UnitErasure, error) {
	if _, err := erase(ctx); err != nil {
		return aggregate.UnitErasure{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.forgot = append(b.forgot, p)
	n := b.held[p]
	delete(b.held, p)
	return aggregate.UnitErasure{UnitDays: n}, nil
}

type env struct {
	dir   string
	db    *sql.DB
	log   *eventlog.Log
	vault *vault.Vault
	cons  *consent.Registry
	rec   *recorder
	bound *bounding
	clock *clock
	reg   *prometheus.Registry
	svc   *Service
	site  store.Site
}

func setup(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlitestore.Open(filepath.Join(dir, "veil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l, err := eventlog.Open(ctx, eventlog.Config{Dir: filepath.Join(dir, "nats"), SyncInterval: time.Second}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	e := &env{dir: dir, db: st.SQL(), log: l, rec: &recorder{}, bound: &bounding{held: map[event.Pseudonym]int{}},
		clock: &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}, reg: prometheus.NewRegistry(),
		site: store.Site{ID: "s1", Domain: "example.com", Retention: 30 * 24 * time.Hour, Purposes: store.AllPurposes}}
	if err := l.EnsureSite(ctx, e.site); err != nil {
		t.Fatal(err)
	}
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		t.Fatal(err)
	}
	master, err := aead.New(h)
	if err != nil {
		t.Fatal(err)
	}
	if e.vault, err = vault.New(ctx, e.db, master, e.rec, e.clock.now); err != nil {
		t.Fatal(err)
	}
	if e.cons, err = consent.New(ctx, e.db, hmacRef, e.clock.now); err != nil {
		t.Fatal(err)
	}
	e.svc, err = New(ctx, Config{DB: e.db, Log: l, Vault: e.vault, Pseudonyms: pseudonyms{}, Bounding: e.bound,
		Consent: e.cons, Audit: e.rec, Ref: hmacRef, Now: e.clock.now, Logger: quiet}, e.reg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func randomID(t *testing.T) string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ingest appends n events of userID under pseudonym key version v (0: a
// cookieless visitor) at path.
func (e *env) ingest(t *testing.T, userID string, v uint32, path string, n int) {
	t.Helper()
	var evs []event.Event
	for i := range n {
		ev := event.Event{SiteID: e.site.ID, Name: "pageview", Host: "example.com", Path: path, Query: "utm_source=news",
			Time: e.clock.now().Add(time.Duration(i) * time.Second).Truncate(time.Millisecond), Country: "DE", Browser: "Firefox",
			OS: "Linux", Device: "Desktop", ScrollDepth: -1, Unit: event.UnitVisitorDay,
			Props: []event.Prop{{Key: "plan", Value: "pro"}}}
		if v == 0 {
			rand.Read(ev.Pseudonym[:])
		} else {
			ev.Unit, ev.KeyVersion, ev.Pseudonym = event.UnitUser, v, pseudonyms{}.of(v, e.site.ID, userID)
			e.bound.mu.Lock()
			e.bound.held[ev.Pseudonym] = 1
			e.bound.mu.Unlock()
		}
		evs = append(evs, ev)
	}
	if err := e.log.Append(context.Background(), e.site.ID, evs); err != nil {
		t.Fatal(err)
	}
}

func (e *env) tokenize(t *testing.T, subject, field, value string) string {
	t.Helper()
	tok, err := e.vault.Tokenize(context.Background(), e.site.ID, subject, field, value)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// onDisk reports whether any file under dir holds needle.
func onDisk(t *testing.T, dir string, needle []byte) bool {
	t.Helper()
	found := false
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		found = found || bytes.Contains(b, needle)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// sealed returns the stored ciphertext of a token and the wrapped data key
// of its subject: the bytes crypto-shredding must remove. (The only place
// the test reads the vault's tables: the raw value is never on disk, so
// grepping for it alone could not fail.)
func (e *env) sealed(t *testing.T, token string) (ct, wrapped []byte) {
	t.Helper()
	err := e.db.QueryRow(`SELECT v.ciphertext, k.wrapped FROM vault_values v JOIN vault_subject_keys k ON k.site = v.site AND k.subject = v.subject WHERE v.token=?`, token).Scan(&ct, &wrapped)
	if err != nil {
		t.Fatal(err)
	}
	return ct, wrapped
}

func (e *env) userEvents(t *testing.T, userID string) int {
	t.Helper()
	n := 0
	ps, _ := pseudonyms{}.UserPseudonyms(e.site.ID, userID)
	for _, p := range ps {
		if err := e.log.UserEvents(context.Background(), e.site.ID, p, func(event.Event) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func TestExportThenErase(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	alice := "alice-" + randomID(t)
	aliceEmail := "alice." + randomID(t) + "@example.com"
	marker := "/alice-marker-" + randomID(t)
	// Alice's events under the old and the new pseudonym key, interleaved
	// with bob's and cookieless visitors'.
	e.ingest(t, alice, 1, marker, 2)
	e.ingest(t, "bob", 1, "/bob", 3)
	e.ingest(t, "", 0, "/anonymous", 5)
	e.clock.advance(time.Hour)
	e.ingest(t, alice, 2, marker, 3)
	e.ingest(t, "bob", 2, "/bob", 1)
	aliceTok := e.tokenize(t, consent.UserSubject(alice), "email", aliceEmail)
	e.tokenize(t, consent.UserSubject(alice), "phone", "+44 20 7946 0958")
	bobTok := e.tokenize(t, consent.UserSubject("bob"), "email", "bob@example.com")
	if err := e.cons.Set(ctx, e.site, e.cons.UserRef(e.site.ID, alice), map[string]bool{"personalization": true, "analytics": false}, "test"); err != nil {
		t.Fatal(err)
	}

	exp, err := e.svc.Export(ctx, e.site, Ident{UserID: alice}, "tok-po", "ticket 1042")
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Found || len(exp.Events) != 5 || len(exp.Vault) != 2 || len(exp.Consent) != 2 {
		t.Fatalf("export: found=%v %d events, %d vault values, %d consent", exp.Found, len(exp.Events), len(exp.Vault), len(exp.Consent))
	}
	versions := map[uint32]bool{}
	for _, ev := range exp.Events {
		if ev.Path != marker || ev.Props["plan"] != "pro" || ev.Country != "DE" {
			t.Fatalf("export holds an event that is not alice's: %+v", ev)
		}
		versions[ev.KeyVersion] = true
	}
	if !versions[1] || !versions[2] {
		t.Fatalf("export misses a pseudonym key version: %v", versions)
	}
	values := map[string]string{}
	for _, it := range exp.Vault {
		values[it.Field] = it.Value
		if it.Field == "email" && it.Token != aliceTok {
			t.Fatalf("vault export: token %s, want %s", it.Token, aliceTok)
		}
	}
	if values["email"] != aliceEmail || values["phone"] != "+44 20 7946 0958" {
		t.Fatalf("vault export: %+v", exp.Vault)
	}
	if !exp.Consent["personalization"].Granted || exp.Consent["analytics"].Granted {
		t.Fatalf("consent export: %+v", exp.Consent)
	}

	// The bytes erasure must remove are on disk now, so the checks below
	// can fail.
	ct, wrapped := e.sealed(t, aliceTok)
	p1, p2 := pseudonyms{}.of(1, "s1", alice), pseudonyms{}.of(2, "s1", alice)
	for _, needle := range [][]byte{[]byte(marker), ct, wrapped, []byte(p1.String()), []byte(p2.String())} {
		if !onDisk(t, e.dir, needle) {
			t.Fatalf("%q not on disk before erasure; the test would prove nothing", needle)
		}
	}

	rep, err := e.svc.Erase(ctx, e.site, Ident{UserID: alice}, "tok-po", "ticket 1043")
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Found || rep.VaultValues != 2 || rep.Events != 5 || rep.PseudonymsSearched != 2 || rep.BoundingUnits != 2 ||
		rep.ConsentGrants != 1 || rep.ConsentWithdrawalsKept != 1 {
		t.Errorf("erasure report: %+v", rep)
	}
	for _, needle := range [][]byte{[]byte(marker), ct, wrapped, []byte(p1.String()), []byte(p2.String()), p1[:], p2[:],
		[]byte(alice), []byte(aliceEmail)} {
		if onDisk(t, e.dir, needle) {
			t.Errorf("%q still on disk after erasure", needle)
		}
	}
	if _, err := e.svc.Detokenize(ctx, aliceTok, "tok-po", "data_subject_request", "check"); !errors.Is(err, vault.ErrShredded) {
		t.Fatalf("detokenize after erasure: %v, want ErrShredded", err)
	}
	// Everyone else is untouched.
	if n := e.userEvents(t, "bob"); n != 4 {
		t.Fatalf("bob has %d events after alice's erasure, want 4", n)
	}
	if v, err := e.svc.Detokenize(ctx, bobTok, "tok-po", "security", "check"); err != nil || v != "bob@example.com" {
		t.Fatalf("bob's value: %q %v", v, err)
	}
	if !onDisk(t, e.dir, []byte("/anonymous")) {
		t.Fatal("cookieless events were erased")
	}
	if ok, _ := e.cons.AllowedUser(ctx, e.site, alice, "analytics"); ok {
		t.Fatal("alice's analytics withdrawal was forgotten")
	}
	if ok, _ := e.cons.AllowedUser(ctx, e.site, alice, "personalization"); ok {
		t.Fatal("alice's personalization grant survived erasure")
	}

	again, err := e.svc.Erase(ctx, e.site, Ident{UserID: alice}, "tok-po", "ticket 1043")
	if err != nil || again.Found || again.VaultValues+again.Events+again.BoundingUnits+again.ConsentGrants != 0 {
		t.Fatalf("second erasure: %+v %v", again, err)
	}

	// The trail: who, what and why, naming alice only by keyed reference.
	want := []string{"dsr.export", "dsr.erase/started", "dsr.erase/completed", "vault.detokenize", "dsr.erase/started", "dsr.erase/completed"}
	if got := e.rec.actions(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("audit actions %v, want %v", got, want)
	}
	trail := e.rec.json(t)
	for _, s := range []string{alice, aliceEmail, "+44 20", "bob@example.com", marker} {
		if bytes.Contains(trail, []byte(s)) {
			t.Errorf("audit trail holds %q", s)
		}
	}
	ref := hmacRef("s1", consent.UserSubject(alice))
	if !bytes.Contains(trail, []byte(ref)) || !bytes.Contains(trail, []byte("ticket 1043")) || !bytes.Contains(trail, []byte("tok-po")) {
		t.Fatalf("audit trail lacks subject ref, reason or actor: %s", trail)
	}

	reqs, err := e.svc.Requests(ctx, Filter{})
	if err != nil || len(reqs) != 3 {
		t.Fatalf("register: %d requests, %v", len(reqs), err)
	}
	for _, r := range reqs {
		if r.Status != StatusCompleted || r.SubjectRef != ref || r.Completed == nil || r.Overdue {
			t.Fatalf("request %+v", r)
		}
	}
}

func TestEraseByEmail(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	addr := "carol." + randomID(t) + "@example.com"
	marker := "/carol-" + randomID(t)
	// This site uses the (lower-case) address as its user id, and the
	// address was also tokenized with no user id.
	e.ingest(t, addr, 2, marker, 2)
	tok := e.tokenize(t, EmailSubject(addr), "email", addr)
	e.tokenize(t, consent.UserSubject(addr), "name", "Carol")

	asked := Ident{Email: "Carol." + addr[len("carol."):]} // capitalized as the subject wrote it
	exp, err := e.svc.Export(ctx, e.site, asked, "tok-po", "ticket 7")
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Found || len(exp.Events) != 2 || len(exp.Vault) != 2 || exp.Subject != asked {
		t.Fatalf("export by email: %+v", exp)
	}
	rep, err := e.svc.Erase(ctx, e.site, asked, "tok-po", "ticket 7")
	if err != nil || rep.Events != 2 || rep.VaultValues != 2 {
		t.Fatalf("erase by email: %+v %v", rep, err)
	}
	if onDisk(t, e.dir, []byte(marker)) {
		t.Fatal("events of the e-mail user id still on disk")
	}
	if _, err := e.vault.Detokenize(ctx, tok, "tok-po", "check"); !errors.Is(err, vault.ErrShredded) {
		t.Fatalf("email subject's token: %v", err)
	}
	if bytes.Contains(e.rec.json(t), []byte(addr[len("carol."):])) {
		t.Fatal("audit trail holds the address")
	}
}

func TestUnknownSubject(t *testing.T) {
	e := setup(t)
	e.ingest(t, "bob", 2, "/bob", 1)
	exp, err := e.svc.Export(context.Background(), e.site, Ident{UserID: "nobody"}, "tok-po", "ticket 9")
	if err != nil || exp.Found || len(exp.Events) != 0 || len(exp.Vault) != 0 || exp.RequestID == "" {
		t.Fatalf("unknown subject: %+v %v", exp, err)
	}
	// A request for nobody is still a request: registered and audited.
	if reqs, _ := e.svc.Requests(context.Background(), Filter{Status: StatusCompleted}); len(reqs) != 1 {
		t.Fatalf("register: %+v", reqs)
	}
	if len(e.rec.actions()) != 1 {
		t.Fatal("unknown subject's request not audited")
	}
}

// No audit record, no data: a failing recorder withholds the export and
// stops an erasure before anything is destroyed; once the trail works
// again, a retry resumes the same request.
func TestAuditFailure(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	marker := "/dave-" + randomID(t)
	e.ingest(t, "dave", 2, marker, 2)
	e.rec.setErr(errors.New("disk full"))

	exp, err := e.svc.Export(ctx, e.site, Ident{UserID: "dave"}, "tok-po", "ticket 1")
	if err == nil || exp.Found || exp.Events != nil {
		t.Fatalf("export with a failing audit trail: %+v %v", exp, err)
	}
	_, err = e.svc.Erase(ctx, e.site, Ident{UserID: "dave"}, "tok-po", "ticket 2")
	if err == nil {
		t.Fatal("erasure succeeded without an audit record")
	}
	if n := e.userEvents(t, "dave"); n != 2 {
		t.Fatalf("events erased without an audit record: %d left", n)
	}
	open, err := e.svc.Requests(ctx, Filter{Status: "open"})
	if err != nil || len(open) != 2 || open[0].Status != StatusFailed {
		t.Fatalf("failed requests must stay open: %+v %v", open, err)
	}
	var eraseReq Request
	for _, r := range open {
		if r.Kind == KindErase {
			eraseReq = r
		}
	}

	e.rec.setErr(nil)
	e.clock.advance(24 * time.Hour)
	rep, err := e.svc.Erase(ctx, e.site, Ident{UserID: "dave"}, "tok-po", "ticket 2")
	if err != nil || rep.Events != 2 || rep.RequestID != eraseReq.ID {
		t.Fatalf("retry: %+v %v (want request %s resumed)", rep, err, eraseReq.ID)
	}
	reqs, _ := e.svc.Requests(ctx, Filter{Status: StatusCompleted})
	if len(reqs) != 1 || !reqs[0].Received.Equal(eraseReq.Received) || reqs[0].AgeSeconds != (24*time.Hour).Seconds() {
		t.Fatalf("resumed request keeps its receipt time: %+v", reqs)
	}
}

// failingLog fails EraseUser once, after the vault was already shredded.
type failingLog struct {
	*eventlog.Log
	failed bool
}

func (f *failingLog) EraseUser(ctx context.Context, siteID string, p event.Pseudonym) ([]eventlog.Erased, error) {
	if !f.failed {
		f.failed = true
		return nil, errors.New("stream unavailable")
	}
	return f.Log.EraseUser(ctx, siteID, p)
}

func TestPartialFailureIsRecordedAndRetried(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	e.svc.cfg.Log = &failingLog{Log: e.log}
	e.ingest(t, "erin", 1, "/erin", 1)
	e.ingest(t, "erin", 2, "/erin", 1)
	e.tokenize(t, consent.UserSubject("erin"), "email", "erin@example.com")
	if _, err := e.svc.Erase(ctx, e.site, Ident{UserID: "erin"}, "tok-po", "ticket 3"); err == nil {
		t.Fatal("erasure reported success although the log failed")
	}
	if got := fmt.Sprint(e.rec.actions()); got != "[dsr.erase/started dsr.erase/failed]" {
		t.Fatalf("audit: %s", got)
	}
	if e.rec.entries[1].Detail["vault_values"] != "1" {
		t.Fatalf("the failure record must say what was already removed: %v", e.rec.entries[1].Detail)
	}
	rep, err := e.svc.Erase(ctx, e.site, Ident{UserID: "erin"}, "tok-po", "ticket 3")
	if err != nil || rep.Events != 2 || rep.VaultValues != 0 {
		t.Fatalf("retry: %+v %v", rep, err)
	}
	if n := e.userEvents(t, "erin"); n != 0 {
		t.Fatalf("%d events left", n)
	}
	if open, _ := e.svc.Requests(ctx, Filter{Status: "open"}); len(open) != 0 {
		t.Fatalf("open after retry: %+v", open)
	}
}

func TestRegisterMetrics(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	e.rec.setErr(errors.New("down"))
	e.svc.Erase(ctx, e.site, Ident{UserID: "frank"}, "tok-po", "ticket 4")
	e.rec.setErr(nil)
	e.svc.Export(ctx, e.site, Ident{UserID: "grace"}, "tok-po", "ticket 5")
	e.clock.advance(31 * 24 * time.Hour)

	open, err := e.svc.Requests(ctx, Filter{Status: "open"})
	if err != nil || len(open) != 1 || !open[0].Overdue || open[0].Deadline != open[0].Received.Add(DefaultDeadline) {
		t.Fatalf("overdue request: %+v %v", open, err)
	}
	got := gather(t, e.reg)
	want := map[string]float64{
		`veil_dsr_requests_total{kind="erase",status="failed"}`:     1,
		`veil_dsr_requests_total{kind="export",status="completed"}`: 1,
		`veil_dsr_requests_total{kind="erase",status="completed"}`:  0,
		`veil_dsr_open_requests`:                                    1,
		`veil_dsr_oldest_open_age_seconds`:                          (31 * 24 * time.Hour).Seconds(),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func gather(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			if len(m.GetLabel()) > 0 {
				name += "{"
				for i, l := range m.GetLabel() {
					if i > 0 {
						name += ","
					}
					name += fmt.Sprintf("%s=%q", l.GetName(), l.GetValue())
				}
				name += "}"
			}
			switch {
			case m.Counter != nil:
				out[name] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[name] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}
