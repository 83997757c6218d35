// Package jetstream stores an evlog event log in a NATS JetStream stream,
// for when one machine is not enough: several application nodes appending
// to one log, replicas on other machines (Raft, R3 by default), read
// models on other hosts.
//
// Open returns a *Log serving the consumer-side interfaces the file log
// serves (replay.Source, aggregate.Log, projection.Source) and a snapshot
// store (Log.Snapshots) serving replay.Snapshots, replay.Saver and Prune,
// so aggregate.Repository, projection.Runner, replay and the inventory
// example run on it unchanged; evlogtest.Run checks that, on a single
// server and on a 3-node cluster.
//
// This is a module of its own (github.com/evlog/evlog/jetstream), so the
// core library never depends on NATS.
//
// What the package guards against, beyond lost and garbled answers (which
// appends and snapshot saves settle by reading back, see Append and
// Snapshots.Save):
//
//   - An append counts only when the log's own stream acknowledges it:
//     every message names that stream (Nats-Expected-Stream), and an append
//     the servers route to another stream fails with ErrForeignStream, a
//     *ForeignStreamError.
//   - A stream deleted and recreated under an open Log is found when the Log
//     reads the stream's end and the event at the last seq it knew of is
//     missing or another one, however many events the new stream holds:
//     ErrStreamReplaced. An append checks that event too, so a new stream
//     ending at that seq takes no append. To cost an append (nearly)
//     nothing, the Log watches the servers' advisories about its stream
//     ($JS.EVENT.ADVISORY.STREAM.*.<stream>: a replacement is a deletion
//     and a creation) and reads that event, concurrently with the
//     appended streams' heads, only while the watch is suspect: until it
//     has proof that the account's advisories reach it, after any
//     advisory about the stream, after a reconnection (advisories sent
//     meanwhile are lost) or a dropped advisory, until an append has read
//     it since. Without advisories (a user who may not subscribe to
//     $JS.EVENT.>, a JetStream API under a domain or imported from
//     another account) every append reads it: one more request, made
//     beside the heads' reads. See StreamReplacedError for what cannot be
//     told apart.
//   - Snapshots.Load and Snapshots.Remove act only on the snapshot their
//     Meta describes (every field of a Meta the store returned), never on
//     one saved since at the same name and seq by another fold:
//     snapshot.ErrNotFound, list again.
//   - State objects a Save left behind without a record are deleted by
//     Snapshots.Sweep, which is safe beside other processes' saves.
//   - Copy refuses, before appending anything, a source whose seqs have
//     holes (events deleted, truncated, tombstoned or expired, compacted
//     or not) or that holds records of evlog's system streams (deletion
//     markers, the log's recorded retention): ErrHoles, a *HolesError
//     naming the first. A JetStream stream numbers messages contiguously
//     and this package never deletes, so such a copy would renumber the
//     events after the hole (breaking every snapshot, checkpoint and
//     subscription position naming a seq), drop the deletions, or keep
//     for ever what the source's retention lets expire.
//   - Copy stores an event ID the source holds twice under fresh,
//     deterministic Nats-Msg-Ids, so every resend is recognised.
//
// Durability is the servers': run them with sync_interval: always, or a
// power loss of every node can lose up to two minutes of acknowledged
// appends (see the repository README, "When one machine is not enough",
// and examples/cluster).
package jetstream
