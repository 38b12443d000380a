// Package tracker serves Veil's JavaScript tracker at /js/script.js.
package tracker

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"time"
)

//go:embed script.js
var script []byte

var etag = func() string {
	h := sha256.Sum256(script)
	return `"` + hex.EncodeToString(h[:8]) + `"`
}()

// Script returns the tracker source.
func Script() []byte { return script }

// Handler serves the tracker with caching that lets browsers revalidate.
func Handler() http.Handler {
	mod := time.Now()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/javascript; charset=utf-8")
		h.Set("Cache-Control", "public, max-age=3600, must-revalidate")
		h.Set("ETag", etag)
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("X-Content-Type-Options", "nosniff")
		http.ServeContent(w, r, "script.js", mod, bytes.NewReader(script))
	})
}
