package evlogcli

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/snapshot"
)

// TestVerifySnapshotAnchor: a snapshot whose recorded anchor (format
// version 2) is not the log's event at its seq — taken on another
// history whose event there has the same time — passed verify, which
// compared the time only; replay passes it over, and verify names it.
func TestVerifySnapshotAnchor(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "log")
	l, err := evlog.Open(dir, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tm := time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)
	for range 3 {
		if _, err := l.Append(ctx, "s", evlog.ExpectAny, evlog.Envelope{Type: "e", Time: tm, Data: []byte("\xa1x")}); err != nil {
			t.Fatal(err)
		}
	}
	logID := l.LogID()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if r := run1(t, "verify", dir); r.code != 0 {
		t.Fatalf("verify before: exit %d\n%s", r.code, r.stderr)
	}
	// A store without Options.Anchor records the caller's anchor: one of
	// another event at seq 2, recorded at the same time.
	fsys, err := vfs.OpenOS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	store, err := snapshot.Open(fsys, snapshot.Options{})
	if err != nil {
		t.Fatal(err)
	}
	other := snapshot.AnchorOf(evlog.Envelope{Seq: 2, Stream: "s", Version: 2, Type: "e", Time: tm, Data: []byte("\xa1y")})
	m, err := store.Save(ctx, snapshot.Meta{Name: "stats", LogID: logID, Seq: 2, Time: tm, Anchor: other}, []byte("\x80"))
	if err != nil {
		t.Fatal(err)
	}
	r := run1(t, "verify", dir)
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, m.File) {
		t.Errorf("verify of a snapshot of another history: exit %d, want 1 naming %s\nstdout:\n%s\nstderr:\n%s", r.code, m.File, r.stdout, r.stderr)
	}
}
