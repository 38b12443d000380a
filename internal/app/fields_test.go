package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/aggregate"
)

// Declared fields are tokenized, hashed, dropped or kept as the site says;
// the response says what happened; raw values reach the disk only as vault
// ciphertext; a token resolves for the privacy officer's vault only.
func TestFieldPoliciesAtIngestion(t *testing.T) {
	dir := t.TempDir()
	r := start(t, dir)
	s := r.addSite(t, "example.com")
	res := r.do(t, "PATCH", "/api/v1/sites/example.com", r.admin, "application/json",
		[]byte(`{"fields":{"email":"tokenize","customer":"hash","note":"drop","plan":"keep"},"undeclared":"drop"}`), nil)
	if res.status != 200 {
		t.Fatalf("patch: %d %s", res.status, res.body)
	}
	const email, customer = "zed.fieldtest@example.org", "cust-77831-marker"
	body := `{"site":"example.com","name":"Signup","url":"https://example.com/","user_id":"u-1","props":{"email":"` + email +
		`","customer":"` + customer + `","note":"free text marker-note","plan":"pro","extra":"undeclared-marker"}}`
	res = r.do(t, "POST", "/api/v1/events", r.ingest, "application/x-ndjson", []byte(body), nil)
	var br struct {
		Accepted int
		Fields   map[string]string
	}
	json.Unmarshal(res.body, &br)
	want := map[string]string{"email": "tokenized", "customer": "hashed", "note": "dropped", "plan": "kept", "extra": "dropped: not declared"}
	if res.status != 202 || br.Accepted != 1 || len(br.Fields) != len(want) {
		t.Fatalf("batch: %d %s", res.status, res.body)
	}
	for k, v := range want {
		if br.Fields[k] != v {
			t.Errorf("field %s: %q, want %q", k, br.Fields[k], v)
		}
	}
	evs := r.events(t, s.ID)
	props := map[string]string{}
	for _, p := range evs[0].Props {
		props[p.Key] = p.Value
	}
	if !strings.HasPrefix(props["email"], "tok_") || !strings.HasPrefix(props["customer"], "h") || props["plan"] != "pro" || len(props) != 3 {
		t.Fatalf("stored props %v", props)
	}
	v, err := r.app.Vault.Detokenize(context.Background(), props["email"], "test-officer", "field policy test")
	if err != nil || v != email {
		t.Fatalf("detokenize: %q %v", v, err)
	}
	// The same batch against a site that rejects undeclared fields is
	// refused, naming the field, and writes nothing.
	r.do(t, "PATCH", "/api/v1/sites/example.com", r.admin, "application/json", []byte(`{"undeclared":"reject"}`), nil)
	res = r.do(t, "POST", "/api/v1/events", r.ingest, "application/x-ndjson", []byte(strings.Replace(body, "zed.", "other.", 1)), nil)
	if res.status != 400 || !strings.Contains(string(res.body), `"field":"props.extra"`) {
		t.Fatalf("undeclared field not rejected: %d %s", res.status, res.body)
	}
	if n := len(r.events(t, s.ID)); n != 1 {
		t.Fatalf("%d events after a rejected one", n)
	}
	r.stop()
	for _, f := range grepDir(t, dir, email, "other.fieldtest", customer, "marker-note", "undeclared-marker") {
		t.Errorf("raw value on disk: %s", f)
	}
}

// The PII report tells the owner which props carry personal data, with
// counts only.
func TestPIIReportThroughTheAPI(t *testing.T) {
	r := start(t, t.TempDir())
	r.addSite(t, "example.com")
	var lines []string
	for i := range 20 {
		lines = append(lines, `{"site":"example.com","name":"Signup","url":"https://example.com/","props":{"contact":"person`+strings.Repeat("x", i%3)+`@example.org","plan":"pro"}}`)
	}
	if res := r.do(t, "POST", "/api/v1/events", r.ingest, "application/x-ndjson", []byte(strings.Join(lines, "\n")), nil); res.status != 202 {
		t.Fatalf("ingest: %d %s", res.status, res.body)
	}
	if err := r.app.PIIReport.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	res := r.do(t, "GET", "/api/v1/sites/example.com/pii", r.admin, "", nil, nil)
	if res.status != 200 || !strings.Contains(string(res.body), `"contact"`) || !strings.Contains(string(res.body), "email") || strings.Contains(string(res.body), "@example.org") {
		t.Fatalf("pii report: %d %s", res.status, res.body)
	}
	cat := r.do(t, "GET", "/api/v1/catalog/example.com", r.admin, "", nil, nil)
	if cat.status != 200 || !strings.Contains(string(cat.body), "PII.") {
		t.Fatalf("catalog: %d %s", cat.status, cat.body)
	}
}

// Without its key-encryption key the server refuses to start, says why,
// and does not make new keys over the existing data.
func TestMissingKEKStopsStart(t *testing.T) {
	dir := t.TempDir()
	r := start(t, dir)
	r.addSite(t, "example.com")
	r.stop()
	kek := filepath.Join(dir, "kek.json")
	if err := os.Remove(kek); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), Config{DataDir: dir}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "kek") && !strings.Contains(err.Error(), "KEK") && !strings.Contains(err.Error(), "key-encryption") {
		t.Fatalf("start without the KEK: %v", err)
	}
	if _, err := os.Stat(kek); err == nil {
		t.Fatal("a new KEK was generated over existing keysets")
	}
}

// Contribution bounds are set when a site is added and then bound what one
// unit adds; they cannot be changed once set.
func TestSiteContributionBounds(t *testing.T) {
	r := start(t, t.TempDir())
	res := r.do(t, "POST", "/api/v1/sites", r.admin, "application/json", []byte(`{"domain":"capped.example","caps":{"pageviews":3,"pages":2}}`), nil)
	if res.status != 201 || !strings.Contains(string(res.body), `"pageviews":3`) {
		t.Fatalf("create with caps: %d %s", res.status, res.body)
	}
	for _, bad := range []string{`{"domain":"a.example","caps":{"pageviews":0}}`, `{"domain":"b.example","caps":{"nonsense":3}}`, `{"domain":"c.example","caps":{"hours":30}}`} {
		if res := r.do(t, "POST", "/api/v1/sites", r.admin, "application/json", []byte(bad), nil); res.status != 400 {
			t.Errorf("%s: %d %s", bad, res.status, res.body)
		}
	}
	if res := r.do(t, "PATCH", "/api/v1/sites/capped.example", r.admin, "application/json", []byte(`{"caps":{"pageviews":50}}`), nil); res.status != 409 {
		t.Fatalf("caps changed after creation: %d %s", res.status, res.body)
	}
	s, _ := r.app.Store.SiteByDomain(context.Background(), "capped.example")
	var lines []string
	for i := range 10 {
		lines = append(lines, fmt.Sprintf(`{"site":"capped.example","name":"pageview","url":"https://capped.example/p%d","user_id":"heavy-user"}`, i))
	}
	if res := r.do(t, "POST", "/api/v1/events", r.ingest, "application/x-ndjson", []byte(strings.Join(lines, "\n")), nil); res.status != 202 {
		t.Fatalf("ingest: %d %s", res.status, res.body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		rows, err := aggregate.ReadRollup(context.Background(), r.app.Store.SQL(), s.ID, aggregate.DimTotal, time.Now().Add(-48*time.Hour), time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		pv := 0
		for _, row := range rows {
			pv += int(row.Pageviews)
		}
		if pv == 3 {
			break
		}
		if pv > 3 || time.Now().After(deadline) {
			t.Fatalf("one user counted %d pageviews on a site capped at 3", pv)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
