package segment

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/evlog/evlog/internal/vfs"
)

// Checkpoint file (see doc.go): the index of a prefix of the active
// segment's records, so that Open reads O(1) bytes instead of scanning the
// segment. Layout:
//
//	+------------------------------+  0
//	| checkpoint header (64 bytes) |  magic "evlogckp", version, flags,
//	+------------------------------+  streams, window CRC, tag, CRC
//	| postings frames              |  \  exactly a sealed segment's footer:
//	| block frames                 |   | postings offsets point into the
//	| name block frames (v2)       |   | segment, frame offsets into this
//	| summary frame                |   |
//	| trailer (64 bytes)           |  /  file; records end = prefix end P
//	+------------------------------+
//
// Checkpoint header:
//
//	off size field
//	  0    8 magic "evlogckp"
//	  8    2 checkpoint version (2; 1 is read too)
//	 10    2 flags: bit 0 marked, bit 1 strict (Index.Marked, Index.Strict at P)
//	 12    4 header size (64)
//	 16    4 streams indexed (the summary's stream count)
//	 20    4 window CRC: CRC32C of the segment's bytes [max(64, P-4096), P)
//	 24    8 tag: first 8 bytes of HMAC-SHA256 keyed by the segment's mark
//	         key over "evlogckp", log ID, base seq, generation, bytes 0..23
//	         of this header and the trailer's first 60 bytes
//	 32   28 reserved, zero
//	 60    4 CRC32C of bytes 0..59
//
// The trailer is a sealed segment's trailer (its CRC covers the segment's
// header bytes, binding it to that file) whose records end is P: the
// checkpoint indexes the committed events in [HeaderSize, P) and nothing
// else. A writer writes one only for a P the segment was fsynced through,
// so the checkpoint's existence proves [HeaderSize, P) durable.
//
// NEVER CHANGE these constants (see format.go).
const (
	ckptMagic          = "evlogckp"
	ckptVersion        = 2
	ckptMagicOff       = 0
	ckptVersionOff     = 8
	ckptFlagsOff       = 10
	ckptSizeOff        = 12
	ckptStreamsOff     = 16
	ckptWindowCRCOff   = 20
	ckptTagOff         = 24
	ckptTagSize        = 8
	ckptCRCOff         = 60
	ckptFlagMarked     = 1 << 0
	ckptFlagStrict     = 1 << 1
	ckptKnownFlags     = ckptFlagMarked | ckptFlagStrict
	ckptTagCoveredSize = 24
	// CheckpointHeaderSize is the size of a checkpoint file's header.
	CheckpointHeaderSize = 64
	// CheckpointWindow is how many segment bytes before the prefix end the
	// window CRC covers (fewer when the prefix is shorter).
	CheckpointWindow = 4096
	// CheckpointExt replaces a segment name's Ext to name its checkpoint.
	CheckpointExt = ".ckpt"
	// maxCheckpointSize bounds the checkpoint file size Open accepts.
	maxCheckpointSize = 1 << 31
)

// ckptFooterVersion is the segment format version whose footer layout a
// checkpoint of version v holds, without an ID table: version 1, a
// version 2 footer; version 2, a version 4 footer (name blocks; the
// summary's ID table reference is zero).
func ckptFooterVersion(v uint16) uint16 {
	if v >= 2 {
		return 4
	}
	return 2
}

// CheckpointName returns the name of the checkpoint file of segment name.
func CheckpointName(segName string) string {
	return strings.TrimSuffix(segName, Ext) + CheckpointExt
}

// CheckpointSegment returns the segment name a checkpoint name belongs to
// (ok false if name is not a checkpoint name).
func CheckpointSegment(ckptName string) (string, bool) {
	stem, ok := strings.CutSuffix(ckptName, CheckpointExt)
	if !ok {
		return "", false
	}
	seg := stem + Ext
	if _, _, ok := ParseFileName(seg); !ok {
		return "", false
	}
	return seg, true
}

// ErrCheckpoint marks a checkpoint that is not used: absent, damaged,
// stale or of another segment. It is never an error of the log: the
// caller scans the segment instead. (An authentic checkpoint whose
// segment no longer holds what it indexes is another matter: see Check.)
var ErrCheckpoint = errors.New("evlog/segment: checkpoint not usable")

// CheckpointError says why a checkpoint is not used.
type CheckpointError struct {
	File   string
	Reason string
}

func (e *CheckpointError) Error() string {
	return fmt.Sprintf("evlog/segment: checkpoint %s not used: %s", e.File, e.Reason)
}

func (e *CheckpointError) Unwrap() error { return ErrCheckpoint }

// checkpointTag computes the tag of a checkpoint header of segment h.
func checkpointTag(h Header, hdr, trailer []byte) [ckptTagSize]byte {
	m := hmac.New(sha256.New, h.MarkKey[:])
	var b [8 + 16 + 8 + 8]byte
	copy(b[:8], ckptMagic)
	copy(b[8:24], h.LogID[:])
	le.PutUint64(b[24:], h.BaseSeq)
	le.PutUint64(b[32:], h.Generation)
	m.Write(b[:])
	m.Write(hdr[:ckptTagCoveredSize])
	m.Write(trailer[:trlCRCOff])
	var tag [ckptTagSize]byte
	copy(tag[:], m.Sum(nil))
	return tag
}

// CheckpointWindowStart returns where the window CRC of a checkpoint with
// prefix end p starts.
func CheckpointWindowStart(p int64) int64 { return max(HeaderSize, p-CheckpointWindow) }

// EncodeCheckpoint returns the checkpoint file of the segment with header
// h (encoded: hb) for its prefix [HeaderSize, p): x must be an index held
// wholly in memory (no checkpoint under it) whose events all lie before p,
// and windowCRC the CRC32C of the segment's bytes [CheckpointWindowStart(p), p).
func EncodeCheckpoint(h Header, hb [HeaderSize]byte, x *Index, p int64, windowCRC uint32) []byte {
	return appendCheckpoint(nil, h, hb, x, p, windowCRC, 1)
}

// AppendCheckpoint is EncodeCheckpoint into dst's storage: it returns the
// checkpoint file in dst[:0], grown if need be to twice the checkpoint's
// size, so that a writer that keeps the returned slice (once the file is
// written, its bytes are dead) and passes it to the next AppendCheckpoint
// or Index.AppendFooter allocates its footers' buffer about once. dst's
// contents are overwritten.
func AppendCheckpoint(dst []byte, h Header, hb [HeaderSize]byte, x *Index, p int64, windowCRC uint32) []byte {
	return appendCheckpoint(dst, h, hb, x, p, windowCRC, 2)
}

// appendCheckpoint is AppendCheckpoint, growing a short dst to headroom
// times the checkpoint's size.
func appendCheckpoint(dst []byte, h Header, hb [HeaderSize]byte, x *Index, p int64, windowCRC uint32, headroom int) []byte {
	if x.base != nil {
		panic("evlog/segment: EncodeCheckpoint of an index with a checkpoint under it")
	}
	dst = append(dst[:0], make([]byte, CheckpointHeaderSize)...)
	// No ID table: a checkpoint keeps no event IDs. Headroom (2 for a
	// writer): the later checkpoints and the seal footer of the segment
	// are larger (the mid-segment checkpoint indexes half of what the
	// seal does); grown to twice this one, the buffer holds them too, and
	// a writer touches fresh memory (a page fault per 4 KiB) about once,
	// not per footer.
	dst, _ = x.appendFooter(dst, hb, p, CheckpointHeaderSize, ckptFooterVersion(ckptVersion), false, headroom)
	hdr := dst[:CheckpointHeaderSize]
	copy(hdr[ckptMagicOff:], ckptMagic)
	le.PutUint16(hdr[ckptVersionOff:], ckptVersion)
	var flags uint16
	if x.Marked {
		flags |= ckptFlagMarked
	}
	if x.Strict {
		flags |= ckptFlagStrict
	}
	le.PutUint16(hdr[ckptFlagsOff:], flags)
	le.PutUint32(hdr[ckptSizeOff:], CheckpointHeaderSize)
	le.PutUint32(hdr[ckptStreamsOff:], uint32(len(x.streams)))
	le.PutUint32(hdr[ckptWindowCRCOff:], windowCRC)
	tag := checkpointTag(h, hdr, dst[len(dst)-TrailerSize:])
	copy(hdr[ckptTagOff:], tag[:])
	le.PutUint32(hdr[ckptCRCOff:], crc(hdr[:ckptCRCOff]))
	return dst
}

// WriteCheckpoint replaces the checkpoint of segment segName by data
// atomically: it writes NAME.ckpt.tmp, fsyncs it, renames it over the old
// checkpoint and, with syncDir, fsyncs the directory. On error the
// temporary is removed (best effort) and the old checkpoint, if any, is
// unchanged or replaced whole. A name that is not a regular file is left
// alone (an error matching vfs.ErrNotRegular).
func WriteCheckpoint(fsys vfs.FS, segName string, data []byte, syncDir bool) error {
	name := CheckpointName(segName)
	tmp := name + TempExt
	// Never over a stranger (a symbolic link, FIFO, directory… under the
	// name): it is not ours to replace.
	for _, n := range []string{name, tmp} {
		if fi, err := fsys.Lstat(n); err == nil && !fi.Regular() {
			return fmt.Errorf("evlog/segment: not writing checkpoint %s: %s is a %s: %w", name, n, vfs.TypeName(fi.Mode), vfs.ErrNotRegular)
		}
	}
	f, err := fsys.Create(tmp)
	if err != nil {
		return fmt.Errorf("evlog/segment: creating %s: %w", tmp, err)
	}
	fail := func(err error) error {
		return errors.Join(err, f.Close(), fsys.Remove(tmp))
	}
	if _, err := f.Write(data); err != nil {
		return fail(fmt.Errorf("evlog/segment: writing %s: %w", tmp, err))
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("evlog/segment: syncing %s: %w", tmp, err))
	}
	if err := f.Close(); err != nil {
		return errors.Join(fmt.Errorf("evlog/segment: closing %s: %w", tmp, err), fsys.Remove(tmp))
	}
	if err := fsys.Rename(tmp, name); err != nil {
		return errors.Join(fmt.Errorf("evlog/segment: renaming %s: %w", tmp, err), fsys.Remove(tmp))
	}
	if syncDir {
		if err := fsys.SyncDir(); err != nil {
			return fmt.Errorf("evlog/segment: syncing the directory after writing %s: %w", name, err)
		}
	}
	return nil
}

// Checkpoint is an open, validated checkpoint of an unsealed segment. Its
// header and trailer are read and checked when it is opened; the summary,
// stream blocks and postings are read on use (each frame checked), like a
// sealed segment's footer. Safe for concurrent use.
type Checkpoint struct {
	Name    string
	End     int64 // P: the checkpoint indexes the segment's records before it
	Trailer Trailer
	Marked  bool
	Strict  bool
	Streams int

	version   uint16 // checkpoint version (1 or 2)
	seg       string
	baseSeq   uint64
	windowCRC uint32
	segRA     io.ReaderAt // the segment, for the fallback
	segHdr    Header
	f         vfs.File
	size      int64

	mu      sync.Mutex
	summary *Summary
	sumErr  error
	// fallback, once damage was found in the checkpoint's frames, is the
	// index of the segment's records before End built by scanning them:
	// what every later question is answered from (see rescue).
	fallback    *Index
	fallbackErr error
}

// OpenCheckpoint opens and validates the checkpoint of s, an unsealed
// segment of generation 0 and format version 2 or later. It reads the
// checkpoint's header and trailer and checks them against s's header (see
// Check for s's content). Any reason not to use it is an error
// matching ErrCheckpoint (a *CheckpointError; fs.ErrNotExist too when
// there is none); the caller then scans s.
func OpenCheckpoint(fsys vfs.FS, s *Segment) (_ *Checkpoint, err error) {
	name := CheckpointName(s.Name)
	bad := func(format string, args ...any) error {
		return &CheckpointError{File: name, Reason: fmt.Sprintf(format, args...)}
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", &CheckpointError{File: name, Reason: "cannot open it"}, err)
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	if s.Sealed || s.Header.Version < 2 || s.Header.Generation != 0 || s.Header.Flags&FlagCompressed != 0 {
		return nil, bad("%s is not an unsealed segment of format version 2 or later", s.Name)
	}
	size, err := f.Size()
	if err != nil {
		return nil, bad("%v", err)
	}
	if size < CheckpointHeaderSize+FrameHeaderSize+TrailerSize || size > maxCheckpointSize {
		return nil, bad("size %d out of range", size)
	}
	var hdr [CheckpointHeaderSize]byte
	var tb [TrailerSize]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return nil, bad("reading the header: %v", err)
	}
	if _, err := f.ReadAt(tb[:], size-TrailerSize); err != nil {
		return nil, bad("reading the trailer: %v", err)
	}
	ck, err := decodeCheckpoint(hdr[:], tb[:], s, size)
	if err != nil {
		return nil, bad("%v", err)
	}
	ck.Name, ck.f, ck.size, ck.segRA, ck.segHdr = name, f, size, s.f, s.Header
	ck.windowCRC = le.Uint32(hdr[ckptWindowCRCOff:])
	return ck, nil
}

// Check checks that the segment s still holds the prefix c indexes: that
// it is at least c.End bytes long and that its last CheckpointWindow bytes
// before c.End are those the checkpoint was written for. It reads at most
// CheckpointWindow bytes.
//
// c is authentic (OpenCheckpoint checked its tag): its writer had fsynced
// s through c.End before writing it, so a segment that fails either test
// lost data that was durable — a disk fault, a lost file tail, a manual
// truncation, a segment restored from an older copy; no crash leaves that.
// Check then returns a *CorruptError (ErrCorrupt) naming s: at s.Size when
// s is shorter than c.End (a reader beside a live writer must first rule
// out a checkpoint written after it took s.Size: see CurrentSize), at the
// window's start when its bytes differ. Other errors are failures to read.
func (c *Checkpoint) Check(s *Segment) error {
	if c.End > s.Size {
		return &CorruptError{File: s.Name, Offset: s.Size, Reason: fmt.Sprintf(
			"the segment is %d bytes, but its checkpoint %s records that it had been fsynced through %d: durable events were lost (a disk fault, a lost file tail, a truncation)",
			s.Size, c.Name, c.End)}
	}
	ws := CheckpointWindowStart(c.End)
	w := make([]byte, c.End-ws)
	if _, err := s.f.ReadAt(w, ws); err != nil {
		return fmt.Errorf("evlog/segment: reading %s before %d for its checkpoint: %w", s.Name, c.End, err)
	}
	if got := crc(w); got != c.windowCRC {
		return &CorruptError{File: s.Name, Offset: ws, Reason: fmt.Sprintf(
			"the segment's bytes [%d, %d) are not those its checkpoint %s was written for (CRC %08x, want %08x), which it records as fsynced: durable data was damaged, or the segment replaced by an older copy",
			ws, c.End, c.Name, got, c.windowCRC)}
	}
	return nil
}

// decodeCheckpoint checks a checkpoint header and trailer against segment
// s (not its window) for a checkpoint file of size bytes.
func decodeCheckpoint(hdr, tb []byte, s *Segment, size int64) (*Checkpoint, error) {
	if string(hdr[ckptMagicOff:ckptMagicOff+len(ckptMagic)]) != ckptMagic {
		return nil, errors.New("bad magic")
	}
	if got, want := crc(hdr[:ckptCRCOff]), le.Uint32(hdr[ckptCRCOff:]); got != want {
		return nil, fmt.Errorf("header checksum mismatch (stored %08x, computed %08x)", want, got)
	}
	v := le.Uint16(hdr[ckptVersionOff:])
	if v < 1 || v > ckptVersion {
		return nil, fmt.Errorf("checkpoint version %d, want 1 to %d", v, ckptVersion)
	}
	flags := le.Uint16(hdr[ckptFlagsOff:])
	if flags&^ckptKnownFlags != 0 || le.Uint32(hdr[ckptSizeOff:]) != CheckpointHeaderSize {
		return nil, errors.New("unknown flags or header size")
	}
	for _, b := range hdr[ckptTagOff+ckptTagSize : ckptCRCOff] {
		if b != 0 {
			return nil, errors.New("reserved bytes are not zero")
		}
	}
	if string(tb[trlMagicOff:trlMagicOff+len(trailerMagic)]) != trailerMagic || trailerCRC(s.HeaderBytes[:], tb[:trlCRCOff]) != le.Uint32(tb[trlCRCOff:]) {
		return nil, errors.New("its trailer is damaged or belongs to another segment")
	}
	tag := checkpointTag(s.Header, hdr, tb)
	if !hmac.Equal(tag[:], hdr[ckptTagOff:ckptTagOff+ckptTagSize]) {
		return nil, errors.New("its tag does not match the segment (written for another segment under this name?)")
	}
	t := Trailer{
		RecordsEnd: int64(le.Uint64(tb[trlRecordsEndOff:])),
		SummaryOff: int64(le.Uint64(tb[trlSummaryOff:])),
		SummaryLen: le.Uint32(tb[trlSummaryLenOff:]),
		Count:      le.Uint32(tb[trlCountOff:]),
		LastSeq:    le.Uint64(tb[trlLastSeqOff:]),
		FirstTime:  int64(le.Uint64(tb[trlFirstTimeOff:])),
		LastTime:   int64(le.Uint64(tb[trlLastTimeOff:])),
		NewStreams: le.Uint32(tb[trlNewStreamsOff:]),
	}
	h := s.Header
	footerEnd := size - TrailerSize
	streams := le.Uint32(hdr[ckptStreamsOff:])
	switch {
	case t.RecordsEnd < HeaderSize || t.RecordsEnd >= 1<<62:
		return nil, fmt.Errorf("prefix end %d out of range", t.RecordsEnd)
	case t.SummaryOff < CheckpointHeaderSize || t.SummaryOff+int64(t.SummaryLen) != footerEnd || t.SummaryLen < FrameHeaderSize:
		return nil, fmt.Errorf("summary at %d+%d does not end at the trailer (%d)", t.SummaryOff, t.SummaryLen, footerEnd)
	case t.Count == 0 || t.LastSeq+1 < h.BaseSeq || t.LastSeq-h.BaseSeq+1 != uint64(t.Count):
		return nil, fmt.Errorf("%d events do not span seqs %d..%d", t.Count, h.BaseSeq, t.LastSeq)
	case t.FirstTime > t.LastTime:
		return nil, fmt.Errorf("first time %d after last time %d", t.FirstTime, t.LastTime)
	case uint64(t.NewStreams) > uint64(t.Count) || streams == 0 || uint64(streams) > uint64(t.Count):
		return nil, fmt.Errorf("%d new streams, %d streams in %d events", t.NewStreams, streams, t.Count)
	// Every event frame takes more than FrameHeaderSize bytes.
	case int64(t.Count) > (t.RecordsEnd-HeaderSize)/FrameHeaderSize:
		return nil, fmt.Errorf("%d events cannot fit in %d bytes", t.Count, t.RecordsEnd)
	}
	return &Checkpoint{
		End: t.RecordsEnd, Trailer: t, Streams: int(streams),
		Marked: flags&ckptFlagMarked != 0, Strict: flags&ckptFlagStrict != 0,
		version: v, seg: s.Name, baseSeq: h.BaseSeq,
	}, nil
}

// Close closes the checkpoint's file.
func (c *Checkpoint) Close() error { return c.f.Close() }

// corrupt reports damage found in the checkpoint after it was opened.
func (c *Checkpoint) corrupt(off int64, format string, args ...any) error {
	return &CorruptError{File: c.Name, Offset: off, Reason: fmt.Sprintf(format, args...) +
		"; the checkpoint is only an index of " + c.seg + ": remove it and reopen the log (Open then scans the segment)"}
}

// Summary returns the checkpoint's decoded summary, reading it on first use.
func (c *Checkpoint) Summary() (*Summary, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.summaryLocked()
}

func (c *Checkpoint) summaryLocked() (*Summary, error) {
	if c.summary != nil || c.sumErr != nil {
		return c.summary, c.sumErr
	}
	t := c.Trailer
	p, err := readFrameAt(c.f, c.Name, t.SummaryOff, t.SummaryLen, KindSummary, nil)
	if err == nil {
		var sum *Summary
		sum, err = decodeSummary(p, c.End, CheckpointHeaderSize, t.SummaryOff, int(t.Count), ckptFooterVersion(c.version))
		if err == nil && sum.NumStreams != c.Streams {
			err = fmt.Errorf("summary: %d streams, the header says %d", sum.NumStreams, c.Streams)
		}
		if err != nil {
			err = c.corrupt(t.SummaryOff, "%v", err)
		}
		c.summary = sum
	}
	if err != nil {
		c.summary = nil
		if errors.Is(err, ErrCorrupt) {
			c.sumErr = err
		}
	}
	return c.summary, err
}

// damaged reports whether err is damage of the checkpoint file itself.
func (c *Checkpoint) damaged(err error) bool {
	ce, ok := errors.AsType[*CorruptError](err)
	return ok && ce.File == c.Name
}

// rescue answers for a checkpoint found damaged after it was opened: it
// scans the segment's records before End (every frame checked, any
// invalid one corruption: they were fsynced) once, and returns that
// index. A damaged checkpoint is thus never trusted; an error is the
// segment's own damage or an I/O error.
func (c *Checkpoint) rescue() (*Index, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fallback == nil && c.fallbackErr == nil {
		res, err := Scan(c.segRA, c.segHdr, c.End, ScanOptions{File: c.seg, Strict: true})
		x := res.Index
		if err == nil && (x.Count != int(c.Trailer.Count) || x.End != c.End) {
			err = corruptf(c.seg, x.End, "its records before %d hold %d committed events ending at %d; its checkpoint %s says %d", c.End, x.Count, x.End, c.Name, c.Trailer.Count)
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			return nil, err // an I/O error: try again next time
		}
		c.fallback, c.fallbackErr = x, err
	}
	return c.fallback, c.fallbackErr
}

// sparse returns the checkpoint's sparse index.
func (c *Checkpoint) sparse() ([]SparseEntry, error) {
	sum, err := c.Summary()
	if c.damaged(err) {
		x, err := c.rescue()
		if err != nil {
			return nil, err
		}
		return x.sparse, nil
	}
	if err != nil {
		return nil, err
	}
	return sum.Sparse, nil
}

// lastVersion returns the version of the stream's last event in the
// checkpoint, or 0.
func (c *Checkpoint) lastVersion(stream string) (uint64, error) {
	e, ok, err := c.Lookup(stream)
	if c.damaged(err) {
		x, err := c.rescue()
		if err != nil {
			return 0, err
		}
		return x.LastVersion(stream)
	}
	if err != nil || !ok {
		return 0, err
	}
	return e.FirstVersion + uint64(e.Count) - 1, nil
}

// stream returns the stream's postings in the checkpoint.
func (c *Checkpoint) stream(name string) (StreamPostings, bool, error) {
	e, ok, err := c.Lookup(name)
	var posts []Posting
	if err == nil && ok {
		posts, err = c.Postings(e, nil)
	}
	if c.damaged(err) {
		x, err := c.rescue()
		if err != nil {
			return StreamPostings{}, false, err
		}
		return x.Stream(name)
	}
	if err != nil || !ok {
		return StreamPostings{}, false, err
	}
	return StreamPostings{FirstVersion: e.FirstVersion, Posts: posts}, true, nil
}

// Lookup finds a stream's entry in the checkpoint (see Segment.Lookup).
func (c *Checkpoint) Lookup(stream string) (StreamEntry, bool, error) {
	sum, err := c.Summary()
	if err != nil {
		return StreamEntry{}, false, err
	}
	read := func(b summaryBlock) ([]byte, error) { return readFrameAt(c.f, c.Name, b.off, b.len, KindBlock, nil) }
	corrupt := func(off int64, err error) error { return c.corrupt(off, "%v", err) }
	return lookupEntry(sum, stream, read, corrupt, CheckpointHeaderSize, c.Trailer.SummaryOff)
}

// Postings reads the postings of a stream entry found by Lookup.
func (c *Checkpoint) Postings(e StreamEntry, dst []Posting) ([]Posting, error) {
	p, err := readFrameAt(c.f, c.Name, e.PostOff, e.PostLen, KindPostings, nil)
	if err != nil {
		return nil, err
	}
	posts, err := decodePostings(p, e.Count, c.End, dst)
	if err != nil {
		return nil, c.corrupt(e.PostOff, "%v", err)
	}
	return posts, nil
}

// load reads the whole checkpoint into the in-memory index x (whose
// counters are already the checkpoint's, and which holds nothing else).
func (c *Checkpoint) load(x *Index) error {
	err := c.loadFile(x)
	if c.damaged(err) {
		f, err := c.rescue()
		if err != nil {
			return err
		}
		clear(x.streams)
		x.sparse = append(x.sparse[:0], f.sparse...)
		for name, sp := range f.streams {
			x.streams[name] = &StreamPostings{FirstVersion: sp.FirstVersion, Posts: sp.Posts}
		}
		return nil
	}
	return err
}

func (c *Checkpoint) loadFile(x *Index) error {
	sum, err := c.Summary()
	if err != nil {
		return err
	}
	x.sparse = append(x.sparse, sum.Sparse...)
	n := 0
	var prev uint64
	for _, b := range sum.blocks {
		p, err := readFrameAt(c.f, c.Name, b.off, b.len, KindBlock, nil)
		if err != nil {
			return err
		}
		r := binReader{b: p}
		for r.off < len(r.b) && r.err == nil {
			eh := r.u64()
			e := StreamEntry{FirstVersion: r.u64(), Count: r.u32(), PostOff: int64(r.u64()), PostLen: r.u32()}
			nm := string(r.take(int(r.u16())))
			if r.err != nil {
				break
			}
			if eh < prev || eh != streamHash(nm) || e.FirstVersion == 0 || e.Count == 0 || nm == "" || x.streams[nm] != nil {
				return c.corrupt(b.off, "stream block: entry %q malformed", nm)
			}
			prev = eh
			posts, err := c.Postings(e, nil)
			if err != nil {
				return err
			}
			x.streams[nm] = &StreamPostings{FirstVersion: e.FirstVersion, Posts: posts}
			n++
		}
		if r.err != nil {
			return c.corrupt(b.off, "stream block: %v", r.err)
		}
	}
	if n != c.Streams {
		return c.corrupt(c.Trailer.SummaryOff, "%d stream entries, the header says %d", n, c.Streams)
	}
	return nil
}

// readFrameAt reads the frame of size n at off of ra (file name), checks it
// and returns its payload (in buf if it is large enough).
func readFrameAt(ra io.ReaderAt, name string, off int64, n uint32, kind Kind, buf []byte) ([]byte, error) {
	if n < FrameHeaderSize || int64(n) > FrameHeaderSize+frameLimit(kind) {
		return nil, corruptf(name, off, "%s frame length %d out of range", kind, n)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := ra.ReadAt(buf, off); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, corruptf(name, off, "%s frame runs past the end of the file", kind)
		}
		return nil, fmt.Errorf("evlog/segment: reading %s: %w", name, err)
	}
	return checkFrame(buf, kind, name, off)
}

// AttachCheckpoint makes s own c: Close closes it too.
func (s *Segment) AttachCheckpoint(c *Checkpoint) {
	s.mu.Lock()
	s.ckpt = c
	s.mu.Unlock()
}

// IndexDiff describes the first difference between two indexes held
// wholly in memory ("" if they index the same events the same way).
func IndexDiff(a, b *Index) string {
	switch {
	case a.BaseSeq != b.BaseSeq || a.Count != b.Count || a.LastSeq != b.LastSeq:
		return fmt.Sprintf("seqs %d+%d vs %d+%d", a.BaseSeq, a.Count, b.BaseSeq, b.Count)
	case a.Count > 0 && (a.FirstTime != b.FirstTime || a.LastTime != b.LastTime):
		return "recorded times differ"
	case a.NewStreams != b.NewStreams || len(a.streams) != len(b.streams):
		return fmt.Sprintf("%d streams (%d new) vs %d (%d new)", len(a.streams), a.NewStreams, len(b.streams), b.NewStreams)
	case !slices.Equal(a.sparse, b.sparse):
		return "sparse indexes differ"
	}
	for name, sa := range a.streams {
		sb := b.streams[name]
		if sb == nil || sa.FirstVersion != sb.FirstVersion || !slices.Equal(sa.Posts, sb.Posts) {
			return fmt.Sprintf("stream %q differs", name)
		}
	}
	return ""
}
