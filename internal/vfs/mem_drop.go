package vfs

// DropDirOps models a directory fsync that failed and lost the directory's
// pending changes for good, as Linux may ("fsyncgate": after the writeback
// error the kernel marks the directory's dirty state clean, so a later
// fsync succeeds without writing it, while listings, served from the
// cache, still show it). Call it where the failing SyncDir happens: a Mem's
// own SyncDir never fails but at a crash, so the failure is injected above
// it (see DropOnSyncDirFailure, which calls DropDirOps for every SyncDir
// failure a Faulty over m injects).
//
// The contract, exactly: the directory operations pending at the call
// (every Create of a new name, Rename, RenameNoReplace, Remove and
// Lock-creation since the last successful SyncDir or DropDirOps) are
// lost. They stay in effect in the current namespace (List, Open, Stat
// see them; handles keep working), but no crash model's state includes
// them (CrashClone: the pending operations KeepPrefix may keep are only
// those made after the call), and no later SyncDir makes them durable: a
// successful SyncDir from then on makes durable only the directory
// operations made since the last SyncDir or DropDirOps, applied in order
// to the durable namespace. So a name created before the call survives a
// power loss only if it was durable before (a lost Remove brings the file
// back, with its synced content) or is created again (Create of a name
// that does not exist, or the target of a Rename) after the call; a file
// created before the call and only written, synced or truncated since
// (Create of an existing name truncates, which is no directory operation)
// stays lost. File data is not affected: File.Sync works as before.
//
// DropDirOps is not a mutating operation: it is not counted by Ops and
// cannot be the armed crash point. It works after a crash too (it changes
// nothing a CrashClone of the crashed state would not already leave out).
// Clone copies its effect.
func (m *Mem) DropDirOps() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.log = nil
	m.dropped = true
}

// DropOnSyncDirFailure returns an Injector for a Faulty over m (directly or
// through other wrappers) that injects what inject injects and, whenever
// that fails an OpSyncDir, calls m.DropDirOps before returning the
// failure: the failed directory fsync loses the pending directory
// operations for good. Without it a Faulty's failed SyncDir leaves them
// pending, so a later successful SyncDir makes them durable, which is
// what a file system that retries the write does, and what Linux may
// not. A nil inject injects nothing.
func DropOnSyncDirFailure(m *Mem, inject Injector) Injector {
	return func(op Op) error {
		if inject == nil {
			return nil
		}
		err := inject(op)
		if err != nil && op.Kind == OpSyncDir {
			m.DropDirOps()
		}
		return err
	}
}
