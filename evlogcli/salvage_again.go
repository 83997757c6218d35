package evlogcli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/internal/vfs"
)

// A salvage killed after it removed its marker has completed: NEWDIR is
// its output, only the report was lost. Run again, salvage finds a log
// holding events and no marker; rather than refuse it (errHoldsEvents),
// it reads DIR again and checks that NEWDIR holds exactly the events it
// would copy, placeholders included, in order (sameEvents); then it only
// prints the report. Anything else in NEWDIR is refused as before.

// errNotSame is matched by sameEvents' error when NEWDIR differs.
var errNotSame = errors.New("NEWDIR does not hold what salvage copies")

// sameEvents returns a sink for salvager (salvageTo) that compares each
// batch, instead of appending it, with the events recorded in fsys
// (NEWDIR, read frame by frame: placeholders included), failing with
// errNotSame at the first difference; called with nil at the end, it
// checks that fsys holds no more. stop releases the reader.
func sameEvents(ctx context.Context, fsys vfs.FS) (sink func([]evlog.AppendRequest) error, stop func()) {
	ro := vfs.ReadOnly(fsys)
	next, stop := iter.Pull2(func(yield func(evlog.Envelope, error) bool) {
		err := scanRaw(ctx, ro, rawVisitor{
			batch: func(b *rawBatch) error {
				for _, ev := range b.Events {
					if !yield(ev, nil) {
						return errStop
					}
				}
				return nil
			},
			gap: func(g *rawGap) error {
				yield(evlog.Envelope{}, fmt.Errorf("%w: damage in %s at %d", errNotSame, g.file, g.Offset))
				return errStop
			},
			owned: true,
		})
		if err != nil && !errors.Is(err, errStop) {
			yield(evlog.Envelope{}, err)
		}
	})
	var seq uint64
	sink = func(reqs []evlog.AppendRequest) error {
		if reqs == nil {
			if got, err, ok := next(); ok {
				if err != nil {
					return err
				}
				return fmt.Errorf("%w: it holds more events (seq %d)", errNotSame, got.Seq)
			}
			return nil
		}
		for _, r := range reqs {
			for _, want := range r.Events {
				got, err, ok := next()
				if err != nil {
					return err
				}
				seq++
				if !ok {
					return fmt.Errorf("%w: it ends before seq %d", errNotSame, seq)
				}
				sv := want.SchemaVersion
				if sv == 0 {
					sv = event.DefaultSchemaVersion
				}
				if got.Seq != seq || got.Stream != r.Stream || got.Type != want.Type || got.SchemaVersion != sv || got.ID != want.ID ||
					!got.Time.Equal(want.Time) || !maps.Equal(got.Meta, want.Meta) || !bytes.Equal(got.Data, want.Data) {
					return fmt.Errorf("%w: its event at seq %d differs", errNotSame, got.Seq)
				}
			}
		}
		return nil
	}
	return sink, stop
}
