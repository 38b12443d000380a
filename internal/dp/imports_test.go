package dp

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Noise must come from the vetted library only: no file of this package, tests
// included, may import math/rand (or math/rand/v2).
func TestNoMathRand(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	sawLibrary := false
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if path == "math/rand" || strings.HasPrefix(path, "math/rand/") {
				t.Errorf("%s imports %s; draw noise through github.com/google/differential-privacy/go/v3/noise", name, path)
			}
			if path == "github.com/google/differential-privacy/go/v3/noise" {
				sawLibrary = true
			}
		}
	}
	if !sawLibrary { // guards against the test reading the wrong directory
		t.Errorf("no file among %v imports the noise library", files)
	}
}
