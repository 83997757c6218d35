//go:build unix

package evlog

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user and system) the process has used:
// benchmarks report events per CPU-second beside events per second, a
// figure a loaded machine disturbs far less.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
