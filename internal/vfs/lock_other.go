//go:build !linux && !darwin

package vfs

import (
	"errors"
	"os"
	"runtime"
)

var errNoFlock = errors.New("evlog/vfs: file locking is not supported on " + runtime.GOOS)

// flock is unsupported on this platform: OS.Lock always fails.
func flock(*os.File) error { return errNoFlock }

func funlock(*os.File) error { return errNoFlock }
