package vfs

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func openOS(t *testing.T, dir string) *OS {
	t.Helper()
	o, err := OpenOS(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

func TestOpenOSMissingDirFailsWithoutCreating(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	o, err := OpenOS(dir)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenOS(missing) = %v, %v; want an error matching fs.ErrNotExist", o, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenOS created %s (Stat: %v)", dir, err)
	}
}

func TestOpenOSOnAFileFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	noErr(t, os.WriteFile(path, []byte("x"), 0o644))
	if o, err := OpenOS(path); err == nil {
		o.Close()
		t.Fatal("OpenOS on a regular file succeeded")
	}
}

func TestCreateOS(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "a", "b", "c")
	o, err := CreateOS(dir)
	if err != nil {
		t.Fatal(err)
	}
	if o.Dir() != dir {
		t.Errorf("Dir() = %q, want %q", o.Dir(), dir)
	}
	writeFile(t, o, "seg", []byte("data"))
	noErr(t, o.Close())
	if got, err := os.ReadFile(filepath.Join(dir, "seg")); err != nil || string(got) != "data" {
		t.Errorf("file on disk = %q, %v", got, err)
	}
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		t.Fatalf("Stat(%s) = %v, %v", dir, fi, err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o700 != 0o700 {
		t.Errorf("mode = %v, want owner rwx", fi.Mode())
	}

	// An existing directory is opened as is.
	o = must[*OS](t)(CreateOS(dir))
	defer o.Close()
	wantList(t, o, "seg")
	wantContent(t, o, "seg", []byte("data"))
}

func TestCreateOSSyncsParentsOfCreatedDirectories(t *testing.T) {
	var synced []string
	syncParent = func(path string) error {
		synced = append(synced, path)
		return syncPath(path)
	}
	t.Cleanup(func() { syncParent = syncPath })

	base := t.TempDir()
	dir := filepath.Join(base, "a", "b", "c")
	noErr(t, must[*OS](t)(CreateOS(dir)).Close())
	want := []string{base, filepath.Join(base, "a"), filepath.Join(base, "a", "b")}
	if diff := cmp.Diff(want, synced); diff != "" {
		t.Errorf("directories fsynced (-want +got):\n%s", diff)
	}

	synced = nil
	noErr(t, must[*OS](t)(CreateOS(dir)).Close())
	if len(synced) != 0 {
		t.Errorf("CreateOS of an existing directory fsynced %v", synced)
	}

	// A failing fsync fails CreateOS.
	syncParent = func(string) error { return EIO("dir") }
	if o, err := CreateOS(filepath.Join(base, "x")); !errors.Is(err, syscall.EIO) {
		if o != nil {
			o.Close()
		}
		t.Errorf("CreateOS with a failing fsync = %v, want EIO", err)
	}
}

func TestOSFilesLandInTheDirectory(t *testing.T) {
	dir := t.TempDir()
	o := openOS(t, dir)
	writeFile(t, o, "a", []byte("hello"))
	noErr(t, o.Rename("a", "b"))
	if got, err := os.ReadFile(filepath.Join(dir, "b")); err != nil || string(got) != "hello" {
		t.Errorf("b on disk = %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a still on disk after Rename: %v", err)
	}
	noErr(t, o.Remove("b"))
	if _, err := os.Stat(filepath.Join(dir, "b")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("b still on disk after Remove: %v", err)
	}
	// Files put there by others are seen.
	noErr(t, os.WriteFile(filepath.Join(dir, "ext"), []byte("123"), 0o644))
	if size := must[int64](t)(o.Stat("ext")); size != 3 {
		t.Errorf("Stat(ext) = %d, want 3", size)
	}
	noErr(t, o.SyncDir())
}

func TestOSListSkipsDirectories(t *testing.T) {
	dir := t.TempDir()
	o := openOS(t, dir)
	noErr(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	writeFile(t, o, "b", nil)
	writeFile(t, o, "a", nil)
	wantList(t, o, "a", "b")
}

func TestOSCannotEscapeThroughSymlink(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need privileges on windows")
	}
	outside := filepath.Join(t.TempDir(), "secret")
	noErr(t, os.WriteFile(outside, []byte("secret"), 0o644))
	dir := t.TempDir()
	noErr(t, os.Symlink(outside, filepath.Join(dir, "link")))
	o := openOS(t, dir)
	if f, err := o.Open("link"); err == nil {
		f.Close()
		t.Error("Open followed a symlink out of the directory")
	}
	if f, err := o.Create("link"); err == nil {
		f.Close()
		t.Error("Create followed a symlink out of the directory")
	}
	if got, _ := os.ReadFile(outside); string(got) != "secret" {
		t.Errorf("outside file changed to %q", got)
	}
}

func TestOSClosed(t *testing.T) {
	o := must[*OS](t)(OpenOS(t.TempDir()))
	noErr(t, o.Close())
	if _, err := o.Create("a"); err == nil {
		t.Error("Create after Close succeeded")
	}
	if _, err := o.List(); err == nil {
		t.Error("List after Close succeeded")
	}
}

func TestOSLock(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		t.Skip("flock only on linux and darwin")
	}
	dir := t.TempDir()
	o := openOS(t, dir)
	l := must[io.Closer](t)(o.Lock("LOCK"))

	// flock is per open file description: the same process, through the
	// same or another OS, conflicts.
	other := openOS(t, dir)
	for name, fsys := range map[string]*OS{"same OS": o, "other OS": other} {
		_, err := fsys.Lock("LOCK")
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("%s: second Lock = %v, want ErrLocked", name, err)
		}
		want := "evlog/vfs: " + filepath.Join(dir, "LOCK") + ": locked by another writer"
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q does not contain %q", name, err, want)
		}
	}
	noErr(t, l.Close())
	if err := l.Close(); err == nil {
		t.Error("second unlock succeeded")
	}
	l = must[io.Closer](t)(other.Lock("LOCK"))
	noErr(t, l.Close())
	if _, err := os.Stat(filepath.Join(dir, "LOCK")); err != nil {
		t.Errorf("LOCK file: %v", err)
	}
}

// TestOSLockOtherProcess holds the lock in a child process (this test
// binary, re-executed) and checks that it excludes this process until the
// child exits.
func TestOSLockOtherProcess(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		t.Skip("flock only on linux and darwin")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestOSLockHelper$")
	// GORACE: a race-enabled child would otherwise sleep 1s at exit.
	cmd.Env = append(os.Environ(), "EVLOG_VFS_LOCK_DIR="+dir, "GORACE=atexit_sleep_ms=0")
	stdin := must[io.WriteCloser](t)(cmd.StdinPipe())
	stdout := must[io.ReadCloser](t)(cmd.StdoutPipe())
	noErr(t, cmd.Start())
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "locked\n" {
		stdin.Close()
		cmd.Wait()
		t.Fatalf("child said %q, %v", line, err)
	}
	o := openOS(t, dir)
	if _, err := o.Lock("LOCK"); !errors.Is(err, ErrLocked) {
		t.Errorf("Lock while child holds it = %v, want ErrLocked", err)
	}
	stdin.Close() // the child exits without unlocking
	noErr(t, cmd.Wait())
	l := must[io.Closer](t)(o.Lock("LOCK"))
	noErr(t, l.Close())
}

// TestOSLockHelper is the child of TestOSLockOtherProcess: it takes the
// lock, says so, and exits when its stdin closes.
func TestOSLockHelper(t *testing.T) {
	dir := os.Getenv("EVLOG_VFS_LOCK_DIR")
	if dir == "" {
		t.Skip("helper process for TestOSLockOtherProcess")
	}
	o, err := OpenOS(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Lock("LOCK"); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("locked\n")
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0) // die holding the lock
}

func TestOSLockErrorIsErrLocked(t *testing.T) {
	err := error(&lockedError{path: "/x/LOCK"})
	if !errors.Is(err, ErrLocked) {
		t.Error("lockedError does not match ErrLocked")
	}
	want := "evlog/vfs: /x/LOCK: locked by another writer (is another process using this log?)"
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("message (-want +got):\n%s", diff)
	}
}
