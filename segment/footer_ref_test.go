package segment

import (
	"cmp"
	"encoding/binary"
	"slices"
)

// refAppendFooter is the footer encoder as it was before the encoder was
// made fast (sorting structs with comparison sorts, building each frame
// in a scratch payload): the straightforward reference the differential
// tests compare appendFooter against. Do not optimise it.
func refAppendFooter(x *Index, dst []byte, header [HeaderSize]byte, recordsEnd, footerStart int64, version uint16, ids bool) ([]byte, Trailer) {
	if x.base != nil {
		panic("evlog/segment: AppendFooter of an index with a checkpoint under it (Materialize it first)")
	}
	start := len(dst)
	off := func() int64 { return footerStart + int64(len(dst)-start) }

	// The streams in (hash, name) order, each hashed and looked up once.
	type stream struct {
		hash uint64
		name string
		sp   *StreamPostings
	}
	streams := make([]stream, 0, len(x.streams))
	// Room for the footer up front (postings take at most 2 uvarints of
	// 10 bytes each, usually far less): no regrowing a segment's worth of
	// postings while it is built.
	size := len(x.sparse)*24 + 4*TrailerSize
	for name, sp := range x.streams {
		streams = append(streams, stream{hash: streamHash(name), name: name, sp: sp})
		size += 2*FrameHeaderSize + entFixedSize + len(name) + 10 + len(sp.Posts)*8
	}
	dst = slices.Grow(dst, size)
	slices.SortFunc(streams, func(a, b stream) int {
		if c := cmp.Compare(a.hash, b.hash); c != 0 {
			return c
		}
		return cmp.Compare(a.name, b.name)
	})

	type postRef struct {
		off int64
		len uint32
	}
	refs := make([]postRef, len(streams))
	var p []byte
	for i := range streams {
		sp := streams[i].sp
		p = binary.AppendUvarint(p[:0], uint64(len(sp.Posts)))
		prev := int64(0)
		for _, po := range sp.Posts {
			p = binary.AppendUvarint(p, uint64(po.Off-prev))
			p = binary.AppendUvarint(p, uint64(po.Len))
			prev = po.Off
		}
		refs[i] = postRef{off: off()}
		dst = AppendFrame(dst, KindPostings, p)
		refs[i].len = uint32(off() - refs[i].off)
	}

	type blockRef struct {
		hash uint64
		off  int64
		len  uint32
	}
	var blocks []blockRef
	for lo := 0; lo < len(streams); lo += blockStride {
		hi := min(lo+blockStride, len(streams))
		p = p[:0]
		for i := lo; i < hi; i++ {
			p = appendBlockEntry(p, streams[i].hash, streams[i].name, streams[i].sp, refs[i].off, refs[i].len)
		}
		b := blockRef{hash: streams[lo].hash, off: off()}
		dst = AppendFrame(dst, KindBlock, p)
		b.len = uint32(off() - b.off)
		blocks = append(blocks, b)
	}

	// Version 4: the same entries again, in name order, in blocks of
	// nameStride, so that a name prefix is found by binary search over the
	// directory's first names.
	var names []nameRef
	if version >= 4 {
		order := make([]int32, len(streams))
		for i := range order {
			order[i] = int32(i)
		}
		slices.SortFunc(order, func(a, b int32) int { return cmp.Compare(streams[a].name, streams[b].name) })
		for lo := 0; lo < len(order); lo += nameStride {
			hi := min(lo+nameStride, len(order))
			p = p[:0]
			for _, i := range order[lo:hi] {
				p = appendBlockEntry(p, streams[i].hash, streams[i].name, streams[i].sp, refs[i].off, refs[i].len)
			}
			nb := nameRef{first: streams[order[lo]].name, off: off()}
			dst = AppendFrame(dst, KindNames, p)
			nb.len = uint32(off() - nb.off)
			names = append(names, nb)
		}
	}

	var idsOff int64
	var idsLen uint32
	if version >= 3 && ids && !x.idsLost && x.ids.len() > 0 && 4+x.ids.len()*idEntrySize <= MaxFramePayload {
		ids := x.ids.all()
		slices.SortFunc(ids, func(a, b IDEntry) int {
			return cmp.Or(cmp.Compare(a.Hash, b.Hash), cmp.Compare(a.Seq, b.Seq))
		})
		p = slices.Grow(p[:0], 4+len(ids)*idEntrySize)
		p = le.AppendUint32(p, uint32(len(ids)))
		for _, e := range ids {
			p = le.AppendUint64(p, e.Hash)
			p = le.AppendUint64(p, e.Seq)
		}
		idsOff = off()
		dst = AppendFrame(dst, KindIDs, p)
		idsLen = uint32(off() - idsOff)
	}

	p = le.AppendUint32(p[:0], uint32(len(x.sparse)))
	for _, s := range x.sparse {
		p = le.AppendUint64(p, s.Seq)
		p = le.AppendUint64(p, uint64(s.Off))
		p = le.AppendUint64(p, uint64(s.Time))
	}
	p = le.AppendUint32(p, uint32(len(blocks)))
	for _, b := range blocks {
		p = le.AppendUint64(p, b.hash)
		p = le.AppendUint64(p, uint64(b.off))
		p = le.AppendUint32(p, b.len)
	}
	p = le.AppendUint32(p, uint32(len(streams)))
	bloom := newBloom(len(streams))
	for i := range streams {
		bloom.add(streams[i].hash)
	}
	p = le.AppendUint32(p, uint32(len(bloom)*8))
	p = append(p, bloom...)
	if version >= 3 {
		p = le.AppendUint64(p, uint64(idsOff))
		p = le.AppendUint32(p, idsLen)
	}
	if version >= 4 {
		p = le.AppendUint32(p, uint32(len(names)))
		for _, nb := range names {
			p = le.AppendUint64(p, uint64(nb.off))
			p = le.AppendUint32(p, nb.len)
			p = le.AppendUint16(p, uint16(len(nb.first)))
			p = append(p, nb.first...)
		}
	}

	t := Trailer{
		RecordsEnd: recordsEnd,
		SummaryOff: off(),
		Count:      uint32(x.Count),
		LastSeq:    x.LastSeq,
		FirstTime:  x.FirstTime,
		LastTime:   x.LastTime,
		NewStreams: uint32(x.NewStreams),
	}
	dst = AppendFrame(dst, KindSummary, p)
	t.SummaryLen = uint32(off() - t.SummaryOff)
	tb := t.Encode(header)
	return append(dst, tb[:]...), t
}
