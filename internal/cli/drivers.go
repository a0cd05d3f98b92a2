package cli

import (
	"context"
	"errors"
	"io"

	"gpubroker/internal/backend"
	"gpubroker/internal/model"
	"gpubroker/internal/store"
)

// Drivers are the concrete store and backend drivers. cli never names a
// driver package (the layering test checks it): cmd/gpubroker sets these
// and passes them to Main.
type Drivers struct {
	// OpenStore opens the store a --store URL names: "sqlite:PATH" (or a
	// bare path) for the embedded store, "postgres://..." for PostgreSQL.
	OpenStore func(ctx context.Context, url string) (store.Store, error)
	// LocalBackend opens the local backend for cluster, keeping its state
	// under dir.
	LocalBackend func(dir string, cluster model.Cluster) (backend.Backend, error)
	// SlurmBackend opens the Slurm backend for cluster (cluster.Slurm says
	// how to reach it); dir is where its attempts' scripts and logs go
	// unless cluster.Slurm.Dir names a shared directory. Nil: this build
	// drives no Slurm cluster.
	SlurmBackend func(dir string, cluster model.Cluster) (backend.Backend, error)
	// KubernetesBackend opens the Kubernetes backend for cluster
	// (cluster.Kubernetes says how to reach it). Nil: this build drives no
	// Kubernetes cluster.
	KubernetesBackend func(cluster model.Cluster) (backend.Backend, error)
}

// Main is Run with the drivers that the server and `token create --store`
// use. Commands that need none (plan, the API clients) work without them.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, d Drivers) int {
	env := newEnv(stdin, stdout, stderr)
	env.Drivers = d
	return env.Run(ctx, args)
}

var errNoDrivers = errors.New("this build of gpubroker has no store or backend drivers (run cmd/gpubroker)")

// drivers returns the env's drivers, or an error when it has none.
func (env *Env) drivers() (Drivers, error) {
	d := env.Drivers
	if d.OpenStore == nil || d.LocalBackend == nil {
		return Drivers{}, errNoDrivers
	}
	return d, nil
}
