package delta

import (
	"math/bits"

	"github.com/zeebo/blake3"
)

// weakTable holds each byte value's summand in the weak checksum; see the
// package documentation.
type weakTable [256]uint32

// newWeakTable derives the table from a signature's seed with SplitMix64.
func newWeakTable(seed uint64) *weakTable {
	var t weakTable
	x := seed
	for i := range t {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		z ^= z >> 31
		t[i] = uint32(z >> 32)
	}
	return &t
}

// sums returns the running sums (a, b) of the weak checksum of p.
func (t *weakTable) sums(p []byte) (a, b uint32) {
	// Four bytes per step, with b's four updates folded into one so that
	// the steps do not wait on each other:
	// b += (a+t0) + (a+t0+t1) + (a+t0+t1+t2) + (a+t0+t1+t2+t3).
	for len(p) >= 4 {
		t0, t1, t2, t3 := t[p[0]], t[p[1]], t[p[2]], t[p[3]]
		b += 4*a + 4*t0 + 3*t1 + 2*t2 + t3
		a += t0 + t1 + t2 + t3
		p = p[4:]
	}
	for _, c := range p {
		a += t[c]
		b += a
	}
	return a, b
}

// weakOf combines the running sums into the weak checksum.
func weakOf(a, b uint32) uint32 {
	return a ^ bits.RotateLeft32(b, 16)
}

// strongSum is a block's strong hash: the first strongLen bytes of its
// BLAKE3-256 digest.
func strongSum(p []byte) (s [strongLen]byte) {
	full := blake3.Sum256(p)
	copy(s[:], full[:strongLen])
	return s
}
