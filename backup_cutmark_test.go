package evlog

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// cutMarkFixture backs up a log of 4 events, then appends tail(h, at) —
// h the header of the backup's copy of the newest segment, at the end of
// what the manifest lists of it — to that copy and lists it with the
// tail (as a pass that copied a mark the writer then cut would have), and
// appends grow events to the log, where the tail was.
func cutMarkFixture(t *testing.T, tail func(h segment.Header, at int64) []byte, grow int) (*Log, *vfs.Mem) {
	t.Helper()
	ctx := t.Context()
	l := openMem(t, vfs.NewMem(), Options{})
	t.Cleanup(func() { l.Close() })
	appendN(t, l, "a", 4)
	b := vfs.NewMem()
	if _, err := l.backupFS(ctx, b, "backup", BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	listTail(t, b, tail)
	appendN(t, l, "grown", grow)
	return l, b
}

// listTail appends tail(h, at) to the backup's copy of its newest segment
// and lists the copy with it.
func listTail(t *testing.T, b *vfs.Mem, tail func(h segment.Header, at int64) []byte) {
	t.Helper()
	m, err := readManifest(b, "backup")
	if err != nil {
		t.Fatal(err)
	}
	last := &m.Files[len(m.segments())-1]
	data, err := b.ReadFile(last.Name)
	if err != nil {
		t.Fatal(err)
	}
	h, err := segment.DecodeHeader(data)
	if err != nil {
		t.Fatal(err)
	}
	data = append(data[:last.Size:last.Size], tail(h, last.Size)...)
	sum := sha256.Sum256(data)
	last.Size, last.SHA256 = int64(len(data)), hex.EncodeToString(sum[:])
	if err := b.WriteFile(last.Name, data); err != nil {
		t.Fatal(err)
	}
	if err := writeManifest(b, m); err != nil {
		t.Fatal(err)
	}
}

// marks returns a tail of n genuine mark frames.
func marks(n int) func(h segment.Header, at int64) []byte {
	return func(h segment.Header, at int64) []byte {
		var out []byte
		for range n {
			out = segment.AppendMarkFrame(out, h, at+int64(len(out)), false)
		}
		return out
	}
}

// backupFiles returns every file of b and its bytes.
func backupFiles(t *testing.T, b *vfs.Mem) map[string]string {
	t.Helper()
	names, err := b.List()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range names {
		data, err := b.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = string(data)
	}
	return out
}

// TestIncrementalAfterACutMark: the backup's copy of the newest segment
// ends with mark frames the writer cut after a failed write, and the log
// has since appended events where they were. The log no longer starts
// with the bytes the backup lists, but lost no event: the pass must list
// the copy without the marks and append the log's new bytes, not refuse
// it (ErrBackupDiverged) forever. A tail that holds anything but genuine
// whole marks (an event or commit frame, a batch the log lost, a mark of
// another segment, a torn mark) is a log rewritten under the backup: the
// pass must refuse it and leave the backup as it was.
func TestIncrementalAfterACutMark(t *testing.T) {
	ctx := t.Context()
	otherKey := func(h segment.Header) segment.Header {
		h.MarkKey[0] ^= 0xff
		return h
	}
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T) (*Log, *vfs.Mem)
		shorter bool  // the log is shorter than the backup's copy
		wantErr error // nil: the pass succeeds
	}{{
		name: "a mark cut, the log grown",
		setup: func(t *testing.T) (*Log, *vfs.Mem) {
			return cutMarkFixture(t, marks(1), 3)
		},
	}, {
		name: "marks cut, the log grown by less than them",
		setup: func(t *testing.T) (*Log, *vfs.Mem) {
			return cutMarkFixture(t, marks(40), 1)
		},
		shorter: true,
	}, {
		name: "an event frame after a mark",
		setup: func(t *testing.T) (*Log, *vfs.Mem) {
			return cutMarkFixture(t, func(h segment.Header, at int64) []byte {
				out := segment.AppendMarkFrame(nil, h, at, false)
				out = segment.AppendFrame(out, segment.KindEvent, []byte("an event the log lost"))
				return segment.AppendMarkFrame(out, h, at+int64(len(out)), false)
			}, 3)
		},
		wantErr: ErrBackupDiverged,
	}, {
		name: "a commit frame before a mark",
		setup: func(t *testing.T) (*Log, *vfs.Mem) {
			return cutMarkFixture(t, func(h segment.Header, at int64) []byte {
				out := segment.AppendCommitFrame(nil, segment.Commit{FirstSeq: 5, Count: 1, DurableEnd: at})
				return segment.AppendMarkFrame(out, h, at+int64(len(out)), false)
			}, 3)
		},
		wantErr: ErrBackupDiverged,
	}, {
		name: "a mark of another segment",
		setup: func(t *testing.T) (*Log, *vfs.Mem) {
			return cutMarkFixture(t, func(h segment.Header, at int64) []byte {
				return segment.AppendMarkFrame(nil, otherKey(h), at, false)
			}, 3)
		},
		wantErr: ErrBackupDiverged,
	}, {
		name: "a torn mark",
		setup: func(t *testing.T) (*Log, *vfs.Mem) {
			return cutMarkFixture(t, func(h segment.Header, at int64) []byte {
				out := segment.AppendMarkFrame(nil, h, at, false)
				out[len(out)-1] ^= 0x01
				return out
			}, 3)
		},
		wantErr: ErrBackupDiverged,
	}, {
		// A power loss took the last batch (which a read-only pass had
		// copied, with the mark after it), and the restarted writer
		// appended other events at its seqs: a real rewrite.
		name: "a batch the log lost",
		setup: func(t *testing.T) (*Log, *vfs.Mem) {
			mem := vfs.NewMem()
			w := openMem(t, mem, Options{})
			appendN(t, w, "a", 3)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			before := mem.Clone()
			w = openMem(t, mem, Options{})
			appendN(t, w, "lost", 1)
			b := vfs.NewMem()
			if _, err := w.backupFS(ctx, b, "backup", BackupOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			l := openMem(t, before, Options{})
			t.Cleanup(func() { l.Close() })
			appendN(t, l, "grown", 3)
			return l, b
		},
		wantErr: ErrBackupDiverged,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			src, b := tc.setup(t)
			prev, err := readManifest(b, "backup")
			if err != nil {
				t.Fatal(err)
			}
			last := prev.Files[len(prev.segments())-1]
			segs, err := src.Segments()
			if err != nil {
				t.Fatal(err)
			}
			logSize := segs[len(segs)-1].Bytes
			if segs[len(segs)-1].File != last.Name || (logSize < last.Size) != tc.shorter {
				t.Fatalf("the case wants the log's %s (%d bytes) shorter than the copy (%d bytes): %v", last.Name, logSize, last.Size, tc.shorter)
			}
			files := backupFiles(t, b)
			res, err := src.backupFS(ctx, b, "backup", BackupOptions{Incremental: true})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("incremental pass: %v, want %v", err, tc.wantErr)
				}
				if diff := cmp.Diff(files, backupFiles(t, b)); diff != "" {
					t.Errorf("the refused pass changed the backup (-before +after):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("incremental pass: %v", err)
			}
			if want := src.LastSeq(); res.Seq != want {
				t.Errorf("incremental pass: seq %d, want %d", res.Seq, want)
			}
			if _, err := verifyBackupFS(ctx, vfs.ReadOnly(b), "backup", VerifyBackupOptions{}); err != nil {
				t.Fatalf("VerifyBackup after the pass: %v", err)
			}
			rs, err := restoreState(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			if all := readAll(t, src); !envsEqual(rs.events, all) {
				t.Errorf("the backup restores %d events, not the log's %d", len(rs.events), len(all))
			}
		})
	}
}
