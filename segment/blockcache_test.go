package segment

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	ra io.ReaderAt
	n  atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.ra.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// openCompressed opens file (a compressed segment) with cache c and
// returns it, its logical records reader, its zmap, and the counter of
// bytes read from file.
func openCompressed(t *testing.T, file []byte, c *BlockCache) (*Segment, *zReader, *countingReaderAt) {
	t.Helper()
	cnt := &countingReaderAt{ra: bytes.NewReader(file)}
	s, err := open(&readerAtFile{ra: cnt, size: int64(len(file))}, "c.seg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if c != nil {
		s.SetBlockCache(c)
	}
	ra, _, err := s.Records()
	if err != nil {
		t.Fatal(err)
	}
	return s, ra.(*zReader), cnt
}

// goldenRecords returns compressed.seg and the plain record bytes it
// holds (logical offsets HeaderSize on), each block decompressed on its
// own, without a cache.
func goldenRecords(t *testing.T) (comp, records []byte) {
	t.Helper()
	comp = goldenFiles()["compressed.seg"]
	_, zr, _ := openCompressed(t, comp, nil)
	for i := range zr.z.starts {
		b, err := zr.decompress(i)
		if err != nil {
			t.Fatal(err)
		}
		records = append(records, b...)
	}
	if int64(len(records)) != zr.z.end-HeaderSize {
		t.Fatalf("blocks hold %d bytes, the zmap says %d", len(records), zr.z.end-HeaderSize)
	}
	return comp, records
}

// TestBlockCacheBounded: a cache never holds more than its limit, whatever
// is read through it, serves the records exactly, and serves a block it
// holds without reading the file again.
func TestBlockCacheBounded(t *testing.T) {
	comp, records := goldenRecords(t)
	limit := int64(2*goldenZBlock + goldenZBlock/2) // two blocks
	c := NewBlockCache(limit)
	_, zr, cnt := openCompressed(t, comp, c)
	if len(zr.z.starts) < 4 {
		t.Fatalf("%d blocks: want several more than the cache holds", len(zr.z.starts))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		off := rng.IntN(len(records))
		n := 1 + rng.IntN(min(len(records)-off, 3*goldenZBlock))
		p := make([]byte, n)
		if _, err := zr.ReadAt(p, HeaderSize+int64(off)); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		if !bytes.Equal(p, records[off:off+n]) {
			t.Fatalf("ReadAt(%d, %d bytes) differs from the records", HeaderSize+off, n)
		}
		if got := c.Size(); got > limit {
			t.Fatalf("cache holds %d bytes, over its limit %d", got, limit)
		}
	}
	zr.wg.Wait() // no read-ahead in flight: what follows reads nothing else

	// A block the cache holds is served without reading the file.
	p := make([]byte, 10)
	if _, err := zr.ReadAt(p, HeaderSize); err != nil {
		t.Fatal(err)
	}
	zr.wg.Wait()
	before := cnt.n.Load()
	if _, err := zr.ReadAt(p, HeaderSize+5); err != nil {
		t.Fatal(err)
	}
	if got := cnt.n.Load() - before; got != 0 {
		t.Fatalf("reading a cached block again read %d bytes of the file", got)
	}
	if c.Size() == 0 {
		t.Fatal("the cache holds nothing after reads")
	}

	// A disabled cache holds nothing, and reads still work.
	off := NewBlockCache(-1)
	_, zr2, _ := openCompressed(t, comp, off)
	all := make([]byte, len(records))
	if _, err := zr2.ReadAt(all, HeaderSize); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	zr2.wg.Wait()
	if !bytes.Equal(all, records) || off.Size() != 0 {
		t.Fatalf("disabled cache: records equal %v, size %d", bytes.Equal(all, records), off.Size())
	}
}

// TestBlockCacheDamagedBlock: a block that fails its checksum, or whose
// frame checks out but does not decompress, is reported as corruption
// naming the file and the block's offset, on every read (it is never
// cached as good); the blocks around it are served.
func TestBlockCacheDamagedBlock(t *testing.T) {
	comp, records := goldenRecords(t)
	_, zr, _ := openCompressed(t, comp, nil)
	const k = 2 // the damaged block
	phys, plen := zr.z.phys[k], int64(zr.z.plen[k])
	for _, tc := range []struct {
		name   string
		damage func(f []byte)
	}{
		{"checksum", func(f []byte) { f[phys+FrameHeaderSize+3] ^= 0x40 }},
		{"not zstd", func(f []byte) {
			for i := phys + FrameHeaderSize; i < phys+plen; i++ {
				f[i] = 0x5a
			}
			le.PutUint32(f[phys+frameCRCOff:], crc(f[phys+frameLenOff:phys+plen]))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := bytes.Clone(comp)
			tc.damage(bad)
			c := NewBlockCache(1 << 20)
			_, zr, _ := openCompressed(t, bad, c)
			start := zr.z.starts[k]
			for try := range 3 {
				p := make([]byte, 8)
				_, err := zr.ReadAt(p, start)
				ce, ok := errors.AsType[*CorruptError](err)
				if !ok || !errors.Is(err, ErrCorrupt) || ce.File != "c.seg" || ce.Offset != phys {
					t.Fatalf("read %d of the damaged block: %v; want corruption of c.seg at offset %d", try, err, phys)
				}
				zr.wg.Wait()
				if c.cached(blockKey{r: zr, block: k}) {
					t.Fatalf("read %d: the damaged block is cached", try)
				}
			}
			// The blocks before and after it are served.
			for _, b := range []int{k - 1, k + 1} {
				p := make([]byte, 8)
				if _, err := zr.ReadAt(p, zr.z.starts[b]); err != nil {
					t.Fatalf("block %d beside the damaged one: %v", b, err)
				}
				off := zr.z.starts[b] - HeaderSize
				if !bytes.Equal(p, records[off:off+8]) {
					t.Fatalf("block %d beside the damaged one reads wrong bytes", b)
				}
			}
		})
	}
}

// TestBlockCacheConcurrent: readers of several segments sharing one small
// cache, reading at random and in order (which starts read-aheads), all
// read the records exactly, while the cache stays within its limit; the
// segments close with read-aheads in flight. Run it with -race.
func TestBlockCacheConcurrent(t *testing.T) {
	comp, records := goldenRecords(t)
	limit := int64(2 * readAheadBlocks * goldenZBlock) // just room for read-aheads
	c := NewBlockCache(limit)
	var zrs []*zReader
	var segs []*Segment
	for range 3 {
		s, zr, _ := openCompressed(t, comp, c)
		segs, zrs = append(segs, s), append(zrs, zr)
	}
	if total := int64(len(zrs)) * (zrs[0].z.end - HeaderSize); total <= limit {
		t.Fatalf("the segments hold %d bytes: the cache (%d) must not hold them all", total, limit)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			zr := zrs[g%len(zrs)]
			for i := range 300 {
				off, n := 0, 0
				if g%2 == 0 { // in order, in chunks of a block or more
					off = (i * 297) % len(records)
					n = min(len(records)-off, 300)
				} else {
					off = rng.IntN(len(records))
					n = 1 + rng.IntN(min(len(records)-off, 2*goldenZBlock))
				}
				p := make([]byte, n)
				if _, err := zr.ReadAt(p, HeaderSize+int64(off)); err != nil && !errors.Is(err, io.EOF) {
					errs <- err
					return
				}
				if !bytes.Equal(p, records[off:off+n]) {
					errs <- errors.New("concurrent read differs from the records")
					return
				}
				if s := c.Size(); s > limit {
					errs <- errors.New("cache over its limit")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, s := range segs {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Size(); got != 0 {
		t.Fatalf("cache holds %d bytes after every segment closed", got)
	}
}
