package kubernetes

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gpubroker/internal/model"
)

// The Kubernetes driver answers to kubernetes and k8s, and opens with the
// cluster's kubernetes block (here a kubeconfig that is not there).
func TestDriver(t *testing.T) {
	t.Parallel()
	d := Driver()
	if d.Name != "kubernetes" || !slices.Equal(d.Aliases, []string{"k8s"}) || d.Open == nil {
		t.Fatalf("Driver() = %+v", d)
	}
	missing := filepath.Join(t.TempDir(), "nowhere.kubeconfig")
	_, err := d.Open(model.Cluster{Name: "k", Backend: model.BackendKubernetes,
		Kubernetes: &model.KubernetesTarget{Kubeconfig: missing}}, "")
	if err == nil || !strings.Contains(err.Error(), "kubeconfig") {
		t.Errorf("Open with a missing kubeconfig: %v", err)
	}
}
