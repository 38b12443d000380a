package audit

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// BenchmarkRecord measures one caller recording entries back to back: each
// Record is a write and fsync of the entry plus a signed checkpoint written
// to a temporary file, fsynced and renamed.
func BenchmarkRecord(b *testing.B) {
	l := openLog(b, b.TempDir(), newKey(b, testOrigin))
	e := testEntry(1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Record(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecordParallel measures 16 concurrent callers, which share writes,
// fsyncs and checkpoints through group commit.
func BenchmarkRecordParallel(b *testing.B) {
	l := openLog(b, b.TempDir(), newKey(b, testOrigin))
	e := testEntry(1)
	ctx := context.Background()
	b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Record(ctx, e); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkFsyncBaseline is the floor under Record on the same disk in the
// same run: appending an entry-sized line to a file and fsyncing it. Report
// Record as a ratio to it; absolute numbers drift on shared machines.
func BenchmarkFsyncBaseline(b *testing.B) {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "f"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	line, _ := encodeLeaf(1, testEntry(1))
	line = append(line, '\n')
	for b.Loop() {
		if _, err := f.Write(line); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}
