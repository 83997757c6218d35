package segment

import (
	"strings"
)

// BlockBytes returns the total size of the segment's stream block frames:
// what EachStream reads.
func (s *Summary) BlockBytes() int64 {
	var n int64
	for _, b := range s.blocks {
		n += int64(b.len)
	}
	return n
}

// EachStream calls fn with the name and entry of every stream of a sealed
// segment whose name starts with prefix ("" for all), in the order of
// StreamsWithPrefix (by name in format version 4, by hash before). It
// reads the footer blocks StreamsWithPrefix reads (see
// Summary.PrefixBlockBytes) — in older segments every stream block, as
// names are hashed there — but no postings and no events. name is valid
// only during the call.
func (s *Segment) EachStream(prefix string, fn func(name string, e StreamEntry) error) error {
	entries, err := s.StreamsWithPrefix(prefix, nil)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := fn(e.Name, e.StreamEntry); err != nil {
			return err
		}
	}
	return nil
}

// EachStream calls fn with every stream of the index whose name starts
// with prefix ("" for all) and its postings, in no particular order. The
// postings slices are never modified afterwards (see Index); the caller
// holds the lock guarding x. With a checkpoint under the index, its
// streams are read from the checkpoint's stream blocks (errors come from
// that) and merged with what was added since.
func (x *Index) EachStream(prefix string, fn func(name string, sp StreamPostings)) error {
	if x.base == nil {
		for name, sp := range x.streams {
			if strings.HasPrefix(name, prefix) {
				fn(name, *sp)
			}
		}
		return nil
	}
	names, err := x.base.streamNames(prefix)
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		seen[name] = true
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		sp, ok, err := x.Stream(name)
		if err != nil {
			return err
		}
		if ok {
			fn(name, sp)
		}
	}
	for name, sp := range x.streams {
		if !seen[name] && strings.HasPrefix(name, prefix) {
			fn(name, *sp)
		}
	}
	return nil
}
