package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"gpubroker/internal/backend"
	"gpubroker/internal/backend/local"
)

// withDrivers is an envOption: the server checks applied fleets against
// the local driver and two more backends by name.
func withDrivers(c *Config) {
	c.Drivers = []backend.Driver{local.Driver(), {Name: "slurm"}, {Name: "kubernetes", Aliases: []string{"k8s"}}}
}

const cloudFleet = `clusters:
  - name: c
    provider: aws
    region: us-east-1
    backend: cloud
    pools: [{name: p, gpu: H100, gpus_per_node: 8, nodes: 1, price_class: spot, price_per_gpu_hour: 2}]
`

// A fleet naming a backend the build does not drive is refused at apply,
// at the field; a fleet stored before the server checked backends still
// loads.
func TestFleetBackendsOfTheBuild(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, withDrivers)
	code, body := e.do("PUT", "/v1/fleet", e.admin, fleetRequest{Fleet: cloudFleet})
	want := `fleet.yaml:5: clusters[0].backend: unknown backend \"cloud\"; this build drives local, slurm or kubernetes`
	if code != http.StatusBadRequest || !strings.Contains(string(body), want) {
		t.Errorf("PUT a cloud fleet: %d %s; want 400 with %s", code, body, want)
	}
	e.mustDo(http.StatusOK, "PUT", "/v1/fleet", e.admin, fleetRequest{Fleet: twoNodeFleet}, nil)

	// A fleet an older server stored, which names cloud.
	v, err := e.st.PutFleet(context.Background(), cloudFleet, "old-server", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.srv.fleet.Load().version != v {
		if time.Now().After(deadline) {
			t.Fatalf("the stored fleet v%d was not loaded (have v%d)", v, e.srv.fleet.Load().version)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
