package httpapi

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"gpubroker/internal/api"
	"gpubroker/internal/model"
	"gpubroker/internal/store"
)

// TestWireStates: the wire's states are the store's, value for value, so
// converting one to the other loses nothing.
func TestWireStates(t *testing.T) {
	t.Parallel()
	var stored []store.State
	for s := range store.Allowed {
		stored = append(stored, s)
	}
	for _, s := range stored {
		if w := api.State(s); !w.Valid() || w.Terminal() != s.Terminal() {
			t.Errorf("store state %s: api valid %t, terminal %t", s, w.Valid(), w.Terminal())
		}
	}
	for _, w := range api.States {
		if s := store.State(w); !s.Valid() {
			t.Errorf("api state %s is not a store state", w)
		}
	}
}

// TestJobOnTheWire: a stored job goes out with snake_case names only and
// without the zero times a task file leaves unset (issue 20: status showed
// "Kind" and "Deadline": "0001-01-01T00:00:00Z").
func TestJobOnTheWire(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	j := &store.Job{ID: 3, Team: "ml", User: "alice", State: store.Running, Attempt: 2, Created: at, Updated: at, StartedAt: at,
		Workload: &model.Workload{Name: "train", Kind: model.Job, NumNodes: 2, Order: model.AnyOf,
			Options:            []model.Resources{{GPU: "H100", GPUsPerNode: 8, AcceleratorArg: "H100:8"}},
			CheckpointInterval: 30 * time.Minute, Recovery: model.Recovery{Strategy: model.RecoveryFailover}},
		Placement: &store.Placement{Cluster: "c", Pool: "p", Provider: "aws", GPU: "H100", GPUsPerNode: 8, Nodes: []int{0, 1}}}
	data, err := json.Marshal(apiJob(j))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for _, k := range regexp.MustCompile(`"([^"]+)":`).FindAllStringSubmatch(s, -1) {
		if !regexp.MustCompile(`^[a-z][a-z0-9_]*$`).MatchString(k[1]) {
			t.Errorf("key %q is not snake_case: %s", k[1], s)
		}
	}
	if strings.Contains(s, "0001-01-01") || strings.Contains(s, "deadline") {
		t.Errorf("an unset deadline is on the wire: %s", s)
	}
	for _, want := range []string{`"kind":"job"`, `"num_nodes":2`, `"checkpoint_interval_seconds":1800`, `"strategy":"failover"`,
		`"state":"RUNNING"`, `"started_at":"2026-12-07T10:00:00Z"`} {
		if !strings.Contains(s, want) {
			t.Errorf("%s is missing: %s", want, s)
		}
	}
}
