package slurm

import (
	"testing"

	"gpubroker/internal/model"
)

// The Slurm driver keeps attempts in the slurm block's shared dir, else in
// the directory it is given, and passes the block on.
func TestDriver(t *testing.T) {
	t.Parallel()
	d := Driver()
	if d.Name != "slurm" || d.Open == nil {
		t.Fatalf("Driver() = %+v", d)
	}
	state, shared := t.TempDir(), t.TempDir()
	for _, tc := range []struct {
		target  *model.SlurmTarget
		wantDir string
	}{
		{nil, state},
		{&model.SlurmTarget{Dir: shared, Partition: "gpu", Account: "ml"}, shared},
	} {
		be, err := d.Open(model.Cluster{Name: "hpc", Backend: model.BackendSlurm, Slurm: tc.target}, state)
		if err != nil {
			t.Fatal(err)
		}
		b := be.(*Backend)
		if b.dir != tc.wantDir {
			t.Errorf("target %+v: attempts in %s, want %s", tc.target, b.dir, tc.wantDir)
		}
		if tc.target != nil && (b.opts.Partition != "gpu" || b.opts.Account != "ml") {
			t.Errorf("options %+v do not carry the slurm block %+v", b.opts, tc.target)
		}
	}
}
