package evlogcli

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/evlog/evlog/aggregate"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/projection"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
)

// Fold is an application's state that "state --fold NAME" computes: an
// aggregate instance's state (AggregateFold) or a projection's view
// (ProjectionFold), from the newest usable snapshot the application's
// repository or projection runner saved at or before the target, then the
// events after it. Build one with AggregateFold or ProjectionFold; the
// zero Fold is invalid. state prints the state as encoding/json encodes
// it (the text format indented).
type Fold struct {
	// Name selects the fold: state --fold NAME. It must be non-empty,
	// without spaces or commas, unique in a Config, and not "stats" (the
	// built-in fold). Renaming a fold changes only the flag: the
	// snapshots it reads stay those of its definition or projection.
	Name string
	// Description is the line "state --help" shows for the fold.
	Description string

	// category is the aggregate type's category ("" for a projection):
	// state then needs --id ID, and folds the stream CATEGORY-ID.
	category string
	// rebuildMarker is, for a projection, the subject of the marker an
	// interrupted projection.Runner Rebuild leaves ("projection-rebuild/"
	// + NAME): while one exists, every command passes over the
	// checkpoints (planFold, comparableSnapshots).
	rebuildMarker string
	// subject returns the snapshot subject of instance id (of the whole
	// fold for a projection, whose id is "").
	subject func(id string) (replay.Subject, error)
	// run executes a plan with the fold's spec.
	run func(ctx context.Context, src replay.Source, p *replay.Plan) (foldOutcome, error)
	// save runs p, a plan of subj's latest state (planFold), and saves
	// the state as a snapshot of subj ("snapshot --fold").
	save func(ctx context.Context, src replay.Source, store replay.Saver, logID [16]byte, subj replay.Subject, p *replay.Plan) (savedFold, error)
	// verify re-folds subj's events and compares the state with each of
	// snaps (comparableSnapshots) as the fold passes its seq ("verify
	// --replay --fold").
	verify func(ctx context.Context, src replay.Source, subj replay.Subject, snaps []snapshot.Meta, load loadFunc, bad badFunc) (int, error)
	// err is what makes the fold unusable (a definition without a valid
	// category, no Apply, no decode): Main reports it at once.
	err error
}

// foldOutcome is a fold's result with its state type erased.
type foldOutcome struct {
	state   any
	seq     uint64
	time    time.Time
	version uint64
	applied int
}

// statsFoldName is the name of the built-in fold.
const statsFoldName = "stats"

// AggregateFold returns the Fold of an aggregate type: "state --fold NAME
// --id ID" computes instance ID's state (the stream Category-ID) exactly
// as an aggregate.Repository of def does, from the snapshots such a
// repository saved (the subject Repository.Subject(ID), state encoded
// with msgpack), with events decoded by decode (the decode of the codec
// the application's repository uses: for evlog.Event[T], the Decode
// method of evlog.NewCodec[T]). NAME is def.Name, or def.Category when
// Name is empty.
func AggregateFold[S, E any](def aggregate.Definition[S, E], decode func(event.Envelope) (E, error)) Fold {
	name := cmpOr(def.Name, def.Category)
	// A repository without a log or snapshots, only to name the subjects
	// as the application's repositories do; it is never used for I/O.
	repo := aggregate.NewRepository(nil, nil, def, decodeOnly[E](decode), aggregate.Options{})
	spec := replay.Spec[S, E]{Init: def.New, Decode: decode, Fold: def.Apply}
	err := def.Validate()
	if err == nil {
		err = checkSpec(spec)
	}
	return Fold{
		err:         err,
		Name:        name,
		Description: fmt.Sprintf("aggregate %s: the state of the instance --id ID (stream %s)", name, event.StreamName(def.Category, "ID")),
		category:    def.Category,
		subject: func(id string) (replay.Subject, error) {
			if err := event.CheckID(def.Category, id); err != nil {
				return replay.Subject{}, err
			}
			return repo.Subject(id), nil
		},
		run:    runSpec(spec),
		save:   saveSpec(spec),
		verify: verifySpec(spec),
	}
}

// ProjectionFold returns the Fold of a projection: "state --fold NAME"
// computes p's view over the whole log (the streams of p.Categories, when
// set) exactly as a projection.Runner of p does, from the checkpoints
// such a runner saved (the subject "projection/" + p.Name, scoped to
// p.Categories, view encoded with msgpack), with every event it folds
// decoded by decode. NAME is p.Name.
func ProjectionFold[S, E any](p projection.Projection[S, E], decode func(event.Envelope) (E, error)) Fold {
	spec := replay.Spec[S, E]{Init: p.New, Decode: decode, Fold: p.Apply}
	return Fold{
		err:           checkSpec(spec),
		Name:          p.Name,
		Description:   fmt.Sprintf("projection %s: its view %s", p.Name, projectionScope(p.Categories)),
		rebuildMarker: "projection-rebuild/" + p.Name,
		subject: func(string) (replay.Subject, error) {
			return replay.Subject{Name: "projection/" + p.Name, SchemaVersion: p.SchemaVersion, Scope: replay.Scope{Categories: p.Categories}}, nil
		},
		run:    runSpec(spec),
		save:   saveSpec(spec),
		verify: verifySpec(spec),
	}
}

// projectionScope describes the streams a projection of categories folds.
func projectionScope(categories []string) string {
	if categories == nil {
		return "over the whole log"
	}
	return "of the streams of categories " + strings.Join(categories, ", ")
}

// checkSpec reports a spec Run cannot use.
func checkSpec[S, E any](spec replay.Spec[S, E]) error {
	switch {
	case spec.Fold == nil:
		return errors.New("no Apply function")
	case spec.Decode == nil:
		return errors.New("no decode function")
	}
	return nil
}

// runSpec returns a Fold's run for spec.
func runSpec[S, E any](spec replay.Spec[S, E]) func(context.Context, replay.Source, *replay.Plan) (foldOutcome, error) {
	return func(ctx context.Context, src replay.Source, p *replay.Plan) (foldOutcome, error) {
		res, err := replay.Run(ctx, src, p, spec)
		if err != nil {
			return foldOutcome{}, err
		}
		return foldOutcome{state: res.State, seq: res.Seq, time: res.Time, version: res.Version, applied: res.Applied}, nil
	}
}

// savedFold is what "snapshot --fold" computed and saved.
type savedFold struct {
	plan    *replay.Plan
	seq     uint64 // 0: nothing to snapshot
	time    time.Time
	applied int
	meta    snapshot.Meta // the new snapshot (when created)
	exists  bool          // one was there already at seq
}

// saveSpec returns a Fold's save for spec: the state p computes, saved as
// the application's repository or runner saves it (replay.Save: spec's
// msgpack encoding, the subject's name and schema version), so that they
// read it back.
func saveSpec[S, E any](spec replay.Spec[S, E]) func(context.Context, replay.Source, replay.Saver, [16]byte, replay.Subject, *replay.Plan) (savedFold, error) {
	return func(ctx context.Context, src replay.Source, store replay.Saver, logID [16]byte, subj replay.Subject, p *replay.Plan) (savedFold, error) {
		res, err := replay.Run(ctx, src, p, spec)
		if err != nil {
			return savedFold{}, err
		}
		out := savedFold{plan: res.Plan, seq: res.Seq, time: res.Time, applied: res.Applied}
		m, _, err := replay.Save(ctx, store, logID, subj, spec, res)
		switch {
		case errors.Is(err, snapshot.ErrExists):
			out.exists = true
		case err != nil:
			return savedFold{}, err
		}
		out.meta = m
		return out, nil
	}
}

// loadFunc loads a snapshot's state bytes; badFunc reports a snapshot that
// does not match the events.
type (
	loadFunc func(snapshot.Meta) ([]byte, error)
	badFunc  func(m snapshot.Meta, reason string)
)

// verifySpec returns a Fold's verify for spec: one pass over subj's events
// (its stream, or the whole log) folded as replay.Run folds them (evlog's
// system events, and those outside subj's categories, covered, not
// folded), comparing the state after the event
// at each snapshot's seq with the snapshot's, decoded as Run decodes it.
// States compare as sameState says. It returns how many snapshots it compared; an event it cannot read ends
// the pass (verify reports the damage), one the fold cannot decode is an
// error.
func verifySpec[S, E any](spec replay.Spec[S, E]) func(context.Context, replay.Source, replay.Subject, []snapshot.Meta, loadFunc, badFunc) (int, error) {
	return func(ctx context.Context, src replay.Source, subj replay.Subject, snaps []snapshot.Meta, load loadFunc, bad badFunc) (int, error) {
		slices.SortFunc(snaps, func(a, b snapshot.Meta) int { return cmp.Compare(a.Seq, b.Seq) })
		var st S
		if spec.Init != nil {
			st = spec.Init()
		}
		compared, i := 0, 0
		compare := func(seq uint64) error {
			for ; i < len(snaps) && snaps[i].Seq <= seq; i++ {
				m := snaps[i]
				if m.Seq < seq {
					bad(m, fmt.Sprintf("its last event (seq %d) is not one of the events it folds", m.Seq))
					continue
				}
				raw, err := load(m)
				if errors.Is(err, fs.ErrNotExist) {
					continue // pruned beside us since it was listed
				}
				if err != nil {
					bad(m, "cannot load: "+err.Error())
					continue
				}
				got, err := replay.DecodeState(spec, raw)
				if err != nil {
					bad(m, "state does not decode: "+err.Error())
					continue
				}
				same, err := sameState(spec, got, raw, st)
				if err != nil {
					return fmt.Errorf("comparing the state at seq %d: %w", seq, err)
				}
				compared++
				if !same {
					bad(m, "state differs from a replay of the events")
				}
			}
			return nil
		}
		last := snaps[len(snaps)-1].Seq
		events := src.Range(ctx, 1, last)
		if subj.Stream != "" {
			events = src.Stream(ctx, subj.Stream, 1)
		}
		for env, err := range events {
			if err != nil {
				return compared, nil // verify's segment findings report it
			}
			if env.Seq > last {
				break
			}
			if subj.Includes(env.Stream) {
				e, err := spec.Decode(env)
				if err != nil {
					return compared, fmt.Errorf("decoding event %d: %w", env.Seq, err)
				}
				st = spec.Fold(st, e)
			}
			if err := compare(env.Seq); err != nil {
				return compared, err
			}
		}
		for ; i < len(snaps); i++ {
			bad(snaps[i], fmt.Sprintf("its last event (seq %d) is not one of the events it folds", snaps[i].Seq))
		}
		return compared, nil
	}
}

// sameState reports whether the replayed state st equals the snapshot's,
// raw as stored and got as decoded: when st encodes to raw, or else when
// st, encoded and decoded back (as got was), is deeply equal to got — so
// that maps compare whatever their encoding's order, and what the
// encoding drops (unexported fields, a time's monotonic reading) does not
// count.
func sameState[S, E any](spec replay.Spec[S, E], got S, raw []byte, st S) (bool, error) {
	enc, err := replay.EncodeState(spec, st)
	if err != nil || bytes.Equal(enc, raw) {
		return err == nil, err
	}
	back, err := replay.DecodeState(spec, enc)
	if err != nil {
		return false, err
	}
	return reflect.DeepEqual(got, back), nil
}

// decodeOnly is the aggregate.Codec of a decode function (AggregateFold
// never encodes).
type decodeOnly[E any] func(event.Envelope) (E, error)

func (d decodeOnly[E]) Decode(e event.Envelope) (E, error) { return d(e) }

func (decodeOnly[E]) Encode(E) (event.Envelope, error) {
	return event.Envelope{}, errors.New("evlogcli: a fold never encodes events")
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// validFolds checks a Config's folds: each built by AggregateFold or
// ProjectionFold, named, with names unique and not the built-in's.
func validFolds(folds []Fold) error {
	seen := map[string]bool{statsFoldName: true}
	for i, f := range folds {
		switch {
		case f.run == nil || f.subject == nil || f.save == nil || f.verify == nil:
			return fmt.Errorf("evlogcli: Config.Folds[%d] (%q) was not built by AggregateFold or ProjectionFold", i, f.Name)
		case f.err != nil:
			return fmt.Errorf("evlogcli: Config.Folds[%d] (%q): %w", i, f.Name, f.err)
		case f.Name == "" || strings.ContainsAny(f.Name, " \t\r\n,"):
			return fmt.Errorf("evlogcli: Config.Folds[%d] has the name %q: give it a name without spaces or commas", i, f.Name)
		case seen[f.Name]:
			return fmt.Errorf("evlogcli: Config.Folds[%d]: two folds are named %q (stats is the built-in fold's name)", i, f.Name)
		}
		seen[f.Name] = true
	}
	return nil
}

// foldNames lists the folds state accepts: the built-in first, then the
// application's in their order.
func foldNames(folds []Fold) []string {
	names := []string{statsFoldName}
	for _, f := range folds {
		names = append(names, f.Name)
	}
	return names
}

// findFold returns the application fold named name.
func findFold(folds []Fold, name string) (*Fold, bool) {
	i := slices.IndexFunc(folds, func(f Fold) bool { return f.Name == name })
	if i < 0 {
		return nil, false
	}
	return &folds[i], true
}
