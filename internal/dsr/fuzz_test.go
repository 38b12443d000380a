package dsr

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/veil-analytics/veil/internal/consent"
	"github.com/veil-analytics/veil/internal/httpx"
)

// FuzzParseRequest: any body either parses into exactly one valid
// identifier and a valid reason, or fails with a 4xx that does not echo the
// identifier.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"user_id": "u1", "reason": "ticket 1"}`))
	f.Add([]byte(`{"email": "a@example.com", "reason": "GDPR Art. 15"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		id, reason, err := ParseRequest(body)
		if err != nil {
			var he *httpx.Error
			if !errors.As(err, &he) || he.Status < 400 || he.Status > 499 {
				t.Fatalf("not a client error: %v", err)
			}
			return
		}
		if (id.UserID == "") == (id.Email == "") {
			t.Fatalf("not exactly one identifier: %+v", id)
		}
		if id.UserID != "" && consent.ValidUserID(id.UserID) != nil {
			t.Fatalf("invalid user id accepted: %q", id.UserID)
		}
		if id.Email != "" && !validEmail(id.Email) {
			t.Fatalf("invalid email accepted: %q", id.Email)
		}
		if strings.TrimSpace(reason) == "" || utf8.RuneCountInString(reason) > MaxReason || validReason(reason) != nil {
			t.Fatalf("invalid reason accepted: %q", reason)
		}
		if containsWord(strings.ToLower(reason), strings.ToLower(id.UserID+id.Email)) {
			t.Fatalf("reason repeating the identifier accepted: %q", reason)
		}
	})
}
