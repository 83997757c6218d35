package snapshot

// A snapshot file's encoding: the process-wide zstd coders, and encode and
// decode of a whole file (header, compressed state, file checksum).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Decoder limits. A zstd frame asking for a larger window is corrupt; our
// encoder never uses more than 8 MiB.
const (
	maxWindow = 16 << 20
	// outputSlack is the spare capacity given to the decompression buffer
	// beyond RawSize: a block may overshoot the declared size by up to one
	// block before the decoder notices, and the buffer must never grow.
	outputSlack = maxBlockSize + 64
)

// decoder is the process-wide zstd decoder. DecodeAll is safe for
// concurrent use; the concurrency option bounds how many decodes run at
// once (and how many block decoders it keeps). The per-call output cap is
// the capacity of the buffer passed in (WithDecodeAllCapLimit), sized from
// the header's RawSize, which Options.MaxRawSize bounds.
var decoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(min(runtime.GOMAXPROCS(0), 4)),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(maxWindow),
		zstd.WithDecoderMaxMemory(uint64(MaxRawSizeLimit)+outputSlack),
		zstd.WithDecodeAllCapLimit(true),
	)
})

// encoders holds one process-wide zstd encoder per level, created on first
// use. EncodeAll is safe for concurrent use and, for a given level and
// library version, deterministic.
var encoders = func() map[zstd.EncoderLevel]func() (*zstd.Encoder, error) {
	m := map[zstd.EncoderLevel]func() (*zstd.Encoder, error){}
	for l := zstd.SpeedFastest; l <= zstd.SpeedBestCompression; l++ {
		m[l] = sync.OnceValues(func() (*zstd.Encoder, error) {
			return zstd.NewWriter(nil,
				zstd.WithEncoderLevel(l),
				zstd.WithEncoderConcurrency(min(runtime.GOMAXPROCS(0), 2)),
				zstd.WithEncoderCRC(true),
				zstd.WithZeroFrames(true),
			)
		})
	}
	return m
}()

// encodeBufs recycles Save's file buffers, which are sized for the worst
// case (incompressible state) and so can be much larger than the file.
var encodeBufs = sync.Pool{New: func() any { return new([]byte) }}

// readBufs recycles the buffers decode reads payloads into, and those it
// decompresses into when it only verifies.
var readBufs = sync.Pool{New: func() any { return new([]byte) }}

// encode returns the complete file for m (Name, LogID, Seq, Time and
// SchemaVersion set and valid) and state, compressed at level, and the
// metadata with RawSize and CompressedSize set. The file is built in dst,
// reallocated if its capacity is short.
//
//	header (see appendHeader) | zstd frame | CRC-32C of everything before
func encode(m Meta, state []byte, level zstd.EncoderLevel, dst []byte) ([]byte, Meta, error) {
	return encodeV(versionFor(&m), m, state, level, dst)
}

// encodeV is encode in format version v (the golden files of older
// versions are written with it).
func encodeV(v uint16, m Meta, state []byte, level zstd.EncoderLevel, dst []byte) ([]byte, Meta, error) {
	enc, err := encoders[level]()
	if err != nil {
		return nil, Meta{}, fmt.Errorf("evlog/snapshot: zstd encoder: %w", err)
	}
	if v == formatVersion1 {
		m.Anchor = 0 // version 1 has no anchor
	}
	if v < formatVersion3 {
		m.Scope = 0
	}
	if v < formatVersion4 {
		m.Unfolded = SeqRanges{}
	}
	hlen := headerLenV(v, len(m.Name), m.Unfolded.Len())
	if need := hlen + enc.MaxEncodedSize(len(state)) + trailerLen; cap(dst) < need {
		dst = make([]byte, 0, need)
	}
	buf := enc.EncodeAll(state, dst[:hlen])
	m.RawSize = int64(len(state))
	m.CompressedSize = int64(len(buf) - hlen)
	appendHeader(buf[:0], &m, v)
	buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli))
	return buf, m, nil
}

// decode reads and checks the snapshot file r of size bytes named file:
// header, file checksum, frame structure and decompressed size, with every
// allocation bounded by maxRaw (the payload by maxCompressedLen(maxRaw),
// the output by maxRaw plus one block). It returns the metadata (File
// unset) and, if wantState, the state, which the caller owns (without it,
// the state is decompressed into a recycled buffer and dropped). Damage is
// a *CorruptError; read failures are returned as they are.
func decode(file string, r io.ReaderAt, size, maxRaw int64, wantState bool) (Meta, []byte, error) {
	m, hdr, err := readHeader(file, r, size, maxRaw)
	if err != nil {
		return Meta{}, nil, err
	}
	hlen := int64(len(hdr))
	// The payload and trailer, in a recycled buffer: only the state
	// escapes.
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	if need := int(m.CompressedSize + trailerLen); cap(*bp) < need {
		*bp = make([]byte, need)
	}
	rest := (*bp)[:m.CompressedSize+trailerLen]
	if n, err := r.ReadAt(rest, hlen); err != nil && !(errors.Is(err, io.EOF) && n == len(rest)) {
		if errors.Is(err, io.EOF) {
			// The file shrank since its size was taken.
			return Meta{}, nil, &CorruptError{File: file, Offset: hlen, Reason: "truncated payload", Err: err}
		}
		return Meta{}, nil, fmt.Errorf("evlog/snapshot: read %s: %w", file, err)
	}
	payload := rest[:m.CompressedSize]
	crcOff := hlen + m.CompressedSize
	got := crc32.Update(crc32.Checksum(hdr, castagnoli), castagnoli, payload)
	if want := binary.LittleEndian.Uint32(rest[m.CompressedSize:]); got != want {
		return Meta{}, nil, &CorruptError{File: file, Offset: crcOff,
			Reason: fmt.Sprintf("file checksum mismatch (computed %#08x, stored %#08x)", got, want)}
	}
	if reason, off := checkFrame(payload, m.RawSize); reason != "" {
		return Meta{}, nil, &CorruptError{File: file, Offset: hlen + int64(off), Reason: reason}
	}
	dec, err := decoder()
	if err != nil {
		return Meta{}, nil, fmt.Errorf("evlog/snapshot: zstd decoder: %w", err)
	}
	need := int(m.RawSize + outputSlack)
	var out []byte
	if wantState {
		out = make([]byte, 0, need)
	} else {
		// Verifying only: decompress into a recycled buffer.
		op := readBufs.Get().(*[]byte)
		defer func() {
			*op = out[:0]
			readBufs.Put(op)
		}()
		if cap(*op) < need {
			*op = make([]byte, 0, need)
		}
		out = (*op)[:0]
	}
	out, err = dec.DecodeAll(payload, out)
	if err != nil {
		return Meta{}, nil, &CorruptError{File: file, Offset: hlen, Reason: "payload does not decompress", Err: err}
	}
	if int64(len(out)) != m.RawSize {
		return Meta{}, nil, &CorruptError{File: file, Offset: hlen,
			Reason: fmt.Sprintf("payload decompresses to %d bytes, the header declares %d", len(out), m.RawSize)}
	}
	if !wantState {
		return m, nil, nil
	}
	return m, out[:len(out):len(out)], nil
}

// readHeader reads and decodes the header of the file r of size bytes. It
// returns the metadata and the raw header bytes.
func readHeader(file string, r io.ReaderAt, size, maxRaw int64) (Meta, []byte, error) {
	b := make([]byte, min(size, maxHeaderLen))
	if n, err := r.ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF) && n == len(b)) {
		if errors.Is(err, io.EOF) {
			return Meta{}, nil, &CorruptError{File: file, Offset: int64(n), Reason: "truncated header", Err: err}
		}
		return Meta{}, nil, fmt.Errorf("evlog/snapshot: read %s: %w", file, err)
	}
	m, hlen, err := decodeHeader(file, b, size, maxRaw)
	if err != nil {
		return Meta{}, nil, err
	}
	return m, b[:hlen], nil
}
