package evlog

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
)

// An explicit Time far in the future used to be accepted, and then pinned
// every later event's recorded time to it (recorded times never
// decrease). It is rejected, through every append path, and nothing is
// written; later events keep the clock's time.
func TestAppendRejectsFutureTime(t *testing.T) {
	ctx := t.Context()
	now := t0
	clock := func() time.Time { return now }
	future := now.Add(24 * 365 * time.Hour)
	for _, path := range []string{"Append", "AppendBatch", "Typed.Append", "Typed.AppendBatch"} {
		t.Run(path, func(t *testing.T) {
			l := openMem(t, vfs.NewMem(), Options{Clock: clock})
			defer l.Close()
			var err error
			switch path {
			case "Append":
				_, err = l.Append(ctx, "s", ExpectAny, Envelope{Type: "t"}, Envelope{Type: "t", Time: future})
			case "AppendBatch":
				_, err = l.AppendBatch(ctx, []AppendRequest{
					{Stream: "a", Expect: ExpectAny, Events: []Envelope{{Type: "t", Time: now}}},
					{Stream: "s", Expect: ExpectAny, Events: []Envelope{{Type: "t"}, {Type: "t", Time: future}}},
				})
			case "Typed.Append":
				_, err = Typed[int](l).Append(ctx, "s", ExpectAny, Event[int]{Type: "t"}, Event[int]{Type: "t", Time: future})
			case "Typed.AppendBatch":
				_, err = Typed[int](l).AppendBatch(ctx, []Batch[int]{{Stream: "s", Expect: ExpectAny, Events: []Event[int]{{Type: "t"}, {Type: "t", Time: future}}}})
			}
			if !errors.Is(err, ErrFutureTime) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrFutureTime and ErrInvalid", err)
			}
			fe, ok := errors.AsType[*FutureTimeError](err)
			if !ok {
				t.Fatalf("%v is not a *FutureTimeError", err)
			}
			want := FutureTimeError{Stream: "s", Index: 1, Time: future, Now: now, MaxSkew: DefaultMaxClockSkew}
			if d := cmp.Diff(want, *fe); d != "" {
				t.Errorf("FutureTimeError:\n%s", d)
			}
			if got := readAll(t, l); len(got) != 0 {
				t.Fatalf("a rejected append wrote %d events", len(got))
			}
			// The log's time did not move: the next event gets the clock's.
			pos, err := l.Append(ctx, "s", ExpectAny, Envelope{Type: "t"})
			if err != nil {
				t.Fatal(err)
			}
			if !pos.Time.Equal(now) {
				t.Errorf("next event recorded at %v, want the clock's %v", pos.Time, now)
			}
		})
	}
}

func TestMaxClockSkew(t *testing.T) {
	ctx := t.Context()
	now := t0
	clock := func() time.Time { return now }
	for _, tc := range []struct {
		name string
		skew time.Duration
		at   time.Time
		ok   bool
	}{
		{"past data", 0, now.Add(-20 * 365 * 24 * time.Hour), true},
		{"now", 0, now, true},
		{"at the default limit", 0, now.Add(DefaultMaxClockSkew), true},
		{"just past the default limit", 0, now.Add(DefaultMaxClockSkew + 1), false},
		{"an hour ahead, default", 0, now.Add(time.Hour), false},
		{"an hour ahead, 2h allowed", 2 * time.Hour, now.Add(time.Hour), true},
		{"a second ahead, 1ms allowed", time.Millisecond, now.Add(time.Second), false},
		{"year 2262, no limit", NoClockSkewLimit, time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{"a year ahead, any negative is no limit", -time.Hour, now.Add(365 * 24 * time.Hour), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openMem(t, vfs.NewMem(), Options{Clock: clock, MaxClockSkew: tc.skew})
			defer l.Close()
			_, err := l.Append(ctx, "s", ExpectAny, Envelope{Type: "t", Time: tc.at})
			if tc.ok && err != nil || !tc.ok && !errors.Is(err, ErrFutureTime) {
				t.Fatalf("time %v, MaxClockSkew %v: got %v, want ok=%v", tc.at, tc.skew, err, tc.ok)
			}
		})
	}
}

// Appenders read the clock (for MaxClockSkew) beside the writer (which
// stamps): a clock that is not safe for concurrent use, like this one, is
// still called one at a time (the race detector checks).
func TestClockCalledOneAtATime(t *testing.T) {
	ctx := t.Context()
	now := t0
	clock := func() time.Time { now = now.Add(time.Millisecond); return now }
	l := openMem(t, vfs.NewMem(), Options{Clock: clock})
	defer l.Close()
	done := make(chan error)
	for g := range 4 {
		go func() {
			var err error
			for i := range 50 {
				e := Envelope{Type: "t"}
				if i%2 == 0 {
					e.Time = t0 // explicit: checked against the clock (and may be backwards)
				}
				if _, err = l.Append(ctx, fmt.Sprint("s-", g), ExpectAny, e); err != nil && !errors.Is(err, ErrTimeBackwards) {
					break
				}
				err = nil
			}
			done <- err
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
