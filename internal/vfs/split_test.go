package vfs

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSplitWrites: a file of a SplitWrites writes what it is given in
// writes of at most N bytes below, in order, whole.
func TestSplitWrites(t *testing.T) {
	mem := NewMem()
	var lens []int
	fs := SplitWrites{FS: NewFaulty(mem, func(op Op) error {
		if op.Kind == OpWrite {
			lens = append(lens, op.Len)
		}
		return nil
	}), N: 13}
	data := bytes.Repeat([]byte("0123456789"), 4)
	for _, open := range []func(string) (File, error){fs.Create, fs.OpenReadWrite} {
		lens = nil
		f, err := open("f")
		if err != nil {
			t.Fatal(err)
		}
		if n, err := f.Write(data); n != len(data) || err != nil {
			t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(data))
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]int{13, 13, 13, 1}, lens); diff != "" {
			t.Errorf("writes below (-want +got):\n%s", diff)
		}
		r, err := mem.Open("f")
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(data))
		if _, err := r.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
			t.Errorf("file holds %q (%v), want %q", got, err, data)
		}
		r.Close()
	}
}
