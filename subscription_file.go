package evlog

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"time"

	"github.com/evlog/evlog/internal/vfs"
)

// Durable subscription position files (docs/FORMAT.md, "Subscription
// files"). Wire constants: never change them; a new layout gets a new
// version.
//
//	offset  size  field
//	0       6     magic "evlsub"
//	6       1     version (1)
//	7       1     flags (0)
//	8       8     position: the last acknowledged seq (uint64, little endian)
//	16      16    log ID
//	32      8     time of the acknowledgement, unix ns (int64)
//	40      4     filter length n (uint32, at most subMaxFilter)
//	44      n     filter, JSON ({"types":[…],"stream_prefixes":[…],"categories":[…]})
//	44+n    4     CRC32-C of bytes [0, 44+n)
const (
	SubscriptionExt = ".sub" // NAME.sub; NAME.sub.tmp while being replaced

	subMagic      = "evlsub"
	subVersion    = 1
	subVersionOff = 6
	subFlagsOff   = 7
	subPosOff     = 8
	subLogIDOff   = 16
	subTimeOff    = 32
	subFilterLen  = 40
	subFixedSize  = 44
	subMaxFilter  = 64 << 10
	subMaxNameLen = 100
)

// subFilterJSON is the filter's encoding in a position file.
type subFilterJSON struct {
	Types          []string `json:"types,omitempty"`
	StreamPrefixes []string `json:"stream_prefixes,omitempty"`
	Categories     []string `json:"categories,omitempty"`
}

var subCRC = crc32.MakeTable(crc32.Castagnoli)

// subFilterBytes returns f's encoding in a position file, or an error
// matching ErrInvalidFilter if it is longer than a position file holds
// (JSON escapes some bytes, such as '<', as six).
func subFilterBytes(f Filter) ([]byte, error) {
	fj, err := json.Marshal(subFilterJSON(f))
	if err != nil {
		return nil, err
	}
	if len(fj) > subMaxFilter {
		return nil, fmt.Errorf("%w: a subscription's filter encodes to %d bytes, more than the %d its position file holds; select fewer types or prefixes (or filter the events in the subscriber)", ErrInvalidFilter, len(fj), subMaxFilter)
	}
	return fj, nil
}

// encodeSubscription returns the bytes of a position file.
func encodeSubscription(pos uint64, logID [16]byte, t time.Time, f Filter) ([]byte, error) {
	fj, err := subFilterBytes(f)
	if err != nil {
		return nil, err
	}
	b := make([]byte, subFixedSize, subFixedSize+len(fj)+4)
	copy(b, subMagic)
	b[subVersionOff], b[subFlagsOff] = subVersion, 0
	binary.LittleEndian.PutUint64(b[subPosOff:], pos)
	copy(b[subLogIDOff:subTimeOff], logID[:])
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	binary.LittleEndian.PutUint64(b[subTimeOff:], uint64(ns))
	binary.LittleEndian.PutUint32(b[subFilterLen:], uint32(len(fj)))
	b = append(b, fj...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, subCRC)), nil
}

// decodeSubscription decodes a position file's bytes.
func decodeSubscription(b []byte) (pos uint64, logID [16]byte, t time.Time, f Filter, err error) {
	if len(b) < subFixedSize+4 || string(b[:len(subMagic)]) != subMagic {
		return 0, logID, t, f, errors.New("not a subscription position file (bad magic or too short)")
	}
	if b[subVersionOff] != subVersion {
		return 0, logID, t, f, fmt.Errorf("position file version %d, this build reads %d (upgrade evlog)", b[subVersionOff], subVersion)
	}
	n := binary.LittleEndian.Uint32(b[subFilterLen:])
	if n > subMaxFilter || int(n) != len(b)-subFixedSize-4 {
		return 0, logID, t, f, fmt.Errorf("filter length %d does not match the file's size %d", n, len(b))
	}
	body := b[:len(b)-4]
	if got, want := crc32.Checksum(body, subCRC), binary.LittleEndian.Uint32(b[len(body):]); got != want {
		return 0, logID, t, f, fmt.Errorf("checksum mismatch (stored %08x, computed %08x)", want, got)
	}
	if b[subFlagsOff] != 0 {
		return 0, logID, t, f, fmt.Errorf("unknown flags %#x", b[subFlagsOff])
	}
	var fj subFilterJSON
	if err := json.Unmarshal(body[subFixedSize:], &fj); err != nil {
		return 0, logID, t, f, fmt.Errorf("filter: %v", err)
	}
	f = Filter(fj)
	if err := f.Validate(); err != nil {
		return 0, logID, t, f, fmt.Errorf("filter: %v", err)
	}
	copy(logID[:], b[subLogIDOff:subTimeOff])
	if ns := int64(binary.LittleEndian.Uint64(b[subTimeOff:])); ns != 0 {
		t = time.Unix(0, ns).UTC()
	}
	return binary.LittleEndian.Uint64(b[subPosOff:]), logID, t, f, nil
}

// readSubscription reads name's position file (ok false if there is none).
func (l *Log) readSubscription(name string) (SubscriptionInfo, bool, error) {
	file := name + SubscriptionExt
	b, err := readSmallFile(l.fs, file, subFixedSize+subMaxFilter+4)
	if errors.Is(err, fs.ErrNotExist) {
		return SubscriptionInfo{}, false, nil
	}
	if err != nil {
		return SubscriptionInfo{}, false, fmt.Errorf("evlog: reading subscription %q: %w", name, err)
	}
	pos, id, t, f, err := decodeSubscription(b)
	if err != nil {
		return SubscriptionInfo{}, false, &subFileError{file: file, reason: err.Error() + " (remove the file to start the subscription over from the first event, or restore it from a copy)"}
	}
	if logID := l.LogID(); logID != ([16]byte{}) && id != logID {
		return SubscriptionInfo{}, false, &subFileError{file: file, reason: fmt.Sprintf("it belongs to another log (log ID %x, this log's %x); remove it", id, logID)}
	}
	return SubscriptionInfo{Name: name, Filter: f, Position: pos, Updated: t}, true, nil
}

// subFileError is a damaged subscription position file; it matches
// ErrCorrupt.
type subFileError struct{ file, reason string }

func (e *subFileError) Error() string {
	return "evlog: damaged subscription position file " + e.file + ": " + e.reason
}

func (e *subFileError) Is(target error) bool { return target == ErrCorrupt }

// readSmallFile reads a regular file of at most limit bytes.
func readSmallFile(fsys vfs.FS, name string, limit int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	if size > limit {
		return nil, &subFileError{file: name, reason: fmt.Sprintf("%d bytes, more than %d", size, limit)}
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF) && size == 0) {
		return nil, err
	}
	return b, nil
}

// writeSubscription replaces name's position file atomically and durably:
// temporary, fsync, rename, directory fsync. On a failure before the
// rename the previous file stays and the temporary is removed; after it
// (the directory fsync) the new position is in place but may not survive
// a crash.
func (l *Log) writeSubscription(name string, pos uint64, t time.Time, filter Filter) error {
	// The new file's entry would rely on a directory fsync after a
	// failed one, which proves nothing (dirsync.go).
	if err := l.dirSyncFailure(); err != nil {
		return fmt.Errorf("evlog: storing the position of subscription %q: nothing was written (the previous one stays): %w", name, err)
	}
	b, err := encodeSubscription(pos, l.LogID(), t, filter)
	if err != nil {
		return err
	}
	file := name + SubscriptionExt
	tmp := file + ".tmp"
	fail := func(err error) error {
		// Nothing else ever removes a subscription's temporary.
		if rerr := l.fs.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
		return fmt.Errorf("evlog: storing the position of subscription %q (the previous one stays; Ack again): %w", name, err)
	}
	f, err := l.fs.Create(tmp)
	if err != nil {
		return fail(err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = l.fs.Rename(tmp, file)
	}
	if err != nil {
		return fail(err)
	}
	if err := l.fs.SyncDir(); err != nil {
		return fmt.Errorf("evlog: storing the position of subscription %q: it is in place, but syncing the directory failed, so it may not survive a crash: %w", name, err)
	}
	return nil
}
