package jetstream

import "context"

// AwaitWatch waits until l watches its stream's advisories, trusting that
// they reach it, and has received at least n of kind (CREATED, DELETED,
// ...; n 0: trusted only), or ctx ends. It returns false at once if l has
// no watch (every append then reads the end).
func AwaitWatch(ctx context.Context, l *Log, kind string, n uint64) (bool, error) {
	if l.watch == nil {
		return false, nil
	}
	return true, l.watch.await(ctx, kind, n)
}

// AdvisoryKinds returns the advisories l's watch received, by kind.
func AdvisoryKinds(l *Log) map[string]uint64 {
	l.watch.mu.Lock()
	defer l.watch.mu.Unlock()
	out := map[string]uint64{}
	for k, n := range l.watch.kinds {
		out[k] = n
	}
	return out
}

// SetAfterHeadsRead makes f run in every append attempt right after its
// heads read, until the test ends. Tests using it must not run in
// parallel with other appends.
func SetAfterHeadsRead(t interface{ Cleanup(func()) }, f func()) {
	afterHeadsRead = f
	t.Cleanup(func() { afterHeadsRead = nil })
}
