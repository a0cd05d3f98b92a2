package local

import (
	"context"
	"testing"

	"gpubroker/internal/backend/backendtest"
)

func TestScalerConformance(t *testing.T) {
	t.Parallel()
	backendtest.RunScaler(t, newBackend(t, t.TempDir()), backendtest.Options{MaxNodes: 2, ScalePool: "elastic"})
}

// Scale takes any count of a validly named pool at once, and refuses a
// name that is not one or a negative count.
func TestScaleArguments(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBackend(t, t.TempDir())
	for _, n := range []int{3, 0, 1} {
		if ready, err := b.Scale(ctx, "elastic", n); err != nil || ready != n {
			t.Errorf("Scale(elastic, %d) = %d, %v", n, ready, err)
		}
	}
	for _, bad := range []string{"", ".pools", "a/b"} {
		if _, err := b.Scale(ctx, bad, 1); err == nil {
			t.Errorf("Scale(%q) accepted an invalid pool name", bad)
		}
	}
	if _, err := b.Scale(ctx, "elastic", -1); err == nil {
		t.Errorf("Scale(elastic, -1) accepted a negative count")
	}
}
