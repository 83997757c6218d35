package jetstream

import (
	"context"
	"encoding/json"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Subjects of the JetStream advisories the watch listens to (nats-server
// v2.15.2, jetstream_api.go): every advisory about a stream is published
// on "$JS.EVENT.ADVISORY.STREAM.<KIND>.<stream>" (CREATED, DELETED,
// UPDATED, RESTORE_CREATE, RESTORE_COMPLETE, LEADER_ELECTED, QUORUM_LOST,
// ...), and an audit advisory for JetStream API answers on
// "$JS.EVENT.ADVISORY.API", in the account holding the stream.
const (
	advisoryStreamPrefix = "$JS.EVENT.ADVISORY.STREAM.*."
	advisoryAPIAudit     = "$JS.EVENT.ADVISORY.API"
)

// watch spares an append the read of the event at the log's last seq
// (checkEnd): it listens to the servers' advisories about the log's
// stream, and an append reads that event only while the watch is
// suspect. It is suspect
//
//   - until it is trusted: an audit advisory about a request on the log's
//     stream has arrived (proof that the account's JetStream advisories
//     reach this connection; they do not when the JetStream API is
//     imported from another account, or when the user may not subscribe
//     to $JS.EVENT.>, and then the watch stays suspect for ever), and an
//     append has read the end since;
//   - after any advisory about the stream (a deletion, a creation, a
//     restore, a new leader, an update: a replacement shows as a deletion
//     and a creation), after the connection reconnected (advisories sent
//     meanwhile are lost) or an advisory was dropped (slow consumer),
//     until an append has read the end since.
//
// A replacement is seen by its creation's advisory as much as by its
// deletion's: nats-server v2.15.2 may lose the deletion's (stream.stop
// queues it, then closes the loop that sends it), never the creation's.
//
// What it cannot tell apart: an advisory still on its way when the append
// decides (the servers send it asynchronously, after the deletion), and,
// on a cluster, one lost on a route between the servers that broke and
// healed without this connection dropping.
type watch struct {
	nc     *nats.Conn
	stream string
	sub    *nats.Subscription // advisories about the stream
	audit  *nats.Subscription // until trusted

	mu         sync.Mutex
	trusted    bool
	received   uint64            // advisories about the stream received
	kinds      map[string]uint64 // received, by kind (CREATED, DELETED, ...), for tests
	seen       uint64            // received, as suspect last saw it
	gen        uint64            // counts what made the watch suspect
	clean      bool              // the end was read since gen last moved, while trusted
	dropped    int               // sub's drops seen
	reconnects uint64            // nc's reconnects seen
	// changed is closed (and replaced) when trusted or received change
	// (for tests: await).
	changed chan struct{}
}

// startWatch subscribes to the advisories about stream (apiPrefix is the
// JetStream API prefix the Log uses). It returns nil, and the Log reads
// the end on every append, when the API is not the account's own
// ($JS.API.: a domain or an import, whose advisories are elsewhere) or a
// subscription fails.
func startWatch(nc *nats.Conn, apiPrefix, stream string) *watch {
	if apiPrefix != jetstream.DefaultAPIPrefix {
		return nil
	}
	w := &watch{nc: nc, stream: stream, reconnects: nc.Stats().Reconnects, kinds: map[string]uint64{}, changed: make(chan struct{})}
	// Held until both subscriptions are set: their handlers read them.
	w.mu.Lock()
	defer w.mu.Unlock()
	sub, err := nc.Subscribe(advisoryStreamPrefix+stream, w.onAdvisory)
	if err != nil {
		return nil
	}
	audit, err := nc.Subscribe(advisoryAPIAudit, w.onAudit)
	if err != nil {
		_ = sub.Unsubscribe()
		return nil
	}
	w.sub, w.audit = sub, audit
	return w
}

// onAdvisory counts an advisory about the stream.
func (w *watch) onAdvisory(m *nats.Msg) {
	kind, _, _ := strings.Cut(strings.TrimPrefix(m.Subject, "$JS.EVENT.ADVISORY.STREAM."), ".")
	w.mu.Lock()
	defer w.mu.Unlock()
	w.received++
	w.kinds[kind]++
	w.signal()
}

// signal wakes awaitWatch; w.mu held.
func (w *watch) signal() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// onAudit trusts the watch on the first audit advisory of a request on
// the stream: the server that answered it sends its advisories here.
func (w *watch) onAudit(m *nats.Msg) {
	var a struct {
		Subject string `json:"subject"`
	}
	if json.Unmarshal(m.Data, &a) != nil || !strings.HasSuffix(a.Subject, "."+w.stream) {
		return
	}
	w.mu.Lock()
	if !w.trusted {
		w.trusted = true
		w.signal()
	}
	audit := w.audit
	w.mu.Unlock()
	_ = audit.Unsubscribe()
}

// suspect reports whether an append must read the end (need), and the
// token to hand to verified once it did. A nil watch is always suspect.
func (w *watch) suspect() (need bool, token uint64, trusted bool) {
	if w == nil {
		return true, 0, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	moved := w.received != w.seen
	w.seen = w.received
	if d, err := w.sub.Dropped(); err != nil || d != w.dropped {
		w.dropped, moved = d, true
	}
	if r := w.nc.Stats().Reconnects; r != w.reconnects {
		w.reconnects, moved = r, true
	}
	if moved || !w.sub.IsValid() || !w.nc.IsConnected() {
		w.gen++
		w.clean = false
	}
	return !w.clean, w.gen, w.trusted
}

// verified records that an append read the end, after suspect returned
// token and trusted, and found the event the Log saw: the watch is clean
// unless something made it suspect since.
func (w *watch) verified(token uint64, trusted bool) {
	if w == nil || !trusted {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gen == token {
		w.clean = true
	}
}

// await waits until the watch is trusted and has received at least n
// advisories of kind about the stream (n 0: trusted only), or ctx ends
// (for tests).
func (w *watch) await(ctx context.Context, kind string, n uint64) error {
	for {
		w.mu.Lock()
		ok, changed := w.trusted && w.kinds[kind] >= n, w.changed
		w.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// stop unsubscribes.
func (w *watch) stop() {
	if w == nil {
		return
	}
	w.mu.Lock()
	sub, audit := w.sub, w.audit
	w.mu.Unlock()
	_ = sub.Unsubscribe()
	_ = audit.Unsubscribe()
}
