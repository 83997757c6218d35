package evlog

import (
	"errors"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
)

// TestSubscriptionAckOutOfSpace: an Ack whose position file cannot be
// written for lack of space fails, keeps the previous position, and
// leaves no temporary behind (nothing else ever removes one); once space
// is freed, Ack stores the position.
func TestSubscriptionAckOutOfSpace(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	var full atomic.Bool
	fsys := vfs.NewFaulty(mem, func(op vfs.Op) error {
		if op.Kind == vfs.OpWrite && full.Load() && strings.HasSuffix(op.Name, SubscriptionExt+".tmp") {
			return vfs.ENOSPC(op.Name)
		}
		return nil
	})
	l := openMem(t, fsys, Options{})
	defer l.Close()
	appendSeq(t, l, 5)
	sub, err := l.Subscription("billing", Filter{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := sub.Ack(ctx, 2); err != nil {
		t.Fatal(err)
	}
	full.Store(true)
	if err := sub.Ack(ctx, 4); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Ack on a full disk: %v, want ENOSPC", err)
	}
	if got := sub.Position(); got != 2 {
		t.Fatalf("position after the failed Ack: %d, want 2", got)
	}
	names, err := mem.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasSuffix(n, ".tmp") {
			t.Errorf("the failed Ack left %s behind", n)
		}
	}
	full.Store(false)
	if err := sub.Ack(ctx, 4); err != nil {
		t.Fatal(err)
	}
	infos, err := l.Subscriptions()
	if err != nil || len(infos) != 1 || infos[0].Position != 4 {
		t.Fatalf("subscriptions after the Ack: %+v, %v; want billing at 4", infos, err)
	}
}
