package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// adHoc is an analyst's ad hoc query every default rule allows.
func adHoc() Input {
	return Input{
		Role:    "analyst",
		TokenID: "tok1",
		Site: Site{
			ID: "s1", Domain: "shop.example", OwnerDomain: "marketing",
			Purposes: []string{"analytics", "personalization"},
			Reserved: map[string][]string{"event:props:plan": {"personalization"}},
		},
		Purpose: "analytics",
		Query: Query{
			Tier: TierAdHoc, Metrics: []string{"visitors"}, Dimensions: []string{"visit:country"},
			Filters: []Filter{{Op: "is", Dimension: "event:page"}}, Epsilon: 0.5, Days: 7,
		},
	}
}

func newEngine(t testing.TB, dir string) *Engine {
	t.Helper()
	e, err := New(dir, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func decide(t testing.TB, e *Engine, in Input) Decision {
	t.Helper()
	d, err := e.Decide(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func rules(d Decision) []string {
	var out []string
	for _, x := range d.Deny {
		out = append(out, x.Rule)
	}
	return out
}

func writeFile(t *testing.T, dir, name, src string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultDecisions(t *testing.T) {
	e := newEngine(t, "")
	cases := []struct {
		name  string
		edit  func(*Input)
		rules []string // nil: allowed
	}{
		{"analyst ad hoc with purpose", func(*Input) {}, nil},
		{"viewer released", func(in *Input) {
			in.Role, in.Purpose, in.Query.Tier, in.Query.Epsilon = "viewer", "", TierReleased, 0
		}, nil},
		{"viewer ad hoc", func(in *Input) { in.Role = "viewer" }, []string{"viewer_released_only"}},
		{"analyst ad hoc without purpose", func(in *Input) { in.Purpose = "" }, []string{"purpose_required"}},
		{"purpose not in site purposes", func(in *Input) { in.Purpose = "model_training" }, []string{"purpose_not_allowed"}},
		{"site without purposes allows analytics", func(in *Input) { in.Site.Purposes = nil }, nil},
		{"analytics query on a personalization prop", func(in *Input) {
			in.Query.Dimensions = []string{"event:props:plan"}
		}, []string{"purpose_reserved_dimension"}},
		{"personalization query on its prop", func(in *Input) {
			in.Purpose, in.Query.Dimensions = "personalization", []string{"event:props:plan"}
		}, nil},
		{"ingest", func(in *Input) { in.Role, in.Query.Tier = "ingest", TierReleased }, []string{"role_no_analytics"}},
		{"privacy officer", func(in *Input) { in.Role = "privacy-officer" }, []string{"role_no_analytics"}},
		{"unknown role", func(in *Input) { in.Role = "" }, []string{"unknown_role"}},
		{"ε above per-query max", func(in *Input) { in.Query.Epsilon = 1.01 }, []string{"epsilon_exceeds_query_max"}},
		{"ε at per-query max", func(in *Input) { in.Query.Epsilon = 1 }, nil},
		{"ε above role-day max", func(in *Input) { in.Spent.RoleDayEpsilon = 2.75 }, []string{"epsilon_exceeds_role_day_max"}},
		{"no ε", func(in *Input) { in.Query.Epsilon = 0 }, []string{"epsilon_invalid"}},
		{"bad tier", func(in *Input) { in.Query.Tier = "raw" }, []string{"invalid_tier"}},
		{"several denials in rule order", func(in *Input) {
			in.Role, in.Purpose = "viewer", ""
		}, []string{"purpose_required", "viewer_released_only"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := adHoc()
			c.edit(&in)
			d := decide(t, e, in)
			if got := rules(d); !slices.Equal(got, c.rules) || d.Allow != (c.rules == nil) {
				t.Fatalf("allow=%v rules=%v, want rules %v (%+v)", d.Allow, got, c.rules, d.Deny)
			}
			if d.MinCohort != 10 || d.MaxEpsilonPerQuery != 1 || d.MaxEpsilonPerRoleDay != 3 {
				t.Errorf("limits k=%d ε/query=%v ε/role-day=%v, want 10, 1, 3", d.MinCohort, d.MaxEpsilonPerQuery, d.MaxEpsilonPerRoleDay)
			}
			for _, x := range d.Deny {
				if x.Message == "" {
					t.Errorf("denial %s has no message", x.Rule)
				}
			}
		})
	}
}

func TestDecisionExplainsItself(t *testing.T) {
	e := newEngine(t, "")
	d := decide(t, e, adHoc())
	if !slices.Equal(d.HiddenDimensions, []string{"event:props:plan"}) {
		t.Errorf("hidden dimensions %v, want the personalization prop", d.HiddenDimensions)
	}
	if len(d.Reasons) != 1 || !strings.Contains(d.Reasons[0], "ε 0.5 charged") {
		t.Errorf("reasons %q, want the ε charge", d.Reasons)
	}
}

func TestSiteOverrideTightensOneSite(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "shop.rego", "package veil.site[\"shop.example\"]\n\nmin_cohort := 50\n")
	e := newEngine(t, dir)

	shop := decide(t, e, adHoc())
	if !shop.Allow || shop.MinCohort != 50 {
		t.Fatalf("shop.example: allow=%v k=%d, want allowed with k=50", shop.Allow, shop.MinCohort)
	}
	if !slices.Contains(shop.Reasons, `site policy "shop.example" sets min_cohort 50`) {
		t.Errorf("reasons %q do not name the override", shop.Reasons)
	}
	other := adHoc()
	other.Site.Domain = "blog.example"
	if d := decide(t, e, other); d.MinCohort != 10 {
		t.Errorf("blog.example: k=%d, want the default 10", d.MinCohort)
	}
	if st := e.Status(); !slices.Equal(st.Files, []string{"shop.rego"}) || st.LastError != "" || st.Loaded.IsZero() {
		t.Errorf("status %+v", st)
	}
}

func TestOverrideCannotLoosenSilently(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "marketing.rego", `package veil.domain.marketing

min_cohort := 2
max_epsilon_per_query := 10
`)
	e := newEngine(t, dir)
	d := decide(t, e, adHoc())
	if d.MinCohort != 10 || d.MaxEpsilonPerQuery != 1 {
		t.Fatalf("k=%d ε/query=%v: a plain setting loosened the defaults", d.MinCohort, d.MaxEpsilonPerQuery)
	}

	writeFile(t, dir, "marketing.rego", `package veil.domain.marketing

loosen.max_epsilon_per_query := 2
`)
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	in := adHoc()
	in.Query.Epsilon = 1.5
	d = decide(t, e, in)
	if !d.Allow || d.MaxEpsilonPerQuery != 2 || !slices.Contains(d.Reasons, `domain policy "marketing" loosens max_epsilon_per_query to 2`) {
		t.Fatalf("explicit loosening: %+v", d)
	}
}

func TestPolicyFileCanAddDenials(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "shop.rego", `package veil.site["shop.example"]

deny contains {"rule": "long_ad_hoc_range", "message": "ad hoc queries span at most 31 days"} if {
	input.query.tier == "ad_hoc"
	input.query.days > 31
}
`)
	reg := prometheus.NewRegistry()
	e, err := New(dir, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	in := adHoc()
	in.Query.Days = 90
	if d := decide(t, e, in); !slices.Equal(rules(d), []string{"long_ad_hoc_range"}) {
		t.Fatalf("rules %v, want the site's denial", rules(d))
	}
	in.Query.Days = 30
	if d := decide(t, e, in); !d.Allow {
		t.Fatalf("30 days denied: %+v", d.Deny)
	}
	// A rule named in a policy file is counted as "custom", never by name.
	if got := metricValue(t, e.decisions.WithLabelValues("deny", "custom")); got != 1 {
		t.Errorf("deny/custom = %v, want 1", got)
	}
	if got := metricValue(t, e.decisions.WithLabelValues("allow", "none")); got != 1 {
		t.Errorf("allow/none = %v, want 1", got)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(families, func(f *dto.MetricFamily) bool { return f.GetName() == "veil_policy_decisions_total" }) {
		t.Error("veil_policy_decisions_total is not registered")
	}
}

func TestBrokenFileKeepsPreviousPolicy(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "shop.rego", "package veil.site[\"shop.example\"]\n\nmin_cohort := 50\n")
	e := newEngine(t, dir)
	before := e.Status()

	writeFile(t, dir, "broken.rego", "package veil.site[\"blog.example\"]\n\nmin_cohort := \n")
	err := e.Reload()
	if err == nil {
		t.Fatal("Reload accepted a file that does not parse")
	}
	st := e.Status()
	if !strings.Contains(st.LastError, "broken.rego") || !slices.Equal(st.Files, []string{"shop.rego"}) || !st.Loaded.Equal(before.Loaded) {
		t.Errorf("status after failed load: %+v", st)
	}
	if got := metricValue(t, e.loadErrors); got != 1 {
		t.Errorf("load errors = %v, want 1", got)
	}
	if got := metricValue(t, e.loadOK); got != 0 {
		t.Errorf("load ok = %v, want 0", got)
	}
	if d := decide(t, e, adHoc()); !d.Allow || d.MinCohort != 50 {
		t.Fatalf("previous policy not in force: allow=%v k=%d", d.Allow, d.MinCohort)
	}

	if err := os.Remove(filepath.Join(dir, "broken.rego")); err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if st := e.Status(); st.LastError != "" || metricValue(t, e.loadOK) != 1 {
		t.Errorf("after the fix: status %+v, load ok %v", st, metricValue(t, e.loadOK))
	}
}

func TestUnsafePolicySetsAreRejected(t *testing.T) {
	cases := []struct {
		name, file, src string
		engineLoads     bool // the engine skips test files; RunTests rejects every case
	}{
		{"syntax error", "p.rego", "package veil.site[\"shop.example\"]\n\nmin_cohort := \n", false},
		// A file in the built-in package could replace its rules.
		{"built-in package", "p.rego", "package veil.query\n\ndeny contains {\"rule\": \"x\", \"message\": \"y\"} if false\n", false},
		// Decisions must not wait on, or leak to, another host.
		{"network built-in", "p.rego", "package veil.site[\"shop.example\"]\n\nmin_cohort := http.send({\"method\": \"get\", \"url\": \"http://127.0.0.1/\"}).body.k\n", false},
		// The built-in policy reads every rule in veil.site, so a test there is recursive.
		{"test in override package", "p_test.rego", "package veil.site[\"shop.example\"]\n\ntest_k if data.veil.query.decision.min_cohort == 10\n", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, c.file, c.src)
			if _, err := New(dir, nil, nil); (err == nil) != c.engineLoads {
				t.Errorf("New: err=%v, want loaded=%v", err, c.engineLoads)
			}
			if _, err := RunTests(context.Background(), dir); err == nil {
				t.Error("RunTests accepted the set")
			}
		})
	}
}

func TestEvaluationErrorFailsClosed(t *testing.T) {
	dir := t.TempDir()
	// Two values for one complete rule: an evaluation-time conflict.
	writeFile(t, dir, "shop.rego", `package veil.site["shop.example"]

min_cohort := 20 if input.role == "analyst"

min_cohort := 30 if input.purpose == "analytics"
`)
	e := newEngine(t, dir)
	d, err := e.Decide(context.Background(), adHoc())
	if err == nil || d.Allow || !slices.Equal(rules(d), []string{"policy_error"}) {
		t.Fatalf("decision %+v, err %v; want a policy_error deny and an error", d, err)
	}
	if got := metricValue(t, e.decisions.WithLabelValues("deny", "policy_error")); got != 1 {
		t.Errorf("deny/policy_error = %v, want 1", got)
	}
	other := adHoc()
	other.Site.Domain = "blog.example"
	if d := decide(t, e, other); !d.Allow {
		t.Errorf("a broken site policy denied another site: %+v", d.Deny)
	}
}

func TestWatchReloadsChangedFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "shop.rego", "package veil.site[\"shop.example\"]\n\nmin_cohort := 50\n")
	e := newEngine(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Watch(ctx, 10*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()

	writeFile(t, dir, "shop.rego", "package veil.site[\"shop.example\"]\n\nmin_cohort := 125\n")
	waitFor(t, func() bool { return decide(t, e, adHoc()).MinCohort == 125 })

	writeFile(t, dir, "shop.rego", "package veil.site[\"shop.example\"]\n\nmin_cohort := ]\n")
	waitFor(t, func() bool { return e.Status().LastError != "" })
	if k := decide(t, e, adHoc()).MinCohort; k != 125 {
		t.Errorf("k=%d after a broken edit, want the previous 125", k)
	}

	if err := os.Remove(filepath.Join(dir, "shop.rego")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return decide(t, e, adHoc()).MinCohort == 10 })
	if st := e.Status(); len(st.Files) != 0 || st.LastError != "" {
		t.Errorf("status after removing the file: %+v", st)
	}
}

func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		t.Fatal(err)
	}
	if pb.Counter != nil {
		return pb.Counter.GetValue()
	}
	return pb.Gauge.GetValue()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunTests(t *testing.T) {
	ctx := context.Background()
	res, err := RunTests(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(res) < 20 {
		t.Fatalf("%d built-in tests, want the whole suite", len(res))
	}
	for _, r := range res {
		if !r.Pass {
			t.Errorf("%s.%s: %s", r.Package, r.Name, r.Message)
		}
	}

	dir := t.TempDir()
	writeFile(t, dir, "shop.rego", "package veil.site[\"shop.example\"]\n\nmin_cohort := 50\n")
	writeFile(t, dir, "shop_test.rego", `package veil.site_test

shop := {"role": "analyst", "site": {"domain": "shop.example"}, "query": {"tier": "released"}}

test_shop_k if data.veil.query.decision.min_cohort == 50 with input as shop

test_shop_k_wrong if data.veil.query.decision.min_cohort == 10 with input as shop
`)
	res, err = RunTests(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]TestResult{}
	for _, r := range res {
		byName[r.Package+"."+r.Name] = r
	}
	if r := byName["data.veil.site_test.test_shop_k"]; !r.Pass {
		t.Errorf("test_shop_k: %+v", r)
	}
	if r := byName["data.veil.site_test.test_shop_k_wrong"]; r.Pass || !strings.Contains(r.Message, "shop_test.rego:7") {
		t.Errorf("test_shop_k_wrong: %+v, want a failure at its line", r)
	}
}

// TestInputValueMatchesJSON keeps the hand-built Rego input in step with the
// JSON tags that POLICY.md and the Rego tests use.
func TestInputValueMatchesJSON(t *testing.T) {
	in := adHoc()
	in.Spent.RoleDayEpsilon = 0.25
	want, err := ast.InterfaceToValue(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := in.value(); got.Compare(want) != 0 {
		t.Fatalf("input value\n%v\nwant\n%v", got, want)
	}
}

// TestRuleNamesMatchPolicy keeps the metric label allow-list in step with the
// rules the built-in policy can emit.
func TestRuleNamesMatchPolicy(t *testing.T) {
	src, err := defaults.ReadFile("defaults/query.rego")
	if err != nil {
		t.Fatal(err)
	}
	emitted := map[string]bool{rulePolicyError: true}
	for _, m := range regexp.MustCompile(`deny_rule\("([a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		emitted[m[1]] = true
	}
	for r := range emitted {
		if !ruleNames[r] {
			t.Errorf("rule %s is emitted but not in ruleNames", r)
		}
	}
	for r := range ruleNames {
		if !emitted[r] {
			t.Errorf("ruleNames has %s, which the policy never emits", r)
		}
	}
}

// BenchmarkDecide times a decision for a site with a policy file, next to a
// one-rule policy evaluated the same way: the machines here are shared and
// noisy, so the ratio says more than the absolute figure.
func BenchmarkDecide(b *testing.B) {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "shop.rego"), []byte("package veil.site[\"shop.example\"]\n\nmin_cohort := 50\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	e := newEngine(b, dir)
	ctx := context.Background()
	in := adHoc()
	b.Run("policy", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if d, err := e.Decide(ctx, in); err != nil || !d.Allow || d.MinCohort != 50 {
				b.Fatal(d, err)
			}
		}
	})
	b.Run("baseline_one_rule", func(b *testing.B) {
		q, err := rego.New(
			rego.Query("data.veil.query.allow"),
			rego.Module("one.rego", "package veil.query\n\nallow if input.role in {\"admin\", \"analyst\"}\n"),
		).PrepareForEval(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if rs, err := q.Eval(ctx, rego.EvalParsedInput(in.value())); err != nil || !rs.Allowed() {
				b.Fatal(rs, err)
			}
		}
	})
}

// TestPolicyDocExamples loads the example files from POLICY.md, so the
// documentation cannot drift from what the engine accepts.
func TestPolicyDocExamples(t *testing.T) {
	doc, err := os.ReadFile("POLICY.md")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, m := range regexp.MustCompile("(?s)```rego\n# <data>/policies/([a-z_]+\\.rego)\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		writeFile(t, dir, m[1], m[2])
	}
	e := newEngine(t, dir)
	if st := e.Status(); !slices.Equal(st.Files, []string{"marketing.rego", "shop.rego"}) {
		t.Fatalf("examples found: %v", st.Files)
	}
	in := adHoc()
	in.Query.Epsilon, in.Query.Days = 1.5, 90
	d := decide(t, e, in)
	if d.MinCohort != 50 || d.MaxEpsilonPerQuery != 2 || !slices.Equal(rules(d), []string{"long_ad_hoc_range"}) {
		t.Errorf("examples decide %+v", d)
	}
	res, err := RunTests(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !r.Pass {
			t.Errorf("%s.%s: %s", r.Package, r.Name, r.Message)
		}
	}
	if !slices.ContainsFunc(res, func(r TestResult) bool { return r.Name == "test_shop_k" }) {
		t.Error("the documented test did not run")
	}
}

// A caller that gives up is denied (fail closed) with its context's error,
// not reported as a broken policy.
func TestCanceledDecisionIsNotAPolicyError(t *testing.T) {
	e := newEngine(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d, err := e.Decide(ctx, Input{Role: "analyst", Site: Site{ID: "s", Domain: "x.invalid"}, Query: Query{Tier: TierReleased}})
	if d.Allow || !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled decision: %+v, %v", d, err)
	}
}
