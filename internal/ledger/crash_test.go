package ledger

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/store/sqlitestore"
)

// The crash test re-executes this test binary as a helper process that
// commits charges in a loop (see crashHelper) and kills it with SIGKILL at a
// random moment.
const (
	crashDBEnv     = "VEIL_LEDGER_CRASH_DB"
	crashPrefixEnv = "VEIL_LEDGER_CRASH_PREFIX"
	crashSeedEnv   = "VEIL_LEDGER_CRASH_SEED" // set to replay a failing run

	crashRho    = 0.01
	crashBudget = 2.0 // admits exactly 200 charges of crashRho
	crashMax    = 200
	// A helper stops by itself after this long even if nobody kills it.
	helperLifetime = 20 * time.Second
)

func TestMain(m *testing.M) {
	if path := os.Getenv(crashDBEnv); path != "" {
		os.Exit(crashHelper(path, os.Getenv(crashPrefixEnv)))
	}
	os.Exit(m.Run())
}

func crashCharge(qk string) Charge {
	return Charge{SiteID: site, QueryKey: qk, Actor: "crash-helper", Purpose: "crash test", Kind: KindRelease,
		Lines:  []Line{{dayA, crashRho}, {dayB, crashRho}},
		Answer: []byte(qk),
		Budget: func(string) float64 { return crashBudget }}
}

// crashHelper commits distinct charges until the budget is exhausted,
// printing "committed KEY" once each Commit has returned, as a server would
// release the answer.
func crashHelper(path, prefix string) int {
	ctx, cancel := context.WithTimeout(context.Background(), helperLifetime)
	defer cancel()
	st, err := sqlitestore.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer st.Close()
	l, err := Open(st.SQL())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for i := 0; ctx.Err() == nil; i++ {
		qk := fmt.Sprintf("%s-%d", prefix, i)
		_, err := l.Commit(ctx, crashCharge(qk))
		var ex *ExceededError
		if errors.As(err, &ex) {
			fmt.Println("exhausted")
			return 0
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		// os.Stdout is unbuffered: the line is in the pipe before the
		// next charge starts.
		fmt.Printf("committed %s\n", qk)
	}
	return 0
}

// helperRun is what the parent learned from one helper process.
type helperRun struct {
	committed []string
	exhausted bool
}

// runHelper starts a helper and SIGKILLs it, after a short random delay,
// once it has reported killAfter commits (never if killAfter < 0).
func runHelper(t *testing.T, path, prefix string, killAfter int, jitter time.Duration) helperRun {
	ctx, cancel := context.WithTimeout(context.Background(), helperLifetime+10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashDBEnv+"="+path, crashPrefixEnv+"="+prefix)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var run helperRun
	killed := false
	r := bufio.NewReader(out)
	for {
		s, err := r.ReadString('\n')
		if err != nil {
			break // EOF: the helper exited or was killed; a partial line is not a report
		}
		switch {
		case strings.HasPrefix(s, "committed "):
			run.committed = append(run.committed, strings.TrimSpace(strings.TrimPrefix(s, "committed ")))
		case s == "exhausted\n":
			run.exhausted = true
		default:
			t.Errorf("helper %s: unexpected output %q", prefix, s)
		}
		if !killed && killAfter >= 0 && len(run.committed) >= killAfter {
			time.Sleep(jitter) // land anywhere in the next charge
			cmd.Process.Kill() // SIGKILL
			killed = true
		}
	}
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Errorf("helper %s did not stop in time", prefix)
	} else if err != nil && !killed {
		t.Errorf("helper %s: %v\n%s", prefix, err, stderr.String())
	}
	return run
}

// checkCrashConsistency reopens the database the way a restarted server
// would and checks that it is intact, that every reported charge is there,
// and that charges are whole and within budget. It returns the number of
// charges.
func checkCrashConsistency(t *testing.T, path string, reported []string) int {
	t.Helper()
	st, err := sqlitestore.Open(path)
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	defer st.Close()
	db := st.SQL()
	l, err := Open(db)
	if err != nil {
		t.Fatalf("reopen ledger after crash: %v", err)
	}
	var ok string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check: %q %v", ok, err)
	}
	ctx := context.Background()
	for _, qk := range reported {
		a, hit, err := l.Cached(ctx, site, qk)
		if err != nil || !hit || string(a) != qk {
			t.Fatalf("reported charge %s lost after crash: %q %v %v", qk, a, hit, err)
		}
	}
	var charges, lines, cached, bad, counter int
	db.QueryRow(`SELECT count(*) FROM ledger_charges`).Scan(&charges)
	db.QueryRow(`SELECT count(*) FROM ledger_lines`).Scan(&lines)
	db.QueryRow(`SELECT count(*) FROM ledger_cache c JOIN ledger_charges USING (site_id, query_key)`).Scan(&cached)
	db.QueryRow(`SELECT count(*) FROM (SELECT charge_id FROM ledger_lines GROUP BY charge_id HAVING count(*) != 2)`).Scan(&bad)
	db.QueryRow(`SELECT charges FROM ledger_sites WHERE site_id = ?`, site).Scan(&counter)
	if lines != 2*charges || cached != charges || bad != 0 || counter != charges {
		t.Fatalf("torn charges: %d charges, %d lines, %d cached answers, %d charges without both lines, counter %d",
			charges, lines, cached, bad, counter)
	}
	if charges < len(reported) {
		t.Fatalf("%d charges recorded but %d reported", charges, len(reported))
	}
	s, err := l.Spent(ctx, site, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{dayA, dayB} {
		if s[k] > crashBudget*(1+RelTolerance) || math.Abs(s[k]-float64(charges)*crashRho) > 1e-9 {
			t.Fatalf("spent %v on %s with %d charges of %v, budget %v", s[k], k, charges, crashRho, crashBudget)
		}
	}
	return charges
}

func TestCrashKeepsLedgerConsistent(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(crashSeedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("seed %d (replay with %s=%d)", seed, crashSeedEnv, seed)
	rnd := rand.New(rand.NewPCG(seed, seed))

	path := filepath.Join(t.TempDir(), "veil.db")
	// Create the file first, as the server would: two processes creating
	// a fresh SQLite file at once can fail to switch it to WAL mode
	// (SQLITE_BUSY while opening; not a ledger matter).
	checkCrashConsistency(t, path, nil)
	var reported []string
	// Each round runs two helpers at once (two processes racing on the
	// file) and kills each at its own random moment; then the database is
	// reopened and checked. The last round lets them run until the budget
	// is exhausted: across all the crashes it must admit exactly
	// crashMax charges.
	const rounds = 6
	for round := range rounds + 1 {
		var mu sync.Mutex
		var wg sync.WaitGroup
		exhausted := 0
		for w := range 2 {
			killAfter, jitter := 1+rnd.IntN(12), time.Duration(rnd.IntN(3000))*time.Microsecond
			if round == rounds {
				killAfter = -1
			}
			prefix := fmt.Sprintf("r%d-w%d", round, w)
			wg.Go(func() {
				run := runHelper(t, path, prefix, killAfter, jitter)
				mu.Lock()
				defer mu.Unlock()
				reported = append(reported, run.committed...)
				if run.exhausted {
					exhausted++
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		n := checkCrashConsistency(t, path, reported)
		t.Logf("round %d: %d charges recorded, %d reported", round, n, len(reported))
		if round == rounds && (n != crashMax || exhausted != 2) {
			t.Fatalf("budget admitted %d charges, want %d; %d helpers saw it exhausted", n, crashMax, exhausted)
		}
	}
}
