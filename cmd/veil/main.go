// Command veil is Veil's single binary: the server and its admin tools.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/veil-analytics/veil/internal/aggregate"
	"github.com/veil-analytics/veil/internal/app"
	"github.com/veil-analytics/veil/internal/demo"
	"github.com/veil-analytics/veil/internal/eventlog"
	"github.com/veil-analytics/veil/internal/loadgen"
	"github.com/veil-analytics/veil/internal/site"
)

const usage = `veil: privacy-first analytics

Usage:
  veil serve [flags]                    run the server (embedded NATS and SQLite by default)

Through the running server's API, with an API token (--token or VEIL_TOKEN;
--url or VEIL_URL, default http://localhost:8080). The token's role is
checked as for any API client, and admin changes are audited:
  veil site add DOMAIN [flags]          register a site (admin)
  veil site list                        list sites (admin)
  veil token create --role ROLE [flags] print a new API token (admin)
  veil token list                       list tokens, never their secrets (admin)
  veil token revoke ID                  revoke a token (admin)
  veil query --site S --json QUERY      a Stats API v2 query (viewer, analyst, admin; ad hoc queries spend budget)
  veil budget SITE                      privacy budget spent and left per day (viewer, analyst, admin)
  veil releases SITE                    what has been released and what it cost (viewer, analyst, admin)
  veil pii report SITE                  which props carry what kind of personal data, counts only (admin, privacy officer)
  veil dsr export|erase SITE --user-id ID|--email E --reason R   a data subject request (privacy officer)

On the data directory (--data DIR, default ./veil-data, env VEIL_DATA), as
the holder of the key-encryption key (--kek, env VEIL_KEK):
  veil keys list | rotate KEYSET        key-encryption key and keysets (never key material); rotate a keyset (server stopped; audited)
  veil token create --break-glass ...   a token when no admin token is left (server stopped; audited)
  veil audit verify [--witness FILE]    recompute the audit log's Merkle tree and check it against your last checkpoint
  veil audit checkpoint                 print the latest signed checkpoint (keep it to detect rollbacks)
  veil policy test                      run the Rego unit tests of the built-in and <data>/policies policies

Workers and tools:
  veil aggregate --nats URL [flags]     run the aggregator as a separate worker
  veil load [flags]                     generate load against a running server
  veil baseline [--addr ADDR]           bare HTTP 202 server, the load benchmark's baseline

Run "veil COMMAND -h" for a command's flags.
`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "veil:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	sub := ""
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		sub = rest[0]
	}
	switch {
	case cmd == "serve":
		return serve(rest, stdout, stderr)
	case cmd == "site" && sub == "add":
		return siteAdd(rest[1:], stdout)
	case cmd == "site" && sub == "list":
		return siteList(rest[1:], stdout)
	case cmd == "token" && sub == "create":
		return tokenCreate(rest[1:], stdout)
	case cmd == "token" && sub == "list":
		return tokenList(rest[1:], stdout)
	case cmd == "token" && sub == "revoke":
		return tokenRevoke(rest[1:], stdout)
	case cmd == "query":
		return queryCmd(rest, stdout)
	case cmd == "budget":
		return budgetCmd(rest, stdout)
	case cmd == "releases":
		return releasesCmd(rest, stdout)
	case cmd == "aggregate":
		return aggregateCmd(rest, stderr)
	case cmd == "load":
		return load(rest, stdout)
	case cmd == "baseline":
		return baseline(rest, stderr)
	case cmd == "keys" && sub != "":
		return keysCmd(sub, rest[1:], stdout)
	case cmd == "audit" && sub != "":
		return auditCmd(sub, rest[1:], stdout)
	case cmd == "policy" && sub != "":
		return policyCmd(sub, rest[1:], stdout)
	case cmd == "dsr" && sub != "":
		return dsrCmd(sub, rest[1:], stdout)
	case cmd == "pii" && sub != "":
		return piiCmd(sub, rest[1:], stdout)
	case cmd == "help" || cmd == "-h" || cmd == "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", strings.Join(args[:min(2, len(args))], " "))
}

// env returns the VEIL_* environment value of a flag, or def.
func env(name, def string) string {
	if v, ok := os.LookupEnv("VEIL_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))); ok {
		return v
	}
	return def
}

// parse parses flags that may come before or after positional arguments
// ("veil site add example.com --data d") and returns the positionals.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func dataFlag(fs *flag.FlagSet) *string {
	return fs.String("data", env("data", "./veil-data"), "data directory (env VEIL_DATA)")
}

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func serve(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	data := dataFlag(fs)
	addr := fs.String("addr", env("addr", ":8080"), "listen address (env VEIL_ADDR)")
	natsURL := fs.String("nats", env("nats", ""), "external NATS JetStream URL; empty runs one in-process (env VEIL_NATS)")
	var proxies listFlag
	proxies.Set(env("trusted_proxy", ""))
	fs.Var(&proxies, "trusted-proxy", "CIDR of a reverse proxy whose X-Forwarded-For/Forwarded headers are believed; repeatable (env VEIL_TRUSTED_PROXY, comma-separated)")
	fwdHeader := fs.String("forwarded-header", env("forwarded_header", "x-forwarded-for"), "header the trusted proxies write: x-forwarded-for or forwarded (RFC 7239); the other is ignored (env VEIL_FORWARDED_HEADER)")
	geoip := fs.String("geoip", env("geoip", ""), "MaxMind-format .mmdb for IP to country; default: Debian's tor-geoipdb when installed (env VEIL_GEOIP)")
	sync := fs.String("sync", env("sync", "interval"), `embedded log durability: "always" fsyncs every write before acknowledging; "interval" fsyncs every --sync-interval (env VEIL_SYNC)`)
	syncEvery := fs.Duration("sync-interval", 1*time.Second, "fsync interval of the embedded log when --sync=interval")
	replicas := fs.Int("replicas", 1, "stream replicas on an external NATS cluster (1 or 3)")
	grace := fs.Duration("close-grace", time.Hour, "how long after a UTC day ends (and its last event arrived) the day is closed and released")
	noAgg := fs.Bool("no-aggregate", false, "do not aggregate in this process (run `veil aggregate` workers instead)")
	kek := fs.String("kek", env("kek", ""), "key-encryption key URI protecting every keyset: local://PATH (default <data>/kek.json, created on first start), hcvault://HOST/transit/keys/NAME (VAULT_TOKEN, VAULT_ADDR), aws-kms://ARN or gcp-kms://projects/... (env VEIL_KEK)")
	lineageTo := fs.String("lineage", env("lineage", ""), "emit OpenLineage run events to file:PATH or an http(s) URL (e.g. Marquez's /api/v1/lineage); empty: none (env VEIL_LINEAGE)")
	secureCookies := fs.Bool("secure-cookies", env("secure_cookies", "") == "1", "mark dashboard session cookies Secure and send HSTS; set when Veil is reached over HTTPS (env VEIL_SECURE_COOKIES=1)")
	demoMode := fs.Bool("demo", env("demo", "") == "1", "register the demo site "+demo.Domain+", backfill 30 days of synthetic traffic and keep feeding it; closes days 15s after their last event unless --close-grace is given (env VEIL_DEMO=1)")
	level := fs.String("log-level", env("log_level", "info"), "log level: debug, info, warn, error (env VEIL_LOG_LEVEL)")
	format := fs.String("log-format", env("log_format", "text"), "log format: text or json (env VEIL_LOG_FORMAT)")
	memLimit := fs.Int64("memory-limit", 160, "soft limit for the Go heap in MiB (0: none); GOMEMLIMIT overrides it")
	pprofAddr := fs.String("pprof", env("pprof", ""), "serve Go profiling endpoints on this address (e.g. 127.0.0.1:6060); off by default (env VEIL_PPROF)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if _, ok := os.LookupEnv("GOGC"); !ok {
		// Ingest allocates many short-lived objects; collecting half as
		// often saves CPU, and the soft memory limit below keeps the
		// resident size bounded when the heap grows.
		debug.SetGCPercent(200)
	}
	if _, ok := os.LookupEnv("GOMEMLIMIT"); !ok && *memLimit > 0 {
		debug.SetMemoryLimit(*memLimit << 20)
	}
	if *pprofAddr != "" {
		go http.ListenAndServe(*pprofAddr, pprofMux())
	}
	logger, err := newLogger(stderr, *level, *format)
	if err != nil {
		return err
	}
	if *demoMode && !flagSet(fs, "close-grace") {
		// The backfill's days have just arrived; close them within a
		// few seconds so the demo's past days are released right away.
		*grace = 15 * time.Second
	}
	if *sync != "always" && *sync != "interval" {
		return fmt.Errorf("--sync %q: want always or interval", *sync)
	}
	if *replicas != 1 && *replicas != 3 {
		return fmt.Errorf("--replicas %d: want 1 or 3", *replicas)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	a, err := app.Open(ctx, app.Config{
		Addr: *addr, DataDir: *data, NATSURL: *natsURL, TrustedProxies: proxies, ForwardedHeader: *fwdHeader, GeoIPPath: *geoip,
		SyncAlways: *sync == "always", SyncInterval: *syncEvery, Replicas: *replicas, NoAggregate: *noAgg, CloseGrace: *grace, Demo: *demoMode, SecureCookies: *secureCookies, KEKURI: *kek, Lineage: *lineageTo,
	}, logger)
	if err != nil {
		ln.Close()
		return err
	}
	defer a.Close()
	secret, err := app.EnsureAdminToken(ctx, a.Store, time.Now())
	if err != nil {
		return err
	}
	url := dashboardURL(ln.Addr())
	fmt.Fprintf(stdout, "Veil is listening on %s\n", url)
	if *demoMode {
		fmt.Fprintf(stdout, "Demo site: %sapp/ (%s; past days appear within a minute)\n", url, demo.Domain)
	}
	if secret != "" {
		fmt.Fprintf(stdout, "\nAn admin API token was created. It is shown only this once; keep it safe:\n\n    %s\n\n", secret)
	}
	logger.Info("veil started", "addr", ln.Addr().String(), "data", *data,
		"log", map[bool]string{true: "embedded NATS", false: "external NATS"}[a.Log.Embedded()], "geoip", string(a.GeoSource))
	err = a.Serve(ctx, ln)
	stop()
	if cerr := a.Close(); err == nil {
		err = cerr
	}
	logger.Info("veil stopped")
	return err
}

// pprofMux serves the runtime profiles on their own listener, never on the
// public address.
func pprofMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return m
}

func dashboardURL(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

func load(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	var cfg loadgen.Config
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "base URL of the server (loopback only for benchmarks)")
	fs.StringVar(&cfg.Mode, "mode", "event", `"event" (single POST /api/event), "batch" (POST /api/v1/events), "queries" (dashboard query set) or "adhoc" (a filtered ad hoc query)`)
	iterations := fs.Int("iterations", 200, "queries/adhoc mode: requests per query")
	fs.StringVar(&cfg.Site, "site", "example.com", "site domain")
	fs.StringVar(&cfg.Token, "token", env("token", ""), "ingest token for batch mode (env VEIL_TOKEN)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to run")
	fs.IntVar(&cfg.Concurrency, "c", 32, "concurrent connections")
	fs.IntVar(&cfg.BatchSize, "batch", 1000, "events per batch request")
	fs.IntVar(&cfg.Days, "days", 0, "batch mode: spread timestamps over the last N days (a bulk backfill; the site's retention must cover it)")
	fs.Int64Var(&cfg.MaxEvents, "events", 0, "stop after this many events (0: run for --duration)")
	fs.IntVar(&cfg.Users, "users", 0, "batch mode: distinct declared user ids (0: anonymous visitors with ip and user_agent)")
	fs.BoolVar(&cfg.SpoofIPs, "spoof-ips", false, "event mode: vary client IPs through X-Forwarded-For (the server must trust the generator with --trusted-proxy)")
	fs.Uint64Var(&cfg.Seed, "seed", uint64(time.Now().UnixNano()), "random seed")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	if cfg.Mode == "queries" || cfg.Mode == "adhoc" {
		res, err := loadgen.RunQueries(context.Background(), loadgen.QueryConfig{URL: cfg.URL, Token: cfg.Token, Site: cfg.Site,
			Iterations: *iterations, AdHoc: cfg.Mode == "adhoc"})
		if err != nil {
			return err
		}
		for _, r := range res {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	res, err := loadgen.Run(context.Background(), cfg)
	if err != nil {
		return err
	}
	return enc.Encode(res)
}

func baseline(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9090", "listen address")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Addr: *addr, Handler: loadgen.Baseline(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	fmt.Fprintf(stderr, "baseline listening on %s\n", *addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func aggregateCmd(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("aggregate", flag.ContinueOnError)
	data := dataFlag(fs)
	natsURL := fs.String("nats", env("nats", ""), "external NATS JetStream URL (env VEIL_NATS); required")
	level := fs.String("log-level", env("log_level", "info"), "log level")
	format := fs.String("log-format", env("log_format", "text"), "log format: text or json")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *natsURL == "" {
		return errors.New("veil aggregate needs --nats: a separate worker reads an external NATS; with the embedded log, veil serve aggregates in-process")
	}
	logger, err := newLogger(stderr, *level, *format)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := app.OpenStore(*data)
	if err != nil {
		return err
	}
	defer st.Close()
	lg, err := eventlog.Open(ctx, eventlog.Config{URL: *natsURL}, logger)
	if err != nil {
		return err
	}
	defer lg.Close()
	agg, err := aggregate.New(aggregate.Config{JS: lg.JetStream(), DB: st.SQL(), Store: st, Logger: logger, CapsFor: site.CapsOf})
	if err != nil {
		return err
	}
	logger.Info("aggregator started", "nats", *natsURL)
	return agg.Run(ctx)
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
