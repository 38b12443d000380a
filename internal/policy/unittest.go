package policy

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestResult is the outcome of one Rego unit test (a test_* rule).
type TestResult struct {
	Name     string
	Package  string
	Pass     bool
	Skipped  bool   // a todo_test_* rule
	Message  string // why it failed or errored; empty when it passed
	Duration time.Duration
}

// RunTests runs the Rego unit tests of the built-in policy and of dir's
// *_test.rego files against the same policy set the Engine would load from
// dir, so `veil policy test` checks site policies before they go live. The
// error reports a set that does not load or compile; failing tests are
// results. Results are sorted by package and name.
func RunTests(ctx context.Context, dir string) ([]TestResult, error) {
	modules, _, err := loadModules(dir, true)
	if err != nil {
		return nil, err
	}
	ch, err := tester.NewRunner().
		SetCompiler(ast.NewCompiler().WithCapabilities(capabilities())).
		SetModules(modules).
		RaiseBuiltinErrors(true). // as the engine's strict built-in errors
		RunTests(ctx, nil)
	if err != nil {
		return nil, err
	}
	var out []TestResult
	for r := range ch {
		t := TestResult{Name: r.Name, Package: r.Package, Pass: r.Pass(), Skipped: r.Skip, Duration: r.Duration}
		switch {
		case r.Error != nil:
			t.Message = r.Error.Error()
		case r.Fail:
			t.Message = "failed at " + r.Location.String()
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b TestResult) int {
		return cmp.Or(cmp.Compare(a.Package, b.Package), cmp.Compare(a.Name, b.Name))
	})
	return out, nil
}
