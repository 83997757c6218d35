// Command evlog-migrate copies an evlog log between the file backend and
// NATS JetStream, either way:
//
//	evlog-migrate -from DIR -to nats://HOST:PORT/LOG [-replicas 3]
//	evlog-migrate -from nats://HOST:PORT/LOG -to DIR [-dedupe-window N]
//
// It preserves every event's seq, stream, version, type, schema version,
// ID, meta, recorded time and payload bytes, into an empty target. Killed
// midway, run it again with the same arguments: it resumes after the
// target's last event (checked against the source). It ends by verifying
// that both logs hold the same number of events with the same checksum.
// Snapshots are not copied: they name their log, so take them again on the
// target.
//
// A file log whose seqs have holes is refused before anything is copied:
// events deleted (evlogctl delete, truncate or tombstone; compacted or
// not) or expired by retention and compacted, a deletion marker, or a
// record of the log's retention settings. The
// target numbers events contiguously, so the copy could not keep their
// seqs and versions (which snapshots, checkpoints and subscription
// positions name), and a JetStream log never deletes. Keep the file log,
// or copy a renumbered copy (evlogctl salvage DIR NEWDIR, which drops
// what is gone) and rebuild everything naming a seq on the target.
//
// A log may hold one event ID twice, stored again after its duplicate
// window. A file-log target remembers every ID by default and refuses the
// repeat: run again with -dedupe-window N (its Options.DedupeWindow while
// copying), N below the distance in events between the two.
//
// It lives in the jetstream module, not in evlogctl, because the core
// module never depends on NATS.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/evlog/evlog"
	evjs "github.com/evlog/evlog/jetstream"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "evlog-migrate:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage: evlog-migrate -from DIR|nats://HOST:PORT/LOG -to DIR|nats://HOST:PORT/LOG [-replicas N] [-dedupe-window N]")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("evlog-migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "source: a log directory or nats://HOST:PORT/LOG")
	to := fs.String("to", "", "target (empty, or a copy interrupted earlier): a log directory or nats://HOST:PORT/LOG")
	replicas := fs.Int("replicas", 3, "replicas of a JetStream target created by the copy (1 for a single server)")
	window := fs.Int64("dedupe-window", 0, "a file-log target's DedupeWindow while copying, in events (0: the whole log); below the distance between two events of the source sharing an ID")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" || *to == "" || fs.NArg() > 0 {
		return errUsage
	}
	if isNATS(*from) == isNATS(*to) {
		return fmt.Errorf("%w: one side must be a directory and the other a nats:// URL", errUsage)
	}
	var (
		src evjs.CopySource
		dst evjs.CopyTarget
	)
	if isNATS(*from) {
		l, closeFn, err := openNATS(ctx, *from, 0)
		if err != nil {
			return err
		}
		defer closeFn()
		fl, err := evlog.Open(*to, evlog.Options{MaxClockSkew: evlog.NoClockSkewLimit, DedupeWindow: *window}) // keep the source's times
		if err != nil {
			return err
		}
		defer fl.Close()
		src, dst = l, fl
	} else {
		fl, err := evlog.OpenReadOnly(*from, evlog.Options{})
		if err != nil {
			return err
		}
		defer fl.Close()
		l, closeFn, err := openNATS(ctx, *to, *replicas)
		if err != nil {
			return err
		}
		defer closeFn()
		src, dst = fl, l
	}
	rep, err := evjs.Copy(ctx, dst, src, func(seq uint64) {
		fmt.Fprintf(stderr, "copied through seq %d\n", seq)
	})
	if errors.Is(err, evjs.ErrHoles) {
		return err // running again fails the same way; the error says what to do
	}
	if errors.Is(err, evlog.ErrDuplicateID) && !isNATS(*to) {
		return fmt.Errorf("%w (run again with -dedupe-window to resume)", err)
	}
	if err != nil {
		return fmt.Errorf("%w (run again with the same arguments to resume)", err)
	}
	fmt.Fprintf(stdout, "copied %d events (resumed after seq %d); verified: both logs hold %d events, checksum %x\n",
		rep.Copied, rep.Resumed, rep.Events, rep.Checksum)
	return nil
}

func isNATS(s string) bool {
	return strings.HasPrefix(s, "nats://") || strings.HasPrefix(s, "tls://")
}

// openNATS opens the JetStream log named by u's path on u's server.
func openNATS(ctx context.Context, raw string, replicas int) (*evjs.Log, func(), error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", raw, err)
	}
	name := strings.Trim(u.Path, "/")
	if name == "" {
		return nil, nil, fmt.Errorf("%w: %s names no log (nats://HOST:PORT/LOG)", errUsage, raw)
	}
	u.Path = ""
	nc, err := nats.Connect(u.String())
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to %s: %w", u.Redacted(), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	// A copy keeps the source's recorded times, however far ahead of this
	// machine's clock.
	l, err := evjs.Open(ctx, js, evjs.Config{Name: name, Replicas: replicas, MaxClockSkew: evlog.NoClockSkewLimit})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return l, nc.Close, nil
}
