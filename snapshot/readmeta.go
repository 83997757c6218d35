package snapshot

import (
	"io"
	"math"
)

// ReadMeta reads and checks the header of the snapshot file named file
// (r, size bytes long) and returns its metadata — LogID among it —
// without reading the body: enough to tell whose a snapshot file is
// before removing it. It fails with an error matching ErrCorrupt when the
// header is damaged or r is not a snapshot.
func ReadMeta(file string, r io.ReaderAt, size int64) (Meta, error) {
	m, _, err := readHeader(file, r, size, math.MaxInt64)
	if err != nil {
		return Meta{}, err
	}
	m.File = file
	return m, nil
}
