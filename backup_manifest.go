package evlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
	"github.com/evlog/evlog/snapshot"
)

// ManifestFile is the name of a backup's manifest. A directory without a
// valid manifest is not a backup (see docs/BACKUP.md).
const ManifestFile = "MANIFEST"

// manifestVersion is the manifest format this release writes and reads.
const manifestVersion = 1

// manifestMagic opens the manifest's first line: "evlog-backup 1 sha256:<hex>",
// the hex digest covering every byte after that line (the JSON body).
const manifestMagic = "evlog-backup"

// maxManifestSize bounds what is read of a manifest (a log of 100k
// segments and snapshots takes well under 64 MiB).
const maxManifestSize = 64 << 20

// Manifest describes a backup: the log it copies, the seq it is consistent
// at, and every file in it. It is written last, atomically, so a backup
// directory with a valid manifest is complete.
type Manifest struct {
	Version int    `json:"version"`
	LogID   string `json:"log_id"` // hex
	// Seq is S: the backup holds every event up to it and nothing after
	// (whole batches only); Time is its recorded time (zero if Seq is 0).
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Created is when the backup (or its last incremental pass) finished.
	Created time.Time `json:"created"`
	// Source is the log directory it was taken from (informational; used
	// by BackupStatus to measure the lag).
	Source string `json:"source,omitempty"`
	// SegmentFormats and SnapshotFormats are the format versions of the
	// files, for a reader to check it knows them all.
	SegmentFormats  []int          `json:"segment_formats"`
	SnapshotFormats []int          `json:"snapshot_formats"`
	Files           []BackupedFile `json:"files"`
}

// BackupedFile is one file of a backup. A file in the directory may be
// longer than Size (an interrupted incremental pass appended to it): only
// its first Size bytes belong to the backup, and they hash to SHA256.
type BackupedFile struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"` // "segment" or "snapshot"
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Segments: the seqs held, whether the copy is sealed (a whole sealed
	// segment) or a prefix of the source's newest segment cut at S, and
	// for sealed ones the trailer, which identifies a sealed segment (it
	// binds the header, with its random mark key) so that an incremental
	// pass need not read it again.
	FirstSeq uint64 `json:"first_seq,omitempty"`
	LastSeq  uint64 `json:"last_seq,omitempty"`
	Sealed   bool   `json:"sealed,omitempty"`
	Trailer  string `json:"trailer,omitempty"`
	// Snapshots: the subject and the seq of the state.
	Subject string `json:"subject,omitempty"`
	Seq     uint64 `json:"seq,omitempty"`
}

const (
	kindSegment  = "segment"
	kindSnapshot = "snapshot"
)

// ErrNotABackup is matched by the error of Restore, VerifyBackup and an
// incremental Backup given a directory without a valid manifest: an
// interrupted first backup, a damaged or truncated manifest, or not a
// backup at all.
var ErrNotABackup = errors.New("evlog: not a backup")

// ErrBackupCorrupt is matched by the error of VerifyBackup and Restore when
// a file of a backup is missing, shorter than the manifest says, or does
// not hash to the manifest's checksum, or when a segment's contents do not
// verify. A snapshot that hashes to the manifest's checksum but does not
// verify is not: Restore leaves it out and VerifyBackup lists it
// (RestorePlan.SnapshotsLeftOut, BackupReport.SnapshotsLeftOut).
var ErrBackupCorrupt = errors.New("evlog: backup damaged")

// BackupError names the backup file at fault and why.
type BackupError struct {
	Dir    string
	File   string // "" for the backup as a whole
	Reason string
	Err    error // ErrNotABackup or ErrBackupCorrupt, or an underlying error
}

func (e *BackupError) Error() string {
	what := "backup " + e.Dir
	if e.File != "" {
		what += ": " + e.File
	}
	msg := what + ": " + e.Reason
	switch {
	case errors.Is(e.Err, ErrNotABackup):
		msg += " (not a complete backup: take a new one with evlogctl backup)"
	case errors.Is(e.Err, ErrBackupCorrupt):
		msg += " (the backup is damaged: restore from another backup)"
	}
	return "evlog: " + msg
}

func (e *BackupError) Unwrap() error { return e.Err }

// encodeManifest returns the manifest file's bytes.
func encodeManifest(m *Manifest) ([]byte, error) {
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	body = append(body, '\n')
	sum := sha256.Sum256(body)
	head := fmt.Sprintf("%s %d sha256:%s\n", manifestMagic, manifestVersion, hex.EncodeToString(sum[:]))
	return append([]byte(head), body...), nil
}

// readManifest reads and checks dir's manifest (dir names the directory for
// errors). Anything wrong is a *BackupError matching ErrNotABackup.
func readManifest(fsys vfs.FS, dir string) (*Manifest, error) {
	bad := func(format string, args ...any) error {
		return &BackupError{Dir: dir, File: ManifestFile, Reason: fmt.Sprintf(format, args...), Err: ErrNotABackup}
	}
	info, err := fsys.Lstat(ManifestFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &BackupError{Dir: dir, File: ManifestFile, Reason: "missing (a backup writes it last: this one was interrupted, or this is not a backup)", Err: ErrNotABackup}
	}
	if err != nil {
		return nil, err
	}
	if !info.Regular() {
		return nil, bad("is a %s, not a regular file", vfs.TypeName(info.Mode))
	}
	if info.Size > maxManifestSize {
		return nil, bad("is %d bytes, more than the %d a manifest may take", info.Size, maxManifestSize)
	}
	f, err := fsys.Open(ManifestFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("evlog: reading %s of backup %s: %w", ManifestFile, dir, err)
	}
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 {
		return nil, bad("truncated: no header line")
	}
	head, body := strings.Fields(string(b[:nl])), b[nl+1:]
	if len(head) != 3 || head[0] != manifestMagic || !strings.HasPrefix(head[2], "sha256:") {
		return nil, bad("the first line is not %q", manifestMagic+" <version> sha256:<digest>")
	}
	if v, err := strconv.Atoi(head[1]); err != nil || v != manifestVersion {
		return nil, bad("manifest version %s, this release reads %d (upgrade evlog)", head[1], manifestVersion)
	}
	sum := sha256.Sum256(body)
	if want := strings.TrimPrefix(head[2], "sha256:"); want != hex.EncodeToString(sum[:]) {
		return nil, bad("checksum mismatch: the manifest is truncated or damaged")
	}
	m := new(Manifest)
	if err := json.Unmarshal(body, m); err != nil {
		return nil, bad("%v", err)
	}
	if err := m.check(); err != nil {
		return nil, bad("%v", err)
	}
	return m, nil
}

// check checks the manifest's own consistency: known versions, file names
// of the right shape, segments in order and contiguous up to Seq.
func (m *Manifest) check() error {
	if m.Version != manifestVersion {
		return fmt.Errorf("version %d, want %d", m.Version, manifestVersion)
	}
	if _, err := parseLogID(m.LogID); err != nil {
		return err
	}
	for _, v := range m.SegmentFormats {
		if v < 1 || v > segment.FormatVersion {
			return fmt.Errorf("segment format %d is unknown to this release (upgrade evlog)", v)
		}
	}
	next := uint64(1)
	seen := map[string]bool{}
	nseg := 0
	for i, f := range m.Files {
		if seen[f.Name] {
			return fmt.Errorf("file %s listed twice", f.Name)
		}
		seen[f.Name] = true
		if f.Size < 0 || len(f.SHA256) != 64 {
			return fmt.Errorf("file %s: bad size or checksum", f.Name)
		}
		switch f.Kind {
		case kindSegment:
			base, _, ok := segment.ParseFileName(f.Name)
			if !ok || base != f.FirstSeq || base != next || f.LastSeq+1 < f.FirstSeq {
				return fmt.Errorf("segment %s (seqs %d–%d) does not continue the segments before it (next seq %d)", f.Name, f.FirstSeq, f.LastSeq, next)
			}
			if i > 0 && m.Files[i-1].Kind != kindSegment {
				return fmt.Errorf("segment %s listed after a snapshot", f.Name)
			}
			next = f.LastSeq + 1
			nseg++
		case kindSnapshot:
			if _, seq, ok := snapshot.ParseFileName(f.Name); !ok || seq != f.Seq || seq > m.Seq {
				return fmt.Errorf("snapshot %s: bad name, or after seq %d", f.Name, m.Seq)
			}
		default:
			return fmt.Errorf("file %s of unknown kind %q", f.Name, f.Kind)
		}
	}
	if nseg > 0 && next != m.Seq+1 {
		return fmt.Errorf("the segments hold seqs up to %d, the manifest says %d", next-1, m.Seq)
	}
	if nseg == 0 && m.Seq != 0 {
		return fmt.Errorf("no segment, but seq %d", m.Seq)
	}
	return nil
}

// segments returns the manifest's segment entries.
func (m *Manifest) segments() []BackupedFile {
	var out []BackupedFile
	for _, f := range m.Files {
		if f.Kind == kindSegment {
			out = append(out, f)
		}
	}
	return out
}

// file returns the entry for name.
func (m *Manifest) file(name string) (BackupedFile, bool) {
	for _, f := range m.Files {
		if f.Name == name {
			return f, true
		}
	}
	return BackupedFile{}, false
}

func parseLogID(s string) (segment.LogID, error) {
	var id segment.LogID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("log ID %q is not %d hex bytes", s, len(id))
	}
	copy(id[:], b)
	return id, nil
}
