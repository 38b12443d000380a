package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/veil-analytics/veil/internal/app"
	"github.com/veil-analytics/veil/internal/audit"
	"github.com/veil-analytics/veil/internal/auth"
	"github.com/veil-analytics/veil/internal/keys"
	"github.com/veil-analytics/veil/internal/policy"
	"github.com/veil-analytics/veil/internal/site"
	"github.com/veil-analytics/veil/internal/store"
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
	return withKeys(*data, *kek, func(st *sqlitestore.DB, ring *keys.Ring, info keys.Info) error {
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
			// The rotation is an admin change: it is recorded in the audit
			// log, which only a stopped server leaves to this process. A
			// running server would pick the new key up only on restart.
			if !slices.Contains(keys.Names(), pos[0]) {
				return fmt.Errorf("unknown keyset %q (one of %v)", pos[0], keys.Names())
			}
			lg, err := openOperatorAudit(*data, st, ring)
			if err != nil {
				return err
			}
			defer lg.Close()
			id, err := ring.Rotate(context.Background(), pos[0])
			if err != nil {
				return err
			}
			if err := lg.Record(context.Background(), audit.Entry{Time: time.Now().UTC(), Actor: OperatorActor, Action: "keys.rotate", Target: pos[0],
				Detail: map[string]string{"primary_key_id": strconv.FormatUint(uint64(id), 10)}}); err != nil {
				return fmt.Errorf("keyset %s rotated to key %d, but its audit record failed: %w", pos[0], id, err)
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

// OperatorActor is the audit actor of the key-encryption key's holder
// acting offline: key rotation and break-glass tokens.
const OperatorActor = "operator (key-encryption key holder, offline)"

// openOperatorAudit opens the audit log for an offline operator action. It
// fails while veil serve holds the log.
func openOperatorAudit(dataDir string, st *sqlitestore.DB, ring *keys.Ring) (*audit.Log, error) {
	lg, err := app.OpenAudit(context.Background(), dataDir, st, ring)
	if err != nil {
		return nil, fmt.Errorf("this action is recorded in the audit log, which is not available (stop veil serve first): %w", err)
	}
	return lg, nil
}

// breakGlassToken creates a token offline, proven by the key-encryption
// key, for when no admin token is left. It is audited like any token.
func breakGlassToken(dataDir, kek, name string, role store.Role, sites []string, stdout io.Writer) error {
	return withKeys(dataDir, kek, func(st *sqlitestore.DB, ring *keys.Ring, _ keys.Info) error {
		ctx := context.Background()
		var ids []string
		for _, d := range sites {
			s, err := site.Lookup(ctx, st, d)
			if err != nil {
				return err
			}
			ids = append(ids, s.ID)
		}
		lg, err := openOperatorAudit(dataDir, st, ring)
		if err != nil {
			return err
		}
		defer lg.Close()
		secret, t, err := auth.NewToken(ctx, st, name, role, ids, time.Now())
		if err != nil {
			return err
		}
		if err := lg.Record(ctx, audit.Entry{Time: time.Now().UTC(), Actor: OperatorActor, Action: "token.create", Target: t.ID, Reason: "break-glass",
			Detail: map[string]string{"role": string(role), "sites": strings.Join(ids, ",")}}); err != nil {
			st.DeleteToken(ctx, t.ID)
			return fmt.Errorf("the token's audit record failed, so it was deleted again: %w", err)
		}
		fmt.Fprintln(stdout, secret)
		return nil
	})
}
