// Package delta encodes a file as the difference from the copy the receiver
// already has, rsync-style, so that a changed file costs the changed bytes on
// the wire rather than the whole file.
//
// It owns: the block signature of the receiver's copy (Sign), the delta the
// sender computes from the signature and the new content (Diff), rebuilding
// the new content from the old copy and the delta (Apply), and the versioned
// binary encodings of signatures and deltas. It does not own when a delta is
// worth it (small files go whole), the messages or channels that carry the
// encodings (pipe), nor temporary files and renames (the caller writes
// Apply's output to a temp file and renames it only when Apply returns nil).
//
// # Flow
//
//	receiver: sig := Sign(old, size); sig.WriteTo(conn)
//	sender:   sig := ReadSignature(conn, max); Diff(sig, newFile, conn)
//	receiver: Apply(old, conn, tmp, limits) -> nil only if tmp holds exactly
//	          the content whose BLAKE3 hash the sender put in the delta.
//
// # Blocks and checksums
//
// The old copy is cut into blocks of BlockSize(size) bytes (about the square
// root of the size, in [MinBlockSize, 128 KiB]; larger for files over
// 128 GiB so that no signature has more than MaxBlocks blocks); the last block
// may be shorter. Each block has a weak rolling checksum and a strong hash,
// the first 16 bytes of its BLAKE3-256 digest.
//
// The weak checksum is rsync's (and Adler-32's) pair of running sums, with
// one change: each byte contributes a 32-bit value from a 256-entry table
// derived from a random per-signature seed instead of its own value. With
// window length n, bytes x_0..x_{n-1} and table T,
//
//	a = Σ T[x_i]            b = Σ (n-i)·T[x_i]            (mod 2^32)
//	weak = a XOR rotl32(b, 16)
//
// Sliding the window by one byte (x_0 out, x_n in) is O(1):
//
//	a' = a - T[x_0] + T[x_n]        b' = b - n·T[x_0] + a'
//
// The table spreads text (whose bytes span a narrow range) over all 32 bits,
// and since the seed is unknown to whoever writes the files, nobody can craft
// content whose windows all collide with a block's weak sum and force a strong
// hash at every byte.
//
// Diff slides a window over the new content. Right after a match it first
// tries the next block by strong hash alone (the common case: unchanged
// data), so an unchanged region costs one BLAKE3 pass over its blocks (and
// one for the whole-file hash) and no weak sums. Where nothing matches it rolls the weak sum byte by byte through a bit filter;
// only a filter hit costs a map lookup, and only an exact weak hit costs a
// strong hash. A short last block can only match at the end of the new file.
//
// # Encodings
//
// Integers are unsigned LEB128 varints (uvar) in their shortest form (a
// padded varint is corrupt, so every value has one encoding) unless a width
// is given; fixed widths are little-endian.
//
// Signature, version 1:
//
//	"TDSG" | u8 version=1 | uvar fileSize | uvar blockSize | u64 seed
//	then ceil(fileSize/blockSize) times: u32 weak | [16]byte strong
//
// Delta, version 1:
//
//	"TDDL" | u8 version=1 | uvar oldSize | uvar blockSize
//	then ops, each starting with a one-byte tag:
//	  0x01 copy:    uvar first | uvar count          old blocks [first, first+count)
//	  0x02 zstd:    uvar rawLen | uvar zLen | zLen bytes (one or more zstd frames)
//	  0x03 literal: uvar rawLen | rawLen bytes (stored, when zstd does not help)
//	  0x00 end:     uvar newSize | [32]byte BLAKE3-256 of the new content
//
// Runs of consecutive blocks are one copy op; literal data goes in chunks of
// at most 128 KiB, each compressed on its own. Nothing follows the end op:
// the decoders never read past it, so the encodings can be embedded in a
// longer stream.
//
// # Limits
//
// Decoders check every length before using it. They allocate as input
// arrives, at most one literal chunk ahead of it, never in proportion to a
// length they were told:
//
//   - a signature or delta names a block size in [MinWireBlockSize,
//     MaxBlockSize], a file of at most MaxFileSize bytes and at most
//     MaxBlocks blocks; ReadSignature also refuses files over its
//     maxFileSize argument. A signature costs 20 bytes per block in memory,
//     at most 20 MiB.
//   - a literal op carries 1..MaxLiteralChunk raw bytes and, compressed,
//     1..MaxLiteralChunk wire bytes; its zstd frames may not decode to more
//     than the stated raw length nor use a window over MaxLiteralChunk.
//   - a copy op names at least one block, all of them inside the old copy.
//   - Apply stops with ErrTooLarge before writing past Limits.MaxNewSize.
//
// Memory: Apply holds at most 2·MaxLiteralChunk for literals, a 256 KiB
// copy buffer and the zstd decoder's state for one 1 MiB window. Diff holds a
// 128 KiB + 2·blockSize + 256 KiB window on the new file and an index of
// about 30 bytes per signature block, so never the whole file.
package delta
