package policy

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

//go:embed defaults/*.rego
var defaults embed.FS

const testSuffix = "_test.rego"

// loadModules parses the built-in policy and the *.rego files in dir, with
// or without their *_test.rego files. files lists the directory's policy
// files by name. Modules are named "builtin/<file>" or by base name, so
// errors point at a file without revealing the server's paths.
func loadModules(dir string, withTests bool) (modules map[string]*ast.Module, files []string, err error) {
	modules = map[string]*ast.Module{}
	builtin, err := fs.Glob(defaults, "defaults/*.rego")
	if err != nil {
		return nil, nil, err
	}
	for _, name := range builtin {
		if !withTests && strings.HasSuffix(name, testSuffix) {
			continue
		}
		src, err := defaults.ReadFile(name)
		if err != nil {
			return nil, nil, err
		}
		if err := parse(modules, "builtin/"+path.Base(name), src); err != nil {
			return nil, nil, err
		}
	}
	names, err := regoFiles(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, name := range names {
		test := strings.HasSuffix(name, testSuffix)
		if test && !withTests {
			continue
		}
		src, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, nil, fmt.Errorf("policy: %w", err)
		}
		if err := parse(modules, name, src); err != nil {
			return nil, nil, err
		}
		pkg := modules[name].Package.Path
		switch {
		case test && overridePackage(pkg):
			// The built-in policy reads every rule in these packages, so a
			// test there that queries the decision would be recursive.
			return nil, nil, fmt.Errorf("policy: %s: tests belong outside veil.site and veil.domain, e.g. in package veil.site_test", name)
		case !test && !overridePackage(pkg):
			// A file in package veil.query, say, could replace the
			// built-in rules themselves.
			return nil, nil, fmt.Errorf("policy: %s: package %s is outside veil.site[\"<site domain>\"] and veil.domain[\"<owner domain>\"]", name, pkg)
		case !test:
			files = append(files, name)
		}
	}
	return modules, files, nil
}

func parse(modules map[string]*ast.Module, name string, src []byte) error {
	m, err := ast.ParseModuleWithOpts(name, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	modules[name] = m
	return nil
}

// overridePackage reports whether p is data.veil.site.<site> or
// data.veil.domain.<domain>, or below: the only packages the built-in policy
// reads policy files from.
func overridePackage(p ast.Ref) bool {
	return len(p) >= 4 && p[1].Equal(ast.StringTerm("veil")) &&
		(p[2].Equal(ast.StringTerm("site")) || p[2].Equal(ast.StringTerm("domain")))
}

// regoFiles lists the *.rego file names in dir, sorted; none when dir is ""
// or does not exist (no site policies yet).
func regoFiles(dir string) ([]string, error) {
	if dir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".rego") && !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// snapshot summarizes the policy files' names, sizes and modification times
// (following symlinks). An unreadable directory yields its error text, so the
// watcher reloads once per distinct state rather than on every poll.
func snapshot(dir string) string {
	names, err := regoFiles(dir)
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	for _, name := range names {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			fmt.Fprintf(&b, "%s error %v\n", name, err)
			continue
		}
		fmt.Fprintf(&b, "%s %d %d\n", name, fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}

// capabilities are OPA's built-ins without network access: a decision sits
// on the query path and must neither wait on another host nor send query
// details to one.
func capabilities() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	c.Builtins = slices.DeleteFunc(slices.Clone(c.Builtins), func(b *ast.Builtin) bool {
		return b.Name == "http.send" || b.Name == "net.lookup_ip_addr"
	})
	return c
}
