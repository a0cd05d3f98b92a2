// Command gpubroker places GPU work across clouds, contracts and on-prem
// clusters. main only wires the process to the command line: signals,
// standard streams and the exit code. Everything else is in internal/cli,
// which tests run in-process.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"gpubroker/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
