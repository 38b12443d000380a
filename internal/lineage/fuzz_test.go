package lineage

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseConfig checks the lineage configuration parser: it never panics,
// accepts only the three documented forms, and an accepted URL is one the
// HTTP client can post to.
func FuzzParseConfig(f *testing.F) {
	f.Fuzz(func(t *testing.T, config string) {
		kind, target, err := parseConfig(config)
		if err != nil {
			if kind != "" || target != "" {
				t.Fatalf("error %v with result %q %q", err, kind, target)
			}
			return
		}
		switch kind {
		case "":
			if config != "" {
				t.Fatalf("%q accepted as disabled", config)
			}
		case "file":
			if target == "" || "file:"+target != config {
				t.Fatalf("%q gave file %q", config, target)
			}
		case "http":
			u, err := url.Parse(target)
			if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || !strings.HasPrefix(config, u.Scheme+"://") {
				t.Fatalf("%q accepted as URL %q: %v", config, target, err)
			}
		default:
			t.Fatalf("%q gave unknown kind %q", config, kind)
		}
	})
}
