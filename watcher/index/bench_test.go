package index

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// benchTree writes files files of size bytes, 100 per directory.
func benchTree(b *testing.B, files, size int) string {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "www")
	content := []byte(strings.Repeat("x", size))
	for i := range files {
		d := filepath.Join(dir, fmt.Sprintf("d%03d", i/1000), fmt.Sprintf("e%02d", i/100%10))
		if i%100 == 0 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%02d.php", i%100)), content, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

func BenchmarkScanNoChanges(b *testing.B) {
	const files = 20000
	dir := benchTree(b, files, 200)
	db := newTestDB(b)
	opts := ScanOptions{Now: later}
	if recs, err := Scan(context.Background(), db, dir, dir, "alpha", opts); err != nil || len(recs) < files {
		b.Fatalf("initial Scan = %d records, %v", len(recs), err)
	}
	for b.Loop() {
		opts.Progress = new(Progress)
		recs, err := Scan(context.Background(), db, dir, dir, "alpha", opts)
		if err != nil || len(recs) != 0 || opts.Progress.Hashed.Load() != 0 {
			b.Fatalf("Scan = %d changes, %d hashed, %v; want none", len(recs), opts.Progress.Hashed.Load(), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/files, "ns/file")
}

func BenchmarkScanInitial(b *testing.B) {
	const files, size = 10000, 4096
	dir := benchTree(b, files, size)
	db := newTestDB(b)
	b.SetBytes(files * size)
	i := 0
	for b.Loop() {
		i++
		recs, err := Scan(context.Background(), db, fmt.Sprint("root", i), dir, "alpha", ScanOptions{Now: later})
		if err != nil || len(recs) < files {
			b.Fatalf("Scan = %d records, %v", len(recs), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/files, "ns/file")
}

func benchRecords(n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = fileRec(fmt.Sprintf("d%03d/e%02d/f%02d.php", i/1000, i/100%10, i%100), int64(i), vec("alpha", 1))
		recs[i].Ino, recs[i].Dev, recs[i].CtimeNs = uint64(i), 2049, 1_700_000_000_000_000_000
	}
	return recs
}

// BenchmarkPutBatch10k stores a 10k-file burst in one Put: one transaction,
// one fsync.
func BenchmarkPutBatch10k(b *testing.B) {
	db := newTestDB(b)
	recs := benchRecords(10000)
	for b.Loop() {
		if _, err := db.Put(testRoot, recs...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(recs)), "ns/record")
}

// BenchmarkPutOne stores one record per Put, for comparison: each is a
// transaction with its own fsync.
func BenchmarkPutOne(b *testing.B) {
	db := newTestDB(b)
	recs := benchRecords(10000)
	i := 0
	for b.Loop() {
		if _, err := db.Put(testRoot, recs[i%len(recs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkSince10k(b *testing.B) {
	db := newTestDB(b)
	if _, err := db.Put(testRoot, benchRecords(10000)...); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		n := 0
		if err := db.Since(testRoot, 0, func(Record) error { n++; return nil }); err != nil || n != 10000 {
			b.Fatalf("Since = %d records, %v", n, err)
		}
	}
}
