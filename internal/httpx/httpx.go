// Package httpx holds the small HTTP conventions every Veil API shares:
// JSON bodies, JSON errors naming the problem, and request-size limits.
package httpx

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
)

// Error is an API error: the status to answer and a message that names the
// problem. Messages must never echo personal data from the request.
type Error struct {
	Status int    `json:"-"`
	Msg    string `json:"error"`
	Field  string `json:"field,omitempty"`
	// Reason is a short machine label used for metrics.
	Reason string `json:"-"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Msg
	}
	return e.Msg
}

// Errorf builds an Error.
func Errorf(status int, reason, field, format string, args ...any) *Error {
	return &Error{Status: status, Reason: reason, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// WriteJSON answers v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// WriteError answers err as a JSON error. Errors that are not *Error are
// internal: the client sees a generic 500 and nothing of the cause.
func WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if errors.As(err, &e) {
		WriteJSON(w, e.Status, e)
		return
	}
	WriteJSON(w, http.StatusInternalServerError, &Error{Msg: "internal error"})
}

// MediaType returns the lower-case media type of the request's Content-Type,
// or "" when absent or malformed.
func MediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	return strings.ToLower(mt)
}

// DecodeJSON reads a JSON body of at most limit bytes into v, rejecting
// unknown fields and trailing data.
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if mt := MediaType(r); mt != "application/json" {
		return Errorf(http.StatusUnsupportedMediaType, "content_type", "", "Content-Type must be application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return JSONError(err)
	}
	if dec.More() {
		return Errorf(http.StatusBadRequest, "invalid_json", "", "unexpected data after the JSON value")
	}
	return nil
}

// JSONError turns a decoding error into a client error naming the problem.
func JSONError(err error) *Error {
	var mbe *http.MaxBytesError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return Errorf(http.StatusRequestEntityTooLarge, "too_large", "", "request body larger than %d bytes", mbe.Limit)
	case errors.As(err, &se):
		return Errorf(http.StatusBadRequest, "invalid_json", "", "invalid JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return Errorf(http.StatusBadRequest, "invalid_json", te.Field, "must be %s, not %s", te.Type, te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return Errorf(http.StatusBadRequest, "invalid_json", strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), "unknown field")
	case err.Error() == "EOF":
		return Errorf(http.StatusBadRequest, "invalid_json", "", "empty body")
	default:
		return Errorf(http.StatusBadRequest, "invalid_json", "", "invalid JSON")
	}
}
