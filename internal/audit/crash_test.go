package audit

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// The crash test re-executes this test binary as a helper that records
// entries in a loop, printing "recorded N" each time Record returns, and
// kills it with SIGKILL at a random moment.
const (
	crashDirEnv  = "VEIL_AUDIT_CRASH_DIR"
	crashSKeyEnv = "VEIL_AUDIT_CRASH_SKEY"
	crashVKeyEnv = "VEIL_AUDIT_CRASH_VKEY"
	// A helper stops by itself after this long even if nobody kills it.
	helperLifetime = 20 * time.Second
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		os.Exit(crashHelper(dir, os.Getenv(crashSKeyEnv), os.Getenv(crashVKeyEnv)))
	}
	os.Exit(m.Run())
}

func crashHelper(dir, skey, vkey string) int {
	s, err := note.NewSigner(skey)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	l, err := Open(dir, s, v, testOrigin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	start := l.Size()
	deadline := time.Now().Add(helperLifetime)
	for i := start; time.Now().Before(deadline); i++ {
		if err := l.Record(context.Background(), Entry{Action: "crash.test", Target: strconv.FormatUint(i, 10)}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Printf("recorded %d\n", i)
	}
	return 0
}

func TestCrashKeepsEveryAcknowledgedEntry(t *testing.T) {
	skey, vkey, err := GenerateKey(testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	dir := t.TempDir()
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 0))
	var trusted []byte
	acked := -1
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashSKeyEnv+"="+skey, crashVKeyEnv+"="+vkey)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 5 + rng.IntN(60)
		sc := bufio.NewScanner(out)
		for n := 0; n < killAfter && sc.Scan(); n++ {
			i, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "recorded "))
			if err != nil {
				t.Fatalf("helper said %q", sc.Text())
			}
			acked = i
		}
		cmd.Process.Kill()
		cmd.Wait()

		// Everything the helper was told is stored must be there, and the
		// log must still extend what a witness saw in the previous round.
		rep, err := Verify(dir, v, trusted)
		if err != nil {
			t.Fatalf("round %d (seed %d): %v", round, seed, err)
		}
		l, err := Open(dir, s, v, testOrigin)
		if err != nil {
			t.Fatalf("round %d (seed %d): reopen: %v", round, seed, err)
		}
		if l.Size() < uint64(acked+1) {
			t.Fatalf("round %d (seed %d): %d entries after the crash, but %d were acknowledged", round, seed, l.Size(), acked+1)
		}
		got, err := l.Entries(context.Background(), Filter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range got {
			if e.Entry.Target != strconv.FormatUint(e.Index, 10) {
				t.Fatalf("round %d (seed %d): entry %d has target %s", round, seed, e.Index, e.Entry.Target)
			}
		}
		if trusted, err = l.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		if rep.Size > l.Size() {
			t.Fatalf("round %d: verified %d entries but opened %d", round, rep.Size, l.Size())
		}
		l.Close()
	}
}
