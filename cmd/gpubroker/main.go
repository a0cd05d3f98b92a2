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
	"gpubroker/internal/model"
	"gpubroker/internal/store"
	"gpubroker/internal/store/postgres"
	"gpubroker/internal/store/sqlite"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, cli.Drivers{
		OpenStore:         openStore,
		LocalBackend:      openLocal,
		SlurmBackend:      openSlurm,
		KubernetesBackend: openKubernetes,
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

// openSlurm opens the Slurm backend for a cluster of the fleet: the
// cluster's slurm block says which slurm.conf, partition and GRES type;
// attempts live in its shared dir, else in dir.
func openSlurm(dir string, cl model.Cluster) (backend.Backend, error) {
	var t model.SlurmTarget
	if cl.Slurm != nil {
		t = *cl.Slurm
	}
	if t.Dir != "" {
		dir = t.Dir
	}
	return slurm.New(slurm.Options{Conf: t.Conf, Partition: t.Partition, GPUType: t.GRESType, Dir: dir,
		Account: t.Account, QOS: t.QOS, TeamAccounts: t.TeamAccounts, TeamQOS: t.TeamQOS})
}

// openKubernetes opens the Kubernetes backend for a cluster of the fleet:
// the cluster's kubernetes block says which kubeconfig, context and
// namespace, and the GPU product label of each pool.
func openKubernetes(cl model.Cluster) (backend.Backend, error) {
	var t model.KubernetesTarget
	if cl.Kubernetes != nil {
		t = *cl.Kubernetes
	}
	return kubernetes.New(kubernetes.Options{Kubeconfig: t.Kubeconfig, Context: t.Context, Namespace: t.Namespace,
		Image: t.Image, PoolProducts: t.Products, Compression: t.Compression})
}
