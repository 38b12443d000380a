package event

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

func sample() Event {
	return Event{
		HasID: true, IDHash: Pseudonym{1, 2, 3},
		Time:   time.UnixMilli(1732233600123).UTC(),
		SiteID: "a1b2c3", Name: "signup", Host: "example.com", Path: "/pricing",
		Query: "utm_source=news", Referrer: "news.ycombinator.com", Source: "Hacker News",
		UTMSource: "news", Country: "DE", Browser: "Firefox", BrowserV: "120",
		OS: "Linux", Device: "desktop", Unit: UnitVisitorDay, Pseudonym: Pseudonym{9, 9},
		KeyVersion: 20251122, Interactive: true, ScrollDepth: -1, EngagedMS: 1500,
		Props: []Prop{{"plan", "pro"}, {"color", ""}},
	}
}

func TestRoundTrip(t *testing.T) {
	evs := []Event{sample(), {Time: time.UnixMilli(0).UTC(), Unit: UnitEvent, ScrollDepth: 100}}
	b := AppendBatch(nil, evs)
	got, err := DecodeBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, evs) {
		t.Fatalf("round trip mismatch:\n got %+v\nwant %+v", got, evs)
	}
}

func TestDecodeRejectsCorruption(t *testing.T) {
	good := AppendBatch(nil, []Event{sample()})
	cases := map[string][]byte{
		"empty":     nil,
		"magic":     append([]byte("XX"), good[2:]...),
		"version":   append([]byte{'V', 'E', 9}, good[3:]...),
		"truncated": good[:len(good)-3],
		"trailing":  append(bytes.Clone(good), 0),
		"count":     {'V', 'E', 1, 0xff, 0xff, 0xff, 0x7f},
	}
	for name, b := range cases {
		if _, err := DecodeBatch(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(AppendBatch(nil, []Event{sample()}))
	f.Add(AppendBatch(nil, nil))
	f.Add([]byte("VE\x01\x01\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := DecodeBatch(b)
		if err != nil {
			return
		}
		// Whatever decodes must survive a re-encode unchanged.
		again, err := DecodeBatch(AppendBatch(nil, evs))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if len(evs) == 0 && len(again) == 0 {
			return
		}
		if !reflect.DeepEqual(evs, again) {
			t.Fatalf("re-encode changed the batch")
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	evs := make([]Event, 100)
	for i := range evs {
		evs[i] = sample()
	}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendBatch(buf[:0], evs)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecode(b *testing.B) {
	evs := make([]Event, 100)
	for i := range evs {
		evs[i] = sample()
	}
	buf := AppendBatch(nil, evs)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := DecodeBatch(buf); err != nil {
			b.Fatal(err)
		}
	}
}
