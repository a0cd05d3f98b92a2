package local

import (
	"context"
	"strings"
	"testing"
	"time"

	"gpubroker/internal/backend"
	"gpubroker/internal/backend/backendtest"
)

func TestScalerConformance(t *testing.T) {
	t.Parallel()
	backendtest.RunScaler(t, newBackend(t, t.TempDir()), backendtest.Options{MaxNodes: 2, ScalePool: "elastic"})
}

// A scaled pool's count outlives the Backend, and Submit refuses an
// attempt on a node the pool does not have; a pool never scaled takes any
// node, as before Scale existed.
func TestScaleBoundsSubmit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	b := newBackend(t, dir)
	if ready, err := b.Scale(ctx, "elastic", 1); err != nil || ready != 1 {
		t.Fatalf("Scale(elastic, 1) = %d, %v", ready, err)
	}
	for _, bad := range []string{"", ".pools", "a/b"} {
		if _, err := b.Scale(ctx, bad, 1); err == nil {
			t.Errorf("Scale(%q) accepted an invalid pool name", bad)
		}
	}
	if _, err := b.Scale(ctx, "elastic", -1); err == nil {
		t.Errorf("Scale(elastic, -1) accepted a negative count")
	}

	b = newBackend(t, dir) // a restarted broker
	sp := spec(9001, "true")
	sp.Pool = "elastic"
	sp.Nodes = []backend.Node{{Index: 0}, {Index: 1}}
	err := b.Submit(ctx, sp)
	if err == nil || !strings.Contains(err.Error(), "node 1 of pool elastic is not provisioned (the pool has 1 nodes)") {
		t.Fatalf("Submit on an unprovisioned node: %v", err)
	}
	if _, err := b.Scale(ctx, "elastic", 2); err != nil {
		t.Fatal(err)
	}
	if err := b.Submit(ctx, sp); err != nil {
		t.Fatalf("Submit after Scale(elastic, 2): %v", err)
	}
	if st, _ := waitEnded(t, b, sp.Name, 10*time.Second); st.Phase != backend.PhaseSucceeded {
		t.Errorf("%s: %s (%s)", sp.Name, st.Phase, st.Message)
	}

	other := spec(9002, "true")
	other.Pool = "fixed"
	other.Nodes = []backend.Node{{Index: 5}}
	if err := b.Submit(ctx, other); err != nil {
		t.Fatalf("Submit on a pool never scaled: %v", err)
	}
	if st, _ := waitEnded(t, b, other.Name, 10*time.Second); st.Phase != backend.PhaseSucceeded {
		t.Errorf("%s: %s (%s)", other.Name, st.Phase, st.Message)
	}
}
