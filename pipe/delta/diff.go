package delta

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/zeebo/blake3"
)

// Stats describes one delta, as Diff wrote it or Apply read it.
type Stats struct {
	// NewSize is the size of the new content (read by Diff, written by
	// Apply) and Hash its BLAKE3-256 digest. Diff's Hash is of the bytes it
	// actually read: compare it with the hash the file was announced with to
	// catch a file that changed while it was being sent.
	NewSize int64
	Hash    [32]byte
	// CopyOps and CopiedBytes count copy ops and the old bytes they reuse.
	CopyOps     int
	CopiedBytes int64
	// LiteralOps and LiteralBytes count literal ops and their raw bytes.
	LiteralOps   int
	LiteralBytes int64
	// DeltaBytes is the size of the encoded delta.
	DeltaBytes int64
}

// readAhead is the least Diff asks its reader for at a time.
const readAhead = 256 << 10

// Diff reads the new content from newFile until io.EOF and writes to w the
// delta that turns the signed old copy into it (see the package
// documentation), ending with the content's size and BLAKE3-256 hash.
//
// Diff streams: it writes ops as it goes, buffers at most 128 KiB +
// 2·blockSize + 256 KiB of the new content plus 16 KiB of output, and has
// flushed everything to w when it returns nil. On error, what was written is
// an incomplete delta that Apply rejects.
func Diff(sig *Signature, newFile io.Reader, w io.Writer) (Stats, error) {
	if sig == nil {
		return Stats{}, errors.New("delta: Diff needs a signature (sign an empty old copy if there is none)")
	}
	cw := &countWriter{w: w}
	e := &encoder{w: bufio.NewWriterSize(cw, 16<<10)}
	hdr := append(deltaMagic[:], version)
	hdr = binary.AppendUvarint(hdr, uint64(sig.fileSize))
	hdr = binary.AppendUvarint(hdr, uint64(sig.blockSize))
	e.write(hdr)

	d := &differ{sig: sig, ix: newIndex(sig), t: newWeakTable(sig.seed), e: e, r: newFile, h: blake3.New()}
	if err := d.run(); err != nil {
		return e.stats, err
	}
	e.flushCopy()
	e.stats.NewSize = d.total
	d.h.Sum(e.stats.Hash[:0])
	end := []byte{opEnd}
	end = binary.AppendUvarint(end, uint64(d.total))
	end = append(end, e.stats.Hash[:]...)
	e.write(end)
	if e.err == nil {
		e.err = e.w.Flush()
	}
	e.stats.DeltaBytes = cw.n
	if e.err != nil {
		return e.stats, fmt.Errorf("write delta: %w", e.err)
	}
	return e.stats, nil
}

// index finds the blocks of a signature by weak checksum and strong hash.
// Only full-length blocks are in it: the short last block is matched apart.
type index struct {
	blocks []blockSum
	full   int // blocks[:full] are full length
	// filter has a bit set for each weak checksum's low bits (about 32 bits
	// per block), so that most windows are dismissed without a map lookup.
	filter []uint64
	mask   uint32
	// head maps a weak checksum to its first block; next chains the blocks
	// with the same weak checksum and different strong hashes. A block whose
	// weak and strong sums repeat an earlier block's is left out: the earlier
	// one serves for both.
	head map[uint32]int32
	next []int32
}

func newIndex(sig *Signature) *index {
	full := len(sig.blocks)
	if sig.fileSize%int64(sig.blockSize) != 0 {
		full--
	}
	nbits := uint(1) << min(max(bits.Len(uint(full)*32), 6), 25)
	ix := &index{
		blocks: sig.blocks,
		full:   full,
		filter: make([]uint64, nbits/64),
		mask:   uint32(nbits - 1),
		head:   make(map[uint32]int32, full),
		next:   make([]int32, full),
	}
	for i := range full {
		b := &sig.blocks[i]
		ix.next[i] = -1
		j, ok := ix.head[b.weak]
		if !ok {
			ix.head[b.weak] = int32(i)
			ix.filter[(b.weak&ix.mask)>>6] |= 1 << (b.weak & 63)
			continue
		}
		for {
			if sig.blocks[j].strong == b.strong {
				break // a repeat
			}
			if ix.next[j] < 0 {
				ix.next[j] = int32(i)
				break
			}
			j = ix.next[j]
		}
	}
	return ix
}

// mayHave reports whether a block may have weak checksum w.
func (ix *index) mayHave(w uint32) bool {
	return ix.filter[(w&ix.mask)>>6]&(1<<(w&63)) != 0
}

// find returns a full block whose sums are weak w and strongSum(win),
// preferring block hint (the one after the previous match, so that runs of
// repeated content stay one copy op). s is win's strong hash if known.
func (ix *index) find(w uint32, win []byte, hint int, s *[strongLen]byte) (int, bool) {
	j, ok := ix.head[w]
	if !ok {
		return 0, false
	}
	if s == nil {
		sum := strongSum(win)
		s = &sum
	}
	if hint >= 0 && hint < ix.full && ix.blocks[hint].weak == w && ix.blocks[hint].strong == *s {
		return hint, true
	}
	for ; j >= 0; j = ix.next[j] {
		if ix.blocks[j].strong == *s {
			return int(j), true
		}
	}
	return 0, false
}

// encoder writes ops, coalescing consecutive copies.
type encoder struct {
	w     *bufio.Writer
	err   error // first write error; later writes are dropped
	stats Stats
	// The pending copy op: blocks [runFirst, runFirst+runCount).
	runFirst, runCount int
	runBytes           int64
	zbuf               []byte
	scratch            [1 + 3*binary.MaxVarintLen64]byte
}

func (e *encoder) write(p []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(p)
	}
}

// copyBlock adds old block i, n bytes long, to the output.
func (e *encoder) copyBlock(i, n int) {
	if e.runCount > 0 && e.runFirst+e.runCount == i {
		e.runCount++
		e.runBytes += int64(n)
		return
	}
	e.flushCopy()
	e.runFirst, e.runCount, e.runBytes = i, 1, int64(n)
}

func (e *encoder) flushCopy() {
	if e.runCount == 0 {
		return
	}
	op := append(e.scratch[:0], opCopy)
	op = binary.AppendUvarint(op, uint64(e.runFirst))
	op = binary.AppendUvarint(op, uint64(e.runCount))
	e.write(op)
	e.stats.CopyOps++
	e.stats.CopiedBytes += e.runBytes
	e.runCount, e.runBytes = 0, 0
}

// literal adds p to the output as literal ops of at most literalChunk raw
// bytes, each zstd-compressed unless that does not make it smaller.
func (e *encoder) literal(p []byte) {
	if len(p) == 0 {
		return
	}
	e.flushCopy()
	for len(p) > 0 {
		chunk := p[:min(len(p), literalChunk)]
		p = p[len(chunk):]
		e.zbuf = literalEncoder().EncodeAll(chunk, e.zbuf[:0])
		var op []byte
		payload := chunk
		if len(e.zbuf) < len(chunk) {
			op = append(e.scratch[:0], opZstd)
			op = binary.AppendUvarint(op, uint64(len(chunk)))
			op = binary.AppendUvarint(op, uint64(len(e.zbuf)))
			payload = e.zbuf
		} else {
			op = append(e.scratch[:0], opLiteral)
			op = binary.AppendUvarint(op, uint64(len(chunk)))
		}
		e.write(op)
		e.write(payload)
		e.stats.LiteralOps++
		e.stats.LiteralBytes += int64(len(chunk))
	}
}

// differ is the state of one Diff: a window on the new content, kept in buf.
//
//	buf[start:pos]       pending literal bytes, less than literalChunk
//	buf[pos:pos+bs]      the window compared with the old blocks
//	buf[pos+bs:end]      read ahead
type differ struct {
	sig   *Signature
	ix    *index
	t     *weakTable
	e     *encoder
	r     io.Reader
	h     *blake3.Hasher // of everything read
	total int64          // bytes read

	buf             []byte // grows up to maxBuf
	maxBuf          int
	start, pos, end int
	eof             bool
}

// fill reads until the window holds need bytes from pos or the input ends.
// It may move the buffer's contents: offsets stay valid, slices do not.
func (d *differ) fill(need int) error {
	for empty := 0; d.end-d.pos < need && !d.eof; {
		if d.end == len(d.buf) {
			// Start small for small files, double up to maxBuf, then
			// slide: the pending literal and the window are less than
			// literalChunk + blockSize, so that frees at least readAhead.
			buf := d.buf
			if len(buf) < d.maxBuf {
				buf = make([]byte, min(2*len(buf), d.maxBuf))
			}
			n := copy(buf, d.buf[d.start:d.end])
			d.buf = buf
			d.pos -= d.start
			d.end, d.start = n, 0
		}
		n, err := d.r.Read(d.buf[d.end:])
		if n > 0 {
			d.h.Write(d.buf[d.end : d.end+n])
			d.end += n
			d.total += int64(n)
			empty = 0
		}
		switch {
		case err == io.EOF:
			d.eof = true
		case err != nil:
			return fmt.Errorf("read new content at %d: %w", d.total, err)
		case n == 0:
			if empty++; empty >= 100 {
				return fmt.Errorf("read new content at %d: %w", d.total, io.ErrNoProgress)
			}
		}
	}
	return nil
}

// match emits the pending literal and block i for the window at pos.
func (d *differ) match(i int) {
	d.e.literal(d.buf[d.start:d.pos])
	n := d.sig.blockLen(i)
	d.e.copyBlock(i, n)
	d.pos += n
	d.start = d.pos
}

func (d *differ) run() error {
	bs := d.sig.blockSize
	d.maxBuf = literalChunk + bs + max(bs, readAhead)
	d.buf = make([]byte, 2*bs+4<<10)
	ix, t := d.ix, d.t
	// The window right after a match is tried against the next block by
	// strong hash first; at the start, against block 0.
	hint := 0
	haveWeak := false
	var a, b uint32 // the weak sums of the window, when haveWeak
	for {
		if d.e.err != nil {
			// Stop reading once the delta cannot be delivered.
			return fmt.Errorf("write delta: %w", d.e.err)
		}
		if !haveWeak {
			if err := d.fill(bs); err != nil {
				return err
			}
			if d.end-d.pos < bs {
				break
			}
			win := d.buf[d.pos : d.pos+bs]
			var s *[strongLen]byte
			if hint >= 0 && hint < ix.full {
				sum := strongSum(win)
				if sum == ix.blocks[hint].strong {
					d.match(hint)
					hint++
					continue
				}
				s = &sum
			}
			a, b = t.sums(win)
			haveWeak = true
			if w := weakOf(a, b); ix.mayHave(w) {
				if j, ok := ix.find(w, win, hint, s); ok {
					d.match(j)
					hint, haveWeak = j+1, false
					continue
				}
			}
		}

		// The window at pos matches nothing: slide it.
		if d.pos+bs == d.end {
			if err := d.fill(bs + 1); err != nil {
				return err
			}
			if d.pos+bs == d.end {
				break // at the end; the window stays literal
			}
		}
		if d.pos-d.start >= literalChunk {
			d.e.literal(d.buf[d.start:d.pos])
			d.start = d.pos
		}
		// Roll byte by byte until the filter says maybe, the read-ahead
		// runs out or the pending literal is a full chunk.
		buf := d.buf[:d.end]
		pos, limit := d.pos, min(d.end-bs, d.start+literalChunk)
		nb, filter, mask := uint32(bs), ix.filter, ix.mask
		for pos < limit {
			out, in := t[buf[pos]], t[buf[pos+bs]]
			a += in - out
			b += a - nb*out
			pos++
			if w := weakOf(a, b); filter[(w&mask)>>6]&(1<<(w&63)) != 0 {
				if j, ok := ix.find(w, buf[pos:pos+bs], -1, nil); ok {
					d.pos = pos
					d.match(j)
					hint, haveWeak = j+1, false
					break
				}
			}
		}
		if haveWeak {
			d.pos = pos
		}
	}

	// Less than a block is left after pos, or the last full window did not
	// match. Only the old copy's short last block can still match, and only
	// at the very end.
	if last := len(d.sig.blocks) - 1; last >= 0 && last >= ix.full {
		n := d.sig.blockLen(last)
		if at := d.end - n; at >= d.pos {
			win := d.buf[at:d.end]
			if weakOf(t.sums(win)) == ix.blocks[last].weak && strongSum(win) == ix.blocks[last].strong {
				d.e.literal(d.buf[d.start:at])
				d.e.copyBlock(last, n)
				d.start = d.end
			}
		}
	}
	d.e.literal(d.buf[d.start:d.end])
	return nil
}
