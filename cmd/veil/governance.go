package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/veil-analytics/veil/internal/app"
	"github.com/veil-analytics/veil/internal/audit"
	"github.com/veil-analytics/veil/internal/keys"
	"github.com/veil-analytics/veil/internal/piireport"
	"github.com/veil-analytics/veil/internal/policy"
	"github.com/veil-analytics/veil/internal/site"
	"github.com/veil-analytics/veil/internal/store/sqlitestore"
)

// withKeys opens the state store and the key ring of a data directory
// without creating anything: a command must not make keys for data that
// does not exist, or over data it cannot decrypt.
func withKeys(dataDir, kek string, f func(st *sqlitestore.DB, ring *keys.Ring, info keys.Info) error) error {
	if _, err := os.Stat(app.StorePath(dataDir)); err != nil {
		return fmt.Errorf("no Veil data in %s (run veil serve first)", dataDir)
	}
	st, err := app.OpenStore(dataDir)
	if err != nil {
		return err
	}
	defer st.Close()
	ring, info, err := keys.Open(context.Background(), st.SQL(), kek, dataDir, false)
	if err != nil {
		return err
	}
	return f(st, ring, info)
}

func kekFlag(fs *flag.FlagSet) *string {
	return fs.String("kek", env("kek", ""), "key-encryption key URI (as for veil serve; env VEIL_KEK)")
}

func keysCmd(sub string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keys", flag.ContinueOnError)
	data, kek := dataFlag(fs), kekFlag(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	return withKeys(*data, *kek, func(_ *sqlitestore.DB, ring *keys.Ring, info keys.Info) error {
		switch {
		case sub == "list" && len(pos) == 0:
			fmt.Fprintf(stdout, "key-encryption key: %s\n\n", info.URI)
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEYSET\tPRIMARY\tKEYS\tUPDATED")
			for _, k := range ring.Status() {
				fmt.Fprintf(tw, "%s\t%d\t%v\t%s\n", k.Name, k.PrimaryID, k.KeyIDs, k.Updated.UTC().Format("2006-01-02 15:04:05"))
			}
			return tw.Flush()
		case sub == "rotate" && len(pos) == 1:
			id, err := ring.Rotate(context.Background(), pos[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "keyset %s: new primary key %d; older keys stay for decryption and older pseudonym versions. A running server picks it up when restarted.\n", pos[0], id)
			return nil
		}
		return fmt.Errorf("usage: veil keys list | veil keys rotate KEYSET (one of %v)", keys.Names())
	})
}

func auditCmd(sub string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	data, kek := dataFlag(fs), kekFlag(fs)
	witness := fs.String("witness", "", "file holding the last checkpoint you verified, kept outside the log (default <data>/audit.witness)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *witness == "" {
		*witness = app.WitnessPath(*data)
	}
	if sub != "verify" && sub != "checkpoint" {
		return errors.New("usage: veil audit verify [--witness FILE] | veil audit checkpoint")
	}
	return withKeys(*data, *kek, func(st *sqlitestore.DB, ring *keys.Ring, _ keys.Info) error {
		v, err := app.AuditVerifier(context.Background(), st, ring)
		if err != nil {
			return err
		}
		if sub == "checkpoint" {
			rep, err := audit.Verify(app.AuditDir(*data), v, nil)
			if err != nil {
				return err
			}
			_, err = stdout.Write(rep.Checkpoint)
			return err
		}
		rep, err := audit.VerifyWitnessed(app.AuditDir(*data), v, *witness)
		for _, p := range rep.Problems {
			fmt.Fprintln(stdout, "PROBLEM:", p)
		}
		if err != nil {
			return fmt.Errorf("audit log verification FAILED: %w", err)
		}
		fmt.Fprintf(stdout, "audit log OK: %d entries, root %x; consistent with the witnessed checkpoint of size %d; witness updated in %s\n",
			rep.Size, rep.Root, rep.TrustedSize, *witness)
		return nil
	})
}

func policyCmd(sub string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("policy", flag.ContinueOnError)
	data := dataFlag(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if sub != "test" {
		return errors.New("usage: veil policy test [--data DIR]")
	}
	results, err := policy.RunTests(context.Background(), app.PolicyDir(*data))
	if err != nil {
		return err
	}
	failed := 0
	for _, r := range results {
		status := "PASS"
		switch {
		case r.Skipped:
			status = "SKIP"
		case !r.Pass:
			status = "FAIL"
			failed++
		}
		fmt.Fprintf(stdout, "%s %s.%s (%s)", status, r.Package, r.Name, r.Duration)
		if r.Message != "" {
			fmt.Fprintf(stdout, ": %s", r.Message)
		}
		fmt.Fprintln(stdout)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d policy tests failed", failed, len(results))
	}
	fmt.Fprintf(stdout, "%d policy tests passed\n", len(results))
	return nil
}

// dsrCmd sends a data subject request to a running server: erasure must
// reach the server's event log and its in-memory bounding state, and the
// server's audit log records it.
func dsrCmd(sub string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("dsr", flag.ContinueOnError)
	url := fs.String("url", env("url", "http://localhost:8080"), "the server's URL (env VEIL_URL)")
	token := fs.String("token", env("token", ""), "a privacy-officer API token (env VEIL_TOKEN)")
	userID := fs.String("user-id", "", "the subject's declared user id")
	email := fs.String("email", "", "the subject's email")
	reason := fs.String("reason", "", "why (recorded in the audit log; no personal data)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if sub != "export" && sub != "erase" || len(pos) != 1 || (*userID == "") == (*email == "") || *reason == "" {
		return errors.New("usage: veil dsr export|erase SITE (--user-id ID | --email ADDRESS) --reason TEXT [--url URL] [--token TOKEN]")
	}
	req := map[string]string{"reason": *reason}
	if *userID != "" {
		req["user_id"] = *userID
	} else {
		req["email"] = *email
	}
	body, _ := json.Marshal(req)
	hr, err := http.NewRequest(http.MethodPost, strings.TrimSuffix(*url, "/")+"/api/v1/sites/"+neturl.PathEscape(pos[0])+"/dsr/"+sub, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+*token)
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("the server answered %d: %s", res.StatusCode, bytes.TrimSpace(out))
	}
	_, err = stdout.Write(out)
	return err
}

// piiCmd prints which props of a site carry what kind of personal data
// (counts only; the server flushes them every 30 s).
func piiCmd(sub string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("pii", flag.ContinueOnError)
	data := dataFlag(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if sub != "report" || len(pos) != 1 {
		return errors.New("usage: veil pii report SITE [--data DIR]")
	}
	st, err := app.OpenStore(*data)
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := piireport.New(piireport.Config{DB: st.SQL()})
	if err != nil {
		return err
	}
	s, err := site.Lookup(context.Background(), st, pos[0])
	if err != nil {
		return err
	}
	reps, err := rep.Report(context.Background(), s)
	if err != nil {
		return err
	}
	return piireport.WriteText(stdout, reps)
}
