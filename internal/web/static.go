package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
)

// The front end: ES modules and CSS without a build step, plus uPlot 1.6.32
// (npm package "uplot", dist/uPlot.esm.js and dist/uPlot.min.css, MIT
// licence alongside) vendored under static/vendor.
//
//go:embed static
var staticFS embed.FS

// contentTypes is explicit so responses do not depend on the host's MIME
// tables.
var contentTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".svg": "image/svg+xml",
	".txt": "text/plain; charset=utf-8",
}

type asset struct {
	body  []byte
	gz    []byte // nil when compression does not pay
	ctype string
	etag  string
}

// assets are the embedded static files. URLs carry a version (a hash of
// all files) as their first segment, so a release can be cached forever
// and relative module imports stay on the same version.
type assets struct {
	version string
	files   map[string]*asset
	modules []string // the app's own ES modules (not vendored or lazy ones)
}

// lazyModule reports whether a script loads on demand rather than with the
// app: the chart library, and the pages only some roles open (site admin,
// privacy overview, audit log, catalog).
func lazyModule(name string) bool {
	switch name {
	case "admin.js", "telemetry.js", "audit.js", "catalog.js":
		return true
	}
	return strings.HasPrefix(name, "vendor/")
}

func loadAssets() *assets {
	a := &assets{files: map[string]*asset{}}
	var names []string
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		names = append(names, p)
		return nil
	})
	if err != nil {
		panic(err) // embedded at build time: cannot fail at run time
	}
	sort.Strings(names)
	all := sha256.New()
	for _, p := range names {
		body, err := staticFS.ReadFile(p)
		if err != nil {
			panic(err)
		}
		ctype, ok := contentTypes[path.Ext(p)]
		if !ok {
			ctype = "application/octet-stream"
		}
		sum := sha256.Sum256(body)
		f := &asset{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		if len(body) > 1024 {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			zw.Write(body)
			zw.Close()
			if buf.Len() < len(body)*9/10 {
				f.gz = buf.Bytes()
			}
		}
		name := strings.TrimPrefix(p, "static/")
		a.files[name] = f
		if path.Ext(name) == ".js" && !lazyModule(name) {
			a.modules = append(a.modules, name)
		}
		all.Write([]byte(name))
		all.Write(sum[:])
	}
	a.version = "v" + hex.EncodeToString(all.Sum(nil)[:6])
	return a
}

// serve answers GET /static/{file...}. A URL with the current version is
// immutable; any other (no version, or an older one after an upgrade)
// gets the current file and must revalidate.
func (a *assets) serve(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	immutable := false
	if v, rest, ok := strings.Cut(name, "/"); ok && isVersion(v) {
		name, immutable = rest, v == a.version
	}
	f, ok := a.files[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.ctype)
	h.Set("ETag", f.etag)
	h.Set("Vary", "Accept-Encoding")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if immutable {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && strings.Contains(inm, f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := f.body
	if f.gz != nil && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = f.gz
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

func isVersion(s string) bool {
	if len(s) != 13 || s[0] != 'v' {
		return false
	}
	_, err := hex.DecodeString(s[1:])
	return err == nil
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}
