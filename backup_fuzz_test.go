package evlog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
)

// fuzzBackup is a small real backup (in memory) and the events of its log.
var fuzzBackup = sync.OnceValues(func() (*vfs.Mem, []Envelope) {
	src := vfs.NewMem()
	l, err := openFS(src, Options{SegmentSize: MinSegmentSize}, false)
	if err != nil {
		panic(err)
	}
	defer l.Close()
	if err := runWorkload(t0Context(), l, genWorkload(11, 40)); err != nil {
		panic(err)
	}
	b := vfs.NewMem()
	if _, err := l.backupFS(t0Context(), b, "backup", BackupOptions{}); err != nil {
		panic(err)
	}
	var all []Envelope
	for e, err := range l.Events(t0Context(), 1) {
		if err != nil {
			panic(err)
		}
		all = append(all, e)
	}
	return b, all
})

// FuzzRestoreBackup restores a backup whose manifest is replaced by the
// input's first part and one of whose files gets the input's second part
// written at an offset (with rehash, the manifest is instead the original
// one with that file's size and checksum updated, so that the damage gets
// past the checksums to the readers): no panic, no unbounded allocation, and either a
// refusal matching ErrNotABackup or ErrBackupCorrupt, or a restored log
// that is a prefix of the source's events.
func FuzzRestoreBackup(f *testing.F) {
	b, _ := fuzzBackup()
	manifest, err := b.ReadFile(ManifestFile)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(manifest, []byte{}, uint8(0), uint32(0), false)
	f.Add(manifest, []byte{0xff}, uint8(1), uint32(100), false)
	f.Add(manifest, []byte{0xff}, uint8(1), uint32(100), true)
	f.Add(manifest, []byte{1, 2, 3, 4}, uint8(2), uint32(70), true)
	f.Add(manifest[:len(manifest)/2], []byte{}, uint8(0), uint32(0), false)
	f.Add([]byte("evlog-backup 1 sha256:00\n{}"), []byte{}, uint8(0), uint32(0), false)
	f.Fuzz(func(t *testing.T, man, patch []byte, file uint8, off uint32, rehash bool) {
		b, all := fuzzBackup()
		m := b.Clone()
		if err := m.WriteFile(ManifestFile, man); err != nil {
			t.Fatal(err)
		}
		names, _ := m.List()
		if len(patch) > 0 && len(names) > 0 {
			name := names[int(file)%len(names)]
			data, _ := m.ReadFile(name)
			if len(data) > 0 {
				at := int(off) % len(data)
				data = append(data[:at:at], append(patch, data[min(len(data), at+len(patch)):]...)...)
				m.WriteFile(name, data)
				if rehash && name != ManifestFile {
					orig, err := readManifest(b, "backup")
					if err != nil {
						t.Fatal(err)
					}
					for i := range orig.Files {
						if orig.Files[i].Name == name {
							sum := sha256.Sum256(data)
							orig.Files[i].Size, orig.Files[i].SHA256 = int64(len(data)), hex.EncodeToString(sum[:])
						}
					}
					enc, err := encodeManifest(orig)
					if err != nil {
						t.Fatal(err)
					}
					m.WriteFile(ManifestFile, enc)
				}
			}
		}
		dst := vfs.NewMem()
		var plan RestorePlan
		_, err := restoreFS(t.Context(), m, "backup", func() (vfs.FS, error) { return dst, nil }, "r", RestoreOptions{}, &plan)
		if err != nil {
			if !errors.Is(err, ErrNotABackup) && !errors.Is(err, ErrBackupCorrupt) {
				t.Fatalf("restore failed with %v, want ErrNotABackup or ErrBackupCorrupt", err)
			}
			return
		}
		rl, err := openFS(dst, Options{}, true)
		if err != nil {
			t.Fatalf("the restored log does not open: %v", err)
		}
		defer rl.Close()
		got := readAll(t, rl)
		if len(got) > len(all) || !envsEqual(got, all[:len(got)]) {
			t.Fatalf("the restored log (%d events) is not a prefix of the source's", len(got))
		}
	})
}

func t0Context() context.Context { return context.Background() }
