package control

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/backend"
	"gpubroker/internal/engine"
)

func TestNamesAndSlots(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		id      int64
		attempt int
		ok      bool
	}{
		{"gpub-12-3", 12, 3, true}, {"gpub-1-1", 1, 1, true}, {"gpub-01-1", 0, 0, false},
		{"gpub-1", 0, 0, false}, {"other-1-1", 0, 0, false}, {"gpub-x-1", 0, 0, false},
	} {
		id, a, ok := parseName(c.name)
		if id != c.id || a != c.attempt || ok != c.ok {
			t.Errorf("parseName(%q) = %d %d %v", c.name, id, a, ok)
		}
	}
	used := slotTable{}
	p := engine.PoolRef{Cluster: "c", Pool: "p"}
	first := assignSlots(used, p, []int{0, 1}, 2)
	second := assignSlots(used, p, []int{1}, 1)
	releaseSlots(used, p, first)
	third := assignSlots(used, p, []int{1}, 3)
	want := []backend.Node{{Index: 1, GPUs: []int{0, 1, 3}}}
	if diff := cmp.Diff(want, third); diff != "" {
		t.Errorf("slots after release (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]backend.Node{{Index: 1, GPUs: []int{2}}}, second); diff != "" {
		t.Errorf("second (-want +got):\n%s", diff)
	}
	// The event text the store's backfill reads (sqlstore.TestParseSlots).
	if got, want := formatSlots(first), "gpu slots: 0=0,1 1=0,1"; got != want {
		t.Errorf("formatSlots = %q, want %q", got, want)
	}
}
