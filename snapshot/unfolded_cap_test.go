package snapshot

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
)

// TestSaveUnfoldedCap: Save records MaxUnfolded ranges and reads them
// back; one more is refused (ErrInvalid), writing nothing: it is never
// cut or merged into a claim the caller did not make.
func TestSaveUnfoldedCap(t *testing.T) {
	for _, k := range []int{MaxUnfolded, MaxUnfolded + 1} {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			fsys := vfs.NewMem()
			s := newStore(t, fsys)
			var rs []SeqRange
			for i := range k {
				rs = append(rs, SeqRange{From: uint64(2*i + 1), To: uint64(2*i + 1)})
			}
			m := meta("projection/p", uint64(2*k))
			m.Unfolded = MakeSeqRanges(rs...)
			_, err := s.Save(t.Context(), m, []byte("state"))
			if k > MaxUnfolded {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Save with %d unfolded ranges: %v, want an error matching ErrInvalid", k, err)
				}
				if d := dirState(t, fsys); len(d) != 0 {
					t.Errorf("Save refused, yet the directory holds %v", d)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.List("projection/p")
			if err != nil || len(got) != 1 {
				t.Fatalf("List: %v, %v; want one", got, err)
			}
			if diff := cmp.Diff(rs, got[0].Unfolded.Slice()); diff != "" {
				t.Errorf("Unfolded read back (-saved +read):\n%s", diff)
			}
			if _, err := s.Load(t.Context(), got[0]); err != nil {
				t.Error(err)
			}
		})
	}
}
