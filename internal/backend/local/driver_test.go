package local

import (
	"testing"

	"gpubroker/internal/model"
)

// The local driver opens a backend in the directory it is given, with as
// many GPUs (without nvidia-smi) as the cluster's largest node.
func TestDriver(t *testing.T) {
	t.Parallel()
	d := Driver()
	if d.Name != "local" || d.Open == nil {
		t.Fatalf("Driver() = %+v", d)
	}
	dir := t.TempDir()
	cl := model.Cluster{Name: "lab", Backend: model.BackendLocal, Pools: []model.Pool{{GPUsPerNode: 2}, {GPUsPerNode: 4}}}
	be, err := d.Open(cl, dir)
	if err != nil {
		t.Fatal(err)
	}
	b := be.(*Backend)
	if b.dir != dir || b.opts.GPUs != 4 {
		t.Errorf("opened in %s with %d GPUs; want %s, 4", b.dir, b.opts.GPUs, dir)
	}
}
