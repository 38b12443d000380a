package collect

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/geo"
	"github.com/veil-analytics/veil/internal/keys"
	"github.com/veil-analytics/veil/internal/pseudo"
	"github.com/veil-analytics/veil/internal/store"
	"github.com/veil-analytics/veil/internal/store/sqlitestore"
)

const (
	chromeUA  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	firefoxUA = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
	botUA     = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)

type appendCall struct {
	site string
	evs  []event.Event
}

// fakeLog records what the collector hands to the event log.
type fakeLog struct {
	mu      sync.Mutex
	appends []appendCall
	ensured []store.Site
	err     error // returned by Append when set
}

func (l *fakeLog) Append(_ context.Context, siteID string, evs []event.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	l.appends = append(l.appends, appendCall{siteID, append([]event.Event(nil), evs...)})
	return nil
}

func (l *fakeLog) EnsureSite(_ context.Context, s store.Site) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ensured = append(l.ensured, s)
	return nil
}

func (l *fakeLog) events() []event.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var evs []event.Event
	for _, a := range l.appends {
		evs = append(evs, a.evs...)
	}
	return evs
}

type env struct {
	c            *Collector
	log          *fakeLog
	st           *sqlitestore.DB
	reg          *prometheus.Registry
	m            *Metrics
	clk          *fakeClock
	siteA, siteB store.Site
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlitestore.Open(filepath.Join(dir, "veil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ring, _, err := keys.Open(context.Background(), st.SQL(), "", dir, true)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := pseudo.New(st, ring, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{
		log: &fakeLog{}, st: st, reg: prometheus.NewRegistry(), clk: newFakeClock(),
		siteA: store.Site{ID: "sitea", Domain: "example.com", Retention: 30 * 24 * time.Hour},
		siteB: store.Site{ID: "siteb", Domain: "other.example", Retention: 30 * 24 * time.Hour},
	}
	for _, s := range []store.Site{e.siteA, e.siteB} {
		s.Created = e.clk.Now()
		if err := st.CreateSite(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	e.m = NewMetrics(e.reg)
	e.c = New(Config{
		Store:   st,
		Log:     e.log,
		Pseudo:  ps,
		Geo:     geo.None{},
		Metrics: e.m,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:     e.clk.Now,
	})
	return e
}

func (e *env) process(t *testing.T, site store.Site, in *Input) event.Event {
	t.Helper()
	ev, drop, err := e.c.Process(context.Background(), site, in)
	if err != nil {
		t.Fatalf("Process(%+v): %v", *in, err)
	}
	if drop != "" {
		t.Fatalf("Process(%+v) dropped: %s", *in, drop)
	}
	return ev
}

// metric reads one series from the registry (prometheus/testutil is not
// usable: its dependencies are not in go.mod). A missing series reads 0.
func (e *env) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			if len(have) != len(labels)/2 {
				continue
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if v, ok := have[labels[i]]; !ok || v != labels[i+1] {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// series counts the series of a metric family.
func (e *env) series(t *testing.T, name string) int {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

func (e *env) redactions(t *testing.T, kind, where string) float64 {
	t.Helper()
	return e.metric(t, "veil_pii_redactions_total", "kind", kind, "where", where)
}

func clientInput(name, url string) *Input {
	return &Input{
		Name: name, URL: url, Interactive: true, ScrollDepth: -1,
		IP: netip.MustParseAddr("203.0.113.9"), UA: chromeUA, HasClient: true,
	}
}

func TestProcessHappyPath(t *testing.T) {
	e := newEnv(t)
	in := clientInput("  pageview ", "https://www.Example.com/pricing/?utm_source=newsletter&utm_medium=email&session=abc123#top")
	in.Referrer = "https://www.google.com/search?q=jane+doe+symptoms"
	in.Props = []Prop{{"plan", "pro"}, {"seats", "3"}}
	in.ScrollDepth = 55
	in.EngagedMS = 4200
	in.Interactive = false
	ev := e.process(t, e.siteA, in)

	now := e.clk.Now().UTC()
	for _, c := range []struct{ field, got, want string }{
		{"SiteID", ev.SiteID, "sitea"},
		{"Name", ev.Name, "pageview"},
		{"Host", ev.Host, "example.com"},
		{"Path", ev.Path, "/pricing"},
		{"Query", ev.Query, "utm_source=newsletter&utm_medium=email"},
		{"UTMSource", ev.UTMSource, "newsletter"},
		{"UTMMedium", ev.UTMMedium, "email"},
		{"Source", ev.Source, "newsletter"},
		{"Referrer", ev.Referrer, "google.com"},
		{"Country", ev.Country, ""},
		{"Browser", ev.Browser, "Chrome"},
		{"BrowserV", ev.BrowserV, "124"},
		{"OS", ev.OS, "Windows"},
		{"OSV", ev.OSV, "10"},
		{"Device", ev.Device, "desktop"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
		}
	}
	if !ev.Time.Equal(now) || ev.Time.Location() != time.UTC {
		t.Errorf("Time = %v, want %v (UTC)", ev.Time, now)
	}
	if ev.ScrollDepth != 55 || ev.EngagedMS != 4200 || ev.Interactive {
		t.Errorf("ScrollDepth=%d EngagedMS=%d Interactive=%v", ev.ScrollDepth, ev.EngagedMS, ev.Interactive)
	}
	if len(ev.Props) != 2 || ev.Props[0] != (event.Prop{Key: "plan", Value: "pro"}) || ev.Props[1] != (event.Prop{Key: "seats", Value: "3"}) {
		t.Errorf("Props = %v", ev.Props)
	}
	if ev.Unit != event.UnitVisitorDay || ev.KeyVersion != pseudo.DayVersion(now) || ev.Pseudonym == (event.Pseudonym{}) {
		t.Errorf("Unit=%v KeyVersion=%d Pseudonym=%v", ev.Unit, ev.KeyVersion, ev.Pseudonym)
	}
	if ev.HasID || ev.IDHash != (event.Pseudonym{}) {
		t.Errorf("event without id has HasID=%v IDHash=%v", ev.HasID, ev.IDHash)
	}

	// The referrer source is used when there is no utm_source.
	in = clientInput("pageview", "https://example.com/")
	in.Referrer = "https://www.google.com/search?q=x"
	if ev := e.process(t, e.siteA, in); ev.Source != "Google" || ev.Referrer != "google.com" {
		t.Errorf("Source=%q Referrer=%q, want Google, google.com", ev.Source, ev.Referrer)
	}
	// An internal referrer is no source.
	in.Referrer = "https://example.com/other"
	if ev := e.process(t, e.siteA, in); ev.Source != "" || ev.Referrer != "" {
		t.Errorf("internal referrer: Source=%q Referrer=%q", ev.Source, ev.Referrer)
	}
	// Hash routes are kept only when asked for.
	in = clientInput("pageview", "https://example.com/app#/settings/profile")
	if ev := e.process(t, e.siteA, in); ev.Path != "/app" {
		t.Errorf("Path = %q without hash routing", ev.Path)
	}
	in.HashRoute = true
	if ev := e.process(t, e.siteA, in); ev.Path != "/app#/settings/profile" {
		t.Errorf("Path = %q with hash routing", ev.Path)
	}
	// A site's allowed params replace the default.
	site := e.siteA
	site.AllowedParams = []string{"ref"}
	if ev := e.process(t, site, clientInput("pageview", "https://example.com/?ref=hn&utm_source=x&q=secret")); ev.Query != "ref=hn" || ev.UTMSource != "" {
		t.Errorf("allowed params: Query=%q UTMSource=%q", ev.Query, ev.UTMSource)
	}
}

func TestProcessVisitorPseudonym(t *testing.T) {
	e := newEnv(t)
	p := func(site store.Site, ip, ua string) event.Pseudonym {
		in := clientInput("pageview", "https://example.com/")
		in.IP, in.UA = netip.MustParseAddr(ip), ua
		return e.process(t, site, in).Pseudonym
	}
	base := p(e.siteA, "203.0.113.9", chromeUA)
	if p(e.siteA, "203.0.113.9", chromeUA) != base {
		t.Error("same visitor, same day: pseudonym differs")
	}
	if p(e.siteA, "203.0.113.10", chromeUA) == base {
		t.Error("different IP: same pseudonym")
	}
	if p(e.siteA, "203.0.113.9", firefoxUA) == base {
		t.Error("different user agent: same pseudonym")
	}
	if p(e.siteB, "203.0.113.9", chromeUA) == base {
		t.Error("different site: same pseudonym")
	}
	e.clk.Advance(24 * time.Hour)
	if p(e.siteA, "203.0.113.9", chromeUA) == base {
		t.Error("next day: same pseudonym")
	}
}

func TestProcessPropRedaction(t *testing.T) {
	e := newEnv(t)
	in := clientInput("signup", "https://example.com/")
	in.Props = []Prop{
		{"contact", "jane.doe@example.com"},
		{"phone", "+44 20 7946 0958"},
		{"card", "4111 1111 1111 1111"},
		{"note", "write to jane.doe@example.com today"},
		{"jane.doe@example.com", "subscribed"},
		{"plan", "pro"},
		{"count", "42"},
		{"date", "2024-01-31"},
	}
	ev := e.process(t, e.siteA, in)
	want := []event.Prop{
		{Key: "contact", Value: "[redacted email]"},
		{Key: "phone", Value: "[redacted phone]"},
		{Key: "card", Value: "[redacted credit_card]"},
		{Key: "note", Value: "[redacted email]"},
		{Key: "plan", Value: "pro"},
		{Key: "count", Value: "42"},
		{Key: "date", Value: "2024-01-31"},
	}
	if len(ev.Props) != len(want) {
		t.Fatalf("Props = %q, want %q", ev.Props, want)
	}
	for i := range want {
		if ev.Props[i] != want[i] {
			t.Errorf("Props[%d] = %q, want %q", i, ev.Props[i], want[i])
		}
	}
	for _, c := range []struct {
		kind, where string
		want        float64
	}{
		{"email", "prop", 2},
		{"phone", "prop", 1},
		{"credit_card", "prop", 1},
		{"email", "prop_key", 1},
		{"email", "path", 0},
	} {
		if got := e.redactions(t, c.kind, c.where); got != c.want {
			t.Errorf("redactions{kind=%q,where=%q} = %v, want %v", c.kind, c.where, got, c.want)
		}
	}
	// The counter carries no value from the event.
	if n := e.series(t, "veil_pii_redactions_total"); n != 4 {
		t.Errorf("%d redaction series, want 4", n)
	}
}

func TestProcessPathRedaction(t *testing.T) {
	e := newEnv(t)
	ev := e.process(t, e.siteA, clientInput("pageview", "https://example.com/users/jane.doe@example.com/settings?email=jane.doe@example.com"))
	if ev.Path != "/users/:email/settings" {
		t.Errorf("Path = %q", ev.Path)
	}
	if ev.Query != "" {
		t.Errorf("Query = %q", ev.Query)
	}
	if got := e.redactions(t, "email", "path"); got != 1 {
		t.Errorf("path redactions = %v", got)
	}
}

func TestRedactPath(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"/", "/"},
		{"/pricing", "/pricing"},
		{"/a/b/c", "/a/b/c"},
		{"/users/42", "/users/42"},
		{"/jane@example.com", "/:email"},
		{"/users/jane@example.com", "/users/:email"},
		{"/users/jane@example.com/", "/users/:email/"},
		{"/users/jane@example.com/orders/7", "/users/:email/orders/7"},
		{"/a@example.com/b@example.org", "/:email/:email"},
		{"/cards/4111111111111111/edit", "/cards/:credit_card/edit"},
		{"/files/logo@2x.png", "/files/logo@2x.png"},
	} {
		if got := e.c.redactPath(tc.in); got != tc.want {
			t.Errorf("redactPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestProcessNameLooksLikePII(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"jane.doe@example.com", "4111 1111 1111 1111"} {
		_, _, err := e.c.Process(context.Background(), e.siteA, clientInput(name, "https://example.com/"))
		he := wantErr(t, err, http.StatusBadRequest, "pii", "name")
		if strings.Contains(he.Msg, "jane") || strings.Contains(he.Msg, "4111") {
			t.Errorf("error echoes the personal data: %q", he.Msg)
		}
	}
	if got := e.redactions(t, "email", "name"); got != 1 {
		t.Errorf("name redactions = %v", got)
	}
	e.process(t, e.siteA, clientInput("Newsletter Signup", "https://example.com/"))
}

func TestProcessValidation(t *testing.T) {
	e := newEnv(t)
	manyProps := make([]Prop, 31)
	for i := range manyProps {
		manyProps[i] = Prop{Key: "k" + itoa(i), Value: "v"}
	}
	for _, tc := range []struct {
		name          string
		mod           func(*Input)
		reason, field string
	}{
		{"no name", func(in *Input) { in.Name = "" }, "missing_field", "name"},
		{"blank name", func(in *Input) { in.Name = "  \t " }, "missing_field", "name"},
		{"long name", func(in *Input) { in.Name = strings.Repeat("n", 121) }, "invalid_field", "name"},
		{"control char in name", func(in *Input) { in.Name = "sign\x00up" }, "invalid_field", "name"},
		{"DEL in name", func(in *Input) { in.Name = "sign\x7fup" }, "invalid_field", "name"},
		{"bad UTF-8 in name", func(in *Input) { in.Name = "sign\xffup" }, "invalid_field", "name"},
		{"no url", func(in *Input) { in.URL = "" }, "missing_field", "url"},
		{"long url", func(in *Input) { in.URL = "https://example.com/" + strings.Repeat("a", 2000) }, "invalid_field", "url"},
		{"javascript url", func(in *Input) { in.URL = "javascript:alert(1)" }, "invalid_field", "url"},
		{"relative url", func(in *Input) { in.URL = "/pricing" }, "invalid_field", "url"},
		{"long referrer", func(in *Input) { in.Referrer = "https://r.example/" + strings.Repeat("a", 2000) }, "invalid_field", "referrer"},
		{"too many props", func(in *Input) { in.Props = manyProps }, "too_many_props", "props"},
		{"empty prop key", func(in *Input) { in.Props = []Prop{{"", "v"}} }, "invalid_prop", "props"},
		{"long prop key", func(in *Input) { in.Props = []Prop{{strings.Repeat("k", 301), "v"}} }, "invalid_prop", "props"},
		{"control char in prop key", func(in *Input) { in.Props = []Prop{{"a\nb", "v"}} }, "invalid_prop", "props"},
		{"long prop value", func(in *Input) { in.Props = []Prop{{"k", strings.Repeat("v", 2001)}} }, "invalid_prop", "props"},
		{"bad UTF-8 in prop value", func(in *Input) { in.Props = []Prop{{"k", "\xc3"}} }, "invalid_prop", "props"},
		{"scroll depth", func(in *Input) { in.ScrollDepth = 101 }, "invalid_field", "sd"},
		{"negative engagement", func(in *Input) { in.EngagedMS = -1 }, "invalid_field", "e"},
		{"engagement over a day", func(in *Input) { in.EngagedMS = 24*3600*1000 + 1 }, "invalid_field", "e"},
		{"long user id", func(in *Input) { in.UserID = strings.Repeat("u", 257) }, "invalid_field", "user_id"},
		{"bad UTF-8 in user id", func(in *Input) { in.UserID = "u\xff" }, "invalid_field", "user_id"},
		{"long event id", func(in *Input) { in.EventID = strings.Repeat("i", 257) }, "invalid_field", "id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := clientInput("signup", "https://example.com/")
			tc.mod(in)
			_, drop, err := e.c.Process(context.Background(), e.siteA, in)
			wantErr(t, err, http.StatusBadRequest, tc.reason, tc.field)
			if drop != "" {
				t.Errorf("drop = %q with an error", drop)
			}
		})
	}
	// The limits themselves are accepted.
	in := clientInput(strings.Repeat("n", 120), "https://example.com/")
	in.Props = manyProps[:30]
	in.Props[0] = Prop{strings.Repeat("k", 300), strings.Repeat("v", 2000)}
	in.ScrollDepth, in.EngagedMS = 100, 24*3600*1000
	in.UserID, in.EventID = strings.Repeat("u", 256), strings.Repeat("i", 256)
	e.process(t, e.siteA, in)
}

func TestProcessTimestamps(t *testing.T) {
	e := newEnv(t)
	now := e.clk.Now()
	for _, tc := range []struct {
		name string
		t    time.Time
		ok   bool
	}{
		{"now", now, true},
		{"4m59s ahead", now.Add(4*time.Minute + 59*time.Second), true},
		{"5m ahead", now.Add(5 * time.Minute), true},
		{"5m1s ahead", now.Add(5*time.Minute + time.Second), false},
		{"a day ahead", now.Add(24 * time.Hour), false},
		{"an hour ago", now.Add(-time.Hour), true},
		{"29 days ago", now.Add(-29 * 24 * time.Hour), true},
		{"31 days ago", now.Add(-31 * 24 * time.Hour), false},
		{"1970", time.Unix(0, 0), false},
		{"other zone", now.Add(-time.Hour).In(time.FixedZone("X", 5*3600)), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := clientInput("pageview", "https://example.com/")
			in.Time = tc.t
			ev, _, err := e.c.Process(context.Background(), e.siteA, in)
			if !tc.ok {
				wantErr(t, err, http.StatusBadRequest, "bad_timestamp", "timestamp")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !ev.Time.Equal(tc.t) || ev.Time.Location() != time.UTC {
				t.Errorf("Time = %v, want %v in UTC", ev.Time, tc.t)
			}
			if ev.KeyVersion != pseudo.DayVersion(tc.t) {
				t.Errorf("KeyVersion = %d, want the event's day %d", ev.KeyVersion, pseudo.DayVersion(tc.t))
			}
		})
	}
	// Retention is the site's, not a global one.
	short := e.siteA
	short.Retention = 24 * time.Hour
	in := clientInput("pageview", "https://example.com/")
	in.Time = now.Add(-25 * time.Hour)
	_, _, err := e.c.Process(context.Background(), short, in)
	wantErr(t, err, http.StatusBadRequest, "bad_timestamp", "timestamp")

	// Times are stored with millisecond precision.
	in.Time = now.Add(-time.Minute + 123456789)
	ev := e.process(t, e.siteA, in)
	if want := now.Add(-time.Minute + 123000000); !ev.Time.Equal(want) {
		t.Errorf("Time = %v, want %v", ev.Time, want)
	}
	e.clk.Advance(987654)
	in.Time = time.Time{}
	if ev := e.process(t, e.siteA, in); ev.Time.Nanosecond()%int(time.Millisecond) != 0 {
		t.Errorf("server time not truncated: %v", ev.Time)
	}
}

func TestProcessDrops(t *testing.T) {
	e := newEnv(t)
	no, yes := false, true
	for _, tc := range []struct {
		name string
		mod  func(*Input)
		drop string
	}{
		{"googlebot", func(in *Input) { in.UA = botUA }, DropBot},
		{"curl", func(in *Input) { in.UA = "curl/8.5.0" }, DropBot},
		{"headless", func(in *Input) { in.UA = strings.Replace(chromeUA, "Chrome/", "HeadlessChrome/", 1) }, DropBot},
		{"empty user agent", func(in *Input) { in.UA = "" }, DropBot},
		{"consent false", func(in *Input) { in.Consent = &no }, DropConsent},
		{"consent false, invalid event", func(in *Input) { in.Consent = &no; in.Name = "" }, DropConsent},
		{"consent false, bot", func(in *Input) { in.Consent = &no; in.UA = botUA }, DropConsent},
		{"bot, invalid event", func(in *Input) { in.UA = botUA; in.URL = "javascript:x" }, DropBot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := clientInput("pageview", "https://example.com/")
			tc.mod(in)
			ev, drop, err := e.c.Process(context.Background(), e.siteA, in)
			if err != nil || drop != tc.drop {
				t.Fatalf("drop=%q err=%v, want drop %q", drop, err, tc.drop)
			}
			if ev.Name != "" || ev.Pseudonym != (event.Pseudonym{}) {
				t.Errorf("dropped event carries data: %+v", ev)
			}
		})
	}
	in := clientInput("pageview", "https://example.com/")
	in.Consent = &yes
	e.process(t, e.siteA, in)
	// Server-side events (no client) are not checked for bots.
	e.process(t, e.siteA, &Input{Name: "invoice", URL: "https://example.com/", UA: botUA, ScrollDepth: -1})
}

func TestProcessUserUnit(t *testing.T) {
	e := newEnv(t)
	user := func(site store.Site, id string, client bool) event.Event {
		in := &Input{Name: "purchase", URL: "https://example.com/", UserID: id, ScrollDepth: -1}
		if client {
			in.IP, in.UA, in.HasClient = netip.MustParseAddr("203.0.113.9"), chromeUA, true
		}
		return e.process(t, site, in)
	}
	a := user(e.siteA, "u-42", false)
	if a.Unit != event.UnitUser || a.KeyVersion == 0 || a.Pseudonym == (event.Pseudonym{}) {
		t.Fatalf("Unit=%v KeyVersion=%d Pseudonym=%v", a.Unit, a.KeyVersion, a.Pseudonym)
	}
	if user(e.siteA, "u-42", false).Pseudonym != a.Pseudonym {
		t.Error("same user, same site: pseudonym differs")
	}
	if user(e.siteB, "u-42", false).Pseudonym == a.Pseudonym {
		t.Error("same user on two sites: equal pseudonyms make sites linkable")
	}
	if user(e.siteA, "u-43", false).Pseudonym == a.Pseudonym {
		t.Error("different users: same pseudonym")
	}
	// The user pseudonym does not depend on the day.
	e.clk.Advance(72 * time.Hour)
	if user(e.siteA, "u-42", false).Pseudonym != a.Pseudonym {
		t.Error("user pseudonym changed with the day")
	}
	// A user id wins over the client; the client still yields browser info.
	c := user(e.siteA, "u-42", true)
	if c.Unit != event.UnitUser || c.Pseudonym != a.Pseudonym || c.Browser != "Chrome" {
		t.Errorf("user with client: Unit=%v Pseudonym equal=%v Browser=%q", c.Unit, c.Pseudonym == a.Pseudonym, c.Browser)
	}
}

func TestProcessEventUnit(t *testing.T) {
	e := newEnv(t)
	for name, in := range map[string]func() *Input{
		"server event": func() *Input { return &Input{Name: "invoice", URL: "https://example.com/", ScrollDepth: -1} },
		"client without address": func() *Input {
			in := clientInput("pageview", "https://example.com/")
			in.IP = netip.Addr{}
			return in
		},
	} {
		a, b := e.process(t, e.siteA, in()), e.process(t, e.siteA, in())
		if a.Unit != event.UnitEvent || b.Unit != event.UnitEvent {
			t.Errorf("%s: units %v %v, want event", name, a.Unit, b.Unit)
		}
		if a.Pseudonym == b.Pseudonym || a.Pseudonym == (event.Pseudonym{}) {
			t.Errorf("%s: pseudonyms %v %v, want random and distinct", name, a.Pseudonym, b.Pseudonym)
		}
	}
}

func TestProcessEventID(t *testing.T) {
	e := newEnv(t)
	id := func(site store.Site, id string) event.Event {
		in := &Input{Name: "purchase", URL: "https://example.com/", EventID: id, ScrollDepth: -1}
		return e.process(t, site, in)
	}
	a := id(e.siteA, "order-1")
	if !a.HasID || a.IDHash == (event.Pseudonym{}) {
		t.Fatalf("HasID=%v IDHash=%v", a.HasID, a.IDHash)
	}
	if id(e.siteA, "order-1").IDHash != a.IDHash {
		t.Error("same id: hash differs")
	}
	if id(e.siteA, "order-2").IDHash == a.IDHash {
		t.Error("different ids: same hash")
	}
	if id(e.siteB, "order-1").IDHash == a.IDHash {
		t.Error("same id on two sites: same hash")
	}
}

// rawStrings are the personal data sent with an event; none may survive.
var rawStrings = []string{
	"203.0.113.77", "2001:db8:beef::77",
	chromeUA, "Chrome/124.0.0.0", "Windows NT 10.0; Win64",
	"u-8f3a9c-secret-user", "order-7781-zz", "jane.doe@example.com", "jane.doe", "+44 20 7946 0958",
	"secret-session", "q=private+search",
}

func checkNoRaw(t *testing.T, what string, b []byte) {
	t.Helper()
	for _, s := range rawStrings {
		if bytes.Contains(b, []byte(s)) {
			t.Errorf("%s contains %q", what, s)
		}
	}
	for _, ip := range []string{"203.0.113.77", "2001:db8:beef::77"} {
		a := netip.MustParseAddr(ip)
		if a.Is4() {
			b4 := a.As4()
			if bytes.Contains(b, b4[:]) {
				t.Errorf("%s contains the binary address %s", what, ip)
			}
		}
		b16 := a.As16()
		if bytes.Contains(b, b16[:]) {
			t.Errorf("%s contains the binary address %s", what, ip)
		}
	}
}

func TestProcessNothingRawInEncodedEvent(t *testing.T) {
	e := newEnv(t)
	var evs []event.Event
	for _, ip := range []string{"203.0.113.77", "2001:db8:beef::77", "::ffff:203.0.113.77"} {
		for _, user := range []string{"", "u-8f3a9c-secret-user"} {
			in := clientInput("signup", "https://example.com/users/jane.doe@example.com?session=secret-session&utm_source=x#jane.doe")
			in.IP = netip.MustParseAddr(ip)
			in.UserID = user
			in.EventID = "order-7781-zz"
			in.Referrer = "https://search.example/?q=private+search"
			in.Props = []Prop{{"contact", "jane.doe@example.com"}, {"phone", "+44 20 7946 0958"}, {"plan", "pro"}}
			evs = append(evs, e.process(t, e.siteA, in))
		}
	}
	enc := event.AppendBatch(nil, evs)
	checkNoRaw(t, "encoded events", enc)
	// The encoding round-trips: what is checked is what is stored.
	dec, err := event.DecodeBatch(enc)
	if err != nil || len(dec) != len(evs) {
		t.Fatalf("DecodeBatch: %d events, %v", len(dec), err)
	}
	if !bytes.Contains(enc, []byte("[redacted email]")) || !bytes.Contains(enc, []byte("Chrome")) {
		t.Error("encoding does not hold the minimized values; the check above would prove nothing")
	}
}

func TestHandleBatchNothingRawReachesLogOrMetrics(t *testing.T) {
	e := newEnv(t)
	body := `{"id":"order-7781-zz","site":"example.com","name":"purchase","url":"https://example.com/users/jane.doe@example.com?session=secret-session","user_id":"u-8f3a9c-secret-user","props":{"contact":"jane.doe@example.com","phone":"+44 20 7946 0958"}}
{"site":"example.com","name":"pageview","url":"https://example.com/","referrer":"https://search.example/?q=private+search","ip":"203.0.113.77","user_agent":"` + chromeUA + `"}
{"site":"example.com","name":"pageview","url":"https://example.com/","ip":"2001:db8:beef::77","user_agent":"` + chromeUA + `","jane.doe@example.com":1}
{"site":"example.com","name":"jane.doe@example.com","url":"https://example.com/"}
{"site":"other.example","name":"pageview","url":"https://other.example/","user_id":"u-8f3a9c-secret-user"}
`
	req := httptest.NewRequest(http.MethodPost, "/api/v1/events", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-ndjson")
	rec := httptest.NewRecorder()
	e.c.HandleBatch(store.Token{Role: store.RoleIngest}, rec, req)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	resp := rec.Body.String()
	if !strings.Contains(resp, `"accepted":3`) || !strings.Contains(resp, `"index":2`) || !strings.Contains(resp, `"index":3`) {
		t.Errorf("response %s", resp)
	}
	checkNoRaw(t, "response", rec.Body.Bytes())

	evs := e.log.events()
	if len(evs) != 3 {
		t.Fatalf("%d events appended, want 3", len(evs))
	}
	checkNoRaw(t, "appended events", event.AppendBatch(nil, evs))
	if evs[0].Unit != event.UnitUser || evs[1].Unit != event.UnitVisitorDay || evs[2].Unit != event.UnitUser {
		t.Errorf("units %v %v %v", evs[0].Unit, evs[1].Unit, evs[2].Unit)
	}
	if evs[0].Pseudonym == evs[2].Pseudonym {
		t.Error("one user id on two sites got one pseudonym")
	}

	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	for _, mf := range mfs {
		metrics.WriteString(mf.String())
	}
	checkNoRaw(t, "metrics", metrics.Bytes())
	if strings.Contains(metrics.String(), "example.com") || strings.Contains(metrics.String(), "sitea") {
		t.Error("metrics carry a site")
	}
	if got := e.metric(t, "veil_events_accepted_total", "endpoint", "batch"); got != 3 {
		t.Errorf("accepted{batch} = %v", got)
	}
	if got := e.metric(t, "veil_events_rejected_total", "reason", "unknown_field"); got != 1 {
		t.Errorf("rejected{unknown_field} = %v", got)
	}
	if got := e.metric(t, "veil_events_rejected_total", "reason", "pii"); got != 1 {
		t.Errorf("rejected{pii} = %v", got)
	}
}

func TestHandleEventNothingRawReachesLog(t *testing.T) {
	e := newEnv(t)
	pt, err := ParseTrusted([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	e.c.cfg.Proxies = pt
	body := `{"n":"pageview","u":"https://example.com/users/jane.doe@example.com?session=secret-session","d":"example.com,other.example","r":"https://search.example/?q=private+search","p":{"phone":"+44 20 7946 0958"}}`
	req := httptest.NewRequest(http.MethodPost, "/api/event", strings.NewReader(body))
	req.RemoteAddr = "10.0.0.1:4444"
	req.Header.Set("X-Forwarded-For", "198.51.100.1, 203.0.113.77")
	req.Header.Set("User-Agent", chromeUA)
	req.Header.Set("Content-Type", "text/plain")
	rec := httptest.NewRecorder()
	e.c.HandleEvent(rec, req)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	evs := e.log.events()
	if len(evs) != 2 || evs[0].SiteID != "sitea" || evs[1].SiteID != "siteb" {
		t.Fatalf("appended %+v", evs)
	}
	if evs[0].Path != "/users/:email" || evs[0].Browser != "Chrome" || evs[0].Props[0].Value != "[redacted phone]" {
		t.Errorf("event %+v", evs[0])
	}
	checkNoRaw(t, "appended events", event.AppendBatch(nil, evs))

	// The pseudonym is the forwarded client's, not the proxy's.
	in := clientInput("pageview", "https://example.com/")
	in.IP = netip.MustParseAddr("203.0.113.77")
	if want := e.process(t, e.siteA, in).Pseudonym; evs[0].Pseudonym != want {
		t.Error("pseudonym was not made from the forwarded client address")
	}
}

func TestStoreDeduplicates(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	mk := func(id string) event.Event {
		return e.process(t, e.siteA, &Input{Name: "purchase", URL: "https://example.com/", EventID: id, ScrollDepth: -1})
	}
	noID := e.process(t, e.siteA, &Input{Name: "pageview", URL: "https://example.com/", ScrollDepth: -1})
	a, a2, b := mk("order-1"), mk("order-1"), mk("order-2")

	// A repeated id inside one batch is stored once.
	dups, err := e.c.Store(ctx, "sitea", []event.Event{noID, a, a2, b}, "batch")
	if err != nil || dups != 1 {
		t.Fatalf("dups=%d err=%v, want 1", dups, err)
	}
	if got := e.log.events(); len(got) != 3 || got[0].HasID || got[1].IDHash != a.IDHash || got[2].IDHash != b.IDHash {
		t.Fatalf("appended %d events: %+v", len(got), got)
	}
	// A retry of the batch's events with ids stores nothing, and does not
	// call the log at all.
	calls := len(e.log.appends)
	dups, err = e.c.Store(ctx, "sitea", []event.Event{a, b}, "batch")
	if err != nil || dups != 2 || len(e.log.appends) != calls {
		t.Fatalf("retry: dups=%d err=%v appends %d→%d", dups, err, calls, len(e.log.appends))
	}
	// Events without an id are never duplicates.
	dups, err = e.c.Store(ctx, "sitea", []event.Event{noID, noID}, "event")
	if err != nil || dups != 0 || len(e.log.events()) != 5 {
		t.Fatalf("no ids: dups=%d err=%v, %d events in total", dups, err, len(e.log.events()))
	}
	// The dedupe memory is per id hash, and id hashes are per site.
	if dups, err := e.c.Store(ctx, "siteb", []event.Event{mk("order-3")}, "batch"); err != nil || dups != 0 {
		t.Fatalf("new id: dups=%d err=%v", dups, err)
	}
	if got := e.metric(t, "veil_events_dropped_total", "reason", DropDuplicate); got != 3 {
		t.Errorf("dropped{duplicate} = %v, want 3", got)
	}
	if got := e.metric(t, "veil_events_accepted_total", "endpoint", "batch"); got != 4 {
		t.Errorf("accepted{batch} = %v, want 4", got)
	}
	if got := e.metric(t, "veil_events_accepted_total", "endpoint", "event"); got != 2 {
		t.Errorf("accepted{event} = %v, want 2", got)
	}
}

func TestStoreKeepsEventsWithoutIDAfterADuplicate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.process(t, e.siteA, &Input{Name: "purchase", URL: "https://example.com/", EventID: "order-1", ScrollDepth: -1})
	noID := e.process(t, e.siteA, &Input{Name: "pageview", URL: "https://example.com/", ScrollDepth: -1})
	dups, err := e.c.Store(ctx, "sitea", []event.Event{a, a, noID}, "batch")
	if err != nil || dups != 1 {
		t.Fatalf("dups=%d err=%v, want 1", dups, err)
	}
	if got := e.log.events(); len(got) != 2 {
		t.Fatalf("appended %d events, want 2 (the id'd event once and the event without id)", len(got))
	}

	// Through the batch API: a retry that repeats an id loses the new events after it.
	body := `{"id":"order-2","site":"example.com","name":"purchase","url":"https://example.com/"}
{"id":"order-2","site":"example.com","name":"purchase","url":"https://example.com/"}
{"site":"example.com","name":"pageview","url":"https://example.com/a"}
{"site":"example.com","name":"pageview","url":"https://example.com/b"}
`
	req := httptest.NewRequest(http.MethodPost, "/api/v1/events", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-ndjson")
	rec := httptest.NewRecorder()
	before := len(e.log.events())
	e.c.HandleBatch(store.Token{Role: store.RoleIngest}, rec, req)
	if !strings.Contains(rec.Body.String(), `"accepted":3`) {
		t.Fatalf("response %s", rec.Body)
	}
	if stored := len(e.log.events()) - before; stored != 3 {
		t.Fatalf("answered accepted=3 but %d events were stored", stored)
	}
}

func TestStoreAppendFailureIsRetryable(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ev := e.process(t, e.siteA, &Input{Name: "purchase", URL: "https://example.com/", EventID: "order-9", ScrollDepth: -1})
	failure := errors.New("log down")
	e.log.err = failure
	if _, err := e.c.Store(ctx, "sitea", []event.Event{ev}, "event"); !errors.Is(err, failure) {
		t.Fatalf("err = %v, want the append error", err)
	}
	e.log.err = nil
	dups, err := e.c.Store(ctx, "sitea", []event.Event{ev}, "event")
	if err != nil || dups != 0 {
		t.Fatalf("retry after a failed append: dups=%d err=%v (treated as a duplicate of an event never stored)", dups, err)
	}
	if n := len(e.log.events()); n != 1 {
		t.Fatalf("%d events stored", n)
	}
}

func TestHostOf(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://example.com/path", "example.com"},
		{"https://www.Example.COM/", "example.com"},
		{"http://example.com", "example.com"},
		{"https://example.com:8443/x", "example.com"},
		{"https://user:pass@example.com/x", "example.com"},
		{"https://example.com?x=@evil.example", "example.com"},
		{"https://example.com#@evil.example", "example.com"},
		{"https://example.com/a@evil.example", "example.com"},
		{"https://sub.example.com/", "sub.example.com"},
		{"https://[2001:db8::1]:8080/", "[2001:db8::1]"},
		{"https://[2001:db8::1]/", "[2001:db8::1]"},
		{"example.com/path", "example.com"},
		{"app://com.example.app/home", "com.example.app"},
	} {
		if got := hostOf(tc.in); got != tc.want {
			t.Errorf("hostOf(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSiteLookup(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s, err := e.c.Site(ctx, "WWW.Example.com")
	if err != nil || s.ID != "sitea" {
		t.Fatalf("Site = %+v, %v", s, err)
	}
	if len(e.log.ensured) != 1 || e.log.ensured[0].ID != "sitea" {
		t.Errorf("EnsureSite calls: %+v", e.log.ensured)
	}
	// Cached: the stream is not ensured again.
	if _, err := e.c.Site(ctx, "example.com"); err != nil || len(e.log.ensured) != 1 {
		t.Errorf("second lookup: err=%v ensured %d times", err, len(e.log.ensured))
	}
	for _, d := range []string{"unknown.example", "", "not a domain"} {
		if _, err := e.c.Site(ctx, d); !errors.Is(err, ErrUnknownSite) {
			t.Errorf("Site(%q) err = %v, want ErrUnknownSite", d, err)
		}
	}
}
