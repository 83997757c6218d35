// Package inventory is evlog's reference example, end to end: a game
// inventory kept as an event-sourced aggregate, with two projections,
// temporal queries, undo by compensating events, and a payload schema that
// evolved from a plain string (version 1) to a struct (version 2).
//
// Events are "item_added" and "item_removed", each its own Go type (Added,
// Removed) registered in one evlog.Registry (Registry) with its current
// schema version (2), which every append stamps. Version 1 payloads were
// the item's name as a msgpack string; the registered upcasters turn them
// into version 2 (rarity "common", origin "unknown") before decoding, so
// the code below only knows the current types. The aggregate's Apply has
// no switch on type names: each payload applies itself.
package inventory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/aggregate"
	"github.com/evlog/evlog/replay"
)

// Category is the category of the inventories' streams: inventory id is
// stored in the stream "inventory-" + id.
const Category = "inventory"

// Stream returns the stream name of inventory id.
func Stream(id string) string { return Definition.Stream(id) }

// Event types.
const (
	ItemAdded   = "item_added"
	ItemRemoved = "item_removed"
)

// Item is an item: the fields of both event types' payloads.
type Item struct {
	Name   string `msgpack:"name"`
	Rarity string `msgpack:"rarity"`
	Origin string `msgpack:"origin"`
}

// PayloadVersion is the current schema version of both event types.
const PayloadVersion = 2

// Change is the payload of an inventory event: Added or Removed.
type Change interface {
	// Item is the item added or removed.
	Item() Item
	// apply changes the counts.
	apply(counts map[string]int)
}

// Added is the payload of item_added.
type Added Item

// Removed is the payload of item_removed.
type Removed Item

func (a Added) Item() Item   { return Item(a) }
func (r Removed) Item() Item { return Item(r) }

func (a Added) apply(counts map[string]int) { counts[a.Name]++ }

func (r Removed) apply(counts map[string]int) {
	if counts[r.Name]--; counts[r.Name] <= 0 {
		delete(counts, r.Name)
	}
}

// Event is an inventory event with its typed payload.
type Event = evlog.Event[Change]

// Registry returns the inventory's event types: item_added (Added) and
// item_removed (Removed), both at PayloadVersion, with the upcasters from
// version 1 payloads (a bare item name) to Items with default rarity and
// origin. Appends through it stamp each event's type and version; reads
// decode each event to its own Go type.
func Registry() *evlog.Registry {
	toItem := func(old any) (any, error) {
		name, ok := old.(string)
		if !ok {
			return nil, fmt.Errorf("version 1 payload is %T, want the item name", old)
		}
		return Item{Name: name, Rarity: "common", Origin: "unknown"}, nil
	}
	reg := evlog.NewRegistry()
	evlog.MustRegister[Added](reg, ItemAdded, PayloadVersion, evlog.Upcast{Type: ItemAdded, From: 1, Fn: toItem})
	evlog.MustRegister[Removed](reg, ItemRemoved, PayloadVersion, evlog.Upcast{Type: ItemRemoved, From: 1, Fn: toItem})
	return reg
}

// Codec returns the codec of inventory events over a new Registry: the
// repository's, and the decoder of projections.
func Codec() *evlog.Codec[Change] { return evlog.CodecFor[Change](Registry()) }

// ErrNotInInventory rejects removing an item the inventory does not hold.
var ErrNotInInventory = errors.New("inventory: item not in the inventory")

// ErrNothingToUndo rejects an undo with no action left to revert.
var ErrNothingToUndo = errors.New("inventory: nothing to undo")

// State is an inventory's state: how many of each item it holds, and the
// actions that can still be undone (most recent last).
type State struct {
	Counts   map[string]int `msgpack:"counts"`
	Undoable []Action       `msgpack:"undoable"`
}

// Action is an undoable action: the event that did it.
type Action struct {
	Seq  uint64 `msgpack:"seq"`
	Type string `msgpack:"type"`
	Item Item   `msgpack:"item"`
}

// maxUndo bounds how many actions can be undone.
const maxUndo = 16

// metaCompensates marks a compensating event with the seq it reverts.
const metaCompensates = "compensates"

// Definition is the inventory aggregate: pure, usable without a log.
// Inventory id is the stream "inventory-" + id (Category), so another
// aggregate type's "alice" never mixes with the inventory "alice", and
// Log.Category(ctx, Category, 1) reads every inventory's events.
var Definition = aggregate.Definition[State, Event]{
	Category:      Category,
	SchemaVersion: 1,
	Init:          func() State { return State{Counts: map[string]int{}} },
	Apply:         apply,
	Clone: func(s State) State {
		return State{Counts: maps.Clone(s.Counts), Undoable: slices.Clone(s.Undoable)}
	},
}

func apply(s State, e Event) State {
	if s.Counts == nil {
		s.Counts = map[string]int{}
	}
	if e.Data == nil {
		return s
	}
	e.Data.apply(s.Counts)
	if _, undo := e.Meta[metaCompensates]; undo {
		if n := len(s.Undoable); n > 0 {
			s.Undoable = s.Undoable[:n-1]
		}
	} else {
		s.Undoable = append(s.Undoable, Action{Seq: e.Seq, Type: e.Type, Item: e.Data.Item()})
		if len(s.Undoable) > maxUndo {
			s.Undoable = slices.Delete(s.Undoable, 0, 1)
		}
	}
	return s
}

// Add is the command adding an item.
func Add(item Item) aggregate.Command[State, Event] {
	return func(State) ([]Event, error) {
		return []Event{{Type: ItemAdded, Data: Added(item)}}, nil
	}
}

// Remove is the command removing one of an item; it fails, appending
// nothing, when the inventory holds none.
func Remove(name string) aggregate.Command[State, Event] {
	return func(s State) ([]Event, error) {
		if s.Counts[name] <= 0 {
			return nil, fmt.Errorf("%w: %q", ErrNotInInventory, name)
		}
		return []Event{{Type: ItemRemoved, Data: Removed{Name: name}}}, nil
	}
}

// Undo is the command reverting the last action still undoable, by
// appending its inverse (history is never rewritten).
func Undo() aggregate.Command[State, Event] {
	return func(s State) ([]Event, error) {
		n := len(s.Undoable)
		if n == 0 {
			return nil, ErrNothingToUndo
		}
		last := s.Undoable[n-1]
		meta := map[string]string{metaCompensates: strconv.FormatUint(last.Seq, 10)}
		if last.Type == ItemRemoved {
			return []Event{{Type: ItemAdded, Data: Added(last.Item), Meta: meta}}, nil
		}
		if s.Counts[last.Item.Name] <= 0 {
			return nil, fmt.Errorf("%w: %q (cannot undo its addition)", ErrNotInInventory, last.Item.Name)
		}
		return []Event{{Type: ItemRemoved, Data: Removed(last.Item), Meta: meta}}, nil
	}
}

// Stack is a number of one item.
type Stack struct {
	Name  string
	Count int
}

// Items returns the items with a count above zero, by name.
func (s State) Items() []Stack {
	out := make([]Stack, 0, len(s.Counts))
	for name, n := range s.Counts {
		if n > 0 {
			out = append(out, Stack{name, n})
		}
	}
	slices.SortFunc(out, func(a, b Stack) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Inventory is one inventory (the stream Stream(id)) stored in a log. Reads are served
// from the repository's cached state, advanced by new events; writes only
// append.
type Inventory struct {
	id    string
	log   aggregate.Log
	repo  *aggregate.Repository[State, Event]
	codec *evlog.Codec[Change]
}

// Open returns the inventory id stored in log (in stream Stream(id)). With opts'
// snapshot policy, snapshots are taken in the background.
func Open(log *evlog.Log, id string, opts aggregate.Options) (*Inventory, error) {
	snaps, err := log.Snapshots()
	if err != nil {
		return nil, err
	}
	return OpenOn(log, snaps, id, opts), nil
}

// OpenOn is Open on any backend serving the consumer-side interfaces (for
// example the JetStream log of github.com/evlog/evlog/jetstream) and its
// snapshot store (nil: no snapshots).
func OpenOn(log aggregate.Log, snaps aggregate.Snapshots, id string, opts aggregate.Options) *Inventory {
	codec := Codec()
	return &Inventory{id: id, log: log, codec: codec,
		repo: aggregate.NewRepository(log, snaps, Definition, aggregate.Codec[Event](codec), opts)}
}

// Close waits for background snapshots.
func (inv *Inventory) Close() error { return inv.repo.Close() }

// Repository returns the inventory's repository.
func (inv *Inventory) Repository() *aggregate.Repository[State, Event] { return inv.repo }

// AddItem adds one item.
func (inv *Inventory) AddItem(ctx context.Context, item Item) error {
	_, err := inv.repo.Execute(ctx, inv.id, Add(item))
	return err
}

// RemoveItem removes one of an item; ErrNotInInventory if there is none.
func (inv *Inventory) RemoveItem(ctx context.Context, name string) error {
	_, err := inv.repo.Execute(ctx, inv.id, Remove(name))
	return err
}

// Undo reverts the last action with a compensating event and returns it.
func (inv *Inventory) Undo(ctx context.Context) (Event, error) {
	res, err := inv.repo.Execute(ctx, inv.id, Undo())
	if err != nil {
		return Event{}, err
	}
	return res.Events[0], nil
}

// Items returns the items held now, by name.
func (inv *Inventory) Items(ctx context.Context) ([]Stack, error) {
	in, err := inv.repo.Load(ctx, inv.id)
	if err != nil {
		return nil, err
	}
	return in.State.Items(), nil
}

// Count returns how many of an item the inventory holds now.
func (inv *Inventory) Count(ctx context.Context, name string) (int, error) {
	in, err := inv.repo.Load(ctx, inv.id)
	if err != nil {
		return 0, err
	}
	return in.State.Counts[name], nil
}

// At returns the inventory as it was at t (every event recorded at or
// before t), from the newest snapshot at or before t; the result tells how
// it was computed.
func (inv *Inventory) At(ctx context.Context, t time.Time) (replay.Result[State], error) {
	return inv.repo.At(ctx, inv.id, replay.AtTime(t))
}

// History returns the audit trail of one item: every event of the
// inventory concerning it, oldest first ("" for all of them).
func (inv *Inventory) History(ctx context.Context, item string) ([]Event, error) {
	var out []Event
	for env, err := range inv.log.Stream(ctx, Stream(inv.id), 1) {
		if err != nil {
			return nil, err
		}
		e, err := inv.codec.Decode(env)
		if err != nil {
			return nil, err
		}
		if item == "" || e.Data.Item().Name == item {
			out = append(out, e)
		}
	}
	return out, nil
}
