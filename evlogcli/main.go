package evlogcli

import (
	"context"
	"io"
)

// Main runs evlogctl with args (without the program name) and returns its
// exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return exitCode(run(ctx, args, stdout, stderr))
}
