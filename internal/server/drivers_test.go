package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"gpubroker/internal/api"
	"gpubroker/internal/backend"
	"gpubroker/internal/backend/local"
	"gpubroker/internal/model"
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
	code, body := e.do("PUT", "/v1/fleet", e.admin, api.FleetRequest{Fleet: cloudFleet})
	want := `fleet.yaml:5: clusters[0].backend: unknown backend \"cloud\"; this build drives local, slurm or kubernetes`
	if code != http.StatusBadRequest || !strings.Contains(string(body), want) {
		t.Errorf("PUT a cloud fleet: %d %s; want 400 with %s", code, body, want)
	}
	e.mustDo(http.StatusOK, "PUT", "/v1/fleet", e.admin, api.FleetRequest{Fleet: twoNodeFleet}, nil)

	// A fleet an older server stored, which names cloud.
	v, err := e.st.PutFleet(context.Background(), cloudFleet, "old-server", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.srv.ctl.Fleet().Version != v {
		if time.Now().After(deadline) {
			t.Fatalf("the stored fleet v%d was not loaded (have v%d)", v, e.srv.ctl.Fleet().Version)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// withVM is an envOption: the build drives local and "vm", a backend of
// its own whose clusters need an endpoint in their vm block.
func withVM(c *Config) {
	c.Drivers = []backend.Driver{local.Driver(), {Name: "vm", Check: func(cl model.Cluster, _ *model.Fleet) error {
		var o struct {
			Endpoint string `json:"endpoint"`
		}
		if err := backend.DecodeTarget("vm", cl, &o); err != nil {
			return err
		}
		if o.Endpoint == "" {
			return model.FieldErrors{{Path: "vm.endpoint", Msg: "missing; give the VM API's URL"}}
		}
		return nil
	}}}
}

const vmFleet = `clusters:
  - name: v
    provider: onprem
    region: dc1
    backend: vm
    vm:
      endpoint: https://vm.example
    pools: [{name: p, gpu: H100, gpus_per_node: 8, nodes: 1, price_class: committed}]
`

// A backend of a driver of its own: its block is checked at apply, and the
// stored fleet, block and all, loads again in the next server.
func TestFleetOfANewBackendOutlivesARestart(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, withVM)
	code, body := e.do("PUT", "/v1/fleet", e.admin, api.FleetRequest{Fleet: strings.Replace(vmFleet, "endpoint: https://vm.example", "{}", 1)})
	if want := "fleet.yaml:6: clusters[0].vm.endpoint: missing; give the VM API's URL"; code != http.StatusBadRequest || !strings.Contains(string(body), want) {
		t.Errorf("PUT a vm cluster without an endpoint: %d %s; want 400 with %s", code, body, want)
	}
	var put struct{ Version int64 }
	e.mustDo(http.StatusOK, "PUT", "/v1/fleet", e.admin, api.FleetRequest{Fleet: vmFleet}, &put)
	e.stop()
	e.start(withVM)
	fs := e.srv.ctl.Fleet()
	if fs.Version != put.Version {
		t.Fatalf("the restarted server runs fleet v%d, want the stored v%d", fs.Version, put.Version)
	}
	if got := fs.Fleet.Clusters[0].Target["endpoint"]; got != "https://vm.example" {
		t.Errorf("the stored vm block reads back as %v", fs.Fleet.Clusters[0].Target)
	}
}
