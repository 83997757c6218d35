package vfs

// SplitWrites is an FS whose files write in pieces of at most N bytes,
// one Write of the FS below for each: what a reader in another process
// may see of a write in progress (a write is not atomic to a concurrent
// reader). Put a Faulty below it to stop a writer between the pieces.
// For tests.
type SplitWrites struct {
	FS
	N int
}

// Create creates name below and splits its writes.
func (s SplitWrites) Create(name string) (File, error) {
	f, err := s.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return splitFile{File: f, n: s.N}, nil
}

// OpenReadWrite opens name below and splits its writes.
func (s SplitWrites) OpenReadWrite(name string) (File, error) {
	f, err := s.FS.OpenReadWrite(name)
	if err != nil {
		return nil, err
	}
	return splitFile{File: f, n: s.N}, nil
}

type splitFile struct {
	File
	n int
}

func (f splitFile) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		k, err := f.File.Write(p[done:min(len(p), done+f.n)])
		done += k
		if err != nil {
			return done, err
		}
	}
	return done, nil
}
