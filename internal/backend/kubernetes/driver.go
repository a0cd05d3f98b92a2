package kubernetes

import (
	"gpubroker/internal/backend"
	"gpubroker/internal/model"
)

// Driver describes the Kubernetes backend to cmd/gpubroker: clusters with
// backend: kubernetes (or k8s), reached with the cluster's kubernetes:
// block (model.KubernetesTarget, which the fleet parser types and checks):
// which kubeconfig, context and namespace, and the GPU product label of
// each pool. It keeps nothing on the broker's machine.
func Driver() backend.Driver {
	return backend.Driver{
		Name:    string(model.BackendKubernetes),
		Aliases: []string{"k8s"},
		Open: func(cl model.Cluster, _ string) (backend.Backend, error) {
			var t model.KubernetesTarget
			if cl.Kubernetes != nil {
				t = *cl.Kubernetes
			}
			return New(Options{Kubeconfig: t.Kubeconfig, Context: t.Context, Namespace: t.Namespace,
				Image: t.Image, PoolProducts: t.Products, Compression: t.Compression})
		},
	}
}
