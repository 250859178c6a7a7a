package delta

import "testing"

func BenchmarkSmallRoundTrip(b *testing.B) {
	old := []byte("hello world, hello world, hello world")
	new := []byte("hello world, hello there, hello world")
	for b.Loop() {
		roundTrip(b, old, new, 64, nil)
	}
}
