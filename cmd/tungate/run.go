package main

import (
	"context"
	"io"
)

// runCommand implements `tungate run [flags] -- CMD [ARGS...]`.
func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return usageErrorf("tungate run is not implemented yet")
}
