package evlog

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// v1Log writes a log of format version 1 (as evlog wrote before marks): one
// unsealed segment holding n committed events, one per batch, fsynced. It
// returns the events.
func v1Log(t *testing.T, mem *vfs.Mem, n int) []Envelope {
	t.Helper()
	h := segment.Header{Version: 1, LogID: segment.LogID{0x76, 0x31, 15: 1}, BaseSeq: 1, Created: t0}
	f, _, err := segment.Create(mem, h)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Envelope
	var buf []byte
	durable := int64(segment.HeaderSize)
	for i := range n {
		e := event.Envelope{Seq: uint64(i + 1), Stream: "old", Version: uint64(i + 1), Type: "v1", SchemaVersion: 1, Time: t0.Add(time.Duration(i) * time.Millisecond), Data: []byte{0xa2, 'v', '1'}}
		buf = segment.AppendEventFrame(buf[:0], &e)
		buf = segment.AppendCommitFrame(buf, segment.Commit{FirstSeq: e.Seq, Count: 1, DurableEnd: durable})
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		durable += int64(len(buf))
		out = append(out, e)
	}
	return out
}

// segHeaders returns the format version of each segment of mem.
func segVersions(t *testing.T, mem *vfs.Mem) map[string]uint16 {
	t.Helper()
	out := map[string]uint16{}
	for _, n := range segNames(t, mem) {
		s, err := segment.Open(mem, n)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = s.Header.Version
		s.Close()
	}
	return out
}

// A writer opening a log whose newest segment is of format version 1 moves
// appending to a version 2 segment at once, so that what it appends is
// recorded as durable by marks: a segment holding events is sealed (a
// roll), an empty one replaced. The old events stay readable, and damage
// to data acknowledged after the upgrade is corruption.
func TestUpgradeFromVersion1(t *testing.T) {
	for _, n := range []int{0, 3} {
		t.Run(fmt.Sprintf("%d events", n), func(t *testing.T) {
			mem := vfs.NewMem()
			old := v1Log(t, mem, n)
			opts := Options{Sync: SyncNever, Clock: fakeClock(t0.Add(time.Second), time.Millisecond)}
			l := openMem(t, mem, opts)
			want := map[string]uint16{segment.FormatFileName(1, 0): segment.FormatVersion}
			if n > 0 {
				want = map[string]uint16{segment.FormatFileName(1, 0): 1, segment.FormatFileName(uint64(n+1), 0): segment.FormatVersion}
			}
			if d := cmp.Diff(want, segVersions(t, mem)); d != "" {
				t.Fatalf("segment versions after open (-want +got):\n%s", d)
			}
			appendN(t, l, "new", 50)
			if err := l.Sync(t.Context()); err != nil {
				t.Fatal(err)
			}
			got := readAll(t, l)
			if d := cmp.Diff(old, got[:n], envCmp...); d != "" {
				t.Fatalf("version 1 events (-want +got):\n%s", d)
			}
			killed := mem.Clone()
			l.Close()
			if rep, err := verifyFS(t.Context(), vfs.ReadOnly(killed)); err != nil || len(rep.Findings) != 0 || rep.Events != uint64(n+50) {
				t.Fatalf("verify: %+v, %v", rep, err)
			}
			active := segment.FormatFileName(uint64(n+1), 0)
			data, _ := killed.ReadFile(active)
			bad := frameAt(t, data, segment.HeaderSize+5)
			flipAt(t, killed, active, segment.HeaderSize+5)
			wantCorruptAt(t, killed, opts, active, bad)
		})
	}
}

// A crash at any point of opening a version 1 log (and appending to it)
// loses nothing acknowledged and leaves a log that opens, under every
// crash model.
func TestUpgradeFromVersion1Crash(t *testing.T) {
	ctx := t.Context()
	base := vfs.NewMem()
	old := v1Log(t, base, 3)
	opts := Options{Sync: SyncAlways, Clock: fakeClock(t0.Add(time.Second), time.Millisecond)}
	run := func(fsys vfs.FS) (acked int, err error) {
		l, err := openFS(fsys, opts, false)
		if err != nil {
			return 0, err
		}
		defer l.Close()
		for range 3 {
			if _, err := l.Append(ctx, "new", ExpectAny, Envelope{Type: "e"}); err != nil {
				return acked, err
			}
			acked++
		}
		return acked, l.Close()
	}
	probe := base.Clone()
	if _, err := run(probe); err != nil {
		t.Fatal(err)
	}
	total := probe.Ops()
	for k := range total + 1 {
		mem := base.Clone()
		mem.CrashAt(k)
		acked, err := run(mem)
		if k < total && err == nil {
			t.Errorf("k=%d: the crash went unnoticed", k)
		} else if err != nil && !errors.Is(err, vfs.ErrCrashed) {
			t.Errorf("k=%d: %v", k, err)
		}
		for _, model := range vfs.CrashModels() {
			after := mem.CrashClone(model, rand.New(rand.NewPCG(uint64(k), uint64(model))))
			l, err := openFS(after, opts, false)
			if err != nil {
				t.Errorf("k=%d %v: reopen: %v", k, model, err)
				continue
			}
			got := readAll(t, l)
			l.Close()
			if len(got) < 3+acked || !envsEqual(old, got[:3]) {
				t.Errorf("k=%d %v: %d events after recovery, %d acknowledged after the 3 of version 1", k, model, len(got), acked)
			}
		}
	}
	t.Logf("crashed at each of %d ops under %d models", total+1, len(vfs.CrashModels()))
}
