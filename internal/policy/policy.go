// Package policy decides, as code, who may ask which question of which site:
// an embedded OPA (Rego) policy, tightened per site or per owner domain by
// policy files in a directory, evaluated for every Stats API query.
//
// The input of a decision (the Rego document `input`) is an [Input]:
//
//	{
//	  "role": "analyst",                 // token role: admin, analyst, viewer, ingest, privacy-officer
//	  "token_id": "3f2a…",               // for audit; no rule reads it by default
//	  "site": {
//	    "id": "k3j9",
//	    "domain": "shop.example",        // selects data.veil.site["shop.example"]
//	    "owner_domain": "marketing",     // data-mesh domain; selects data.veil.domain["marketing"]
//	    "purposes": ["analytics"],       // purposes the site allows; empty means ["analytics"]
//	    "reserved": {"event:props:plan": ["personalization"]} // pattern -> purposes that may use it
//	  },
//	  "purpose": "analytics",            // declared purpose; "" when none
//	  "query": {
//	    "tier": "ad_hoc",                // "released" (free post-processing) or "ad_hoc" (charged ε)
//	    "metrics": ["visitors"],
//	    "dimensions": ["visit:country"],
//	    "filters": [{"op": "is", "dimension": "event:page"}], // no filter values: they may be personal
//	    "epsilon": 0.5,                  // ε the query will be charged (ad hoc)
//	    "days": 30                       // days the date range covers
//	  },
//	  "spent": {"role_day_epsilon": 1.2} // ε this role already spent on this site today
//	}
//
// The decision (data.veil.query.decision) is a [Decision]. Its limits are
// obligations on the caller: hide rows whose noisy visitors are below
// MinCohort, and charge the ledger no more than the ε limits allow. POLICY.md
// describes the rules, the override files and how to test them.
package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/prometheus/client_golang/prometheus"
)

// Query tiers.
const (
	TierReleased = "released"
	TierAdHoc    = "ad_hoc"
)

// Input is what a decision is made on; the JSON names are the Rego names.
type Input struct {
	Role    string `json:"role"`
	TokenID string `json:"token_id"`
	Site    Site   `json:"site"`
	Purpose string `json:"purpose"`
	Query   Query  `json:"query"`
	Spent   Spent  `json:"spent"`
}

// Site is the data product asked about, with its purpose configuration.
type Site struct {
	ID          string   `json:"id"`
	Domain      string   `json:"domain"`
	OwnerDomain string   `json:"owner_domain"`
	Purposes    []string `json:"purposes"`
	// Reserved maps dimension patterns (exact, or a prefix ending in '*') to
	// the only purposes allowed to use them, e.g. a prop collected for
	// personalization that analytics queries must not touch.
	Reserved map[string][]string `json:"reserved"`
}

// Query is the shape of the question, without filter values.
type Query struct {
	Tier       string   `json:"tier"`
	Metrics    []string `json:"metrics"`
	Dimensions []string `json:"dimensions"`
	Filters    []Filter `json:"filters"`
	Epsilon    float64  `json:"epsilon"`
	Days       int      `json:"days"`
}

// Filter names the dimension a filter reads. Its values stay out of the
// policy input, which may be logged with a decision.
type Filter struct {
	Op        string `json:"op"`
	Dimension string `json:"dimension"`
}

// Spent is what the ledger has already charged. For visitor-day sites a
// query over several days charges each of them, so RoleDayEpsilon is the
// largest spend of this role on this site on any day the query covers.
type Spent struct {
	RoleDayEpsilon float64 `json:"role_day_epsilon"`
}

// Decision is the policy's answer.
type Decision struct {
	Allow bool     `json:"allow"`
	Deny  []Denial `json:"deny"`
	// MinCohort is k: rows whose noisy visitors are below it are hidden.
	MinCohort            int     `json:"min_cohort"`
	MaxEpsilonPerQuery   float64 `json:"max_epsilon_per_query"`
	MaxEpsilonPerRoleDay float64 `json:"max_epsilon_per_role_day"`
	// Reasons explain the limits in force and any waiver, for the answer
	// and its audit entry.
	Reasons []string `json:"reasons"`
	// HiddenDimensions are patterns this role and purpose may not use on
	// this site, so a UI can leave them out.
	HiddenDimensions []string `json:"hidden_dimensions"`
}

// Denial is one rule that denied the query.
type Denial struct {
	Rule    string `json:"rule"`
	Message string `json:"message"`
}

// ruleNames are the denial rules the built-in policy can emit, plus
// policy_error from Decide. Metrics label only these: a rule named in a
// site's policy file is counted as "custom", so no site detail becomes a
// label.
var ruleNames = map[string]bool{
	"role_no_analytics":            true,
	"unknown_role":                 true,
	"invalid_tier":                 true,
	"viewer_released_only":         true,
	"purpose_required":             true,
	"purpose_not_allowed":          true,
	"purpose_reserved_dimension":   true,
	"dimension_hidden":             true,
	"epsilon_invalid":              true,
	"epsilon_exceeds_query_max":    true,
	"epsilon_exceeds_role_day_max": true,
	"override_invalid":             true,
	"site_policy":                  true,
	rulePolicyError:                true,
}

const rulePolicyError = "policy_error"

// Status describes the policy set in force, for the admin page.
type Status struct {
	Loaded    time.Time // when the set in force was compiled
	Files     []string  // policy files from the directory in force (tests excluded)
	LastError string    // why the latest load failed; empty if it succeeded
}

// Engine evaluates decisions with the policy set in force and swaps in a new
// set only when it compiles.
type Engine struct {
	dir string
	log *slog.Logger

	current atomic.Pointer[policySet]

	mu      sync.Mutex // serializes loads; guards lastErr and seen
	lastErr string
	seen    string // directory snapshot at the latest load attempt

	decisions  *prometheus.CounterVec
	loadErrors prometheus.Counter
	loadOK     prometheus.Gauge
}

type policySet struct {
	query  rego.PreparedEvalQuery
	files  []string
	loaded time.Time
}

// New compiles the built-in policy with the *.rego files in dir (none if dir
// is "" or missing). A set that does not compile is an error here: there is
// no earlier set to fall back on, and the defaults alone could be looser than
// the site policies the operator wrote. reg may be nil.
func New(dir string, logger *slog.Logger, reg prometheus.Registerer) (*Engine, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		dir: dir,
		log: logger,
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_policy_decisions_total",
			Help: "Query policy decisions by result and (first) denying rule.",
		}, []string{"result", "rule"}),
		loadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "veil_policy_load_errors_total",
			Help: "Policy sets that failed to load; the previous set stays in force.",
		}),
		loadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "veil_policy_load_ok",
			Help: "1 if the latest policy load succeeded, 0 if it failed.",
		}),
	}
	if err := e.load(context.Background()); err != nil {
		return nil, err
	}
	e.decisions.WithLabelValues("allow", "none")
	for r := range ruleNames {
		e.decisions.WithLabelValues("deny", r)
	}
	e.decisions.WithLabelValues("deny", "custom")
	if reg != nil {
		reg.MustRegister(e.decisions, e.loadErrors, e.loadOK)
	}
	return e, nil
}

// Decide evaluates the policy for in. It fails closed: when evaluation fails
// it returns a deny with rule "policy_error" together with the error, so a
// caller that only looks at Allow still denies.
func (e *Engine) Decide(ctx context.Context, in Input) (Decision, error) {
	rs, err := e.current.Load().query.Eval(ctx, rego.EvalParsedInput(in.value()))
	var d Decision
	if err == nil {
		d, err = parseDecision(rs)
	}
	if err != nil {
		if ctx.Err() != nil {
			// The caller gave up (a closed request): deny, but it is no
			// policy failure.
			return Decision{Deny: []Denial{{Rule: rulePolicyError, Message: "the request was canceled"}}}, ctx.Err()
		}
		e.log.Error("policy evaluation failed; denying", "err", err)
		d = Decision{Deny: []Denial{{Rule: rulePolicyError, Message: "the query policy could not be evaluated"}}}
		err = fmt.Errorf("policy: %w", err)
	}
	result, rule := "allow", "none"
	if !d.Allow {
		result, rule = "deny", "custom"
		if ruleNames[d.Deny[0].Rule] {
			rule = d.Deny[0].Rule
		}
	}
	e.decisions.WithLabelValues(result, rule).Inc()
	return d, err
}

// Reload compiles the directory again. On failure the previous set stays in
// force and the error is kept for Status.
func (e *Engine) Reload() error {
	return e.load(context.Background())
}

// Watch polls the directory every interval and reloads when a policy file's
// name, size or modification time changes. It returns when ctx ends. Polling
// (not inotify) also sees files swapped behind symlinks, as in Kubernetes
// ConfigMap volumes.
func (e *Engine) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.mu.Lock()
		seen := e.seen
		e.mu.Unlock()
		if snapshot(e.dir) != seen {
			_ = e.load(ctx) // load logs and records its error
		}
	}
}

// Status reports the set in force and the latest load error.
func (e *Engine) Status() Status {
	set := e.current.Load()
	e.mu.Lock()
	defer e.mu.Unlock()
	return Status{Loaded: set.loaded, Files: append([]string(nil), set.files...), LastError: e.lastErr}
}

func (e *Engine) load(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	// Snapshot before reading, so a write that lands during the load is
	// seen as a change on the next poll.
	e.seen = snapshot(e.dir)
	set, err := compile(ctx, e.dir)
	if err != nil {
		e.loadErrors.Inc()
		e.loadOK.Set(0)
		e.lastErr = err.Error()
		e.log.Error("policy load failed; the previous policy set stays in force", "dir", e.dir, "err", err)
		return err
	}
	e.current.Store(set)
	e.loadOK.Set(1)
	e.lastErr = ""
	e.log.Info("policy loaded", "dir", e.dir, "files", set.files)
	return nil
}

func compile(ctx context.Context, dir string) (*policySet, error) {
	modules, files, err := loadModules(dir, false)
	if err != nil {
		return nil, err
	}
	c := ast.NewCompiler().WithCapabilities(capabilities())
	if c.Compile(modules); c.Failed() {
		return nil, fmt.Errorf("policy: %w", c.Errors)
	}
	// Strict built-in errors turn a failing built-in into an evaluation
	// error (a policy_error deny) instead of an undefined expression, which
	// could silently drop a denial.
	q, err := rego.New(
		rego.Query("data.veil.query.decision"),
		rego.Compiler(c),
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return &policySet{query: q, files: files, loaded: time.Now()}, nil
}

// value builds the Rego input directly; OPA would otherwise round-trip the
// struct through JSON on every decision. TestInputValueMatchesJSON keeps it
// in step with the JSON tags.
func (in Input) value() ast.Value {
	filters := make([]*ast.Term, len(in.Query.Filters))
	for i, f := range in.Query.Filters {
		filters[i] = ast.ObjectTerm(item("op", ast.StringTerm(f.Op)), item("dimension", ast.StringTerm(f.Dimension)))
	}
	reserved := make([][2]*ast.Term, 0, len(in.Site.Reserved))
	for pattern, purposes := range in.Site.Reserved {
		reserved = append(reserved, item(pattern, stringsTerm(purposes)))
	}
	return ast.NewObject(
		item("role", ast.StringTerm(in.Role)),
		item("token_id", ast.StringTerm(in.TokenID)),
		item("site", ast.ObjectTerm(
			item("id", ast.StringTerm(in.Site.ID)),
			item("domain", ast.StringTerm(in.Site.Domain)),
			item("owner_domain", ast.StringTerm(in.Site.OwnerDomain)),
			item("purposes", stringsTerm(in.Site.Purposes)),
			item("reserved", ast.ObjectTerm(reserved...)),
		)),
		item("purpose", ast.StringTerm(in.Purpose)),
		item("query", ast.ObjectTerm(
			item("tier", ast.StringTerm(in.Query.Tier)),
			item("metrics", stringsTerm(in.Query.Metrics)),
			item("dimensions", stringsTerm(in.Query.Dimensions)),
			item("filters", ast.ArrayTerm(filters...)),
			item("epsilon", ast.FloatNumberTerm(in.Query.Epsilon)),
			item("days", ast.IntNumberTerm(in.Query.Days)),
		)),
		item("spent", ast.ObjectTerm(
			item("role_day_epsilon", ast.FloatNumberTerm(in.Spent.RoleDayEpsilon)),
		)),
	)
}

func item(key string, v *ast.Term) [2]*ast.Term { return ast.Item(ast.StringTerm(key), v) }

func stringsTerm(ss []string) *ast.Term {
	ts := make([]*ast.Term, len(ss))
	for i, s := range ss {
		ts[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(ts...)
}

// parseDecision checks the decision's shape: a policy file that breaks it
// must produce a policy_error deny, not a zero-valued allow.
func parseDecision(rs rego.ResultSet) (Decision, error) {
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return Decision{}, errors.New("the policy produced no decision")
	}
	m, ok := rs[0].Expressions[0].Value.(map[string]any)
	if !ok {
		return Decision{}, errors.New("the decision is not an object")
	}
	var d Decision
	var err error
	if d.Allow, ok = m["allow"].(bool); !ok {
		return Decision{}, errors.New("decision.allow is not a boolean")
	}
	deny, ok := m["deny"].([]any)
	if !ok {
		return Decision{}, errors.New("decision.deny is not an array")
	}
	for _, x := range deny {
		o, _ := x.(map[string]any)
		rule, ok1 := o["rule"].(string)
		msg, ok2 := o["message"].(string)
		if !ok1 || !ok2 || rule == "" {
			return Decision{}, errors.New("a decision.deny entry is not {rule, message}")
		}
		d.Deny = append(d.Deny, Denial{Rule: rule, Message: msg})
	}
	if d.Allow != (len(d.Deny) == 0) {
		return Decision{}, errors.New("decision.allow disagrees with decision.deny")
	}
	k, err := number(m, "min_cohort")
	if err != nil {
		return Decision{}, err
	}
	if d.MinCohort = int(k); float64(d.MinCohort) != k || k < 1 {
		return Decision{}, errors.New("decision.min_cohort is not a positive integer")
	}
	if d.MaxEpsilonPerQuery, err = number(m, "max_epsilon_per_query"); err != nil {
		return Decision{}, err
	}
	if d.MaxEpsilonPerRoleDay, err = number(m, "max_epsilon_per_role_day"); err != nil {
		return Decision{}, err
	}
	if d.Reasons, err = stringList(m, "reasons"); err != nil {
		return Decision{}, err
	}
	if d.HiddenDimensions, err = stringList(m, "hidden_dimensions"); err != nil {
		return Decision{}, err
	}
	return d, nil
}

func number(m map[string]any, key string) (float64, error) {
	n, ok := m[key].(json.Number)
	if !ok {
		return 0, fmt.Errorf("decision.%s is not a number", key)
	}
	return n.Float64()
}

func stringList(m map[string]any, key string) ([]string, error) {
	xs, ok := m[key].([]any)
	if !ok {
		return nil, fmt.Errorf("decision.%s is not an array", key)
	}
	out := make([]string, len(xs))
	for i, x := range xs {
		if out[i], ok = x.(string); !ok {
			return nil, fmt.Errorf("decision.%s holds a non-string", key)
		}
	}
	return out, nil
}
