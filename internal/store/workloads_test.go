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
	w1, err := c.Decode(7, raw)
	if err != nil {
		t.Fatal(err)
	}
	w1.Name, w1.Envs["K"] = "changed", "changed"
	w2, err := c.Decode(7, raw)
	if err != nil {
		t.Fatal(err)
	}
	if w2.Name != "a" || w2.Envs["K"] != "v" {
		t.Errorf("second Decode = %+v: a caller's change leaked into the cache", w2)
	}
	other, _ := json.Marshal(&model.Workload{Name: "b"})
	if w3, err := c.Decode(7, other); err != nil || w3.Name != "b" {
		t.Errorf("Decode of other JSON for the same ID = %+v, %v; want name b", w3, err)
	}
	if _, err := c.Decode(8, []byte("{")); err == nil {
		t.Error("Decode of bad JSON: no error")
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
			if _, err := c.Decode(1, raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
