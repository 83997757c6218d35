package evlog

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/evlog/evlog/internal/vfs"
)

// Fuzz targets for the small files beside the segments: subscription
// position files and backup manifests. Both are checksummed, so each
// target can fix the checksum of the input (the fuzzer cannot forge a
// CRC or a SHA-256) to get its bytes past it to the decoder.

// FuzzSubscriptionFile decodes a position file: no panic, bounded
// allocation, and what decodes re-encodes to a file that decodes to the
// same position, log ID, time and filter.
func FuzzSubscriptionFile(f *testing.F) {
	id := [16]byte{1, 2, 3}
	for _, tc := range []struct {
		pos    uint64
		t      time.Time
		filter Filter
	}{
		{0, time.Time{}, Filter{}},
		{42, time.Unix(1700000000, 123).UTC(), Filter{Types: []string{"created", "deleted"}}},
		{1 << 40, time.Unix(0, -1).UTC(), Filter{StreamPrefixes: []string{"order-"}, Categories: []string{"user"}}},
	} {
		b, err := encodeSubscription(tc.pos, id, tc.t, tc.filter)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b[:len(b)-4], true)
	}
	f.Fuzz(func(t *testing.T, b []byte, fixCRC bool) {
		if fixCRC {
			b = binary.LittleEndian.AppendUint32(b[:len(b):len(b)], crc32.Checksum(b, subCRC))
		}
		var (
			pos   uint64
			logID [16]byte
			at    time.Time
			flt   Filter
			err   error
		)
		if n := allocBytesOf(func() { pos, logID, at, flt, err = decodeSubscription(b) }); n > uint64(16*len(b))+1<<20 {
			t.Fatalf("decoding %d bytes allocated %d", len(b), n)
		}
		if err != nil {
			return
		}
		if len(b) > subFixedSize+subMaxFilter+4 {
			t.Fatalf("accepted a %d-byte position file", len(b))
		}
		if err := flt.Validate(); err != nil {
			t.Fatalf("accepted an invalid filter: %v", err)
		}
		re, err := encodeSubscription(pos, logID, at, flt)
		if err != nil {
			// A hand-written filter may escape to more than the limit
			// (json.Marshal writes '<' as \u003c); not a decoding defect.
			return
		}
		pos2, logID2, at2, flt2, err := decodeSubscription(re)
		if err != nil {
			t.Fatalf("re-encoded position file does not decode: %v", err)
		}
		got := fmt.Sprint(pos2, logID2, at2.UnixNano(), at2.IsZero())
		if want := fmt.Sprint(pos, logID, at.UnixNano(), at.IsZero()); got != want {
			t.Fatalf("round trip: %s, want %s", got, want)
		}
		if diff := cmp.Diff(flt, flt2, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("filter round trip (-first +second):\n%s", diff)
		}
	})
}

// withManifestHeader returns body under a manifest header line whose
// checksum matches it.
func withManifestHeader(body []byte) []byte {
	sum := sha256.Sum256(body)
	return append([]byte(fmt.Sprintf("%s %d sha256:%s\n", manifestMagic, manifestVersion, hex.EncodeToString(sum[:]))), body...)
}

// FuzzBackupManifest reads a backup manifest: no panic, bounded
// allocation, every refusal matches ErrNotABackup, and what is accepted
// is consistent (check passes) and survives encoding and reading again.
func FuzzBackupManifest(f *testing.F) {
	b, _ := fuzzBackup()
	manifest, err := b.ReadFile(ManifestFile)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(manifest, false)
	for i, c := range manifest {
		if c == '\n' {
			f.Add(manifest[i+1:], true) // the body: the target adds the header
			break
		}
	}
	f.Add([]byte(`{"version":1}`), true)
	f.Add([]byte(`{"version":1,"log_id":"000102030405060708090a0b0c0d0e0f","seq":18446744073709551615,"files":[]}`), true)
	f.Fuzz(func(t *testing.T, data []byte, addHeader bool) {
		if addHeader {
			data = withManifestHeader(data)
		}
		mem := vfs.NewMem()
		if err := mem.WriteFile(ManifestFile, data); err != nil {
			t.Fatal(err)
		}
		var m *Manifest
		if n := allocBytesOf(func() { m, err = readManifest(mem, "backup") }); n > uint64(64*len(data))+1<<20 {
			t.Fatalf("reading a %d-byte manifest allocated %d", len(data), n)
		}
		if err != nil {
			if !errors.Is(err, ErrNotABackup) {
				t.Fatalf("readManifest: %v, want an error matching ErrNotABackup", err)
			}
			return
		}
		if err := m.check(); err != nil {
			t.Fatalf("accepted a manifest that does not check: %v", err)
		}
		re, err := encodeManifest(m)
		if err != nil {
			t.Fatal(err)
		}
		mem2 := vfs.NewMem()
		if err := mem2.WriteFile(ManifestFile, re); err != nil {
			t.Fatal(err)
		}
		m2, err := readManifest(mem2, "backup")
		if err != nil {
			t.Fatalf("re-encoded manifest does not read: %v", err)
		}
		if diff := cmp.Diff(m, m2, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
