package evlogcli

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/internal/testhook"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/segment"
)

// TestVerifySnapshotOfGroupBeforeItsMark: under SyncAlways a reader in
// another process serves a group only once a mark records it durable. A
// snapshot saved in the writer's process from the writer's own reads
// (the stress writer's snapshot goroutine does this all the time) must
// therefore cover only groups such a reader serves: verify and state
// open the log read-only after listing the snapshots, and a snapshot
// beyond the end of the log is corruption to them. The writer is held
// after the group's fsync, before its mark (the moment a loaded machine
// may deschedule it): a snapshot saved then, then verify. It found
// "snapshot of "stats" claims seq 4, beyond the end of the log (3)" when
// the writer published a group to its own reads before writing the mark
// (TestStressReadersBesideWriter failed so, once in about 30 runs on a
// loaded machine).
func TestVerifySnapshotOfGroupBeforeItsMark(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	osfs, err := vfs.OpenOS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer osfs.Close()
	g := &markGate{FS: osfs, held: make(chan struct{}), release: make(chan struct{})}
	opened, err := testhook.Open(g, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l := opened.(*evlog.Log)
	var once sync.Once
	unblock := func() { once.Do(func() { close(g.release) }) }
	defer l.Close()
	defer unblock() // before Close, also when the test fails
	ev := evlog.Envelope{Type: "t", Data: []byte{0xc0}}
	for range 3 {
		if _, err := l.Append(ctx, "s", evlog.ExpectAny, ev); err != nil {
			t.Fatal(err)
		}
	}
	g.armed.Store(true)
	appended := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, "s", evlog.ExpectAny, ev)
		appended <- err
	}()
	select {
	case <-g.held:
	case err := <-appended:
		t.Fatalf("the append returned (%v) without writing a mark after its fsync", err)
	}

	// The writer's snapshot of what its own reads show.
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	res, err := replay.State(ctx, l, store, statsSubject, replay.Latest(), statsSpec, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := replay.Save(ctx, store, l.LogID(), statsSubject, statsSpec, res); err != nil {
		t.Fatal(err)
	}
	if r := run1(t, "verify", dir); r.code != 0 {
		t.Errorf("verify beside a writer that saved a snapshot at seq %d: exit %d: %s\n%s", res.Seq, r.code, r.stderr, r.stdout)
	}
	if r := run1(t, "state", dir); r.code != 0 || strings.Contains(r.stdout, "fallback") {
		t.Errorf("state beside a writer that saved a snapshot at seq %d: exit %d: %s\n%s", res.Seq, r.code, r.stderr, r.stdout)
	}
	unblock()
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
}

// markGate is a file system whose segment files, once armed, hold the
// first write after an fsync (under SyncAlways: the group's mark) until
// release is closed. Everything else goes on meanwhile: the writer's
// reads, snapshot saves, other processes. (vfs.Faulty calls its injector
// under a lock, which would hold every other operation too.)
type markGate struct {
	vfs.FS
	armed, synced atomic.Bool
	held, release chan struct{}
}

func (g *markGate) Create(name string) (vfs.File, error) {
	return g.wrap(name)(g.FS.Create(name))
}

func (g *markGate) OpenReadWrite(name string) (vfs.File, error) {
	return g.wrap(name)(g.FS.OpenReadWrite(name))
}

// wrap gates the handles of segment files (the active one keeps the name
// it was created with, ….seg.tmp).
func (g *markGate) wrap(name string) func(vfs.File, error) (vfs.File, error) {
	return func(f vfs.File, err error) (vfs.File, error) {
		if err != nil || !strings.Contains(name, segment.Ext) {
			return f, err
		}
		return &markGateFile{File: f, g: g}, nil
	}
}

type markGateFile struct {
	vfs.File
	g *markGate
}

func (f *markGateFile) Sync() error {
	err := f.File.Sync()
	if f.g.armed.Load() {
		f.g.synced.Store(true)
	}
	return err
}

func (f *markGateFile) Write(p []byte) (int, error) {
	if f.g.armed.Load() && f.g.synced.Load() {
		f.g.armed.Store(false)
		close(f.g.held)
		<-f.g.release
	}
	return f.File.Write(p)
}
