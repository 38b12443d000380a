package app

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/audit"
)

// The query policy decides every query: denials are 403s naming the rule,
// recorded in the audit log, and charge nothing; allowed answers report
// the constraints applied; a broken policy file keeps the last good policy.
func TestQueryPolicyEnforcedAndAudited(t *testing.T) {
	e := startWithData(t)
	adhoc := `{"site_id":"example.com","metrics":["visitors"],"date_range":["2026-11-20","2026-11-20"],"filters":[["is","visit:browser",["Firefox"]]]%s}`
	cases := []struct {
		token, privacy, rule string
	}{
		{e.viewer, `,"privacy":{"purpose":"analytics"}`, "viewer_released_only"},
		{e.analyst, ``, "purpose_required"},
		{e.analyst, `,"privacy":{"purpose":"model_training"}`, "purpose_not_allowed"},
		{e.analyst, `,"privacy":{"purpose":"analytics","epsilon":6}`, "epsilon_exceeds_query_max"},
	}
	for _, c := range cases {
		status, _, raw := e.query(t, c.token, strings.Replace(adhoc, "%s", c.privacy, 1))
		if status != 403 || !strings.Contains(raw, c.rule) {
			t.Errorf("%s: %d %s", c.rule, status, raw)
		}
	}
	if spent, _ := e.app.Ledger.Spent(context.Background(), e.site.ID, "adhoc:"); len(spent) != 0 {
		t.Fatalf("denied queries charged: %v", spent)
	}
	denials, err := e.app.Audit.Entries(context.Background(), audit.Filter{Action: "policy.deny", Limit: 10})
	if err != nil || len(denials) != len(cases) {
		t.Fatalf("audited denials: %d, %v", len(denials), err)
	}
	// The viewer still reads released numbers; the answer reports k.
	status, res, raw := e.query(t, e.viewer, `{"site_id":"example.com","metrics":["visitors"],"date_range":["2026-11-20","2026-11-21"],"dimensions":["event:page"]}`)
	if status != 200 || res.Meta.Source != "released" || !strings.Contains(raw, `"min_cohort":10`) {
		t.Fatalf("released for viewer: %d %s", status, raw)
	}
	// The site's override raised the per-query limit from 1 to 5: ε 1.5 runs.
	status, _, raw = e.query(t, e.analyst, strings.Replace(adhoc, "%s", `,"privacy":{"purpose":"analytics","epsilon":1.5}`, 1))
	if status != 200 || !strings.Contains(raw, `"max_epsilon_per_query":5`) {
		t.Fatalf("override not applied: %d %s", status, raw)
	}
	releases, _ := e.app.Audit.Entries(context.Background(), audit.Filter{Action: "dp.release.adhoc", Limit: 10})
	if len(releases) != 1 || releases[0].Entry.Actor == "" || releases[0].Entry.Detail["epsilon"] != "1.5" {
		t.Fatalf("ad hoc release not audited: %+v", releases)
	}
	// A broken policy file keeps the previous policy in force.
	os.WriteFile(filepath.Join(PolicyDir(e.dir), "broken.rego"), []byte("package veil.site[\"example.com\"]\nthis is not rego"), 0o600)
	deadline := time.Now().Add(10 * time.Second)
	for e.app.Policy.Status().LastError == "" {
		if time.Now().After(deadline) {
			t.Fatal("broken policy not reported")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if status, _, raw := e.query(t, e.viewer, strings.Replace(adhoc, "%s", `,"privacy":{"purpose":"analytics"}`, 1)); status != 403 || !strings.Contains(raw, "viewer_released_only") {
		t.Fatalf("after a broken policy file: %d %s", status, raw)
	}
}

// Closing and releasing the test's days emitted OpenLineage events for the
// ingestion, aggregation and release runs, with the privacy facet.
func TestLineageEventsForClosedDays(t *testing.T) {
	e := startWithData(t)
	e.app.Lineage.Close(context.Background())
	b, err := os.ReadFile(filepath.Join(e.dir, "lineage.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	jobs := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var ev struct {
			EventType string
			Job       struct{ Name string }
			Outputs   []struct {
				Facets map[string]json.RawMessage
			}
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		if len(ev.Outputs) == 0 || ev.Outputs[0].Facets["veil_privacy"] == nil {
			t.Fatalf("event without the privacy facet: %s", line)
		}
		jobs[strings.SplitN(ev.Job.Name, ".", 3)[1]+"/"+ev.EventType]++
		if strings.HasPrefix(ev.Job.Name, "veil.release.") && ev.EventType == "COMPLETE" && !strings.Contains(line, `"epsilon":`) {
			t.Fatalf("release without its ε: %s", line)
		}
	}
	for _, j := range []string{"ingest/START", "ingest/COMPLETE", "aggregate/COMPLETE", "release/COMPLETE"} {
		if jobs[j] == 0 {
			t.Errorf("no %s event: %v", j, jobs)
		}
	}
}

// An admin change is audited by which settings changed, never their values:
// an owner can be a person.
func TestSiteUpdateAuditHoldsNoSettingValues(t *testing.T) {
	r := start(t, t.TempDir())
	r.addSite(t, "example.com")
	const owner = "jane.owner@example.org"
	if res := r.do(t, "PATCH", "/api/v1/sites/example.com", r.admin, "application/json", []byte(`{"owner":"`+owner+`","daily_epsilon":2}`), nil); res.status != 200 {
		t.Fatalf("patch: %d %s", res.status, res.body)
	}
	entries, err := r.app.Audit.Entries(context.Background(), audit.Filter{Action: "site.update", Limit: 5})
	if err != nil || len(entries) != 1 || entries[0].Entry.Detail["changed"] != "daily_epsilon,owner" {
		t.Fatalf("site.update entry: %+v, %v", entries, err)
	}
	r.stop()
	if found := grepDir(t, filepath.Join(r.dir, "audit"), owner); len(found) > 0 {
		t.Fatalf("the audit log holds a setting's value: %v", found)
	}
}
