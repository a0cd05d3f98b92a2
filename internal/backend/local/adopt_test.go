package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gpubroker/internal/backend"
)

// TestAdopt: a Backend over another broker's directory on this machine
// sees that broker's attempts, running then ended, and starts nothing
// again; records on another machine are refused.
func TestAdopt(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	dead, err := New(filepath.Join(root, "a"), Options{Hostname: "box"})
	if err != nil {
		t.Fatal(err)
	}
	live, err := New(filepath.Join(root, "b"), Options{Hostname: "box"})
	if err != nil {
		t.Fatal(err)
	}
	spec := backend.Spec{Name: "gpub-1-1", JobID: 1, Attempt: 1, Nodes: []backend.Node{{GPUs: []int{0}}},
		Run: "echo run >> " + filepath.Join(root, "runs") + "; sleep 0.3"}
	if err := dead.Submit(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if got, err := live.Adopt(live.Where()); got != live || err != nil {
		t.Errorf("Adopt(own) = %v, %v; want itself", got, err)
	}
	if _, err := live.Adopt(backend.Where{Host: "other", Dir: dead.Where().Dir}); !errors.Is(err, backend.ErrOtherHost) {
		t.Errorf("Adopt(other host) error %v, want ErrOtherHost", err)
	}
	a, err := live.Adopt(dead.Where())
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := live.Adopt(dead.Where()); again != a {
		t.Error("Adopt twice: two Backends over one directory")
	}
	if err := a.Submit(ctx, spec); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		sts, err := a.Observe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(sts) != 1 {
			t.Fatalf("adopted Observe = %v, want gpub-1-1", sts)
		}
		if sts[0].Phase == backend.PhaseSucceeded {
			break
		}
		if sts[0].Phase != backend.PhaseRunning || time.Now().After(deadline) {
			t.Fatalf("adopted gpub-1-1 is %s (%s), want Running then Succeeded", sts[0].Phase, sts[0].Message)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := countRuns(t, filepath.Join(root, "runs")); n != 1 {
		t.Errorf("ran %d times, want once", n)
	}
}

func countRuns(t *testing.T, name string) int {
	t.Helper()
	data, _ := os.ReadFile(name)
	return strings.Count(string(data), "run\n")
}
