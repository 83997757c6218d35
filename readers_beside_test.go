package evlog

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// rollPause holds a writer inside a roll: the new segment created, the old
// one about to be sealed (the seal's write). w writes through the FS it
// returns; arm it before the append that rolls.
type rollPause struct {
	armed   atomic.Bool
	created atomic.Value // the new segment's name, once renamed into place
	paused  chan struct{}
	resume  chan struct{}
	once    sync.Once
}

func newRollPause() *rollPause {
	return &rollPause{paused: make(chan struct{}), resume: make(chan struct{})}
}

func (p *rollPause) inject(op vfs.Op) error {
	if !p.armed.Load() {
		return nil
	}
	switch {
	case op.Kind == vfs.OpRename && strings.HasSuffix(op.NewName, segment.Ext):
		p.created.Store(op.NewName)
	case op.Kind == vfs.OpWrite && p.created.Load() != nil && strings.TrimSuffix(op.Name, segment.TempExt) != p.created.Load():
		// The seal (a segment's file keeps the temporary's name it was
		// created under).
		p.armed.Store(false)
		close(p.paused)
		<-p.resume
	}
	return nil
}

func (p *rollPause) release() { p.once.Do(func() { close(p.resume) }) }

// TestReadersBesideSealAndAppend: a reader lists the directory in the
// middle of a roll (segment N+1 created, N not yet sealed) and opens N
// unsealed; before it opens N+1 the writer seals N and appends a batch to
// N+1. The listing is the same before and after (N and N+1): only the
// files' contents moved on. A read-only open, Refresh and Verify must not
// report that as "a segment that is not the newest but is not sealed".
func TestReadersBesideSealAndAppend(t *testing.T) {
	ctx := t.Context()
	type reader struct {
		name string
		// run reads beside the writer; acked is the last seq
		// acknowledged when it starts.
		run func(fsys vfs.FS, follower *Log, acked uint64) error
	}
	for _, r := range []reader{
		{"open", func(fsys vfs.FS, _ *Log, acked uint64) error {
			l, err := openFS(fsys, Options{}, true)
			if err != nil {
				return err
			}
			defer l.Close()
			return servesPrefix(t, l, acked)
		}},
		{"refresh", func(_ vfs.FS, l *Log, acked uint64) error {
			if err := l.Refresh(); err != nil {
				return err
			}
			return servesPrefix(t, l, acked)
		}},
		{"verify", func(fsys vfs.FS, _ *Log, _ uint64) error {
			rep, err := besideWriter(fsys, func(*segment.Dir) (VerifyReport, error) { return verifyFS(ctx, fsys) },
				func(r VerifyReport, err error) bool { return err != nil || r.Corrupt() })
			if err == nil && rep.Corrupt() {
				return &segment.CorruptError{File: rep.Findings[0].File, Reason: rep.Findings[0].Reason}
			}
			return err
		}},
	} {
		t.Run(r.name, func(t *testing.T) {
			mem := vfs.NewMem()
			p := newRollPause()
			w, err := openFS(vfs.NewFaulty(mem, p.inject), Options{SegmentSize: MinSegmentSize}, false)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			defer p.release()
			ev := Envelope{Type: "t", Data: make([]byte, 200)}
			for w.LastSeq() < 10 || len(w.v.segs) < 2 {
				if _, err := w.Append(ctx, "s", ExpectAny, ev); err != nil {
					t.Fatal(err)
				}
			}
			// Fill the active segment up to the batch that rolls.
			first := w.v.segs[len(w.v.segs)-1].Name
			// The reader's FS calls onOpen before each file it opens.
			var onOpen atomic.Pointer[func(name string)]
			rfs := vfs.NewFaulty(vfs.ReadOnly(mem), func(op vfs.Op) error {
				if f := onOpen.Load(); f != nil && op.Kind == vfs.OpOpen {
					(*f)(op.Name)
				}
				return nil
			})
			var follower *Log
			if r.name == "refresh" {
				if follower, err = openFS(rfs, Options{}, true); err != nil {
					t.Fatal(err)
				}
				defer follower.Close()
			}
			var appended chan error
			var acked uint64
			for {
				acked = w.LastSeq()
				p.armed.Store(true)
				appended = make(chan error, 1)
				go func() {
					_, err := w.Append(ctx, "s", ExpectAny, ev)
					appended <- err
				}()
				select {
				case <-p.paused:
				case err := <-appended:
					p.armed.Store(false)
					if err != nil {
						t.Fatal(err)
					}
					if w.v.segs[len(w.v.segs)-1].Name == first {
						continue // no roll yet
					}
					t.Fatalf("rolled without pausing (after seq %d)", acked)
				}
				break
			}
			next := p.created.Load().(string)
			var once sync.Once
			f := func(name string) {
				if name != next {
					return
				}
				once.Do(func() {
					// The reader has opened N, unsealed: let the writer
					// seal it and append to N+1.
					p.release()
					if err := <-appended; err != nil {
						t.Error(err)
					}
					if _, err := w.Append(ctx, "s", ExpectAny, ev); err != nil {
						t.Error(err)
					}
				})
			}
			onOpen.Store(&f)
			if err := r.run(rfs, follower, acked); err != nil {
				t.Fatalf("%s beside a writer sealing N and appending to N+1: %v", r.name, err)
			}
		})
	}
}

// servesPrefix checks that l serves seqs 1..LastSeq in order, and at least
// up to acked.
func servesPrefix(t *testing.T, l *Log, acked uint64) error {
	t.Helper()
	want := uint64(1)
	for e, err := range l.Events(t.Context(), 1) {
		if err != nil {
			return err
		}
		if e.Seq != want {
			return fmt.Errorf("served seq %d, want %d", e.Seq, want)
		}
		want++
	}
	if last := want - 1; last < acked || last != l.LastSeq() {
		return fmt.Errorf("served seqs 1..%d (LastSeq %d), acknowledged %d", last, l.LastSeq(), acked)
	}
	return nil
}
