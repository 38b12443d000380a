package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// toAny decodes the next value into the same shapes encoding/json produces
// with UseNumber.
func toAny(r *Reader) (any, error) {
	switch r.Peek() {
	case Object:
		m := map[string]any{}
		err := r.Object(func(k []byte) error {
			v, err := toAny(r)
			m[string(k)] = v
			return err
		})
		return m, err
	case Array:
		a := []any{}
		err := r.Array(func(int) error {
			v, err := toAny(r)
			a = append(a, v)
			return err
		})
		return a, err
	case String:
		return r.String()
	case Bool:
		return r.Bool()
	case Null:
		if r.Null() {
			return nil, nil
		}
	case Number:
		raw, err := r.Raw()
		return json.Number(raw), err
	}
	return nil, r.Skip()
}

func decodeStd(b []byte) (any, error) {
	if !json.Valid(b) {
		return nil, errors.New("invalid")
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func decodeOurs(b []byte) (any, error) {
	r := NewReader(b)
	v, err := toAny(r)
	if err != nil {
		return nil, err
	}
	return v, r.End()
}

func TestAgreesWithEncodingJSON(t *testing.T) {
	cases := []string{
		`{}`, `[]`, `{"a":1,"b":[true,false,null],"c":{"d":"e"}}`, `"\u00e9\ud83d\ude00\n\t\\\"\/"`,
		`"\ud800"`, `"\udc00x"`, `"\ud800\u0041"`, `-0.5e+10`, `0`, `  [ 1 , 2 ]  `,
		`{"a":1,}`, `[1,]`, `01`, `1.`, `.5`, `-`, `"abc`, `{"a" 1}`, `tru`, `nul`, `[1 2]`, "\"\x01\"",
		`{"a":1}{"b":2}`, `"\x"`, `"\u12"`, `1e`, `{"k":"v"`, `[`, ``,
	}
	for _, c := range cases {
		want, werr := decodeStd([]byte(c))
		got, gerr := decodeOurs([]byte(c))
		if (werr == nil) != (gerr == nil) {
			t.Errorf("%q: encoding/json err=%v, ours err=%v", c, werr, gerr)
			continue
		}
		if werr == nil && !reflect.DeepEqual(want, got) {
			t.Errorf("%q: got %#v, want %#v", c, got, want)
		}
	}
}

func TestDepthLimit(t *testing.T) {
	deep := strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)
	var se *SyntaxError
	if _, err := decodeOurs([]byte(deep)); !errors.As(err, &se) {
		t.Fatalf("nesting beyond MaxDepth: err = %v", err)
	}
	ok := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	if _, err := decodeOurs([]byte(ok)); err != nil {
		t.Fatalf("nesting at MaxDepth: %v", err)
	}
}

func TestTypeErrorsConsumeTheValue(t *testing.T) {
	r := NewReader([]byte(`{"a":{"x":[1,2]},"b":"ok"}`))
	var got string
	err := r.Object(func(k []byte) error {
		if string(k) == "a" {
			_, err := r.String()
			if !errors.Is(err, ErrType) || !strings.Contains(err.Error(), "not object") {
				t.Errorf("type error = %v", err)
			}
			return nil
		}
		var err error
		got, err = r.String()
		return err
	})
	if err != nil || got != "ok" {
		t.Fatalf("after a type error the reader lost its place: %q, %v", got, err)
	}
}

func FuzzAgreesWithEncodingJSON(f *testing.F) {
	for _, s := range []string{`{"n":"pageview","u":"https://example.com/","p":{"a":1}}`, `[{"a":"\u00e9"}]`, `"\ud83d\ude00"`, `-1.5e3`, `[[[]]]`, `{"a":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, gerr := decodeOurs(b)
		if !utf8.Valid(b) {
			return // encoding/json replaces invalid UTF-8; callers validate first
		}
		want, werr := decodeStd(b)
		if (werr == nil) != (gerr == nil) {
			if gerr != nil && strings.Contains(gerr.Error(), "nesting too deep") {
				return
			}
			t.Fatalf("%q: encoding/json err=%v, ours err=%v", b, werr, gerr)
		}
		if werr == nil && !reflect.DeepEqual(want, got) {
			t.Fatalf("%q: got %#v, want %#v", b, got, want)
		}
	})
}

func BenchmarkObject(b *testing.B) {
	data := []byte(`{"id":"ev-1","site":"example.com","name":"pageview","url":"https://example.com/docs?utm_source=x","referrer":"https://www.google.com/","ip":"203.0.113.9","user_agent":"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0","props":{"plan":"pro","n":3}}`)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r := NewReader(data)
		r.Object(func(k []byte) error {
			if string(k) == "props" {
				return r.Object(func([]byte) error { return r.Skip() })
			}
			_, err := r.String()
			return err
		})
	}
}
