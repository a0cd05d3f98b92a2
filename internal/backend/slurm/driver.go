package slurm

import (
	"gpubroker/internal/backend"
	"gpubroker/internal/model"
)

// Driver describes the Slurm backend to cmd/gpubroker: clusters with
// backend: slurm, reached through the Slurm commands with the cluster's
// slurm: block (model.SlurmTarget, which the fleet parser types and
// checks). Attempts live in the block's shared dir, else in the cluster's
// own directory under the broker's state directory.
func Driver() backend.Driver {
	return backend.Driver{
		Name: string(model.BackendSlurm),
		Open: func(cl model.Cluster, dir string) (backend.Backend, error) {
			var t model.SlurmTarget
			if cl.Slurm != nil {
				t = *cl.Slurm
			}
			if t.Dir != "" {
				dir = t.Dir
			}
			return New(Options{Conf: t.Conf, Partition: t.Partition, GPUType: t.GRESType, Dir: dir,
				Account: t.Account, QOS: t.QOS, TeamAccounts: t.TeamAccounts, TeamQOS: t.TeamQOS})
		},
	}
}
