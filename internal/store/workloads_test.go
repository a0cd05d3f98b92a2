package store

import (
	"encoding/json"
	"testing"

	"gpubroker/internal/model"
)

// The cache hands out copies: what a caller changes in one never shows in
// the next, and different JSON for the same ID is decoded anew.
func TestWorkloadCache(t *testing.T) {
	var c WorkloadCache
	raw, err := json.Marshal(&model.Workload{Name: "a", Envs: map[string]string{"K": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	w1, err := c.Decode(7, raw, "spec a")
	if err != nil {
		t.Fatal(err)
	}
	w1.Name, w1.Envs["K"] = "changed", "changed"
	w2, err := c.Decode(7, raw, "spec a")
	if err != nil {
		t.Fatal(err)
	}
	if w2.Name != "a" || w2.Envs["K"] != "v" {
		t.Errorf("second Decode = %+v: a caller's change leaked into the cache", w2)
	}
	other, _ := json.Marshal(&model.Workload{Name: "b"})
	if w3, err := c.Decode(7, other, "spec b"); err != nil || w3.Name != "b" {
		t.Errorf("Decode of other JSON for the same ID = %+v, %v; want name b", w3, err)
	}
	if _, err := c.Decode(8, []byte("{"), ""); err == nil {
		t.Error("Decode of bad JSON: no error")
	}
	// Known hands out copies of what was decoded last, with its spec.
	w4, spec, ok := c.Known(7)
	if !ok || w4.Name != "b" || spec != "spec b" {
		t.Errorf("Known(7) = %+v, %q, %v; want name b, spec b", w4, spec, ok)
	}
	w4.Name = "changed"
	if w5, _, _ := c.Known(7); w5.Name != "b" {
		t.Errorf("Known(7) after a caller's change = %+v", w5)
	}
	if _, _, ok := c.Known(8); ok {
		t.Error("Known(8): a workload that never decoded")
	}
}

func BenchmarkWorkloadDecode(b *testing.B) {
	raw, _ := json.Marshal(&model.Workload{Name: "train", Kind: model.Job, NumNodes: 1,
		Options: []model.Resources{{GPU: "H100", GPUsPerNode: 8, AcceleratorArg: "H100:8"}},
		Envs:    map[string]string{"A": "1", "B": "2"}, Run: "python train.py --steps 1000", CheckpointDir: "/ckpt"})
	b.Run("json", func(b *testing.B) {
		for b.Loop() {
			var w model.Workload
			if err := json.Unmarshal(raw, &w); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cache", func(b *testing.B) {
		var c WorkloadCache
		for b.Loop() {
			if _, err := c.Decode(1, raw, ""); err != nil {
				b.Fatal(err)
			}
		}
	})
}
