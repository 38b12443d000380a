package dsr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/veil-analytics/veil/internal/consent"
	"github.com/veil-analytics/veil/internal/httpx"
	"github.com/veil-analytics/veil/internal/pii"
	"github.com/veil-analytics/veil/internal/store"
	"github.com/veil-analytics/veil/internal/vault"
)

// MaxBody bounds a request body; real ones are a few hundred bytes.
const MaxBody = 64 << 10

// MaxReason bounds the recorded reason, in characters.
const MaxReason = 500

// Register adds the data subject request API to mux. authed wraps a handler
// so it runs only for a token with one of roles; sites looks up the site of
// a domain for a token (404 when the token does not cover it).
//
//	POST /api/v1/sites/{domain}/dsr/export  (privacy-officer) {"user_id"|"email": "...", "reason": "..."}
//	POST /api/v1/sites/{domain}/dsr/erase   (privacy-officer) same body
//	GET  /api/v1/dsr?status=open            (privacy-officer, admin)
//	POST /api/v1/vault/detokenize           (privacy-officer) {"token", "purpose", "reason"}
//
// Only the privacy officer reaches the subject endpoints, so "found": false
// for an unknown subject tells nobody else anything.
func (s *Service) Register(mux *http.ServeMux,
	authed func(h func(store.Token, http.ResponseWriter, *http.Request), roles ...store.Role) http.Handler,
	sites func(ctx context.Context, tok store.Token, domain string) (store.Site, error)) {
	subjectRequest := func(do func(ctx context.Context, site store.Site, id Ident, actor, reason string) (any, error)) http.Handler {
		return authed(func(tok store.Token, w http.ResponseWriter, r *http.Request) {
			site, err := sites(r.Context(), tok, r.PathValue("domain"))
			if err != nil {
				httpx.WriteError(w, err)
				return
			}
			body, err := readBody(w, r)
			if err != nil {
				httpx.WriteError(w, err)
				return
			}
			id, reason, err := ParseRequest(body)
			if err != nil {
				httpx.WriteError(w, err)
				return
			}
			out, err := do(r.Context(), site, id, tok.ID, reason)
			if err != nil {
				httpx.WriteError(w, err)
				return
			}
			w.Header().Set("Cache-Control", "no-store")
			httpx.WriteJSON(w, http.StatusOK, out)
		}, store.RolePrivacyOfficer)
	}
	mux.Handle("POST /api/v1/sites/{domain}/dsr/export", subjectRequest(func(ctx context.Context, site store.Site, id Ident, actor, reason string) (any, error) {
		return s.Export(ctx, site, id, actor, reason)
	}))
	mux.Handle("POST /api/v1/sites/{domain}/dsr/erase", subjectRequest(func(ctx context.Context, site store.Site, id Ident, actor, reason string) (any, error) {
		return s.Erase(ctx, site, id, actor, reason)
	}))

	mux.Handle("GET /api/v1/dsr", authed(func(tok store.Token, w http.ResponseWriter, r *http.Request) {
		f := Filter{Status: r.URL.Query().Get("status")}
		if !ValidStatusFilter(f.Status) {
			httpx.WriteError(w, httpx.Errorf(http.StatusBadRequest, "invalid_status", "status", "status must be open, in_progress, failed or completed"))
			return
		}
		if len(tok.Sites) > 0 {
			f.Sites = tok.Sites
		}
		reqs, err := s.Requests(r.Context(), f)
		if err != nil {
			httpx.WriteError(w, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"requests": reqs, "deadline_days": s.cfg.Deadline.Hours() / 24})
	}, store.RolePrivacyOfficer, store.RoleAdmin))

	mux.Handle("POST /api/v1/vault/detokenize", authed(func(tok store.Token, w http.ResponseWriter, r *http.Request) {
		// A token does not say which site it belongs to before it is
		// resolved, so a token limited to some sites could read another
		// site's value: only unrestricted tokens may detokenize.
		if len(tok.Sites) > 0 {
			httpx.WriteError(w, httpx.Errorf(http.StatusForbidden, "forbidden", "", "detokenizing needs a privacy-officer token that is not limited to sites"))
			return
		}
		body, err := readBody(w, r)
		if err != nil {
			httpx.WriteError(w, err)
			return
		}
		in, err := parseDetokenize(body)
		if err != nil {
			httpx.WriteError(w, err)
			return
		}
		v, err := s.Detokenize(r.Context(), in.Token, tok.ID, in.Purpose, in.Reason)
		switch {
		case errors.Is(err, vault.ErrNotFound):
			httpx.WriteError(w, httpx.Errorf(http.StatusNotFound, "unknown_token", "token", "no such token (never issued, or expired by retention)"))
		case errors.Is(err, vault.ErrShredded):
			httpx.WriteError(w, httpx.Errorf(http.StatusGone, "erased", "token", "the value was erased at its subject's request and cannot be recovered"))
		case err != nil:
			s.cfg.Logger.Error("detokenize failed", "err", err)
			httpx.WriteError(w, httpx.Errorf(http.StatusInternalServerError, "vault_error", "", "the value could not be decrypted or its access recorded; nothing is returned"))
		default:
			w.Header().Set("Cache-Control", "no-store")
			httpx.WriteJSON(w, http.StatusOK, map[string]string{"value": v})
		}
	}, store.RolePrivacyOfficer))
}

// readBody reads a JSON body of at most MaxBody bytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if httpx.MediaType(r) != "application/json" {
		return nil, httpx.Errorf(http.StatusUnsupportedMediaType, "content_type", "", "Content-Type must be application/json")
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		return nil, httpx.JSONError(err)
	}
	return b, nil
}

// decodeStrict decodes one JSON object into v, naming unknown fields and
// refusing trailing data.
func decodeStrict(data []byte, v any) error {
	if len(data) > MaxBody {
		return httpx.Errorf(http.StatusRequestEntityTooLarge, "too_large", "", "request body larger than %d bytes", MaxBody)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return httpx.JSONError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return httpx.Errorf(http.StatusBadRequest, "invalid_json", "", "unexpected data after the JSON object")
	}
	return nil
}

func bad(field, format string, args ...any) error {
	return httpx.Errorf(http.StatusBadRequest, "invalid_request", field, format, args...)
}

// ParseRequest parses and validates the body of an export or erasure
// request: exactly one of user_id or email, and a reason. Error messages
// never echo the request's values.
func ParseRequest(data []byte) (Ident, string, error) {
	var in struct {
		UserID *string `json:"user_id"`
		Email  *string `json:"email"`
		Reason *string `json:"reason"`
	}
	if err := decodeStrict(data, &in); err != nil {
		return Ident{}, "", err
	}
	var id Ident
	switch {
	case in.UserID != nil && in.Email != nil:
		return Ident{}, "", bad("email", "give either user_id or email, not both")
	case in.UserID != nil:
		if err := consent.ValidUserID(*in.UserID); err != nil {
			return Ident{}, "", bad("user_id", "%v", err)
		}
		id.UserID = *in.UserID
	case in.Email != nil:
		if !validEmail(*in.Email) {
			return Ident{}, "", bad("email", "must be an e-mail address (local@domain)")
		}
		id.Email = *in.Email
	default:
		return Ident{}, "", bad("user_id", "user_id or email is required")
	}
	if in.Reason == nil {
		return Ident{}, "", bad("reason", "a reason is required; it is recorded in the audit trail")
	}
	if err := validReason(*in.Reason); err != nil {
		return Ident{}, "", err
	}
	// The reason goes into the register and the audit trail, which name
	// the subject only by keyed reference: it must not undo that.
	if containsWord(strings.ToLower(*in.Reason), strings.ToLower(id.UserID+id.Email)) {
		return Ident{}, "", bad("reason", "must not repeat the subject's identifier (the reason is recorded, the identifier must not be)")
	}
	return id, *in.Reason, nil
}

// containsWord reports whether word occurs in s other than as part of a
// longer run of letters and digits: user id "42" is in "user 42 asked" but
// not in "ticket 1042".
func containsWord(s, word string) bool {
	alnum := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
	for i := 0; ; {
		j := strings.Index(s[i:], word)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(word)
		before, _ := utf8.DecodeLastRuneInString(s[:start])
		after, _ := utf8.DecodeRuneInString(s[end:])
		if (start == 0 || !alnum(before)) && (end == len(s) || !alnum(after)) {
			return true
		}
		_, size := utf8.DecodeRuneInString(s[start:])
		i = start + size
	}
}

// validReason checks a reason that will be stored in the audit trail:
// 1 to MaxReason printable characters and no recognizable personal data.
func validReason(r string) error {
	switch {
	case strings.TrimSpace(r) == "":
		return bad("reason", "a reason is required; it is recorded in the audit trail")
	case utf8.RuneCountInString(r) > MaxReason:
		return bad("reason", "must be at most %d characters", MaxReason)
	case strings.IndexFunc(r, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0:
		return bad("reason", "must be printable characters on one line")
	}
	if f, ok := pii.Best(r); ok && f.Score >= pii.DefaultThreshold {
		return bad("reason", "must not contain personal data (it looks like it holds a %s); refer to a ticket number instead", f.Kind)
	}
	return nil
}

// validEmail accepts plain addresses (local@domain.tld) without display
// names, comments or quoting, as ingestion sees them in a field.
func validEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	if len(s) > 254 || !utf8.ValidString(s) || at < 1 || at > 64 {
		return false
	}
	local, domain := s[:at], s[at+1:]
	if strings.ContainsRune(local, '@') || strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") {
		return false
	}
	if len(domain) < 3 || !strings.Contains(domain, ".") || strings.Contains(domain, "..") ||
		strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.HasPrefix(domain, "-") {
		return false
	}
	return strings.IndexFunc(s, func(c rune) bool {
		return unicode.IsSpace(c) || unicode.IsControl(c) || strings.ContainsRune(`"(),:;<>[\]`, c)
	}) < 0
}

type detokenizeRequest struct {
	Token   string `json:"token"`
	Purpose string `json:"purpose"`
	Reason  string `json:"reason"`
}

func parseDetokenize(data []byte) (detokenizeRequest, error) {
	var in detokenizeRequest
	if err := decodeStrict(data, &in); err != nil {
		return in, err
	}
	if !strings.HasPrefix(in.Token, vault.TokenPrefix) || len(in.Token) > 64 {
		return in, bad("token", "must be a vault token (%s...)", vault.TokenPrefix)
	}
	if !slices.Contains(DetokenizePurposes, in.Purpose) {
		return in, bad("purpose", "must be one of %s", strings.Join(DetokenizePurposes, ", "))
	}
	return in, validReason(in.Reason)
}
