package evlog

// Staging a typed request's frames: its payloads are encoded straight
// into the group buffer, and a large request's second part on another
// goroutine at the same time.

import (
	"fmt"
	"runtime"
	"time"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/segment"
)

// parallelEncodeEvents is the smallest typed request whose frames are
// encoded on two goroutines: the writer's and one started for the
// request. Below it the start-up and hand-back (a few µs each) would
// cost more than half the encoding saves; single-event appenders, whose
// groups are many small requests, keep to the writer's goroutine.
const parallelEncodeEvents = 256

// parallelEncodeShare is the writer goroutine's share of the events of a
// request encoded on two goroutines, in 1/256ths: a little more than
// half, since the other goroutine starts later.
const parallelEncodeShare = 140

// encodeTyped encodes the frames of typed request r, whose events are
// w.infos[k0:] (stage assigned their seqs, versions and times), at the
// end of w.buf, and sets each event's Off and Len. It returns the upper
// bound of the request's encoded size that checkBatch computes for raw
// envelopes. On error w.buf may hold part of the frames: stage rolls
// back.
//
// A request of parallelEncodeEvents events or more, with GOMAXPROCS
// above 1, is split in two: the writer encodes the first events into
// w.buf while a goroutine of the request's own encodes the rest into
// w.buf2, then appended to w.buf. The frames are the same bytes either
// way (TestParallelEncodeSameBytes). So a typed payload's EncodeMsgpack
// (or its fields' encoders) may run for two events of one batch at once
// on different goroutines; each event's value is only read.
func (w *writer) encodeTyped(r *request, k0 int) (int, error) {
	infos := w.infos[k0:]
	cut := encodeCut(len(infos))
	if w.encodeCut != nil {
		cut = w.encodeCut(len(infos))
	}
	if cut <= 0 || cut >= len(infos) {
		var size int
		var err error
		w.buf, size, err = encodeRange(r.src, &w.penc, w.buf, infos, 0, 0, w.end, w.opts.MaxEventSize)
		return size, err
	}
	// Event cut is event j of part i.
	i, j := 0, cut
	for {
		_, _, n := r.src.part(i)
		if j < n {
			break
		}
		i, j = i+1, j-n
	}
	var (
		done  = make(chan struct{})
		buf2  []byte
		size2 int
		err2  error
	)
	src2 := r.src.fork()
	go func() {
		defer close(done)
		buf2, size2, err2 = encodeRange(src2, &w.penc2, w.buf2[:0], infos[cut:], i, j, 0, w.opts.MaxEventSize)
	}()
	var size int
	var err error
	w.buf, size, err = encodeRange(r.src, &w.penc, w.buf, infos[:cut], 0, 0, w.end, w.opts.MaxEventSize)
	<-done
	w.buf2 = buf2
	if err == nil {
		err = err2
	}
	if err != nil {
		return 0, err
	}
	shift := w.end + int64(len(w.buf))
	for k := cut; k < len(infos); k++ {
		infos[k].Off += shift
	}
	w.buf = append(w.buf, buf2...)
	return size + size2, nil
}

// encodeCut returns how many of a typed request's n events the writer
// encodes itself, the rest on another goroutine (n: all).
func encodeCut(n int) int {
	if n < parallelEncodeEvents || runtime.GOMAXPROCS(0) < 2 {
		return n
	}
	return n * parallelEncodeShare / 256
}

// encodeRange appends the frames of the typed events infos, the first of
// which is event j of part i of src, to buf with pe, and sets each one's
// Off (base plus its offset in buf) and Len. It returns buf, the upper
// bound of the events' encoded sizes that checkBatch computes for raw
// envelopes, and the first error. A panic of a payload's encoder is
// returned as an *encoderPanic, buf as given, and pe made new.
func encodeRange(src batchSource, pe *payloadEncoder, buf []byte, infos []segment.EventInfo, i, j int, base int64, maxEvent int) (out []byte, size int, err error) {
	defer func() {
		if p := recover(); p != nil {
			pe.reset()
			out, size, err = buf, 0, &encoderPanic{value: p}
		}
	}()
	pe.configure()
	var env event.Envelope
	// An event with the fields of the one before it but maybe its time
	// (batchSource.same) reuses env, and bound, its size bound without
	// the data (typedSizeBound, which counts the time at its widest).
	bound := 0
	var prev segment.PendingFrame // the frame of the event before
	_, _, n := src.part(i)
	b := buf
	for k := range infos {
		if j == n {
			i, j = i+1, 0
			_, _, n = src.part(i)
		}
		info := &infos[k]
		same := k > 0 && src.same(i, j)
		if !same {
			src.envelope(i, j, &env)
			env.Stream = info.Stream
			bound = typedSizeBound(&env, 0) - segment.DataSize(0)
		} else if j == 0 {
			// Only the stream differs from the event before.
			bound += segment.StringSize(len(info.Stream)) - segment.StringSize(len(env.Stream))
		}
		env.Stream, env.Seq, env.Version = info.Stream, info.Seq, info.Version
		if env.SchemaVersion == 0 {
			env.SchemaVersion = event.DefaultSchemaVersion
		}
		env.Time = time.Unix(0, info.Time).UTC()
		off := len(b)
		var p segment.PendingFrame
		if same && j > 0 {
			// The envelope of the event before but for Seq and Version,
			// each one more, and its time.
			b, p = segment.BeginNextEventFrame(b, prev, infos[k-1].Time, &env)
		} else {
			b, p = segment.BeginEventFrame(b, &env)
		}
		prev = p
		data := len(b)
		pe.w.b = b
		err := src.encode(pe.enc, i, j)
		b, pe.w.b = pe.w.b, nil
		if err != nil {
			return b, 0, fmt.Errorf("%w: encoding event %d (%s) of stream %q: %w", ErrInvalid, j, env.Type, info.Stream, err)
		}
		dn := len(b) - data
		b = segment.EndEventFrame(b, p)
		// The size bound checkBatch computes for raw envelopes.
		es := bound + segment.DataSize(dn)
		if es > maxEvent {
			return b, 0, fmt.Errorf("%w: event %d of stream %q encodes to %d bytes, over MaxEventSize (%d)", ErrInvalid, j, info.Stream, es, maxEvent)
		}
		size += es
		fn := len(b) - off
		if fn > maxEvent {
			return b, 0, fmt.Errorf("%w: event of stream %q encodes to %d bytes, over MaxEventSize (%d)", ErrInvalid, info.Stream, fn, maxEvent)
		}
		info.Off, info.Len = base+int64(off), uint32(fn)
		j++
	}
	return b, size, nil
}
