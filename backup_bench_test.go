package evlog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchBackupEvents is the size of the log the backup benchmarks copy
// (EVLOG_BENCH_BACKUP_EVENTS overrides it; the note's figures use 10M).
func benchBackupEvents() int {
	if n, err := strconv.Atoi(os.Getenv("EVLOG_BENCH_BACKUP_EVENTS")); err == nil && n > 0 {
		return n
	}
	return 200_000
}

// fillLog appends n events of ~110 bytes in batches of 1,000 (one stream
// per batch), starting at time start, then syncs.
func fillLog(b *testing.B, l *Log, n int, start time.Time) {
	b.Helper()
	ctx := context.Background()
	payload := make([]byte, 80)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	evs := make([]Envelope, 1000)
	for done := 0; done < n; done += len(evs) {
		k := min(len(evs), n-done)
		for i := range evs[:k] {
			evs[i] = Envelope{Type: "item_added", Time: start.Add(time.Duration(done+i) * time.Microsecond), Data: payload}
		}
		if _, err := l.Append(ctx, fmt.Sprintf("s-%d", done/1000%500), ExpectAny, evs[:k]...); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Sync(ctx); err != nil {
		b.Fatal(err)
	}
}

func benchSource(b *testing.B, n int) (*Log, string, int64) {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "log")
	l, err := Open(dir, Options{Sync: SyncNever})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	fillLog(b, l, n, t0)
	var size int64
	segs, err := l.Segments()
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range segs {
		size += s.Bytes
	}
	return l, dir, size
}

// BenchmarkBackup measures a full backup of a closed-for-appends log by
// hard links (same file system) and by copying.
func BenchmarkBackup(b *testing.B) {
	n := benchBackupEvents()
	l, _, size := benchSource(b, n)
	for _, noLink := range []bool{false, true} {
		b.Run(map[bool]string{false: "link", true: "copy"}[noLink], func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				dst := filepath.Join(b.TempDir(), strconv.Itoa(i))
				if _, err := l.Backup(context.Background(), dst, BackupOptions{NoLink: noLink}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBackupIncremental measures an incremental backup after 1% new
// events (copying, so that the figure does not depend on hard links).
func BenchmarkBackupIncremental(b *testing.B) {
	n := benchBackupEvents()
	l, _, _ := benchSource(b, n)
	add := n / 100
	next := t0.Add(time.Duration(n) * time.Microsecond)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		dst := filepath.Join(b.TempDir(), "inc")
		if _, err := l.Backup(context.Background(), dst, BackupOptions{NoLink: true}); err != nil {
			b.Fatal(err)
		}
		fillLog(b, l, add, next)
		next = next.Add(time.Duration(add) * time.Microsecond)
		b.StartTimer()
		res, err := l.Backup(context.Background(), dst, BackupOptions{NoLink: true, Incremental: true})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(res.BytesCopied)/float64(1<<20), "MiB-copied/op")
	}
}

// BenchmarkRestore measures restoring a whole backup (every file checked,
// relabelled and fsynced).
func BenchmarkRestore(b *testing.B) {
	n := benchBackupEvents()
	l, _, size := benchSource(b, n)
	bdir := filepath.Join(b.TempDir(), "backup")
	if _, err := l.Backup(context.Background(), bdir, BackupOptions{NoLink: true}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		rdir := filepath.Join(b.TempDir(), strconv.Itoa(i))
		if _, err := Restore(context.Background(), bdir, rdir, RestoreOptions{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(rdir)
		b.StartTimer()
	}
	b.ReportMetric(float64(n), "events")
}

// BenchmarkFollowLag measures how far FollowBackup (1 s interval) trails 4
// writers appending durably at full speed for 10 s: at the end of each
// pass, the events and the recorded time between the backup's S and the
// source's last event.
func BenchmarkFollowLag(b *testing.B) {
	for b.Loop() {
		dir := filepath.Join(b.TempDir(), "log")
		l, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		stop := make(chan struct{})
		var acked atomic.Uint64
		wg := appendUntil(b, l, 4, stop, &acked)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var lagEv []float64
		var lagS []float64
		var mu sync.Mutex
		err = FollowBackup(ctx, dir, filepath.Join(b.TempDir(), "b"), FollowOptions{Interval: time.Second, OnPass: func(r BackupResult, err error) {
			if err != nil || r.Seq == 0 {
				return
			}
			last, lt := l.LastSeq(), l.LastTime()
			mu.Lock()
			lagEv = append(lagEv, float64(last-r.Seq))
			lagS = append(lagS, lt.Sub(r.Time).Seconds())
			mu.Unlock()
		}})
		cancel()
		close(stop)
		wg.Wait()
		l.Close()
		if err != nil {
			b.Fatal(err)
		}
		slices.Sort(lagEv)
		slices.Sort(lagS)
		if len(lagEv) == 0 {
			b.Fatal("no pass")
		}
		b.ReportMetric(lagEv[len(lagEv)/2], "lag-events-median")
		b.ReportMetric(lagEv[len(lagEv)-1], "lag-events-max")
		b.ReportMetric(lagS[len(lagS)/2], "lag-s-median")
		b.ReportMetric(lagS[len(lagS)-1], "lag-s-max")
		b.ReportMetric(float64(acked.Load())/10, "appended-events/s")
		b.ReportMetric(float64(len(lagEv)), "passes")
	}
}
