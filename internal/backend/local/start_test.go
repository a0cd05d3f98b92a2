package local

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"gpubroker/internal/backend"
)

// An attempt whose spec keeps it from starting (an environment value over
// Linux's 128 KiB, a NUL byte the kernel cannot take) is a StartError
// from Submit, naming the cause, not an attempt that Observe later
// reports Lost (and the control plane retried without end). Of a gang,
// the nodes started before the one that could not start are stopped.
func TestSubmitStartError(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		envs  map[string]string
		nodes int
		errno error
	}{
		"900 KB value":        {map[string]string{"BIG": strings.Repeat("x", 900<<10)}, 1, syscall.E2BIG},
		"NUL in a value":      {map[string]string{"A": "a\x00b"}, 1, nil},
		"NUL in a name, gang": {map[string]string{"A\x00": "b"}, 2, nil},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBackend(t, t.TempDir())
			sp := spec(1, "sleep 30")
			sp.Envs = tc.envs
			for i := 1; i < tc.nodes; i++ {
				sp.Nodes = append(sp.Nodes, backend.Node{Index: i, GPUs: []int{0}})
			}
			err := b.Submit(context.Background(), sp)
			var se *backend.StartError
			if !errors.As(err, &se) || (tc.errno != nil && !errors.Is(err, tc.errno)) {
				t.Fatalf("Submit = %v; want a *backend.StartError wrapping %v", err, tc.errno)
			}
			if errors.Is(err, backend.ErrUnavailable) {
				t.Errorf("Submit = %v; a start error is not the backend being unavailable", err)
			}
			// Nothing of it runs.
			deadline := time.Now().Add(10 * time.Second)
			for {
				st, ok := status(t, b, sp.Name)
				if !ok || (st.Phase != backend.PhaseRunning && st.Phase != backend.PhasePending) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("attempt still %s after the start error", st.Phase)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err := b.Forget(context.Background(), sp.Name); err != nil {
				t.Errorf("Forget: %v", err)
			}
		})
	}
}

// A program that is missing (the shell the nodes run under, here) is a
// start error too, wrapping ENOENT.
func TestSubmitMissingProgram(t *testing.T) {
	t.Parallel()
	b := newBackend(t, t.TempDir())
	b.bash = "/nonexistent/bash"
	err := b.Submit(context.Background(), spec(1, "echo"))
	var se *backend.StartError
	if !errors.As(err, &se) || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("Submit = %v; want a *backend.StartError wrapping ENOENT", err)
	}
}
