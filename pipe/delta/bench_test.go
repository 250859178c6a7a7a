package delta

import (
	"bytes"
	"io"
	"testing"
)

func BenchmarkSignature64MiB(b *testing.B) {
	old := bigFile()
	b.SetBytes(big)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Sign(bytes.NewReader(old), big); err != nil {
			b.Fatal(err)
		}
	}
}

// benchDiff measures Diff of new against the 64 MiB file's signature and
// reports the delta's size.
func benchDiff(b *testing.B, new []byte) {
	old := bigFile()
	sig, err := Sign(bytes.NewReader(old), big)
	if err != nil {
		b.Fatal(err)
	}
	var st Stats
	b.SetBytes(int64(len(new)))
	b.ReportAllocs()
	for b.Loop() {
		if st, err = Diff(sig, bytes.NewReader(new), io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(st.DeltaBytes), "delta-bytes")
}

func BenchmarkDelta64MiBOneByteEdit(b *testing.B) {
	new := bytes.Clone(bigFile())
	new[big/2+12345] ^= 1
	benchDiff(b, new)
}

func BenchmarkDelta64MiBIdentical(b *testing.B) {
	benchDiff(b, bigFile())
}

func BenchmarkDelta64MiBInsert1MiB(b *testing.B) {
	old := bigFile()
	benchDiff(b, cat(old[:big/2], randBytes(99, 1<<20), old[big/2:]))
}

func BenchmarkDelta64MiBAllNew(b *testing.B) {
	benchDiff(b, randBytes(98, big))
}

// benchApply measures Apply of the delta from the 64 MiB file to new.
func benchApply(b *testing.B, new []byte) {
	old := bigFile()
	sig, err := Sign(bytes.NewReader(old), big)
	if err != nil {
		b.Fatal(err)
	}
	var enc bytes.Buffer
	if _, err := Diff(sig, bytes.NewReader(new), &enc); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(new)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Apply(bytes.NewReader(old), bytes.NewReader(enc.Bytes()), io.Discard, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApply64MiB(b *testing.B) {
	new := bytes.Clone(bigFile())
	new[big/2+12345] ^= 1
	benchApply(b, new)
}

func BenchmarkApply64MiBCompressibleLiterals(b *testing.B) {
	line := []byte("<p>tandem keeps two servers' files in sync</p>\n")
	text := bytes.Repeat(line, big/len(line)+1)[:big]
	benchApply(b, text)
}
