package snapshot

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// CopyAs writes to w a copy of the snapshot file r (size bytes, named
// file) that belongs to the log id: the same bytes but for the log ID
// in the header and the two checksums that cover it. The source is checked
// first as Verify checks it (checksums, frame, decompressed size bounded by
// maxRaw; 0 means DefaultMaxRawSize; the header agrees with the name
// file, which must be a snapshot file name): damage is a *CorruptError and
// nothing is written. A restore uses it to re-anchor the snapshots it
// keeps to the restored log's new ID. It returns the copy's metadata (File
// unset); it does not sync w.
func CopyAs(w io.Writer, file string, r io.ReaderAt, size int64, id [16]byte, maxRaw int64) (Meta, error) {
	if maxRaw <= 0 {
		maxRaw = DefaultMaxRawSize
	}
	m, _, err := decode(file, r, size, maxRaw, false)
	if err != nil {
		return Meta{}, err
	}
	if err := checkFileName(file, &m); err != nil {
		return Meta{}, err
	}
	m.File = ""
	_, hdr, err := readHeader(file, r, size, maxRaw)
	if err != nil {
		return Meta{}, err
	}
	hdr = append([]byte(nil), hdr...)
	copy(hdr[offLogID:], id[:])
	hlen := len(hdr)
	binary.LittleEndian.PutUint32(hdr[hlen-crcLen:], crc32.Checksum(hdr[:hlen-crcLen], castagnoli))
	payload := make([]byte, m.CompressedSize)
	if _, err := r.ReadAt(payload, int64(hlen)); err != nil {
		return Meta{}, fmt.Errorf("evlog/snapshot: read %s: %w", file, err)
	}
	sum := crc32.Update(crc32.Checksum(hdr, castagnoli), castagnoli, payload)
	out := append(hdr, payload...)
	out = binary.LittleEndian.AppendUint32(out, sum)
	if _, err := w.Write(out); err != nil {
		return Meta{}, err
	}
	m.LogID = id
	return m, nil
}
