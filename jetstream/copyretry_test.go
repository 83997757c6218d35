package jetstream_test

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	evjs "github.com/evlog/evlog/jetstream"
)

// TestCopyIDStoredTwiceLostAnswer: Copy of a log holding one event ID
// twice (further apart than its dedupe window) sends the batch holding the
// repeat twice: with the events' IDs as Nats-Msg-Ids, which the target
// refuses (the ID is taken), then under fresh ones. The fault proxy loses
// an answer, or cuts the connection, at each publish of both attempts in
// turn (first message, middle, commit). The copy must complete, each event
// stored once: every resend is recognised, and an attempt refused for the
// taken ID is one, whether or not its answer was lost (the fresh attempt
// is conditional on the target's end, as every Copy append is, so it lands
// only where the source has the events, and only if the other did not).
// Before, a lost answer in the first attempt left Copy failing with
// ErrUnknownOutcome (and ErrDuplicateID), to be resumed by hand.
func TestCopyIDStoredTwiceLostAnswer(t *testing.T) {
	ctx := t.Context()
	t0 := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	e := func(typ, id string) event.Envelope {
		return event.Envelope{Type: typ, ID: id, Time: t0, Data: []byte(typ)}
	}
	src, err := evlog.Open(t.TempDir(), evlog.Options{DedupeWindow: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	for _, a := range []struct {
		stream string
		ev     event.Envelope
	}{
		{"a", e("x1", "x")},
		{"b", e("f1", "f1")},
		{"a", e("x2", "x")}, // the repeat: its batch is stored under fresh Nats-Msg-Ids
		{"a", e("y", "y")},
		{"b", e("z", "")},
	} {
		if _, err := src.Append(ctx, a.stream, evlog.ExpectAny, a.ev); err != nil {
			t.Fatal(err)
		}
	}
	want := readAll(t, src)
	opts := cmp.Options{cmpopts.EquateEmpty(), cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })}

	s := startServer(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Addr().(*net.TCPAddr).Port))
	// A clean copy through the proxy counts the publishes: the batch with
	// the repeat (three events) is the last six, its attempt with the
	// events' IDs, then with fresh ones.
	p := startFaultProxy(t, addr)
	dry := openLog(t, connectVia(t, p.URL(), proxyTimeout), evjs.Config{Replicas: 1, Timeout: proxyTimeout})
	p.arm("evlog."+dry.Name()+".", faultDrop, 1<<30, nil, false)
	if _, err := evjs.Copy(ctx, dry, src, nil); err != nil {
		t.Fatal(err)
	}
	total := p.published()
	type fault struct {
		kind faultKind
		n    int
	}
	var faults []fault
	for n := total - 5; n <= total; n++ {
		faults = append(faults, fault{faultCut, n})
		if first, last := n == total-5 || n == total-2, n == total-3 || n == total; first || last {
			faults = append(faults, fault{faultDrop, n}) // answered
		}
	}
	for _, f := range faults {
		t.Run(fmt.Sprintf("%v-%d-of-%d", f.kind, f.n, total), func(t *testing.T) {
			t.Parallel()
			p := startFaultProxy(t, addr)
			dst := openLog(t, connectVia(t, p.URL(), proxyTimeout), evjs.Config{Replicas: 1, Timeout: proxyTimeout})
			p.arm("evlog."+dst.Name()+".", f.kind, f.n, nil, false)
			_, err := evjs.Copy(ctx, dst, src, nil)
			if fired, answered := p.hasFired(); !fired || f.kind == faultDrop && !answered {
				t.Fatalf("the fault did not happen (fired %v, answered %v)", fired, answered)
			}
			if err != nil {
				t.Fatalf("copy: %v", err)
			}
			reader := openLog(t, connect(t, s.ClientURL()), evjs.Config{Name: dst.Name(), Replicas: 1})
			if d := cmp.Diff(want, readAll(t, reader), opts); d != "" {
				t.Errorf("target differs from the source (-want +got):\n%s", d)
			}
		})
	}
}
