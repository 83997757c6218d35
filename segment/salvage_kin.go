package segment

import (
	"context"
	"errors"
	"io"
)

// Kinship is what the frames of a segment file whose header is damaged
// still prove about the log that wrote it (see SalvageKin).
type Kinship int

const (
	// KinUnknown: nothing in the file proves which log wrote it (no mark
	// verifies: a version 1 or compacted segment, marks damaged, or the
	// header's mark key among the damaged bytes).
	KinUnknown Kinship = iota
	// KinOwn: a mark verifies with the log's ID and the first seq and
	// generation of the file's name: the log wrote the file under that
	// name.
	KinOwn
	// KinForeign: a mark verifies with another log ID, the one the damaged
	// header holds: that log wrote the file.
	KinForeign
)

// maxKinFrames bounds how many frames SalvageKin reads looking for a mark
// (the writer puts one right after the header and after every fsync).
const maxKinFrames = 1 << 16

// SalvageKin reports which log wrote the segment file ra of size bytes,
// whose header does not decode (so the log ID it holds cannot be trusted),
// from its marks: a mark's tag is an HMAC keyed by the header's mark key
// over the writer's log ID, the segment's first seq and generation and the
// mark's offset, so a mark that verifies proves all of them, and that the
// mark key's bytes are intact. The file is expected to belong to the log
// with ID log under the name's first seq base and generation gen
// (KinOwn); a mark verifying instead with the log ID, first seq and
// generation the damaged header holds, when that log ID is another, proves
// the file another log's (KinForeign, with that ID). It reads the frames
// from HeaderSize up to the first invalid one or the end of the records
// (at most maxKinFrames), and only reads. Errors are ra's or ctx's.
func SalvageKin(ctx context.Context, ra io.ReaderAt, size int64, log LogID, base, gen uint64) (Kinship, LogID, error) {
	if size < HeaderSize {
		return KinUnknown, LogID{}, nil
	}
	var hb [HeaderSize]byte
	if err := readFull(ra, hb[:], 0); err != nil {
		return KinUnknown, LogID{}, err
	}
	own := Header{Version: 2, LogID: log, BaseSeq: base, Generation: gen}
	copy(own.MarkKey[:], hb[hdrMarkKeyOff:])
	held := own
	copy(held.LogID[:], hb[hdrLogIDOff:])
	held.BaseSeq = le.Uint64(hb[hdrBaseSeqOff:])
	held.Generation = le.Uint64(hb[hdrGenerationOff:])
	r := NewReader(ra, HeaderSize, size)
	for n := 0; n < maxKinFrames; n++ {
		if n%256 == 255 {
			if err := ctx.Err(); err != nil {
				return KinUnknown, LogID{}, err
			}
		}
		f, err := r.Next()
		if _, ok := errors.AsType[*FrameError](err); ok || errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return KinUnknown, LogID{}, err
		}
		switch f.Kind {
		case KindEvent, KindCommit:
			continue
		case KindMark:
		default:
			return KinUnknown, LogID{}, nil // the footer: the records end here
		}
		if _, ok := VerifyMark(own, f.Payload, f.Offset); ok {
			return KinOwn, log, nil
		}
		if held.LogID != log {
			if _, ok := VerifyMark(held, f.Payload, f.Offset); ok {
				return KinForeign, held.LogID, nil
			}
		}
	}
	return KinUnknown, LogID{}, nil
}
