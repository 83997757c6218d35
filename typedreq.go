package evlog

import (
	"bytes"
	"fmt"
)

// stamper returns the schema-version stamper of the view's appends.
func (t *TypedLog[T]) stamper() stamper { return stamper{declared: t.declared, up: t.up} }

// encodeSource encodes every payload of a typed batch with one pooled
// encoder into one buffer, and builds the requests over one slice of
// envelopes: a few allocations for the whole batch, not per event. The
// events are checked (schema versions) as an append checks them.
func encodeSource(src batchSource) ([]AppendRequest, error) {
	enc := getEncoder()
	defer putEncoder(enc)
	// Undo whatever a payload's EncodeMsgpack changed in a pooled encoder.
	enc.enc.Reset(&enc.buf)
	enc.enc.UseCompactInts(true)
	enc.enc.SetSortMapKeys(true)
	n := 0
	for i := range src.parts() {
		_, _, k := src.part(i)
		n += k
	}
	envs := make([]Envelope, n)
	ends := make([]int, 0, n) // end of each payload in the buffer
	reqs := make([]AppendRequest, src.parts())
	k := 0
	for i := range src.parts() {
		stream, expect, m := src.part(i)
		for j := range m {
			e := &envs[k+j]
			src.envelope(i, j, e)
			if err := src.check(e); err != nil {
				err.Stream, err.Index = stream, j
				return nil, err
			}
			if err := src.encode(enc.enc, i, j); err != nil {
				return nil, fmt.Errorf("%w: encoding event %d (%s) of stream %q: %w", ErrInvalid, j, e.Type, stream, err)
			}
			ends = append(ends, enc.buf.Len())
		}
		reqs[i] = AppendRequest{Stream: stream, Expect: expect, Events: envs[k : k+m : k+m]}
		k += m
	}
	data := bytes.Clone(enc.buf.Bytes()) // the buffer is reused: copy once
	start := 0
	for i, end := range ends {
		envs[i].Data = data[start:end:end]
		start = end
	}
	return reqs, nil
}
