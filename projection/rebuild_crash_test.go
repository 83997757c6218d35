package projection_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/projection"
	"github.com/evlog/evlog/snapshot"
)

// killedRemover is a snapshot store whose process dies (every later call
// fails) after it removed n snapshots.
type killedRemover struct {
	*snapshot.Store
	mu   sync.Mutex
	n    int
	dead bool
}

var errKilled = errors.New("killed")

func (k *killedRemover) Remove(ctx context.Context, m snapshot.Meta) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.dead || k.n == 0 {
		k.dead = true
		return errKilled
	}
	k.n--
	return k.Store.Remove(ctx, m)
}

func (k *killedRemover) Save(ctx context.Context, m snapshot.Meta, state []byte) (snapshot.Meta, error) {
	k.mu.Lock()
	dead := k.dead
	k.mu.Unlock()
	if dead {
		return snapshot.Meta{}, errKilled
	}
	return k.Store.Save(ctx, m, state)
}

// TestRebuildKilledWhileRemovingCheckpoints: a Rebuild killed after it
// removed some of the old fold's checkpoints but not all leaves no
// checkpoint a restart uses: the next Run starts over (from the first
// event) as Rebuild would. The restart used to start from an older
// checkpoint of the old fold, and so served its wrong view.
func TestRebuildKilledWhileRemovingCheckpoints(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	raw := func(e event.Envelope) (event.Envelope, error) { return e, nil }
	buggy := typesCount
	buggy.Apply = func(m map[string]int, e event.Envelope) map[string]int { m[e.Type] += 2; return m }
	appendN(t, l, "a", 2)
	runUntilCaughtUp(t, projection.NewRunner(buggy, l, snaps, raw, projection.RunnerOptions{}), 2, false)
	appendN(t, l, "a", 2)
	runUntilCaughtUp(t, projection.NewRunner(buggy, l, snaps, raw, projection.RunnerOptions{}), 4, false)
	if metas, err := snaps.List("projection/types"); err != nil || len(metas) != 2 {
		t.Fatalf("old checkpoints %v (%v), want 2", metas, err)
	}

	killed := &killedRemover{Store: snaps, n: 1}
	if err := projection.NewRunner(typesCount, l, killed, raw, projection.RunnerOptions{}).Rebuild(t.Context()); !errors.Is(err, errKilled) {
		t.Fatalf("Rebuild: %v, want it killed", err)
	}

	r := projection.NewRunner(typesCount, l, snaps, raw, projection.RunnerOptions{})
	runUntilCaughtUp(t, r, 4, false)
	if got, _ := r.State(); got["a"] != 4 {
		t.Fatalf("restart after a killed Rebuild: view %v, want a:4 (plan %+v)", got, r.Plan())
	}
	// And the restart finished the rebuild: the next one resumes from
	// its checkpoint.
	r = projection.NewRunner(typesCount, l, snaps, raw, projection.RunnerOptions{})
	runUntilCaughtUp(t, r, 4, false)
	if got, _ := r.State(); got["a"] != 4 || r.Plan().Snapshot == nil {
		t.Fatalf("second restart: view %v, plan %+v: want a:4 from a checkpoint", got, r.Plan())
	}
}
