package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"gpubroker/internal/api"
	"gpubroker/internal/store"
)

// A server running a valid fleet keeps it when another writer (an older
// version on the same PostgreSQL, say) stores one that does not validate:
// GET /v1/fleet gives the new one with why it is not in force, and work
// still runs on the fleet in force.
func TestStoredInvalidFleetKeepsTheFleetInForce(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	valid := "clusters:\n  - {name: c, provider: onprem, region: r, backend: local,\n     pools: [{name: p, gpu: H100, gpus_per_node: 4, nodes: 1, price_class: committed}]}\n"
	e.mustDo(http.StatusOK, "PUT", "/v1/fleet", e.admin, api.FleetRequest{Fleet: valid}, nil)
	bad := strings.Replace(valid, "nodes: 1,", "nodes: 1000000000,", 1)
	if _, err := e.st.PutFleet(context.Background(), bad, "an older version", time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	j := e.submit(e.admin, "resources:\n  accelerators: H100:1\nrun: echo ok\n")[0]
	if got := e.waitState(j.ID, 20*time.Second, store.Succeeded, store.Failed); got.State != store.Succeeded || got.Placement.Cluster != "c" {
		t.Errorf("job under the kept fleet: %s on %+v; want SUCCEEDED on c", got.State, got.Placement)
	}
	var doc api.FleetDoc
	e.mustDo(http.StatusOK, "GET", "/v1/fleet", e.admin, nil, &doc)
	if doc.Version != 2 || !strings.Contains(doc.Error, "the stored fleet v2 does not validate") || !strings.Contains(doc.Error, "nodes: 1000000000 is more than 100000") {
		t.Errorf("GET /v1/fleet: v%d, error %q; want v2 and why it is not in force", doc.Version, doc.Error)
	}
}
