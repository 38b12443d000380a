package app

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/auth"
	"github.com/veil-analytics/veil/internal/store"
)

// Through the real server: a data subject's export holds exactly their
// events and vault values; erasure removes them from disk; withdrawn
// consent stops collection.
func TestDataSubjectRightsEndToEnd(t *testing.T) {
	dir := t.TempDir()
	r := start(t, dir)
	s := r.addSite(t, "example.com")
	r.do(t, "PATCH", "/api/v1/sites/example.com", r.admin, "application/json", []byte(`{"fields":{"email":"tokenize","plan":"keep"}}`), nil)
	officer, _, _ := auth.NewToken(context.Background(), r.app.Store, "po", store.RolePrivacyOfficer, nil, time.Now())
	const alice, aliceEmail = "alice-7731", "alice.dsr@example.org"
	var lines []string
	for i := range 3 {
		lines = append(lines, fmt.Sprintf(`{"site":"example.com","name":"pageview","url":"https://example.com/alice-page-%d","user_id":%q,"props":{"email":%q,"plan":"pro"}}`, i, alice, aliceEmail))
		lines = append(lines, fmt.Sprintf(`{"site":"example.com","name":"pageview","url":"https://example.com/bob-page","user_id":"bob-%d"}`, i))
	}
	if res := r.do(t, "POST", "/api/v1/events", r.ingest, "application/x-ndjson", []byte(strings.Join(lines, "\n")), nil); res.status != 202 {
		t.Fatalf("ingest: %d %s", res.status, res.body)
	}
	pseudonyms, _ := r.app.Pseudo.UserPseudonyms(s.ID, alice)
	// Counted in the exact rollups of the open day before the erasure.
	waitAggregated(t, r.app, s.ID)
	rollupCells := func(value string) (n int) {
		r.app.Store.SQL().QueryRow(`SELECT (SELECT count(*) FROM agg_rollup WHERE value=?) + (SELECT count(*) FROM agg_pairs WHERE value=?)`, value, value).Scan(&n)
		return n
	}
	if rollupCells("/alice-page-0") == 0 || rollupCells("/bob-page") == 0 {
		t.Fatal("alice's and bob's pages not aggregated before the erasure; the test would prove nothing")
	}

	export := func() (int, map[string]any, string) {
		res := r.do(t, "POST", "/api/v1/sites/example.com/dsr/export", officer, "application/json",
			[]byte(`{"user_id":"`+alice+`","reason":"access request ticket 42"}`), nil)
		var out map[string]any
		json.Unmarshal(res.body, &out)
		return res.status, out, string(res.body)
	}
	status, out, raw := export()
	evs, _ := out["events"].([]any)
	if status != 200 || len(evs) != 3 || !strings.Contains(raw, aliceEmail) || strings.Contains(raw, "bob-page") {
		t.Fatalf("export: %d %s", status, raw)
	}
	if res := r.do(t, "POST", "/api/v1/sites/example.com/dsr/export", r.admin, "application/json", []byte(`{"user_id":"`+alice+`","reason":"x"}`), nil); res.status != 403 {
		t.Fatalf("admin exported a subject: %d", res.status)
	}
	var token string
	for _, v := range out["vault"].([]any) {
		token = v.(map[string]any)["token"].(string)
	}
	if token == "" {
		t.Fatal("no vault token in the export")
	}
	if found := grepDir(t, dir, "/alice-page-0", pseudonyms[0].String()); len(found) == 0 {
		t.Fatal("alice's events not on disk before erasure; the test would prove nothing")
	}

	res := r.do(t, "POST", "/api/v1/sites/example.com/dsr/erase", officer, "application/json", []byte(`{"user_id":"`+alice+`","reason":"erasure request ticket 43"}`), nil)
	var rep struct {
		Events      int `json:"events"`
		RollupCells int `json:"rollup_cells"`
	}
	if json.Unmarshal(res.body, &rep); res.status != 200 || rep.Events != 3 || rep.RollupCells == 0 {
		t.Fatalf("erase: %d %s", res.status, res.body)
	}
	if rollupCells("/alice-page-1") != 0 || rollupCells("/bob-page") == 0 {
		t.Fatal("erasure left alice's pages in the open day's rollups, or took bob's")
	}
	if status, out, raw := export(); status != 200 || out["found"] != false {
		t.Fatalf("export after erasure: %d %s", status, raw)
	}
	det := r.do(t, "POST", "/api/v1/vault/detokenize", officer, "application/json", []byte(`{"token":"`+token+`","reason":"check","purpose":"data_subject_request"}`), nil)
	if det.status != 410 {
		t.Fatalf("erased token resolved: %d %s", det.status, det.body)
	}
	bobs := 0
	for _, ev := range r.events(t, s.ID) {
		if strings.HasPrefix(ev.Path, "/alice") {
			t.Fatal("alice's event survived erasure")
		}
		bobs++
	}
	if bobs != 3 {
		t.Fatalf("%d of bob's 3 events left", bobs)
	}
	r.stop()
	for _, f := range grepDir(t, dir, "/alice-page-0", "/alice-page-2", pseudonyms[0].String(), alice, aliceEmail) {
		t.Errorf("after erasure, on disk: %s", f)
	}
}

func TestWithdrawnConsentStopsCollection(t *testing.T) {
	r := start(t, t.TempDir())
	s := r.addSite(t, "example.com")
	res := r.do(t, "PUT", "/api/v1/sites/example.com/consent", r.ingest, "application/json", []byte(`{"user_id":"carol","purposes":{"analytics":false}}`), nil)
	if res.status != 200 && res.status != 204 {
		t.Fatalf("consent: %d %s", res.status, res.body)
	}
	res = r.do(t, "POST", "/api/v1/events", r.ingest, "application/x-ndjson",
		[]byte(`{"site":"example.com","name":"pageview","url":"https://example.com/","user_id":"carol"}`+"\n"+`{"site":"example.com","name":"pageview","url":"https://example.com/","user_id":"dave"}`), nil)
	if !strings.Contains(string(res.body), `"accepted":1`) || !strings.Contains(string(res.body), `"dropped":1`) {
		t.Fatalf("batch: %s", res.body)
	}
	if n := len(r.events(t, s.ID)); n != 1 {
		t.Fatalf("%d events stored, want dave's only", n)
	}
	// Consent for a purpose the site does not allow is refused.
	res = r.do(t, "PUT", "/api/v1/sites/example.com/consent", r.ingest, "application/json", []byte(`{"user_id":"carol","purposes":{"model_training":true}}`), nil)
	if res.status != 400 {
		t.Fatalf("consent for a purpose the site does not allow: %d %s", res.status, res.body)
	}
}
