package control

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"gpubroker/internal/engine"
	"gpubroker/internal/model"
	"gpubroker/internal/server/view"
	"gpubroker/internal/spec"
	"gpubroker/internal/store"
)

// aheadFleet: a Slurm cluster of two 8-GPU nodes that may queue one node's
// worth of work ahead, and a local cluster that may not.
const aheadFleet = `
clusters:
  - name: hpc
    provider: onprem
    region: dc
    backend: slurm
    queue_ahead: 1
    pools:
      - {name: gpu, gpu: H100, gpus_per_node: 8, nodes: 2, price_class: committed}
  - name: box
    provider: onprem
    region: dc
    backend: local
    pools:
      - {name: gpu, gpu: H100, gpus_per_node: 8, nodes: 1, price_class: committed}
`

func aheadWorkload(id, nodes, gpus, priority int) *model.Workload {
	return &model.Workload{ID: strconv.Itoa(id), Name: "w" + strconv.Itoa(id), Kind: model.Job, Team: "ml",
		Priority: priority, NumNodes: nodes, Options: []model.Resources{{GPU: "H100", GPUsPerNode: gpus}},
		Submitted: time.Date(2026, 12, 6, 0, 0, id, 0, time.UTC)}
}

// heldOn is a running job of one GPU per node on the given nodes.
func heldOn(id int64, cluster string, gpus int, nodes ...int) *store.Job {
	started := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	return &store.Job{ID: id, Team: "ml", State: store.Running, Updated: started, StartedAt: started,
		Workload:  aheadWorkload(int(id), len(nodes), gpus, 0),
		Placement: &store.Placement{Cluster: cluster, Pool: "gpu", GPU: "H100", GPUsPerNode: gpus, Nodes: nodes}}
}

func TestScheduleAheadFillsQueueSlotsOnly(t *testing.T) {
	f, _, err := spec.ParseFleet([]byte(aheadFleet), "fleet.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)
	// Every real node is full: both of hpc's and box's.
	holding := []*store.Job{heldOn(1, "hpc", 8, 0), heldOn(2, "hpc", 8, 1), heldOn(3, "box", 8, 0)}
	var pending []*model.Workload
	for i := 10; i < 20; i++ {
		pending = append(pending, aheadWorkload(i, 1, 1, 0))
	}
	pending = append(pending, aheadWorkload(30, 2, 1, 0)) // a gang never goes ahead

	// The regular pass admits nothing: there is no capacity.
	if dec := engine.Schedule(buildSnapshot(f, holding, nil, usageSnapshot{}, realNodes), pending, f.Policy, now); len(dec.Admit) != 0 {
		t.Fatalf("regular pass admitted %+v on a full fleet", dec.Admit)
	}
	as := scheduleAhead(f, buildSnapshot(f, holding, nil, usageSnapshot{}, queueSlots), pending, now)
	if len(as) != 8 {
		t.Fatalf("ahead pass admitted %d jobs, want 8 (one node's worth of slots): %+v", len(as), as)
	}
	base := view.SlotBase(&f.Clusters[0].Pools[0])
	for _, a := range as {
		if a.Pool.Cluster != "hpc" {
			t.Errorf("%s went ahead on %s, a cluster without queue_ahead", a.Workload, a.Pool)
		}
		if a.Workload == "30" {
			t.Errorf("the two-node gang went ahead")
		}
		if len(a.Nodes) != 1 || a.Nodes[0] != base {
			t.Errorf("%s went ahead on nodes %v, want the queue slot %d", a.Workload, a.Nodes, base)
		}
	}
	if as[0].Workload != "10" || as[7].Workload != "17" {
		t.Errorf("ahead admissions out of queue order: first %s, last %s", as[0].Workload, as[7].Workload)
	}

	// With the slots taken, nothing more goes ahead, and the queued work is
	// never a victim: a high-priority job that needs a real node preempts
	// a running job, not one queued on a slot.
	for i, a := range as {
		// Queued a moment ago: were it a victim, the cheapest one.
		holding = append(holding, &store.Job{ID: int64(100 + i), Team: "ml", State: store.Dispatched, Updated: now,
			Workload: aheadWorkload(100+i, 1, 1, 0), Placement: &store.Placement{Cluster: "hpc", Pool: "gpu",
				GPU: "H100", GPUsPerNode: 1, Nodes: a.Nodes}})
	}
	if more := scheduleAhead(f, buildSnapshot(f, holding, nil, usageSnapshot{}, queueSlots), pending[8:], now); len(more) != 0 {
		t.Fatalf("ahead pass admitted %+v with every slot taken", more)
	}
	snap := buildSnapshot(f, holding, nil, usageSnapshot{}, realNodes)
	for _, a := range snap.Running {
		id, _ := strconv.Atoi(a.Workload)
		if a.Ahead != (id >= 100) {
			t.Errorf("allocation %s: Ahead=%v, want %v", a.Workload, a.Ahead, id >= 100)
		}
	}
	urgent := aheadWorkload(40, 1, 8, 50)
	dec := engine.Schedule(snap, []*model.Workload{urgent}, f.Policy, now)
	if len(dec.Admit) != 1 || len(dec.Preempt) != 1 {
		t.Fatalf("urgent job: admitted %+v, preempted %+v; want one admission by one preemption", dec.Admit, dec.Preempt)
	}
	if v, _ := strconv.Atoi(dec.Preempt[0].Workload); v >= 100 {
		t.Errorf("preempted %s, which is queued ahead and holds no node", dec.Preempt[0].Workload)
	}
}

func TestQueueAheadNeedsAnEngineQueue(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"backend: local\n    queue_ahead: 2", "only slurm and kubernetes clusters take it"},
		{"backend: slurm\n    queue_ahead: -1", "negative"},
		{"backend: slurm\n    queue_ahead: lots", "expected a whole number"},
	} {
		y := "clusters:\n  - name: c\n    provider: onprem\n    region: dc\n    " + tc.yaml +
			"\n    pools:\n      - {name: gpu, gpu: H100, gpus_per_node: 8, nodes: 2}\n"
		_, _, err := spec.ParseFleet([]byte(y), "fleet.yaml", nil)
		if err == nil || !strings.Contains(err.Error(), "queue_ahead") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error about queue_ahead saying %q", tc.yaml, err, tc.want)
		}
	}
	f, _, err := spec.ParseFleet([]byte(aheadFleet), "fleet.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.Clusters[0].AheadNodes(&f.Clusters[0].Pools[0]); n != 1 {
		t.Errorf("AheadNodes = %d, want 1", n)
	}
	f.Clusters[0].QueueAhead = 9 // never more than the pool's own nodes
	if n := f.Clusters[0].AheadNodes(&f.Clusters[0].Pools[0]); n != 2 {
		t.Errorf("AheadNodes = %d, want the pool's 2 nodes", n)
	}
}
