package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/backend"
	"gpubroker/internal/model"
	"gpubroker/internal/server"
	"gpubroker/internal/store"
	"gpubroker/internal/store/sqlite"
)

// TestStatusShowsEarlierAttempts reads a failed-over job's attempts from a
// real server on a real store: the job's history is written with the
// moves the reconciler makes when a cluster stops answering.
func TestStatusShowsEarlierAttempts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "gpubroker.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fleet := `clusters:
  - {name: aws-slurm, provider: aws, region: us-east-1, backend: slurm,
     pools: [{name: h100, gpu: H100, gpus_per_node: 8, nodes: 2, price_class: committed}]}
  - {name: onprem, provider: onprem, region: dc1, backend: local,
     pools: [{name: h100, gpu: H100, gpus_per_node: 8, nodes: 1, price_class: committed}]}
`
	if _, err := st.PutFleet(context.Background(), fleet, "test", testNow); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{
		Store:    st,
		Backends: func(model.Cluster) (backend.Backend, error) { return nil, fmt.Errorf("no backends here") },
		StateDir: dir,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	tok, err := os.ReadFile(filepath.Join(dir, server.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	t0 := testNow.Add(-time.Minute)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	j, err := st.CreateJob(ctx, &store.Job{Team: "default", User: "alice", Workload: &model.Workload{Name: "train", Kind: model.Job,
		NumNodes: 1, Order: model.AnyOf, Options: []model.Resources{{GPU: "H100", GPUsPerNode: 2}}}}, at(0))
	if err != nil {
		t.Fatal(err)
	}
	lost := "Lost: cluster aws-slurm unreachable for 3s; gpub-1-1 on aws-slurm/h100: health check: slurm: slurmctld not up; retrying as attempt 2"
	moves := []store.Move{
		{From: store.Pending, To: store.Admitted, Attempt: 1, At: at(1), Message: "placed on aws-slurm/h100 (aws, committed, $0.00/GPU-h effective); node 0: GPUs 0-1",
			Placement: &store.Placement{Cluster: "aws-slurm", Pool: "h100", Provider: "aws", Region: "us-east-1", GPU: "H100", GPUsPerNode: 2, Nodes: []int{0}}},
		{From: store.Admitted, To: store.Dispatched, Attempt: 1, At: at(1), Message: "submitted as gpub-1-1"},
		{From: store.Dispatched, To: store.Running, Attempt: 1, At: at(2), Message: "started"},
		{From: store.Running, To: store.Pending, Attempt: 1, At: at(9), NextAttempt: true, Reason: "Lost: cluster aws-slurm unreachable for 3s", Message: lost},
		{From: store.Pending, To: store.Admitted, Attempt: 2, At: at(10), Message: "placed on onprem/h100 (onprem, committed, $0.00/GPU-h effective); node 0: GPUs 2-3",
			Placement: &store.Placement{Cluster: "onprem", Pool: "h100", Provider: "onprem", Region: "dc1", GPU: "H100", GPUsPerNode: 2, Nodes: []int{0}}},
		{From: store.Admitted, To: store.Dispatched, Attempt: 2, At: at(10), Message: "submitted as gpub-1-2"},
		{From: store.Dispatched, To: store.Running, Attempt: 2, At: at(11), Message: "started"},
		{From: store.Running, To: store.Succeeded, Attempt: 2, At: at(20), Reason: "Succeeded", Message: "Succeeded"},
	}
	for _, m := range moves {
		if _, err := st.MoveJob(ctx, j.ID, m); err != nil {
			t.Fatalf("%s -> %s: %v", m.From, m.To, err)
		}
	}

	r := runCLI(t, "status", "1", "--server", hs.URL, "--token", strings.TrimSpace(string(tok)))
	clock := func(s int) string { return at(s).Local().Format(time.TimeOnly) }
	want := `ID  NAME   TEAM     STATE      GPUS    WHERE        ATTEMPT  AGE  REASON
1   train  default  SUCCEEDED  H100:2  onprem/h100  2        1m   Succeeded

Job 1 attempts:
ATTEMPT  WHERE           PROVIDER  REGION     STARTED   ENDED     OUTCOME    WHY
1        aws-slurm/h100  aws       us-east-1  ` + clock(2) + `  ` + clock(9) + `  RETRIED    ` + lost + `
2        onprem/h100     onprem    dc1        ` + clock(11) + `  ` + clock(20) + `  SUCCEEDED  Succeeded
`
	if diff := cmp.Diff(want, r.stdout); diff != "" || r.code != exitOK {
		t.Errorf("status 1: exit %d (-want +got):\n%s%s", r.code, diff, r.stderr)
	}
}
