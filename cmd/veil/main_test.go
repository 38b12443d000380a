package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeEndToEnd runs the real binary the way the README does: first
// start prints the URL and a one-time admin token; the CLI adds a site and
// tokens; events are accepted; SIGTERM shuts down cleanly; a restart keeps
// everything and does not print a new admin token.
func TestServeEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "veil")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(tmp, "data")
	run := func(args ...string) (string, error) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	// offline runs an operator command on the data directory.
	offline := func(args ...string) string {
		t.Helper()
		out, err := run(append(args, "--data", data)...)
		if err != nil {
			t.Fatalf("veil %v: %v\n%s", args, err, out)
		}
		return out
	}

	addr := freeAddr(t)
	stdout, stop := startServe(t, bin, data, addr)
	url, admin := "", ""
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	tokenRe := regexp.MustCompile(`^\s+(veil_\S+)$`)
	timeout := time.After(60 * time.Second)
read:
	for admin == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				break read
			}
			if strings.HasPrefix(line, "Veil is listening on ") {
				url = strings.TrimPrefix(line, "Veil is listening on ")
			}
			if m := tokenRe.FindStringSubmatch(line); m != nil {
				admin = m[1]
			}
		case <-timeout:
			break read
		}
	}
	go func() {
		for range lines {
		}
	}()
	if url == "" || admin == "" {
		t.Fatalf("first start did not print the URL and an admin token (url %q)", url)
	}
	base := "http://" + addr
	waitReady(t, base)

	// The admin CLI goes through the API with a token, whose role it checks.
	as := func(token string, args ...string) (string, error) {
		return run(append(args, "--url", base, "--token", token)...)
	}
	cli := func(token string, args ...string) string {
		t.Helper()
		out, err := as(token, args...)
		if err != nil {
			t.Fatalf("veil %v: %v\n%s", args, err, out)
		}
		return out
	}
	cli(admin, "site", "add", "example.com")
	if out := cli(admin, "site", "list"); !strings.Contains(out, "example.com") || !strings.Contains(out, "30d") {
		t.Fatalf("site list: %s", out)
	}
	ingest := cli(admin, "token", "create", "--role", "ingest")
	if !strings.HasPrefix(ingest, "veil_") {
		t.Fatalf("token create printed %q", ingest)
	}
	if out, err := as(admin, "token", "create", "--role", "wizard"); err == nil {
		t.Fatalf("unknown role accepted: %s", out)
	}
	if out, err := as(ingest, "site", "add", "sneaky.example"); err == nil || !strings.Contains(out, "403") {
		t.Fatalf("an ingest token added a site: %v %s", err, out)
	}
	if out, err := run("site", "list", "--url", base); err == nil || !strings.Contains(out, "no API token") {
		t.Fatalf("site list without a token: %v %s", err, out)
	}

	post := func(path, token, ctype, body string, hdr ...string) int {
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	ua := "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
	if s := post("/api/event", "", "text/plain", `{"n":"pageview","u":"https://example.com/","d":"example.com"}`, "User-Agent", ua); s != 202 {
		t.Fatalf("event: %d", s)
	}
	if s := post("/api/v1/events", ingest, "application/json", `[{"site":"example.com","name":"x","url":"https://example.com/a"}]`); s != 202 {
		t.Fatalf("batch: %d", s)
	}
	if s := post("/api/v1/sites", admin, "application/json", `{"domain":"second.example"}`); s != 201 {
		t.Fatalf("admin API with the printed token: %d", s)
	}
	if code := stop(); code != 0 {
		t.Fatalf("SIGTERM exit code %d, want 0", code)
	}

	stdout2, stop2 := startServe(t, bin, data, addr)
	out2 := &bytes.Buffer{}
	copied := make(chan struct{})
	go func() { io.Copy(out2, stdout2); close(copied) }()
	waitReady(t, base)
	if s := post("/api/event", "", "text/plain", `{"n":"pageview","u":"https://second.example/","d":"second.example"}`, "User-Agent", ua); s != 202 {
		t.Fatalf("site added before restart unknown after it: %d", s)
	}

	// The privacy CLI asks the server: a released query (free), an ad hoc
	// one (charged and audited by the server), the budget and releases.
	viewer := cli(admin, "token", "create", "--role", "viewer", "--site", "example.com")
	if out := cli(viewer, "query", "--site", "example.com", "--json", `{"metrics":["visitors"],"date_range":"7d"}`); !strings.Contains(out, `"source": "released"`) || !strings.Contains(out, `"epsilon_spent": 0`) {
		t.Fatalf("veil query: %s", out)
	}
	if out, err := as(viewer, "query", "--site", "second.example", "--json", `{"metrics":["visitors"],"date_range":"7d"}`); err == nil {
		t.Fatalf("a token limited to example.com queried second.example: %s", out)
	}
	if out := cli(admin, "query", "--site", "example.com", "--json", `{"metrics":["visitors"],"date_range":"7d","filters":[["is","visit:country",["DE"]]],"privacy":{"purpose":"analytics"}}`); !strings.Contains(out, `"source": "ad_hoc"`) {
		t.Fatalf("CLI ad hoc query: %s", out)
	}
	if out := cli(viewer, "budget", "example.com"); !strings.Contains(out, "privacy unit: visitor-day") || !strings.Contains(out, "epsilon 3 per day") {
		t.Fatalf("veil budget: %s", out)
	}
	if out := cli(viewer, "releases", "example.com"); !strings.Contains(out, "PERIOD") {
		t.Fatalf("veil releases: %s", out)
	}
	if out := cli(admin, "pii", "report", "example.com"); out == "" {
		t.Fatal("veil pii report printed nothing")
	}
	// The key-encryption key's holder acts offline only: rotation is
	// audited, so it waits for the server to stop.
	if out, err := run("keys", "rotate", "pseudonym", "--data", data); err == nil || !strings.Contains(out, "stop veil serve") {
		t.Fatalf("keys rotated while the server holds the audit log: %v %s", err, out)
	}
	if code := stop2(); code != 0 {
		t.Fatalf("second SIGTERM exit code %d", code)
	}
	<-copied
	if strings.Contains(out2.String(), "veil_") {
		t.Fatal("restart printed a new admin token")
	}

	// Governance CLI: keys, audit, policies.
	if out := offline("keys", "list"); !strings.Contains(out, "kek.json") || !strings.Contains(out, "pseudonym") || !strings.Contains(out, "vault") {
		t.Fatalf("veil keys list: %s", out)
	}
	if out := offline("keys", "rotate", "pseudonym"); !strings.Contains(out, "new primary key") {
		t.Fatalf("veil keys rotate: %s", out)
	}
	if out := offline("token", "create", "--break-glass", "--role", "admin", "--name", "recovery"); !strings.HasPrefix(out, "veil_") {
		t.Fatalf("break-glass token: %s", out)
	}
	if out, err := run("keys", "list", "--kek", "local://"+filepath.Join(tmp, "other-kek.json"), "--data", data); err == nil {
		t.Fatalf("keys opened with a wrong KEK: %s", out)
	}
	if _, err := os.Stat(filepath.Join(tmp, "other-kek.json")); err == nil {
		t.Fatal("a wrong KEK path made a new key file")
	}
	if out := offline("audit", "verify"); !strings.Contains(out, "audit log OK") {
		t.Fatalf("veil audit verify: %s", out)
	}
	if out := offline("policy", "test"); !strings.Contains(out, "policy tests passed") {
		t.Fatalf("veil policy test: %s", out)
	}
	entriesFile := filepath.Join(data, "audit", "entries")
	b, err := os.ReadFile(entriesFile)
	for _, want := range []string{"site.create", "token.create", "dp.release.adhoc", "keys.rotate", "break-glass"} {
		if err != nil || !bytes.Contains(b, []byte(want)) {
			t.Fatalf("audit entries lack %s: %v", want, err)
		}
	}
	// An edited audit entry is detected.
	os.WriteFile(entriesFile, bytes.Replace(b, []byte("site.create"), []byte("site.crea7e"), 1), 0o600)
	if out, err := exec.Command(bin, "audit", "verify", "--data", data).CombinedOutput(); err == nil || !strings.Contains(string(out), "FAILED") {
		t.Fatalf("tampered audit log verified: %v %s", err, out)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startServe(t *testing.T, bin, data, addr string) (io.Reader, func() int) {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--data", data, "--addr", addr)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if !testing.Verbose() {
		cmd.Stderr = io.Discard
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	stop := func() int {
		if done {
			return 0
		}
		done = true
		cmd.Process.Signal(syscall.SIGTERM)
		ch := make(chan error, 1)
		go func() { ch <- cmd.Wait() }()
		select {
		case <-ch:
			return cmd.ProcessState.ExitCode()
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			t.Fatal("veil did not stop within 60s of SIGTERM")
			return -1
		}
	}
	t.Cleanup(func() { stop() })
	return stdout, stop
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		res, err := http.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("server never became ready")
}
