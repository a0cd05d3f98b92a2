package server

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/api"
	"gpubroker/internal/backend"
	"gpubroker/internal/store"
)

// elasticFleet is one local cluster whose pool has 1 node and may grow to 3.
const elasticFleet = `
clusters:
  - name: lab
    provider: onprem
    region: local
    backend: local
    pools:
      - {name: gpu, gpu: H100, gpus_per_node: 2, nodes: 1, max_nodes: 3, price_class: committed}
`

const gangOfThree = "num_nodes: 3\nresources:\n  accelerators: H100:2\nrun: echo ran\n"

// slowScaler is the env's local backend with nodes that start one per
// Scale call (as a cloud's do, over minutes), recording what each Scale
// and Submit saw.
type slowScaler struct {
	backend.Backend
	slow bool

	mu       sync.Mutex
	ready    int
	asked    []int
	atSubmit []int
}

func (s *slowScaler) Scale(ctx context.Context, pool string, nodes int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := nodes
	if s.slow && n > s.ready+1 {
		n = s.ready + 1
	}
	ready, err := s.Backend.(backend.Scaler).Scale(ctx, pool, n)
	if err != nil {
		return 0, err
	}
	s.ready = ready
	if len(s.asked) == 0 || s.asked[len(s.asked)-1] != nodes {
		s.asked = append(s.asked, nodes)
	}
	return ready, nil
}

func (s *slowScaler) Submit(ctx context.Context, spec backend.Spec) error {
	s.mu.Lock()
	s.atSubmit = append(s.atSubmit, s.ready)
	s.mu.Unlock()
	return s.Backend.Submit(ctx, spec)
}

func (s *slowScaler) seen() (asked, atSubmit []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.asked...), append([]int(nil), s.atSubmit...)
}

// A gang needing more nodes than the elastic pool has is admitted once the
// provisioning controller has scaled the pool through the local backend,
// runs on the nodes added, and the idle nodes go again afterwards.
func TestProvisionScalesElasticPool(t *testing.T) {
	t.Parallel()
	for _, slow := range []bool{false, true} {
		name := "ready at once"
		if slow {
			name = "one node a round"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sc := &slowScaler{slow: slow}
			e := newTestEnv(t, wrapBackend(sc, func(inner backend.Backend) { sc.Backend = inner }),
				func(c *Config) { c.ScaleDownAfter = time.Millisecond })
			e.mustDo(http.StatusOK, "PUT", "/v1/fleet", e.admin, api.FleetRequest{Fleet: elasticFleet}, nil)
			id := e.submit(e.admin, gangOfThree)[0].ID
			j := e.waitState(id, 20*time.Second, store.Succeeded)
			if diff := cmp.Diff([]int{0, 1, 2}, j.Placement.Nodes); diff != "" {
				t.Errorf("nodes (-want +got):\n%s", diff)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				asked, atSubmit := sc.seen()
				if len(asked) > 0 && asked[len(asked)-1] == 1 && slices.Contains(asked, 3) {
					if diff := cmp.Diff([]int{3}, atSubmit); diff != "" {
						t.Errorf("ready nodes at each Submit (-want +got):\n%s", diff)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("Scale asked for %v; want 3 nodes, then 1 once the gang ended", asked)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
