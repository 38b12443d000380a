package query

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/veil-analytics/veil/internal/audit"
	"github.com/veil-analytics/veil/internal/httpx"
	"github.com/veil-analytics/veil/internal/policy"
	"github.com/veil-analytics/veil/internal/statsquery"
	"github.com/veil-analytics/veil/internal/store"
)

// Decider is the query policy (package policy).
type Decider interface {
	Decide(ctx context.Context, in policy.Input) (policy.Decision, error)
}

// roleKey is the ledger key of a role's ε spent on a site's data day: the
// policy's per-role daily limit is enforced by the same atomic charge as
// the privacy budget. Its amounts are ε (summed, a safe upper bound under
// basic composition), unlike the ρ of budget keys.
func roleKey(role store.Role, day time.Time) string {
	return "policy:role:" + string(role) + ":" + day.UTC().Format(time.DateOnly)
}

// decide asks the policy about q; a denial is a 403 naming the rule, and
// is audited.
func (e *Engine) decide(ctx context.Context, site store.Site, tok store.Token, q statsquery.Query, tier string) (*policy.Decision, error) {
	if e.Policy == nil {
		return nil, nil
	}
	in := policy.Input{Role: string(tok.Role), TokenID: tok.ID, Purpose: q.Purpose,
		Site:  policy.Site{ID: site.ID, Domain: site.Domain, OwnerDomain: site.OwnerDomain, Purposes: site.SitePurposes()},
		Query: policy.Query{Tier: tier, Dimensions: q.Dimensions, Days: len(dayList(q.From, q.To)), Filters: []policy.Filter{}}}
	for _, m := range q.Metrics {
		in.Query.Metrics = append(in.Query.Metrics, string(m))
	}
	for _, f := range q.Filters {
		in.Query.Filters = append(in.Query.Filters, policy.Filter{Op: f.Op, Dimension: f.Dim})
	}
	if in.Query.Dimensions == nil {
		in.Query.Dimensions = []string{}
	}
	if tier == policy.TierAdHoc {
		in.Query.Epsilon = q.Epsilon
		if in.Query.Epsilon == 0 {
			in.Query.Epsilon = DefaultEpsilon
		}
		spent, err := e.Ledger.Spent(ctx, site.ID, "policy:role:"+string(tok.Role)+":")
		if err != nil {
			return nil, err
		}
		for _, d := range dayList(q.From, q.To) {
			in.Spent.RoleDayEpsilon = math.Max(in.Spent.RoleDayEpsilon, spent[roleKey(tok.Role, d)])
		}
	}
	d, err := e.Policy.Decide(ctx, in)
	if d.Allow && err == nil {
		return &d, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err() // the client went away: nothing to deny or audit
	}
	rules, msgs := []string{}, []string{}
	for _, dn := range d.Deny {
		rules = append(rules, dn.Rule)
		msgs = append(msgs, dn.Message)
	}
	if len(rules) == 0 {
		rules, msgs = []string{"policy_error"}, []string{"the query policy could not be evaluated"}
	}
	if e.Audit != nil {
		if aerr := e.Audit.Record(ctx, audit.Entry{Time: e.Now().UTC(), Actor: tok.ID, Action: "policy.deny", Target: site.ID,
			Detail: map[string]string{"rules": strings.Join(rules, ","), "tier": tier, "purpose": q.Purpose, "role": string(tok.Role)}}); aerr != nil {
			return nil, aerr
		}
	}
	if err != nil {
		return nil, fmt.Errorf("query policy: %w", err)
	}
	he := httpx.Errorf(http.StatusForbidden, "policy_denied", "", "denied by the query policy (%s): %s", strings.Join(rules, ", "), strings.Join(msgs, "; "))
	return nil, he
}

func policyMeta(d *policy.Decision, purpose string) *PolicyMeta {
	if d == nil {
		return nil
	}
	return &PolicyMeta{MinCohort: d.MinCohort, MaxEpsilonPerQuery: d.MaxEpsilonPerQuery,
		MaxEpsilonPerRoleDay: d.MaxEpsilonPerRoleDay, Purpose: purpose, Reasons: d.Reasons}
}
