package trace

import (
	"testing"

	"gpubroker/internal/model"
)

// checkResult asserts the invariants every Result keeps: valid workloads
// with the fixed shape, sorted by (Submitted, ID), unique IDs.
func checkResult(t *testing.T, res *Result) {
	t.Helper()
	seen := map[string]bool{}
	for i, w := range res.Workloads {
		if err := w.Validate(); err != nil {
			t.Fatalf("workload %s invalid: %v", w.ID, err)
		}
		if w.Kind != model.Job || w.Order != model.AnyOf || len(w.Options) == 0 {
			t.Fatalf("workload %s: kind %q order %q options %d", w.ID, w.Kind, w.Order, len(w.Options))
		}
		if seen[w.ID] {
			t.Fatalf("duplicate ID %s", w.ID)
		}
		seen[w.ID] = true
		if i > 0 {
			p := res.Workloads[i-1]
			if c := p.Submitted.Compare(w.Submitted); c > 0 || (c == 0 && p.ID >= w.ID) {
				t.Fatalf("not sorted at %d: %s %v then %s %v", i, p.ID, p.Submitted, w.ID, w.Submitted)
			}
		}
	}
}
