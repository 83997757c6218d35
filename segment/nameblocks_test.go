package segment

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/event"
)

// manyStreamsImage is a segment of the version with 300 streams of one to
// three events: "acct-000".."acct-099", "cart-000".."cart-149" and
// "user-00".."user-49", written in an order unrelated to their names.
func manyStreamsImage(version uint16) *segImage {
	var names []string
	for i := range 100 {
		names = append(names, fmt.Sprintf("acct-%03d", i))
	}
	for i := range 150 {
		names = append(names, fmt.Sprintf("cart-%03d", i))
	}
	for i := range 50 {
		names = append(names, fmt.Sprintf("user-%02d", i))
	}
	h := testHeaderV2(1)
	h.Version = version
	var bs []batch
	seq := uint64(1)
	ver := map[string]uint64{}
	t0 := time.Date(2024, 5, 17, 10, 30, 0, 0, time.UTC)
	for round := range 3 {
		for i := range names {
			name := names[(i*37)%len(names)]
			if (i+round)%(round+1) != 0 {
				continue
			}
			ver[name]++
			e := event.Envelope{Seq: seq, Stream: name, Version: ver[name], Type: "t", SchemaVersion: 1, Time: t0.Add(time.Duration(seq) * time.Millisecond), Data: []byte{byte(seq)}}
			bs = append(bs, batch{events: []event.Envelope{e}, sync: seq%7 == 0})
			seq++
		}
	}
	return buildImage(h, bs)
}

// TestStreamsWithPrefixNameBlocks: in a version 4 segment a prefix query
// answers from the name blocks covering the prefix only — in name order,
// the entries the stream blocks hold — and reads a small part of what the
// same query reads in a version 3 segment of the same records (every
// stream block).
func TestStreamsWithPrefixNameBlocks(t *testing.T) {
	img4, img3 := manyStreamsImage(4), manyStreamsImage(3)
	file4, _ := seal(img4.index(len(img4.batches)), img4.h, img4.data[HeaderSize:])
	file3, _ := seal(img3.index(len(img3.batches)), img3.h, img3.data[HeaderSize:])
	name := FormatFileName(1, 0)
	s4, c4 := openMem(t, name, file4)
	s3, c3 := openMem(t, name, file3)
	if _, err := Verify(s4, math.MinInt64); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	sum4, err := s4.Summary()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s3.Summary(); err != nil {
		t.Fatal(err)
	}
	if want := (300 + nameStride - 1) / nameStride; !sum4.hasNames || len(sum4.names) != want {
		t.Fatalf("%d name blocks, want %d", len(sum4.names), want)
	}
	for _, prefix := range []string{"", "a", "acct-", "acct-05", "acct-099", "acct-0999", "b", "cart-", "cart-1", "cart-149", "cart-15", "user-", "user-4", "u", "v", "zz", "\xff"} {
		c4.Reset()
		c3.Reset()
		got, err := s4.StreamsWithPrefix(prefix, nil)
		if err != nil {
			t.Fatalf("StreamsWithPrefix(%q): %v", prefix, err)
		}
		want, err := s3.StreamsWithPrefix(prefix, nil)
		if err != nil {
			t.Fatalf("version 3 StreamsWithPrefix(%q): %v", prefix, err)
		}
		slices.SortFunc(want, func(a, b PrefixEntry) int { return strings.Compare(a.Name, b.Name) })
		// The postings frames sit at the same offsets in both files.
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("StreamsWithPrefix(%q) (-version 3, sorted +version 4):\n%s", prefix, diff)
		}
		read4, read3 := c4.Total().BytesRead, c3.Total().BytesRead
		if prefix != "" && len(got) <= nameStride && read4 > 2*read3/int64(len(sum4.names)) {
			t.Errorf("StreamsWithPrefix(%q): %d entries, read %d bytes (version 3: %d), want at most two name blocks' worth", prefix, len(got), read4, read3)
		}
		if got, want := sum4.PrefixBlockBytes(prefix), read4; got != want {
			t.Errorf("PrefixBlockBytes(%q) = %d, StreamsWithPrefix read %d", prefix, got, want)
		}
	}
}

// TestVerifyNameBlocks: Verify rejects name blocks and a name-block
// directory that disagree with the stream blocks, though every frame's
// checksum is valid, naming the file and the offset of the name block (or
// of the summary); a prefix query refuses what it can tell is wrong.
func TestVerifyNameBlocks(t *testing.T) {
	img := manyStreamsImage(4)
	good, tr := seal(img.index(len(img.batches)), img.h, img.data[HeaderSize:])
	name := FormatFileName(1, 0)
	s, _ := openMem(t, name, good)
	sum, err := s.Summary()
	if err != nil {
		t.Fatal(err)
	}
	nb := sum.names[1] // a full block: "acct-064".. (not the first)

	// reframe replaces the payload of the frame at off (same length) and
	// recomputes its checksum.
	reframe := func(file []byte, off int64, mut func(p []byte)) []byte {
		f := bytes.Clone(file)
		n := int64(le.Uint32(f[off+frameLenOff:]))
		mut(f[off+FrameHeaderSize : off+FrameHeaderSize+n])
		le.PutUint32(f[off+frameCRCOff:], crc(f[off+frameLenOff:off+FrameHeaderSize+n]))
		return f
	}
	// reblock re-encodes name block nb's entries after mut (names of the
	// same lengths: the frame keeps its size).
	reblock := func(mut func(es []namedEntry)) []byte {
		return reframe(good, nb.off, func(p []byte) {
			es, err := blockEntries(p, tr.RecordsEnd, tr.SummaryOff, true, nil)
			if err != nil {
				t.Fatal(err)
			}
			mut(es)
			var q []byte
			for _, e := range es {
				q = appendBlockEntry(q, e.hash, e.name, &StreamPostings{FirstVersion: e.FirstVersion, Posts: make([]Posting, e.Count)}, e.PostOff, e.PostLen)
			}
			if len(q) != len(p) {
				t.Fatalf("re-encoded block is %d bytes, was %d", len(q), len(p))
			}
			copy(p, q)
		})
	}
	// resummary mutates the summary frame's payload p, whose name-block
	// directory begins at dir (its u32 count just before).
	resummary := func(mut func(p []byte, dir int)) []byte {
		return reframe(good, tr.SummaryOff, func(p []byte) {
			dir := len(p)
			for _, b := range sum.names {
				dir -= nbFixedSize + len(b.first)
			}
			mut(p, dir)
		})
	}
	// firstName returns directory entry i's first name in p.
	firstName := func(p []byte, dir, i int) []byte {
		k := dir
		for _, b := range sum.names[:i] {
			k += nbFixedSize + len(b.first)
		}
		return p[k+nbFixedSize : k+nbFixedSize+len(sum.names[i].first)]
	}
	if nb.first != "acct-064" {
		t.Fatalf("setup: the second name block begins with %q", nb.first)
	}
	type row struct {
		name   string
		file   []byte
		offset int64
		prefix string // a prefix query that must fail too ("": none)
	}
	tests := []row{
		{"first version", reblock(func(es []namedEntry) { es[3].FirstVersion++ }), nb.off, ""},
		{"postings offset", reblock(func(es []namedEntry) { es[3].PostOff = es[4].PostOff }), nb.off, ""},
		{"entries swapped", reblock(func(es []namedEntry) { es[3], es[4] = es[4], es[3] }), nb.off, "acct-0"},
		{"entry repeated", reblock(func(es []namedEntry) { es[4] = es[3] }), nb.off, "acct-0"},
		{"name of an absent stream", reblock(func(es []namedEntry) { es[5].name = strings.Replace(es[5].name, "acct", "acc_", 1) }), nb.off, "acc"},
		{"hash", reblock(func(es []namedEntry) { es[5].hash ^= 1 }), nb.off, "acct-"},
		{"first entry", reblock(func(es []namedEntry) { es[0] = es[1] }), nb.off, "acct-"},
		{"frame kind", func() []byte {
			f := bytes.Clone(good)
			f[nb.off+frameKindOff] = byte(KindBlock)
			le.PutUint32(f[nb.off+frameCRCOff:], crc(f[nb.off+frameLenOff:nb.off+int64(nb.len)]))
			return f
		}(), nb.off, "acct-"},
		// The directory's second first name differs from the block's,
		// still in order ("acct-064" -> "acct-065").
		{"directory first name", resummary(func(p []byte, dir int) { firstName(p, dir, 1)[7]++ }), nb.off, "acct-06"},
		// The directory out of order, out of range or short: the summary
		// is corrupt.
		{"directory out of order", resummary(func(p []byte, dir int) { copy(firstName(p, dir, 1), "acct-000") }), tr.SummaryOff, "acct-"},
		{"directory offset", resummary(func(p []byte, dir int) { le.PutUint64(p[dir+nbOffOff:], uint64(tr.SummaryOff+1)) }), tr.SummaryOff, "acct-"},
		{"directory count", resummary(func(p []byte, dir int) { le.PutUint32(p[dir-4:], uint32(len(sum.names)-1)) }), tr.SummaryOff, "acct-"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openMem(t, name, tc.file)
			defer s.Close()
			_, err := Verify(s, math.MinInt64)
			wantCorrupt(t, err, name, tc.offset)
			if tc.prefix == "" {
				return
			}
			s2, _ := openMem(t, name, tc.file)
			defer s2.Close()
			if _, err := s2.StreamsWithPrefix(tc.prefix, nil); !errors.Is(err, ErrCorrupt) {
				t.Errorf("StreamsWithPrefix(%q) = %v, want corruption", tc.prefix, err)
			}
		})
	}
}

// TestCopyAsNameBlocks: a relabelled copy of a version 4 segment (restore)
// keeps its name blocks as they are — same offsets, checked on the way —
// and verifies and answers prefix queries under the new log ID.
func TestCopyAsNameBlocks(t *testing.T) {
	img := manyStreamsImage(4)
	file, _ := seal(img.index(len(img.batches)), img.h, img.data[HeaderSize:])
	name := FormatFileName(1, 0)
	s, _ := openMem(t, name, file)
	defer s.Close()
	id := LogID{9, 8, 7}
	var out bytes.Buffer
	if _, err := CopyAs(&out, s, id); err != nil {
		t.Fatal(err)
	}
	c, _ := openMem(t, name, out.Bytes())
	defer c.Close()
	if !c.Sealed || c.Header.LogID != id {
		t.Fatalf("copy: sealed %v, log ID %x", c.Sealed, c.Header.LogID)
	}
	if _, err := Verify(c, math.MinInt64); err != nil {
		t.Fatalf("Verify of the copy: %v", err)
	}
	want, err := s.StreamsWithPrefix("cart-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.StreamsWithPrefix("cart-1", nil)
	if err != nil || len(got) != 50 {
		t.Fatalf("copy: StreamsWithPrefix = %d entries, %v; want 50", len(got), err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("copy's prefix entries (-original +copy):\n%s", diff)
	}
}
