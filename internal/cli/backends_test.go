package cli

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gpubroker/internal/backend"
	"gpubroker/internal/model"
)

// backendSet opens each cluster with the driver its backend kind names,
// and says which kinds this build drives when it has no driver for one.
func TestBackendSetOpensByKind(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var slurmDir string
	d := testDrivers
	d.Backends = append(slices.Clip(d.Backends), backend.Driver{Name: "slurm", Open: func(cl model.Cluster, dir string) (backend.Backend, error) {
		slurmDir = dir
		return testDrivers.Backends[0].Open(cl, dir) // a real backend; which one does not matter here
	}})
	set := &backendSet{dir: dir, drivers: d}
	defer set.close()
	if _, err := set.get(model.Cluster{Name: "onprem", Backend: model.BackendLocal}); err != nil {
		t.Fatalf("local: %v", err)
	}
	if _, err := set.get(model.Cluster{Name: "aws-slurm", Backend: model.BackendSlurm}); err != nil {
		t.Fatalf("slurm: %v", err)
	}
	if want := filepath.Join(dir, "slurm", "aws-slurm"); slurmDir != want {
		t.Errorf("slurm opened in %q, want %q", slurmDir, want)
	}
	_, err := set.get(model.Cluster{Name: "azure", Backend: model.BackendKubernetes})
	if err == nil || !strings.Contains(err.Error(), `cluster azure: backend "kubernetes" is not available in this build; it drives local, slurm`) {
		t.Errorf("kubernetes without a driver: %v", err)
	}
}
