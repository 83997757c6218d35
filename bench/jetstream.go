package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	evjs "github.com/evlog/evlog/jetstream"
	"github.com/evlog/evlog/replay"
)

// The JetStream backend (github.com/evlog/evlog/jetstream) on embedded
// nats-server v2.15.2: one server (R1) or a 3-node cluster (R3), started
// by the store itself on loopback ports, storing under the phase's
// directory, with sync_interval: always (server.Options.SyncAlways), as
// the backend's own tests run it. Close closes the client's connection
// and leaves the servers running, as a deployment's would: the next Open
// of the same directory (the read-back after an append phase) connects
// to them again; opening another directory (the next JetStream phase)
// shuts them down first. The last servers run, idle, until the process
// exits. (Restarting an R3 cluster costs a Raft election timeout,
// 4 s or more, per reopen.)
//
// Each replica count is registered twice: "jetstream-RN" loads the
// aggregate from its events (Log.Stream), "jetstream-RN+snap" from a
// snapshot at 90% of the aggregate's events plus the events after it
// (replay.State on the backend's snapshot store). The +snap contestants
// run the data set phase (their batch row measures the same thing as the
// plain one's) and answer n/a elsewhere.
func init() {
	for i, r := range []int{1, 3} {
		for j, snap := range []bool{false, true} {
			name := fmt.Sprintf("jetstream-R%d", r)
			if snap {
				name += "+snap"
			}
			c := &Contestant{
				Name:       name,
				Background: true, // the embedded servers
				Order:      7 + 2*i + j,
				Workloads:  []string{WBatch, WSingle1, WSingle64, WRead, WStateAt, WAggregate, WDisk},
				NAReason:   "not run: the backend appends a few thousand events/s here (a read of each stream's head per batch, workload 1); see the JetStream run",
				Durability: jsDurability[r],
				Open: func(dir string, _ int) (Store, error) {
					return openJetStream(dir, r, snap)
				},
				DiskBytes: func(dir string) (int64, error) {
					if snap {
						return 0, notApplicable(jsSnapNA)
					}
					// One node's store: every node holds a full copy.
					return dirBytes(filepath.Join(dir, "n0"))
				},
			}
			register(c)
		}
	}
}

var jsDurability = map[int]string{
	1: "one embedded nats-server, sync_interval: always (SyncAlways): the publish ack (the atomic batch's commit ack) is sent after the server wrote and fsync(2)ed the messages to the stream's file store; each append first reads every stream's last message from the server (versions, optimistic concurrency), then publishes. Loopback TCP between client and server.",
	3: "3 embedded nats-servers (one process, loopback routes), R3 stream, sync_interval: always: the ack is sent once a quorum (2 of 3) has the Raft entry in its fsynced WAL (the stream's file store itself is synced on Raft snapshots: nats-server relaxes SyncAlways to SyncOnFlush on replicated streams); per-node bytes on disk are one copy of three.",
}

const jsSnapNA = "see the plain jetstream row: the +snap contestant differs only in workload 5"

// jsLogName is the log's name: every store has its own servers.
const jsLogName = "bench"

// jsGuard bounds waits for servers and elections (a hang becomes an error).
const jsGuard = 2 * time.Minute

// jsCluster is the server or servers of one store directory.
type jsCluster struct {
	dir      string
	replicas int
	servers  []*server.Server
}

// jsParked holds the servers of the last closed store, for its directory's
// next Open.
var jsParked struct {
	sync.Mutex
	c *jsCluster
}

type jsStore struct {
	ctx   context.Context
	cl    *jsCluster
	nc    *nats.Conn
	l     *evjs.Log
	snaps *evjs.Snapshots // +snap only
	c     *codec
	reqs  []evlog.AppendRequest
	envs  []event.Envelope
	spec  replay.Spec[ItemCounts, Payload]
}

func openJetStream(dir string, replicas int, snap bool) (_ *jsStore, err error) {
	s := &jsStore{ctx: context.Background(), c: newCodec()}
	defer func() {
		if err != nil { // a failed open never parks its servers
			if s.nc != nil {
				s.nc.Close()
			}
			if s.cl != nil {
				s.cl.shutdown()
			}
		}
	}()
	jsParked.Lock()
	s.cl, jsParked.c = jsParked.c, nil
	jsParked.Unlock()
	if s.cl != nil && (s.cl.dir != dir || s.cl.replicas != replicas) {
		s.cl.shutdown()
		s.cl = nil
	}
	if s.cl == nil {
		if s.cl, err = startJSCluster(dir, replicas); err != nil {
			return nil, err
		}
	}
	if s.nc, err = nats.Connect(s.cl.servers[0].ClientURL(), nats.MaxReconnects(-1)); err != nil {
		return nil, err
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		return nil, err
	}
	// Creating or recovering the stream may meet a cluster still electing
	// its leaders: retry until jsGuard.
	deadline := time.Now().Add(jsGuard)
	for {
		ctx, cancel := context.WithTimeout(s.ctx, 2*time.Second)
		s.l, err = evjs.Open(ctx, js, evjs.Config{Name: jsLogName, Replicas: replicas})
		cancel()
		if err == nil {
			break
		}
		if errors.Is(err, evjs.ErrConfig) || time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
	dec := newCodec()
	s.spec = replay.Spec[ItemCounts, Payload]{
		Init: func() ItemCounts { return ItemCounts{} },
		Decode: func(e event.Envelope) (Payload, error) {
			var p Payload
			return p, dec.decode(e.Data, &p)
		},
		Fold: func(f ItemCounts, p Payload) ItemCounts { f.add(&p); return f },
	}
	if snap {
		if s.snaps, err = s.l.Snapshots(); err != nil {
			return nil, err
		}
		if err := s.ensureSnapshot(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// startJSCluster starts one server or a 3-node cluster storing in
// dir/nI, on loopback ports, and waits until JetStream is ready (for a
// cluster: a meta leader that sees every peer, all nodes current).
func startJSCluster(dir string, replicas int) (_ *jsCluster, err error) {
	c := &jsCluster{dir: dir, replicas: replicas}
	defer func() {
		if err != nil {
			c.shutdown()
		}
	}()
	return c, c.start()
}

func (c *jsCluster) start() error {
	dir, replicas := c.dir, c.replicas
	var routes []*url.URL
	ports := make([]int, replicas)
	if replicas > 1 {
		for i := range ports {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			ports[i] = ln.Addr().(*net.TCPAddr).Port
			ln.Close()
			routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", ports[i])})
		}
	}
	for i := range replicas {
		opts := &server.Options{
			ServerName: fmt.Sprintf("evlog-bench-%d", i), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: filepath.Join(dir, fmt.Sprintf("n%d", i)), SyncAlways: true,
			NoLog: true, NoSigs: true,
		}
		if replicas > 1 {
			opts.Cluster = server.ClusterOpts{Name: "evlog-bench", Host: "127.0.0.1", Port: ports[i]}
			opts.Routes = routes
		}
		srv, err := server.NewServer(opts)
		if err != nil {
			return err
		}
		go srv.Start()
		c.servers = append(c.servers, srv)
	}
	for i, srv := range c.servers {
		if !srv.ReadyForConnections(jsGuard) {
			return fmt.Errorf("nats-server %d did not become ready within %v", i, jsGuard)
		}
	}
	if replicas == 1 {
		return nil
	}
	deadline := time.Now().Add(jsGuard)
	for {
		leaders, current, peers := 0, 0, 0
		for _, srv := range c.servers {
			if srv.JetStreamIsLeader() {
				leaders++
				peers = len(srv.JetStreamClusterPeers())
			}
			if srv.JetStreamIsCurrent() {
				current++
			}
		}
		if leaders == 1 && current == replicas && peers == replicas {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no JetStream meta leader with all peers after %v", jsGuard)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// aggSubject is the +snap contestants' snapshot subject for a stream.
func aggSubject(stream string) replay.Subject {
	return replay.Subject{Name: "bench/agg/" + stream, SchemaVersion: 1, Scope: replay.Scope{Stream: stream}}
}

// snapVersion is the version of aggStream the +snap contestants snapshot:
// 90% of its events (the load folds the last 10% after the snapshot).
func snapVersion(aggEvents uint64) uint64 { return max(aggEvents*9/10, 1) }

// ensureSnapshot takes the snapshot of aggStream once, on a written log
// (untimed: a deployment takes them as the log grows).
func (s *jsStore) ensureSnapshot() error {
	subj := aggSubject(aggStream)
	if have, err := s.snaps.List(s.ctx, subj.Name); err != nil || len(have) > 0 {
		return err
	}
	var versions, seq uint64
	for e, err := range s.l.Stream(s.ctx, aggStream, 0) {
		if err != nil {
			return err
		}
		versions = e.Version
	}
	if versions == 0 {
		return nil // an empty log (the append phases)
	}
	for e, err := range s.l.Stream(s.ctx, aggStream, snapVersion(versions)) {
		if err != nil {
			return err
		}
		seq = e.Seq
		break
	}
	res, err := replay.State(s.ctx, s.l, nil, subj, replay.AtSeq(seq), s.spec, replay.Options{})
	if err != nil {
		return err
	}
	_, _, err = replay.Save(s.ctx, s.snaps, s.l.LogID(), subj, s.spec, res)
	return err
}

// AppendBatch appends evs as one atomic JetStream batch per MaxBatch
// events (one per batch of 1,000): one AppendBatch request per event, in
// order (a batch may name a stream in several requests, as on the file
// log).
func (s *jsStore) AppendBatch(evs []Ev) error {
	if cap(s.envs) < len(evs) {
		s.envs = make([]event.Envelope, len(evs))
	}
	for i := 0; i < len(evs); {
		s.reqs = s.reqs[:0]
		j := i
		for ; j < len(evs) && j-i < evjs.MaxBatch; j++ {
			data, err := s.c.encode(&evs[j].Data)
			if err != nil {
				return err
			}
			s.envs[j] = event.Envelope{Type: EventType, Time: evs[j].Time, Data: slices.Clone(data)}
			s.reqs = append(s.reqs, evlog.AppendRequest{Stream: evs[j].Stream, Expect: evlog.ExpectAny, Events: s.envs[j : j+1]})
		}
		pos, err := s.l.AppendBatch(s.ctx, s.reqs)
		if err != nil {
			return err
		}
		for k, p := range pos {
			if want := evs[i+k].Version; p.Version != want {
				return fmt.Errorf("jetstream assigned version %d to event %d of %q, the data set says %d", p.Version, i+k, evs[i+k].Stream, want)
			}
		}
		i = j
	}
	return nil
}

func (s *jsStore) Append(e *Ev) error {
	if s.snaps != nil {
		return notApplicable(jsSnapNA)
	}
	c := codecs.Get().(*codec)
	data, err := c.encode(&e.Data)
	data = slices.Clone(data)
	codecs.Put(c)
	if err != nil {
		return err
	}
	// Time left zero: stamped by the log's clock.
	_, err = s.l.Append(s.ctx, e.Stream, evlog.ExpectAny, event.Envelope{Type: EventType, Data: data})
	return err
}

func (s *jsStore) ReadAll(fn func(seq uint64, p *Payload)) (int, error) {
	if s.snaps != nil {
		return 0, notApplicable(jsSnapNA)
	}
	n := 0
	var p Payload
	for e, err := range s.l.Range(s.ctx, 1, math.MaxUint64) {
		if err != nil {
			return n, err
		}
		if err := s.c.decode(e.Data, &p); err != nil {
			return n, fmt.Errorf("payload of seq %d: %w", e.Seq, err)
		}
		n++
		fn(e.Seq, &p)
	}
	return n, nil
}

// StateAt resolves t with Log.SeqAt (a binary search on the recorded
// times) and folds the events up to it with Range.
func (s *jsStore) StateAt(t time.Time) (ItemCounts, error) {
	if s.snaps != nil {
		return nil, notApplicable(jsSnapNA)
	}
	seq, err := s.l.SeqAt(s.ctx, t)
	if err != nil || seq == 0 {
		return ItemCounts{}, err
	}
	f := ItemCounts{}
	var p Payload
	for e, err := range s.l.Range(s.ctx, 1, seq) {
		if err != nil {
			return nil, err
		}
		if err := s.c.decode(e.Data, &p); err != nil {
			return nil, fmt.Errorf("payload of seq %d: %w", e.Seq, err)
		}
		f.add(&p)
	}
	return f, nil
}

// LoadStream reads and decodes stream's events with Log.Stream, or (+snap)
// computes its fold with replay.State from the newest snapshot and the
// events after it; it fails if no snapshot was used.
func (s *jsStore) LoadStream(stream string) (int, error) {
	if s.snaps == nil {
		n := 0
		var p Payload
		for e, err := range s.l.Stream(s.ctx, stream, 0) {
			if err != nil {
				return n, err
			}
			if err := s.c.decode(e.Data, &p); err != nil {
				return n, fmt.Errorf("payload of seq %d: %w", e.Seq, err)
			}
			n++
		}
		return n, nil
	}
	res, err := replay.State(s.ctx, s.l, s.snaps, aggSubject(stream), replay.Latest(), s.spec, replay.Options{})
	if err != nil {
		return 0, err
	}
	if res.Plan.Snapshot == nil {
		return 0, fmt.Errorf("loading %s used no snapshot (fallbacks: %v)", stream, res.Plan.Fallbacks)
	}
	return res.State.total(), nil
}

// Close closes the connection and parks the servers for the next Open of
// the same directory.
func (s *jsStore) Close() error {
	if s.nc != nil {
		s.nc.Close()
		s.nc = nil
	}
	if s.cl == nil {
		return nil
	}
	jsParked.Lock()
	old := jsParked.c
	jsParked.c, s.cl = s.cl, nil
	jsParked.Unlock()
	if old != nil {
		old.shutdown()
	}
	return nil
}

// shutdown stops the servers and waits until they are down.
func (c *jsCluster) shutdown() {
	for _, srv := range c.servers {
		srv.Shutdown()
	}
	for _, srv := range c.servers {
		srv.WaitForShutdown()
	}
	c.servers = nil
}
