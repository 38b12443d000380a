// Package jsonscan is a small, allocation-light JSON reader for the ingest
// hot path. Decoding events with encoding/json costs several microseconds
// each (reflection, and a validation pass before the decoding pass); this
// reader walks the input once and lets the caller pick fields by name.
//
// It accepts exactly RFC 8259 JSON (the fuzz tests compare it with
// encoding/json) and never panics; nesting is limited to MaxDepth.
package jsonscan

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth bounds nesting so hostile input cannot exhaust the stack.
const MaxDepth = 64

// SyntaxError reports malformed JSON and where.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d: %s", e.Offset, e.Msg)
}

// ErrType is wrapped by errors for a well-formed value of the wrong type.
var ErrType = errors.New("wrong type")

// Kind is the type of the next value.
type Kind byte

const (
	Invalid Kind = iota
	Null
	Bool
	Number
	String
	Array
	Object
)

func (k Kind) String() string {
	return [...]string{"invalid", "null", "boolean", "number", "string", "array", "object"}[k]
}

// Reader reads JSON values from a byte slice.
type Reader struct {
	b     []byte
	i     int
	depth int
}

// NewReader returns a Reader over b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Offset is the current position.
func (r *Reader) Offset() int { return r.i }

func (r *Reader) syntax(msg string) error { return &SyntaxError{Offset: r.i, Msg: msg} }

func (r *Reader) space() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// Peek returns the kind of the next value without consuming it.
func (r *Reader) Peek() Kind {
	r.space()
	if r.i >= len(r.b) {
		return Invalid
	}
	switch c := r.b[r.i]; {
	case c == '{':
		return Object
	case c == '[':
		return Array
	case c == '"':
		return String
	case c == 't' || c == 'f':
		return Bool
	case c == 'n':
		return Null
	case c == '-' || (c >= '0' && c <= '9'):
		return Number
	}
	return Invalid
}

// End checks that only whitespace remains.
func (r *Reader) End() error {
	r.space()
	if r.i != len(r.b) {
		return r.syntax("unexpected data after the value")
	}
	return nil
}

// typeErr consumes the next value and reports that it was not want.
func (r *Reader) typeErr(want Kind) error {
	got := r.Peek()
	if err := r.Skip(); err != nil {
		return err
	}
	return fmt.Errorf("%w: must be %s, not %s", ErrType, want, got)
}

// Object calls fn for each member of the next object with its (unescaped)
// key; fn must consume the member's value. A non-object value is skipped
// and reported with ErrType.
func (r *Reader) Object(fn func(key []byte) error) error {
	if r.Peek() != Object {
		if r.Peek() == Invalid {
			return r.syntax("expected a value")
		}
		return r.typeErr(Object)
	}
	if r.depth++; r.depth > MaxDepth {
		return r.syntax("nesting too deep")
	}
	defer func() { r.depth-- }()
	r.i++
	r.space()
	if r.i < len(r.b) && r.b[r.i] == '}' {
		r.i++
		return nil
	}
	var keyBuf []byte
	for {
		r.space()
		if r.i >= len(r.b) || r.b[r.i] != '"' {
			return r.syntax("expected a string key")
		}
		key, err := r.stringBytes(keyBuf[:0])
		if err != nil {
			return err
		}
		r.space()
		if r.i >= len(r.b) || r.b[r.i] != ':' {
			return r.syntax("expected ':'")
		}
		r.i++
		start := r.i
		if err := fn(key); err != nil {
			return err
		}
		if r.i == start {
			return r.syntax("value not consumed")
		}
		r.space()
		if r.i >= len(r.b) {
			return r.syntax("unterminated object")
		}
		switch r.b[r.i] {
		case ',':
			r.i++
		case '}':
			r.i++
			return nil
		default:
			return r.syntax("expected ',' or '}'")
		}
	}
}

// Array calls fn for each element of the next array; fn must consume it.
func (r *Reader) Array(fn func(index int) error) error {
	if r.Peek() != Array {
		if r.Peek() == Invalid {
			return r.syntax("expected a value")
		}
		return r.typeErr(Array)
	}
	if r.depth++; r.depth > MaxDepth {
		return r.syntax("nesting too deep")
	}
	defer func() { r.depth-- }()
	r.i++
	r.space()
	if r.i < len(r.b) && r.b[r.i] == ']' {
		r.i++
		return nil
	}
	for n := 0; ; n++ {
		start := r.i
		if err := fn(n); err != nil {
			return err
		}
		if r.i == start {
			return r.syntax("value not consumed")
		}
		r.space()
		if r.i >= len(r.b) {
			return r.syntax("unterminated array")
		}
		switch r.b[r.i] {
		case ',':
			r.i++
		case ']':
			r.i++
			return nil
		default:
			return r.syntax("expected ',' or ']'")
		}
	}
}

// String reads a string value.
func (r *Reader) String() (string, error) {
	if r.Peek() != String {
		if r.Peek() == Invalid {
			return "", r.syntax("expected a value")
		}
		return "", r.typeErr(String)
	}
	b, err := r.stringBytes(nil)
	return string(b), err
}

// Bool reads a boolean value.
func (r *Reader) Bool() (bool, error) {
	switch r.Peek() {
	case Bool:
		if r.literal("true") {
			return true, nil
		}
		if r.literal("false") {
			return false, nil
		}
		return false, r.syntax("invalid literal")
	case Invalid:
		return false, r.syntax("expected a value")
	}
	return false, r.typeErr(Bool)
}

// Raw consumes the next value and returns its bytes as written.
func (r *Reader) Raw() ([]byte, error) {
	r.space()
	start := r.i
	if err := r.Skip(); err != nil {
		return nil, err
	}
	return r.b[start:r.i], nil
}

func (r *Reader) literal(lit string) bool {
	if len(r.b)-r.i >= len(lit) && string(r.b[r.i:r.i+len(lit)]) == lit {
		r.i += len(lit)
		return true
	}
	return false
}

// Skip consumes the next value, checking its syntax.
func (r *Reader) Skip() error {
	switch r.Peek() {
	case Object:
		return r.Object(func([]byte) error { return r.Skip() })
	case Array:
		return r.Array(func(int) error { return r.Skip() })
	case String:
		_, err := r.stringBytes(nil)
		return err
	case Number:
		return r.number()
	case Bool:
		if r.literal("true") || r.literal("false") {
			return nil
		}
	case Null:
		if r.literal("null") {
			return nil
		}
	}
	if r.i >= len(r.b) {
		return r.syntax("unexpected end of input")
	}
	return r.syntax("invalid value")
}

// Null consumes a null and reports whether the next value was one.
func (r *Reader) Null() bool {
	return r.Peek() == Null && r.literal("null")
}

func (r *Reader) number() error {
	b, i := r.b, r.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return r.syntax("invalid number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			r.i = i
			return r.syntax("invalid number")
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			r.i = i
			return r.syntax("invalid number")
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	r.i = i
	return nil
}

// stringBytes reads a string at r.i (which is '"'), appending its unescaped
// content to dst. Without escapes it returns a slice of the input.
func (r *Reader) stringBytes(dst []byte) ([]byte, error) {
	r.i++ // opening quote
	start := r.i
	b := r.b
	for i := start; i < len(b); i++ {
		c := b[i]
		if c == '"' {
			r.i = i + 1
			if dst == nil {
				return b[start:i], nil
			}
			return append(dst, b[start:i]...), nil
		}
		if c == '\\' {
			r.i = i
			return r.escaped(append(dst, b[start:i]...))
		}
		if c < 0x20 {
			r.i = i
			return nil, r.syntax("control character in string")
		}
		if c >= utf8.RuneSelf {
			_, size := utf8.DecodeRune(b[i:])
			if size == 1 {
				r.i = i
				return nil, r.syntax("invalid UTF-8 in string")
			}
			i += size - 1
		}
	}
	r.i = len(b)
	return nil, r.syntax("unterminated string")
}

// escaped continues a string from a backslash at r.i.
func (r *Reader) escaped(dst []byte) ([]byte, error) {
	b := r.b
	for r.i < len(b) {
		c := b[r.i]
		switch {
		case c == '"':
			r.i++
			return dst, nil
		case c == '\\':
			if r.i+1 >= len(b) {
				return nil, r.syntax("unterminated escape")
			}
			e := b[r.i+1]
			r.i += 2
			switch e {
			case '"', '\\', '/':
				dst = append(dst, e)
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				rn, ok := r.hex4()
				if !ok {
					return nil, r.syntax("invalid \\u escape")
				}
				if utf16.IsSurrogate(rn) {
					// A valid pair decodes to one rune; a lone surrogate
					// becomes U+FFFD, as encoding/json does.
					save := r.i
					if r.i+1 < len(b) && b[r.i] == '\\' && b[r.i+1] == 'u' {
						r.i += 2
						if rn2, ok := r.hex4(); ok {
							if dec := utf16.DecodeRune(rn, rn2); dec != utf8.RuneError {
								dst = utf8.AppendRune(dst, dec)
								continue
							}
						}
					}
					r.i = save
					rn = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, rn)
			default:
				return nil, r.syntax("invalid escape")
			}
		case c < 0x20:
			return nil, r.syntax("control character in string")
		case c >= utf8.RuneSelf:
			_, size := utf8.DecodeRune(b[r.i:])
			if size == 1 {
				return nil, r.syntax("invalid UTF-8 in string")
			}
			dst = append(dst, b[r.i:r.i+size]...)
			r.i += size
		default:
			dst = append(dst, c)
			r.i++
		}
	}
	return nil, r.syntax("unterminated string")
}

func (r *Reader) hex4() (rune, bool) {
	if len(r.b)-r.i < 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(r.b[r.i:r.i+4]), 16, 16)
	if err != nil {
		return 0, false
	}
	r.i += 4
	return rune(v), true
}
