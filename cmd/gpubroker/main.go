// Command gpubroker places GPU work across clouds, contracts and on-prem
// clusters. main only wires the process to the command line: signals,
// standard streams, the exit code, and the concrete store and backend
// drivers (the only place that names them). Everything else is in
// internal/cli, which tests run in-process.
package main

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"gpubroker/internal/backend"
	"gpubroker/internal/backend/kubernetes"
	"gpubroker/internal/backend/local"
	"gpubroker/internal/backend/slurm"
	"gpubroker/internal/cli"
	"gpubroker/internal/store"
	"gpubroker/internal/store/postgres"
	"gpubroker/internal/store/sqlite"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, cli.Drivers{
		OpenStore: openStore,
		// The backends this build drives: a fleet's clusters may name
		// these and no others. A new backend is its package and one line
		// here (docs/adr/0006-drivers.md).
		Backends: []backend.Driver{
			local.Driver(),
			slurm.Driver(),
			kubernetes.Driver(),
		},
	})
	stop()
	os.Exit(code)
}

// openStore opens the store a --store URL names: postgres:// or
// postgresql:// for PostgreSQL, else SQLite ("sqlite:PATH" or a path).
func openStore(ctx context.Context, url string) (store.Store, error) {
	if strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://") {
		return postgres.Open(ctx, url)
	}
	return sqlite.Open(strings.TrimPrefix(url, "sqlite:"))
}
