package evlogcli

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/internal/vfs"
)

// TestSubscriptionsAfterPowerLoss: a writer (SyncAlways) acknowledges
// its last group for a subscription, then the machine loses power. The
// group was fsynced, but its mark — durable only with the next fsync —
// may not be, and subscriptions reads the log as a reader that serves
// only what a durable mark records (docs/FORMAT.md, reader rule 9).
//
// "after Ack": Ack makes the mark durable, so the listing shows the
// position within the log (on the code before, last_seq was 2 with the
// position at 3). "mark lost": the directory such a power loss left
// before that fix (the position file of the Ack grafted onto the log as
// it was before the Ack); logs that went through it exist, so the
// listing is no error: it shows the position and warns on stderr.
func TestSubscriptionsAfterPowerLoss(t *testing.T) {
	ctx := t.Context()
	mem, l, _ := threeGroups(t)
	markLost := mem.CrashClone(vfs.DropUnsynced, rand.New(rand.NewPCG(1, 2))) // the third group's mark not durable
	sub, err := l.Subscription("sub", evlog.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Ack(ctx, 3); err != nil {
		t.Fatal(err)
	}
	afterAck := mem.CrashClone(vfs.DropUnsynced, rand.New(rand.NewPCG(1, 2)))
	data, err := mem.ReadFile("sub" + evlog.SubscriptionExt)
	if err != nil {
		t.Fatal(err)
	}
	if err := markLost.WriteFile("sub"+evlog.SubscriptionExt, data); err != nil {
		t.Fatal(err)
	}

	type listed struct {
		LastSeq  uint64
		Position uint64
	}
	for _, tc := range []struct {
		name string
		fsys *vfs.Mem
		want listed
		warn string // on stderr ("": none)
	}{
		{"after Ack", afterAck, listed{3, 3}, ""},
		{"mark lost", markLost, listed{2, 3}, `warning: subscription "sub" is at seq 3, past the last seq this reader serves (2)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			copyMem(t, tc.fsys, dir)
			r := run1(t, "subscriptions", dir, "--format", "json")
			if r.code != 0 {
				t.Fatalf("subscriptions: exit %d:\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
			}
			var out subscriptionsResult
			if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
				t.Fatalf("subscriptions JSON: %v\n%s", err, r.stdout)
			}
			var got []listed
			for _, s := range out.Subscriptions {
				got = append(got, listed{out.LastSeq, s.Position})
			}
			if diff := cmp.Diff([]listed{tc.want}, got); diff != "" {
				t.Errorf("subscriptions lists (-want +got):\n%s", diff)
			}
			if tc.warn == "" && r.stderr != "" || !strings.Contains(r.stderr, tc.warn) {
				t.Errorf("subscriptions: stderr %q, want %q", r.stderr, tc.warn)
			}
		})
	}
}
