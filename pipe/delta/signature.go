package delta

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// BlockSize is the block size Sign uses for a file of fileSize bytes: the
// square root of the size, rounded up to a multiple of 1 KiB and clamped to
// [MinBlockSize, 128 KiB] (8 KiB for 64 MiB), so that a signature and the
// literal data of a small edit stay about equally small. Above 128 GiB the
// block grows so that no file has more than MaxBlocks blocks, up to
// MaxBlockSize at MaxFileSize.
func BlockSize(fileSize int64) int {
	const k = 1 << 10
	fileSize = max(fileSize, 0)
	b := int64(math.Sqrt(float64(fileSize)))
	b = (b + k - 1) / k * k
	b = min(max(b, MinBlockSize), sqrtMaxBlockSize)
	if need := (fileSize + MaxBlocks - 1) / MaxBlocks; need > b {
		b = (need + k - 1) / k * k
	}
	return int(min(b, MaxBlockSize))
}

// Signature describes the receiver's copy of a file block by block: enough
// for Diff to find which parts of the new content the receiver already has.
// A Signature is immutable once made and safe for concurrent use.
type Signature struct {
	fileSize  int64
	blockSize int
	seed      uint64 // derives the weak checksum's table
	blocks    []blockSum
}

type blockSum struct {
	weak   uint32
	strong [strongLen]byte
}

// FileSize is the size of the signed file.
func (s *Signature) FileSize() int64 { return s.fileSize }

// BlockSize is the signature's block size.
func (s *Signature) BlockSize() int { return s.blockSize }

// Blocks is the number of blocks; the last one may be short.
func (s *Signature) Blocks() int { return len(s.blocks) }

// blockLen is the length of block i.
func (s *Signature) blockLen(i int) int {
	return int(min(int64(s.blockSize), s.fileSize-int64(i)*int64(s.blockSize)))
}

// Sign reads exactly size bytes from r and returns their signature, with
// block size BlockSize(size) and a fresh random seed. Input ending early is
// an error wrapping io.ErrUnexpectedEOF; Sign does not read past size bytes.
// A size over MaxFileSize is ErrTooLarge.
func Sign(r io.Reader, size int64) (*Signature, error) {
	var seed [8]byte
	_, _ = rand.Read(seed[:]) // never fails (crypto/rand)
	return sign(r, size, BlockSize(size), binary.LittleEndian.Uint64(seed[:]))
}

func sign(r io.Reader, size int64, blockSize int, seed uint64) (*Signature, error) {
	if size < 0 || size > MaxFileSize {
		return nil, fmt.Errorf("sign %d bytes: %w (limit %d)", size, ErrTooLarge, MaxFileSize)
	}
	n := (size + int64(blockSize) - 1) / int64(blockSize)
	if n > MaxBlocks {
		return nil, fmt.Errorf("sign %d bytes in blocks of %d: %w (at most %d blocks)", size, blockSize, ErrTooLarge, MaxBlocks)
	}
	sig := &Signature{fileSize: size, blockSize: blockSize, seed: seed, blocks: make([]blockSum, n)}
	t := newWeakTable(seed)

	// Read about 1 MiB of whole blocks at a time.
	per := max(1, (1<<20)/blockSize)
	buf := make([]byte, min(int64(per*blockSize), size))
	for i := 0; i < len(sig.blocks); {
		off := int64(i) * int64(blockSize)
		chunk := buf[:min(int64(len(buf)), size-off)]
		if _, err := io.ReadFull(r, chunk); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("sign: read at %d of %d bytes: %w", off, size, err)
		}
		for len(chunk) > 0 {
			p := chunk[:min(blockSize, len(chunk))]
			chunk = chunk[len(p):]
			sig.blocks[i] = blockSum{weak: weakOf(t.sums(p)), strong: strongSum(p)}
			i++
		}
	}
	return sig, nil
}

// WriteTo writes the signature's encoding (see the package documentation)
// to w, returning the number of bytes written and the first write error.
func (s *Signature) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, 0, 32<<10)
	buf = append(buf, sigMagic[:]...)
	buf = append(buf, version)
	buf = binary.AppendUvarint(buf, uint64(s.fileSize))
	buf = binary.AppendUvarint(buf, uint64(s.blockSize))
	buf = binary.LittleEndian.AppendUint64(buf, s.seed)
	var total int64
	for i, b := range s.blocks {
		buf = binary.LittleEndian.AppendUint32(buf, b.weak)
		buf = append(buf, b.strong[:]...)
		if len(buf)+4+strongLen > cap(buf) || i == len(s.blocks)-1 {
			n, err := w.Write(buf)
			total += int64(n)
			if err != nil {
				return total, fmt.Errorf("write signature: %w", err)
			}
			buf = buf[:0]
		}
	}
	if len(s.blocks) == 0 {
		n, err := w.Write(buf)
		total += int64(n)
		if err != nil {
			return total, fmt.Errorf("write signature: %w", err)
		}
	}
	return total, nil
}

// ReadSignature decodes a signature written by WriteTo. It reads exactly the
// signature's bytes from r and no more. It refuses, with ErrTooLarge, a
// signature of a file over maxFileSize bytes; with ErrCorrupt, a malformed or
// truncated one; with ErrVersion, one it cannot read. Memory grows with the
// input actually read, at most 20 bytes per block (20 MiB at MaxBlocks).
func ReadSignature(r io.Reader, maxFileSize int64) (*Signature, error) {
	w := newWireReader(r)
	if err := w.readHeader(sigMagic, "signature"); err != nil {
		return nil, err
	}
	size, blockSize, n, err := w.readGeometry("signature", maxFileSize)
	if err != nil {
		return nil, err
	}
	var seed [8]byte
	if err := w.readFull(seed[:]); err != nil {
		return nil, readErr("signature seed", err)
	}
	sig := &Signature{
		fileSize:  size,
		blockSize: blockSize,
		seed:      binary.LittleEndian.Uint64(seed[:]),
	}
	// Grow with what arrives, so that a header promising a million blocks
	// costs nothing until they come.
	const batch = 4096
	sig.blocks = make([]blockSum, 0, min(n, batch))
	buf := make([]byte, min(n, batch)*(4+strongLen))
	for len(sig.blocks) < n {
		k := min(n-len(sig.blocks), batch)
		p := buf[:k*(4+strongLen)]
		if err := w.readFull(p); err != nil {
			return nil, readErr(fmt.Sprintf("signature block %d of %d", len(sig.blocks), n), err)
		}
		for ; len(p) > 0; p = p[4+strongLen:] {
			sig.blocks = append(sig.blocks, blockSum{
				weak:   binary.LittleEndian.Uint32(p),
				strong: [strongLen]byte(p[4 : 4+strongLen]),
			})
		}
	}
	return sig, nil
}
