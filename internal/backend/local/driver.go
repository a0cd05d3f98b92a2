package local

import (
	"gpubroker/internal/backend"
	"gpubroker/internal/model"
)

// Driver describes the local backend to cmd/gpubroker: clusters with
// backend: local, run by a Backend in the cluster's own directory under
// the broker's state directory. Without nvidia-smi the machine has as
// many GPUs as the cluster's largest node declares. It takes no driver
// block.
func Driver() backend.Driver {
	return backend.Driver{
		Name: string(model.BackendLocal),
		Open: func(cl model.Cluster, dir string) (backend.Backend, error) {
			gpus := 0
			for _, p := range cl.Pools {
				gpus = max(gpus, p.GPUsPerNode)
			}
			return New(dir, Options{GPUs: gpus})
		},
	}
}
