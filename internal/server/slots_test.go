package server

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gpubroker/internal/store"
)

// TestRestartDispatchesStoredSlots: a job admitted before a restart is
// dispatched on the GPU slots its attempt keeps in the store, whatever its
// event's message says (here nothing about slots).
func TestRestartDispatchesStoredSlots(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.stop() // no reconciler: this test plays the admitting broker's part
	out := filepath.Join(e.dir, "gpus")
	j := e.submitDirect(task(fmt.Sprintf("echo $CUDA_VISIBLE_DEVICES > %s", out)))
	_, err := e.st.MoveJob(t.Context(), j.ID, store.Move{From: store.Pending, Attempt: 1, To: store.Admitted,
		Actor: "test", Message: "placed on " + LocalCluster + "/" + LocalPool,
		Placement: &store.Placement{Cluster: LocalCluster, Pool: LocalPool, Provider: "onprem", GPU: "H100",
			GPUsPerNode: 1, Nodes: []int{0}},
		Slots: []store.NodeSlots{{Node: 0, GPUs: []int{2}}}})
	if err != nil {
		t.Fatal(err)
	}
	e.start()
	e.waitState(j.ID, 20*time.Second, store.Succeeded)
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(data)); got != "2" {
		t.Errorf("CUDA_VISIBLE_DEVICES = %q, want the stored slot 2", got)
	}
}
