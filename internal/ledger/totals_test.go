package ledger

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/model"
)

// TestTotalsBook reconciles by hand: a 4-GPU use of 10 h at $40 that
// started 6 h before the window and 2 h before the month.
func TestTotalsBook(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC) // the month began 8 h ago
	start := now.Add(-10 * time.Hour)
	tot := NewTotals()
	tot.Book(Use{Provider: "aws", Team: "a", Contract: "c", GPUs: 4, Start: start, End: now, CostUSD: 40}, now, start.Add(6*time.Hour))
	tot.Book(Use{Provider: "aws", Team: "a", GPUs: 0, Start: start, End: now, CostUSD: 99}, now, start)   // no GPUs
	tot.Book(Use{Provider: "gcp", Team: "b", GPUs: 1, Start: now, End: now, CostUSD: 99}, now, start)     // no time
	tot.Book(Use{Provider: "gcp", Team: "b", GPUs: 2, Start: start, End: start.Add(time.Hour)}, now, now) // before the window
	want := Totals{
		ProviderGPUHours: map[model.Provider]float64{"aws": 16, "gcp": 0}, // 4 GPUs x the last 4 h
		TeamSpendUSD:     map[string]float64{"a": 32, "b": 0},             // 8 of 10 h in March
		ContractSpendUSD: map[string]float64{"c": 40},
	}
	if diff := cmp.Diff(want, tot); diff != "" {
		t.Errorf("totals (-want +got):\n%s", diff)
	}
	c := tot.Clone()
	c.Book(Use{Provider: "aws", Team: "a", GPUs: 1, Start: start, End: now, CostUSD: 10}, now, start)
	if tot.ProviderGPUHours["aws"] != 16 || c.ProviderGPUHours["aws"] != 26 {
		t.Errorf("clone shares state: original %v, clone %v", tot.ProviderGPUHours["aws"], c.ProviderGPUHours["aws"])
	}
}
