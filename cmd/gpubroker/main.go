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
	"gpubroker/internal/backend/local"
	"gpubroker/internal/cli"
	"gpubroker/internal/model"
	"gpubroker/internal/store"
	"gpubroker/internal/store/postgres"
	"gpubroker/internal/store/sqlite"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, cli.Drivers{
		OpenStore:    openStore,
		LocalBackend: openLocal,
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

// openLocal opens the local backend for a cluster; without nvidia-smi the
// machine has as many GPUs as the cluster's pools declare.
func openLocal(dir string, cl model.Cluster) (backend.Backend, error) {
	gpus := 0
	for _, p := range cl.Pools {
		gpus = max(gpus, p.GPUsPerNode)
	}
	return local.New(dir, local.Options{GPUs: gpus})
}
