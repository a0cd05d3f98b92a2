package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gpubroker/internal/api"
	"gpubroker/internal/backend"
	"gpubroker/internal/model"
	"gpubroker/internal/store/sqlite"
)

// The submit and fleet-apply handlers, fuzzed through the whole HTTP API
// on a real SQLite store: whatever the body, no panic and no 5xx (a bad
// input is the caller's error, 4xx, naming the field). The server is not
// opened: no reconciler runs, so nothing is dispatched. Figures of the
// runs are in docs/testing.md (Fuzzing).

// fuzzBroker is a server's HTTP handler on a fresh SQLite store, with its
// admin token.
func fuzzBroker(f *testing.F) (http.Handler, string) {
	f.Helper()
	dir := f.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "broker.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	srv, err := New(Config{
		Store:     st,
		Backends:  func(c model.Cluster) (backend.Backend, error) { return nil, fmt.Errorf("no backends while fuzzing") },
		StateDir:  filepath.Join(dir, "state"),
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		LocalGPUs: 4,
	})
	if err != nil {
		f.Fatal(err)
	}
	tok, err := os.ReadFile(filepath.Join(dir, "state", AdminTokenFile))
	if err != nil {
		f.Fatal(err)
	}
	return srv.Handler(), strings.TrimSpace(string(tok))
}

// fuzzSeeds adds every YAML file of the given directories (examples and
// the spec's test data: real inputs) through add.
func fuzzSeeds(f *testing.F, add func(doc string), dirs ...string) {
	f.Helper()
	for _, d := range dirs {
		files, _ := filepath.Glob(filepath.Join(d, "*.yaml"))
		for _, name := range files {
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			add(string(b))
		}
	}
}

// fuzzCall sends body as JSON and fails on a 5xx.
func fuzzCall(t *testing.T, h http.Handler, token, method, path string, body any) int {
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(method, path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code >= 500 {
		t.Fatalf("%s %s: %d %.500s", method, path, rec.Code, rec.Body.String())
	}
	return rec.Code
}

func FuzzSubmit(f *testing.F) {
	h, admin := fuzzBroker(f)
	fuzzSeeds(f, func(doc string) { f.Add(doc, "", "") }, "../../examples", "../spec/testdata/task", "../spec/testdata/badtask")
	f.Add("resources:\n  accelerators: H100:1\nenvs:\n  A: \"a\\0b\"\nrun: echo\n", "k", "")
	f.Add("num_nodes: 1e9\nresources:\n  accelerators: {H100:1, A100:1}\n  any_of: [{region: a}, {region: b}]\nrun: echo\n", "", "beta/x")
	f.Add("a: &a [1, 2]\nb: &b [*a, *a]\nc: [*b, *b]\n", "", "team")
	f.Fuzz(func(t *testing.T, spec, key, team string) {
		fuzzCall(t, h, admin, "POST", "/v1/jobs", api.SubmitRequest{Spec: spec, Key: key, Team: team})
	})
}

func FuzzFleetApply(f *testing.F) {
	h, admin := fuzzBroker(f)
	fuzzSeeds(f, func(doc string) { f.Add(doc) }, "../../examples", "../spec/testdata/fleet", "../spec/testdata/badfleet")
	f.Add("clusters:\n  - {name: c, provider: onprem, region: r, backend: local, pools: [{name: p, gpu: H100, gpus_per_node: 8, nodes: 1e9, price_class: committed}]}\n")
	f.Fuzz(func(t *testing.T, fleet string) {
		fuzzCall(t, h, admin, "PUT", "/v1/fleet", api.FleetRequest{Fleet: fleet})
	})
}
