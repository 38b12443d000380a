package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/auth"
	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/httpx"
	"github.com/veil-analytics/veil/internal/pii"
	"github.com/veil-analytics/veil/internal/piireport"
	"github.com/veil-analytics/veil/internal/store"
)

var update = flag.Bool("update", false, "rewrite testdata/catalog.golden.json")

// fakePII serves canned reports by site id.
type fakePII map[string][]piireport.FieldReport

func (f fakePII) Report(_ context.Context, s store.Site) ([]piireport.FieldReport, error) {
	if s.ID == "broken" {
		return nil, errors.New("database is locked")
	}
	return f[s.ID], nil
}

var created = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func testSites() []store.Site {
	return []store.Site{
		{ID: "a1", Domain: "shop.example.com", Retention: 90 * 24 * time.Hour, Created: created,
			Owner: "web-team@example.com", OwnerDomain: "commerce", Purposes: []string{store.PurposeAnalytics, store.PurposeModelTraining},
			AllowedParams: []string{"utm_source", "utm_campaign", "ref"},
			Fields: map[string]store.FieldAction{
				"email": store.FieldTokenize, "customer": store.FieldHash, "debug": store.FieldDrop,
				"plan": store.FieldKeep, "note": store.FieldKeep,
			}},
		{ID: "b2", Domain: "app.example.com", Retention: 30 * 24 * time.Hour, Created: created, UserUnit: true,
			Owner: "mobile@example.com", OwnerDomain: "commerce", DailyEpsilon: 4},
		{ID: "c3", Domain: "blog.example.org", Retention: 30 * 24 * time.Hour, Created: created},
	}
}

func testPII() fakePII {
	return fakePII{
		"a1": {
			{Field: "note", Seen: 987654, Detected: []pii.Kind{pii.Email}, Status: piireport.StatusAction, Declared: store.FieldKeep,
				Kinds: []piireport.KindStat{{Kind: pii.Email, Hits: 987000, Share: 0.99, MaxScore: 0.95}}},
			{Field: "plan", Seen: 500, Status: piireport.StatusOK, Declared: store.FieldKeep},
			{Field: "email", Seen: 400, Detected: []pii.Kind{pii.Email}, Status: piireport.StatusOK, Declared: store.FieldTokenize},
			{Field: "color", Seen: 20, Status: piireport.StatusReview}, // undeclared: dropped
		},
		"c3": {
			{Field: "first_name", Seen: 12, Status: piireport.StatusReview,
				NameSuggests: []piireport.NameHint{{Kind: pii.Name, Score: 0.85}}},
			{Field: "plan", Seen: 30, Status: piireport.StatusOK},
			{Field: piireport.OtherFields, Seen: 3, Status: piireport.StatusReview},
		},
	}
}

func fieldOf(t *testing.T, p Product, name string) Field {
	t.Helper()
	for _, f := range p.Schema {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("%s has no field %q", p.Name, name)
	return Field{}
}

func productOf(t *testing.T, c Catalog, name string) Product {
	t.Helper()
	for _, d := range c.Domains {
		for _, p := range d.Products {
			if p.Name == name {
				return p
			}
		}
	}
	t.Fatalf("no product %s", name)
	return Product{}
}

func TestBuildDomains(t *testing.T) {
	c, err := Build(context.Background(), testSites(), testPII(), Locations{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Domains) != 2 || c.Domains[0].Name != "commerce" || c.Domains[1].Name != DefaultDomain {
		t.Fatalf("domains = %+v", c.Domains)
	}
	com := c.Domains[0]
	if len(com.Products) != 2 || com.Products[0].Name != "app.example.com" || com.Products[1].Name != "shop.example.com" {
		t.Errorf("commerce products = %+v", com.Products)
	}
	if !slices.Equal(com.Owners, []string{"mobile@example.com", "web-team@example.com"}) {
		t.Errorf("commerce owners = %v", com.Owners)
	}
	def := c.Domains[1]
	if len(def.Products) != 1 || def.Products[0].Domain != DefaultDomain || len(def.Owners) != 0 {
		t.Errorf("default domain = %+v", def)
	}

	shop := productOf(t, c, "shop.example.com")
	if shop.RetentionDays != 90 || shop.PrivacyUnit != "visitor-day" || shop.Budget.Period != "day" ||
		shop.Budget.Composition != "parallel" || shop.Budget.EpsilonPerPeriod != 3 || shop.Budget.Delta == 0 ||
		!slices.Equal(shop.Purposes, []string{"analytics", "model_training"}) || shop.Owner != "web-team@example.com" {
		t.Errorf("shop = %+v", shop)
	}
	app := productOf(t, c, "app.example.com")
	if app.PrivacyUnit != "user" || app.Budget.Period != "month" || app.Budget.Composition != "sequential" || app.Budget.EpsilonPerPeriod != 4 {
		t.Errorf("app budget = %+v, unit %s", app.Budget, app.PrivacyUnit)
	}
	if !slices.Equal(app.Purposes, []string{"analytics"}) {
		t.Errorf("app purposes = %v", app.Purposes)
	}

	// Outputs are named as the pipeline names them.
	names := func(p Product) []string {
		var out []string
		for _, d := range p.Outputs {
			out = append(out, d.Namespace+" "+d.Name)
		}
		return out
	}
	want := []string{"nats://embedded VEIL_EV_a1", "sqlite://veil.db agg_rollup", "sqlite://veil.db agg_pairs",
		"sqlite://veil.db released", "sqlite://veil.db vault_values"}
	if got := names(shop); !slices.Equal(got, want) {
		t.Errorf("shop outputs = %v, want %v", got, want)
	}
	if got := names(app); len(got) != 4 || got[0] != "nats://embedded VEIL_EV_b2" {
		t.Errorf("app outputs (no tokenized fields, no vault) = %v", got)
	}
	if shop.PII == nil || *shop.PII != (PIISummary{FieldsObserved: 4, NeedAction: 1, NeedReview: 1}) {
		t.Errorf("shop PII = %+v", shop.PII)
	}

	// A failing PII report fails the build instead of hiding findings.
	if _, err := Build(context.Background(), []store.Site{{ID: "broken", Domain: "x.org"}}, testPII(), Locations{}); err == nil {
		t.Error("Build with a failing PII source succeeded")
	}
	// Without a PII source the products carry no summary.
	c, err = Build(context.Background(), testSites(), nil, Locations{EventLog: "nats://10.0.0.1:4222", Store: "postgres://db/veil"})
	if err != nil {
		t.Fatal(err)
	}
	if p := productOf(t, c, "blog.example.org"); p.PII != nil || p.Outputs[0].Namespace != "nats://10.0.0.1:4222" || p.Outputs[1].Namespace != "postgres://db/veil" {
		t.Errorf("blog without PII source = %+v", p)
	}
}

func TestDeclaredFields(t *testing.T) {
	c, err := Build(context.Background(), testSites(), testPII(), Locations{})
	if err != nil {
		t.Fatal(err)
	}
	shop := productOf(t, c, "shop.example.com")
	cases := []struct {
		name     string
		tr       Transform
		class    Classification
		tags     []string
		declared store.FieldAction
		flagged  bool
	}{
		{"props.email", Tokenized, DirectIdentifier, []string{"PII.Sensitive", "Veil.DirectIdentifier", "Veil.Tokenized"}, store.FieldTokenize, false},
		{"props.customer", Pseudonymized, Sensitive, []string{"PII.Sensitive", "Veil.Pseudonymized"}, store.FieldHash, false},
		{"props.debug", Dropped, Public, []string{"PII.None", "Veil.Dropped"}, store.FieldDrop, false},
		{"props.plan", Kept, Public, []string{"PII.None"}, store.FieldKeep, false},
		// Declared keep, but the PII report finds emails: flagged.
		{"props.note", Kept, DirectIdentifier, []string{"PII.Sensitive", "Veil.DirectIdentifier", "Veil.PIIDetected"}, store.FieldKeep, true},
		// Sent but undeclared: dropped at the edge.
		{"props.color", Dropped, Public, []string{"PII.None", "Veil.Dropped"}, "", false},
	}
	for _, c := range cases {
		f := fieldOf(t, shop, c.name)
		if f.Transform != c.tr || f.Classification != c.class || !slices.Equal(f.Tags, c.tags) || f.Declared != c.declared || (f.Flag != "") != c.flagged {
			t.Errorf("%s = %+v\nwant transform %s, classification %s, tags %v, declared %q, flagged %v", c.name, f, c.tr, c.class, c.tags, c.declared, c.flagged)
		}
	}
	if f := fieldOf(t, shop, "props.note"); !strings.Contains(f.Flag, "emails") || !slices.Equal(f.Detected, []pii.Kind{pii.Email}) {
		t.Errorf("note flag = %q, detected %v", f.Flag, f.Detected)
	}
	// With a schema there is no catch-all props entry.
	for _, f := range shop.Schema {
		if f.Name == "props.*" {
			t.Error("shop has a props.* entry despite its schema")
		}
	}

	// Without a schema: observed props are redacted quasi-identifiers, the
	// catch-all rule is listed, placeholders are not fields.
	blog := productOf(t, c, "blog.example.org")
	if f := fieldOf(t, blog, "props.plan"); f.Transform != Redacted || f.Classification != QuasiIdentifier || f.Flag != "" {
		t.Errorf("blog plan = %+v", f)
	}
	if f := fieldOf(t, blog, "props.first_name"); !strings.Contains(f.Flag, "person names") {
		t.Errorf("blog first_name flag = %q", f.Flag)
	}
	fieldOf(t, blog, "props.*")
	for _, f := range blog.Schema {
		if strings.Contains(f.Name, "(") {
			t.Errorf("placeholder listed as a field: %s", f.Name)
		}
	}
}

func TestEventSchema(t *testing.T) {
	sites := testSites()
	shop, err := ProductOf(context.Background(), sites[0], nil, Locations{})
	if err != nil {
		t.Fatal(err)
	}
	blog, err := ProductOf(context.Background(), sites[2], nil, Locations{})
	if err != nil {
		t.Fatal(err)
	}
	// Every field of the stored event is described; a field added to
	// event.Event without a catalog entry fails here.
	goToCatalog := map[string]string{
		"IDHash": "id_hash", "HasID": "id_hash", "Time": "time", "SiteID": "", "Name": "name", "Host": "host",
		"Path": "path", "Query": "query", "Referrer": "referrer", "Source": "source", "UTMSource": "utm_source",
		"UTMMedium": "utm_medium", "UTMCamp": "utm_campaign", "UTMTerm": "utm_term", "UTMContent": "utm_content",
		"Country": "country", "Browser": "browser", "BrowserV": "browser_version", "OS": "os", "OSV": "os_version",
		"Device": "device", "Unit": "unit", "Pseudonym": "pseudonym", "KeyVersion": "key_version",
		"Interactive": "interactive", "ScrollDepth": "scroll_depth", "EngagedMS": "engaged_ms", "Props": "props.*",
	}
	et := reflect.TypeFor[event.Event]()
	for i := 0; i < et.NumField(); i++ {
		name, ok := goToCatalog[et.Field(i).Name]
		if !ok {
			t.Errorf("event.Event.%s has no catalog entry", et.Field(i).Name)
			continue
		}
		if name != "" {
			fieldOf(t, blog, name)
		}
	}

	checks := []struct {
		p     Product
		name  string
		tr    Transform
		class Classification
		tags  []string
	}{
		{blog, "pseudonym", Pseudonymized, Sensitive, []string{"PII.Sensitive", "Veil.Pseudonymized"}},
		{blog, "country", Generalized, QuasiIdentifier, []string{"PII.NonSensitive", "Veil.QuasiIdentifier", "Veil.Generalized"}},
		{blog, "time", Kept, QuasiIdentifier, []string{"PII.NonSensitive", "Veil.QuasiIdentifier"}},
		{blog, "key_version", Kept, Public, []string{"PII.None"}},
		{blog, "path", Redacted, QuasiIdentifier, []string{"PII.NonSensitive", "Veil.QuasiIdentifier", "Veil.Redacted"}},
		{blog, "ip_address", Dropped, DirectIdentifier, []string{"PII.Sensitive", "Veil.DirectIdentifier", "Veil.Dropped"}},
		{blog, "user_agent", Dropped, QuasiIdentifier, []string{"PII.NonSensitive", "Veil.QuasiIdentifier", "Veil.Dropped"}},
		{blog, "user_id", Dropped, DirectIdentifier, []string{"PII.Sensitive", "Veil.DirectIdentifier", "Veil.Dropped"}},
		{blog, "utm_term", Kept, QuasiIdentifier, []string{"PII.NonSensitive", "Veil.QuasiIdentifier"}},
		// shop's allow-list keeps utm_source and utm_campaign only.
		{shop, "utm_source", Kept, Public, []string{"PII.None"}},
		{shop, "utm_campaign", Kept, Public, []string{"PII.None"}},
		{shop, "utm_term", Dropped, QuasiIdentifier, []string{"PII.NonSensitive", "Veil.QuasiIdentifier", "Veil.Dropped"}},
		{shop, "utm_medium", Dropped, Public, []string{"PII.None", "Veil.Dropped"}},
	}
	for _, c := range checks {
		f := fieldOf(t, c.p, c.name)
		if f.Transform != c.tr || f.Classification != c.class || !slices.Equal(f.Tags, c.tags) {
			t.Errorf("%s %s = %s %s %v, want %s %s %v", c.p.Name, c.name, f.Transform, f.Classification, f.Tags, c.tr, c.class, c.tags)
		}
	}
	if q := fieldOf(t, shop, "query"); !strings.Contains(q.Description, "utm_source, utm_campaign, ref") {
		t.Errorf("shop query description = %q", q.Description)
	}
	if q := fieldOf(t, blog, "query"); !strings.Contains(q.Description, "(utm_*)") {
		t.Errorf("blog query description = %q", q.Description)
	}
}

// TestNoCounts: analysts and viewers read the catalog, so it must not leak
// the PII report's exact event counts.
func TestNoCounts(t *testing.T) {
	c, err := Build(context.Background(), testSites(), testPII(), Locations{})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(c)
	for _, s := range []string{"987654", "987000", "987,654", `"seen"`, `"hits"`, "99%"} {
		if bytes.Contains(js, []byte(s)) {
			t.Errorf("catalog JSON contains %s", s)
		}
	}
}

func TestGolden(t *testing.T) {
	sites := testSites()
	c, err := Build(context.Background(), sites, testPII(), Locations{EventLog: "nats://127.0.0.1:4222", Store: "sqlite:///var/lib/veil/veil.db"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	const path = "testdata/catalog.golden.json"
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("catalog JSON differs from %s (go test -run TestGolden -update to accept):\n%s", path, got)
	}
}

func TestHTTP(t *testing.T) {
	authed := func(h func(store.Token, http.ResponseWriter, *http.Request), roles ...store.Role) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok := store.Token{Role: store.Role(r.Header.Get("X-Role")), Sites: strings.Fields(r.Header.Get("X-Sites"))}
			if !auth.Allows(tok, roles...) {
				httpx.WriteError(w, httpx.Errorf(http.StatusForbidden, "forbidden", "", "no"))
				return
			}
			h(tok, w, r)
		})
	}
	mux := http.NewServeMux()
	Register(mux, authed, Config{
		Sites: func(context.Context) ([]store.Site, error) { return testSites(), nil },
		PII:   testPII(),
	})
	get := func(path string, role store.Role, sites string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", path, nil)
		r.Header.Set("X-Role", string(role))
		r.Header.Set("X-Sites", sites)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w
	}
	for _, role := range []store.Role{store.RoleAdmin, store.RoleAnalyst, store.RoleViewer, store.RolePrivacyOfficer} {
		if w := get("/api/v1/catalog", role, ""); w.Code != 200 {
			t.Errorf("%s: catalog %d %s", role, w.Code, w.Body)
		}
		if w := get("/api/v1/catalog/shop.example.com", role, ""); w.Code != 200 {
			t.Errorf("%s: product %d %s", role, w.Code, w.Body)
		}
	}
	if w := get("/api/v1/catalog", store.RoleIngest, ""); w.Code != 403 {
		t.Errorf("ingest: catalog %d", w.Code)
	}

	// A token scoped to a1 sees only a1's product.
	w := get("/api/v1/catalog", store.RoleViewer, "a1")
	var c Catalog
	if err := json.Unmarshal(w.Body.Bytes(), &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Domains) != 1 || len(c.Domains[0].Products) != 1 || c.Domains[0].Products[0].ID != "a1" {
		t.Errorf("scoped catalog = %s", w.Body)
	}
	if w := get("/api/v1/catalog/app.example.com", store.RoleViewer, "a1"); w.Code != 404 {
		t.Errorf("scoped token reading another site's product: %d %s", w.Code, w.Body)
	}
	if w := get("/api/v1/catalog/nosuch.example.com", store.RoleViewer, ""); w.Code != 404 || !strings.Contains(w.Body.String(), `"field":"domain"`) {
		t.Errorf("unknown product: %d %s", w.Code, w.Body)
	}
	// Domains are normalized as everywhere else.
	w = get("/api/v1/catalog/WWW.Shop.Example.com", store.RoleViewer, "a1")
	var p Product
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || w.Code != 200 || p.ID != "a1" {
		t.Errorf("normalized domain: %d %s", w.Code, w.Body)
	}
	if w := get("/api/v1/catalog/a%20b", store.RoleViewer, ""); w.Code != 400 {
		t.Errorf("invalid domain: %d %s", w.Code, w.Body)
	}
}
