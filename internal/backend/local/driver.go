package local

import (
	"os"
	"path/filepath"

	"gpubroker/internal/backend"
	"gpubroker/internal/model"
)

// Driver describes the local backend to cmd/gpubroker: clusters with
// backend: local, run by a Backend in the cluster's own directory under
// the broker's state directory. Without nvidia-smi the machine has as
// many GPUs as the cluster's largest node declares. It takes no driver
// block.
//
// A broker that runs as root runs each team's jobs under a uid of the
// team's own (IsolationFromEnv: GPUBROKER_LOCAL_UID_BASE and
// GPUBROKER_LOCAL_UID_COUNT move the range), recorded in
// STATE_DIR/local/uids.json for every local cluster of the broker, and
// opens STATE_DIR/local for traversal (0711) so that jobs can reach their
// work directories below it.
func Driver() backend.Driver {
	return backend.Driver{
		Name: string(model.BackendLocal),
		Open: func(cl model.Cluster, dir string) (backend.Backend, error) {
			gpus := 0
			for _, p := range cl.Pools {
				gpus = max(gpus, p.GPUsPerNode)
			}
			parent := filepath.Dir(dir)
			iso, err := IsolationFromEnv(os.Getenv, os.Geteuid(), filepath.Join(parent, "uids.json"))
			if err != nil {
				return nil, err
			}
			if iso != nil {
				if err := os.MkdirAll(parent, 0o711); err != nil {
					return nil, err
				}
				if err := os.Chmod(parent, 0o711); err != nil {
					return nil, err
				}
			}
			return New(dir, Options{GPUs: gpus, Isolation: iso})
		},
	}
}
