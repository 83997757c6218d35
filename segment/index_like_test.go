package segment

import (
	"bytes"
	"fmt"
	"testing"
)

// likeEvents returns the EventInfos of runs of events, each run one
// stream's (names[i] holds runs[i] events), from seq base on.
func likeEvents(base uint64, names []string, runs []int, vers map[string]uint64) []EventInfo {
	var out []EventInfo
	off := int64(HeaderSize)
	for i, name := range names {
		for range runs[i] {
			vers[name]++
			out = append(out, EventInfo{Seq: base + uint64(len(out)), Stream: name, Version: vers[name], Time: int64(len(out)), Off: off, Len: 100})
			off += 100
		}
	}
	return out
}

// TestNewIndexLike: an index sized like the previous segment's
// (NewIndexLike) gives a stream the previous segment held many events of
// room for as many at once (bounded by maxHint), so that its postings are
// not grown again as it fills, and leaves new streams as NewIndex does;
// it indexes the same events the same way (IndexDiff) and seals to the
// same footer bytes as a NewIndex.
func TestNewIndexLike(t *testing.T) {
	prev := NewIndex(1)
	vers := map[string]uint64{}
	var names []string
	var runs []int
	for i := range 5 {
		names, runs = append(names, "big", "small", fmt.Sprint("other-", i)), append(runs, 1000, 3, 2)
	}
	names, runs = append(names, "huge", "one"), append(runs, maxHint+10, 1)
	prev.AddBatch(likeEvents(1, names, runs, vers))
	next := prev.LastSeq + 1

	like, plain := NewIndexLike(next, prev), NewIndex(next)
	// The next segment: big in batches of 1,000, a new stream, the rest.
	names2 := []string{"big", "new", "small", "one", "huge"}
	runs2 := []int{1000, 70, 3, 1, 5}
	var first *Posting // big's first array
	for i := range 5 {
		v1, v2 := map[string]uint64{}, map[string]uint64{}
		for k, v := range vers {
			v1[k], v2[k] = v, v
		}
		like.AddBatch(likeEvents(like.LastSeq+1, names2, runs2, v1))
		plain.AddBatch(likeEvents(plain.LastSeq+1, names2, runs2, v2))
		vers = v1
		if i == 0 {
			first = &like.streams["big"].Posts[0]
			for name, want := range map[string]int{"big": 5000, "small": 15, "huge": maxHint} {
				if got := cap(like.streams[name].Posts); got < want {
					t.Errorf("stream %s: postings capacity %d after its first run, want at least %d", name, got, want)
				}
			}
			if got, want := cap(like.streams["new"].Posts), cap(plain.streams["new"].Posts); got != want {
				t.Errorf("new stream: capacity %d, want %d as in a NewIndex", got, want)
			}
		}
	}
	if &like.streams["big"].Posts[0] != first {
		t.Error("stream big: postings grown (copied) after its first run")
	}
	if d := IndexDiff(plain, like); d != "" {
		t.Fatalf("NewIndexLike indexes differently from NewIndex: %s", d)
	}
	plain.End, like.End = HeaderSize, HeaderSize
	a, _ := plain.AppendFooter(nil, testHeader(next).Encode())
	b, _ := like.AppendFooter(nil, testHeader(next).Encode())
	if !bytes.Equal(a, b) {
		t.Fatal("footers differ")
	}
}
