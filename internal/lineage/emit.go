package lineage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Emitter sends run events somewhere. Lineage is best effort: a pipeline
// must not stop because its lineage could not be sent, so callers log an
// Emit error at most.
type Emitter interface {
	Emit(ctx context.Context, ev RunEvent) error
	// Close flushes what is buffered, giving up when ctx is done.
	Close(ctx context.Context) error
}

// Discard is the emitter of a deployment with lineage turned off. Compare
// with it to skip building events nobody will see.
var Discard Emitter = discard{}

type discard struct{}

func (discard) Emit(context.Context, RunEvent) error { return nil }
func (discard) Close(context.Context) error          { return nil }

// Parse returns the emitter a configuration string names:
//
//	""                  Discard: lineage off
//	"file:PATH"         append NDJSON to PATH (FileEmitter, no fsync)
//	"http://…", "https://…"
//	                    POST each event to the URL, e.g. Marquez's
//	                    http://marquez:5000/api/v1/lineage (HTTPEmitter)
//
// reg, if not nil, receives the HTTP emitter's counters.
func Parse(config string, reg prometheus.Registerer) (Emitter, error) {
	kind, target, err := parseConfig(config)
	switch {
	case err != nil:
		return nil, err
	case kind == "file":
		return NewFileEmitter(target, false)
	case kind == "http":
		return NewHTTPEmitter(HTTPConfig{URL: target, Registerer: reg})
	default:
		return Discard, nil
	}
}

// parseConfig splits a lineage configuration into the kind of emitter ("",
// "file" or "http") and its target, without touching files or network.
func parseConfig(config string) (kind, target string, err error) {
	switch {
	case config == "":
		return "", "", nil
	case strings.HasPrefix(config, "file:"):
		path := strings.TrimPrefix(config, "file:")
		if path == "" {
			return "", "", errors.New("lineage: file: needs a path, as in file:/var/lib/veil/lineage.ndjson")
		}
		return "file", path, nil
	case strings.HasPrefix(config, "http://"), strings.HasPrefix(config, "https://"):
		if err := validURL(config); err != nil {
			return "", "", err
		}
		return "http", config, nil
	default:
		scheme, _, _ := strings.Cut(config, ":")
		return "", "", fmt.Errorf("lineage: unknown destination %q: want file:PATH or an http(s):// URL", scheme)
	}
}

// FileEmitter appends events as newline-delimited JSON to a file, one line
// per event, for a lineage server to import or for plain inspection.
type FileEmitter struct {
	mu    sync.Mutex
	f     *os.File
	fsync bool
}

// NewFileEmitter opens (creating if needed) path for appending. With fsync,
// every Emit waits until its line is on stable storage.
func NewFileEmitter(path string, fsync bool) (*FileEmitter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lineage: %w", err)
	}
	return &FileEmitter{f: f, fsync: fsync}, nil
}

// Emit validates ev and appends it as one line.
func (e *FileEmitter) Emit(ctx context.Context, ev RunEvent) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := encode(ev)
	if err != nil {
		return err
	}
	// One write per line under the lock keeps lines whole even when
	// events are emitted concurrently.
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.f == nil {
		return os.ErrClosed
	}
	if _, err := e.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("lineage: %w", err)
	}
	if e.fsync {
		if err := e.f.Sync(); err != nil {
			return fmt.Errorf("lineage: %w", err)
		}
	}
	return nil
}

// Close closes the file.
func (e *FileEmitter) Close(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.f == nil {
		return nil
	}
	err := e.f.Close()
	e.f = nil
	return err
}

func encode(ev RunEvent) ([]byte, error) {
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(ev)
}

// validURL checks a lineage endpoint up front, so that a typo stops start-up
// instead of surfacing as a stream of failed sends.
func validURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("lineage: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("lineage: %q is not an http(s) URL with a host", s)
	}
	return nil
}
