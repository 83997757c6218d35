package evlog

import (
	"context"
	"testing"
	"time"

	"github.com/evlog/evlog/internal/vfs"
)

// TestRetentionRecordKeepsTheLogsTime: recording Options.Retention at Open
// is configuration, not an event of the application's timeline: it must
// not move the log's time forward, or an application importing its
// history with the events' own (past) times into a log opened with
// Retention would be refused with ErrTimeBackwards from its first event
// on (and after a change of settings, from the record on).
func TestRetentionRecordKeepsTheLogsTime(t *testing.T) {
	ctx := context.Background()
	past := time.Date(2020, 3, 1, 12, 0, 0, 0, time.UTC)
	mem := vfs.NewMem()
	w := openMem(t, mem, Options{Retention: map[string]Retention{"r": {MaxCount: 2}}})
	if _, err := w.Append(ctx, "a-1", ExpectAny, Envelope{Type: "imported", Time: past}); err != nil {
		t.Fatalf("appending an event of 2020 to a new log opened with Retention: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = openMem(t, mem, Options{Retention: map[string]Retention{"r": {MaxCount: 1}}}) // a change: a new record
	defer w.Close()
	if _, err := w.Append(ctx, "a-1", ExpectAny, Envelope{Type: "imported", Time: past.Add(time.Millisecond)}); err != nil {
		t.Fatalf("appending the next event of 2020 after the settings changed: %v", err)
	}
	if got := w.LastTime(); !got.Equal(past.Add(time.Millisecond)) {
		t.Errorf("LastTime() = %v, want %v", got, past.Add(time.Millisecond))
	}
}
