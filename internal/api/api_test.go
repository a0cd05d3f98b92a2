package api_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/api"
)

var snake = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// keys collects every object key of a decoded JSON value, by path.
func keys(v any, path string, out map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			out[path+"."+k] = k
			keys(x, path+"."+k, out)
		}
	case []any:
		for _, x := range v {
			keys(x, path+"[]", out)
		}
	}
}

// TestJobJSON: a job's JSON names are snake_case all the way down, and
// zero times and empty fields are left out (no "Deadline":
// "0001-01-01T00:00:00Z").
func TestJobJSON(t *testing.T) {
	t.Parallel()
	code := 0
	j := api.Job{ID: 7, Team: "ml", User: "alice", State: api.Succeeded, Attempt: 1, ExitCode: &code,
		Created: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC), Updated: time.Date(2026, 12, 7, 10, 5, 0, 0, time.UTC),
		Workload: &api.Workload{Name: "train", Kind: "job", NumNodes: 2, Order: "any_of",
			Options:  []api.Resources{{GPU: "H100", GPUsPerNode: 8, UseSpot: true}},
			Recovery: api.Recovery{Strategy: "failover"}, Service: &api.Service{Port: 8080}},
		Placement: &api.Placement{Cluster: "c", Pool: "p", GPU: "H100", GPUsPerNode: 8, Nodes: []int{0, 1}}}
	data, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	keys(doc, "", found)
	for path, k := range found {
		if !snake.MatchString(k) {
			t.Errorf("%s: key %q is not snake_case", path, k)
		}
	}
	for _, absent := range []string{".workload.deadline", ".workload.submitted", ".started_at", ".ended_at", ".workload.envs",
		".workload.checkpoint_dir", ".workload.avoid_regions", ".spec", ".key", ".after"} {
		if _, ok := found[absent]; ok {
			t.Errorf("%s is set though empty: %s", absent, data)
		}
	}
	for _, present := range []string{".workload.kind", ".workload.num_nodes", ".workload.options[].gpus_per_node",
		".workload.options[].use_spot", ".workload.recovery.strategy", ".workload.service.port", ".placement.gpus_per_node", ".exit_code"} {
		if _, ok := found[present]; !ok {
			t.Errorf("%s is missing: %s", present, data)
		}
	}
	if strings.Contains(string(data), "0001-01-01") {
		t.Errorf("a zero time is on the wire: %s", data)
	}
	var back api.Job
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(j, back); diff != "" {
		t.Errorf("decoding what was encoded (-want +got):\n%s", diff)
	}
}

func TestStates(t *testing.T) {
	t.Parallel()
	for _, s := range api.States {
		if !s.Valid() {
			t.Errorf("%s is not valid", s)
		}
	}
	if api.State("running").Valid() || api.State("").Valid() {
		t.Error("a lower-case or empty state is valid")
	}
	var ended []api.State
	for _, s := range api.States {
		if s.Terminal() {
			ended = append(ended, s)
		}
	}
	if diff := cmp.Diff([]api.State{api.Succeeded, api.Failed, api.Cancelled}, ended); diff != "" {
		t.Errorf("terminal states (-want +got):\n%s", diff)
	}
}

// TestClientErrors: every error answer becomes *api.Error, told apart with
// errors.Is by kind, whatever the message; a body not in the documented
// shape becomes the message.
func TestClientErrors(t *testing.T) {
	t.Parallel()
	answer := func(w http.ResponseWriter, code int, body string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintln(w, body)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("id") {
		case "1":
			answer(w, 404, `{"error": {"code": "not_found", "message": "job 1 not found"}}`)
		case "2":
			answer(w, 401, `{"error": {"code": "unauthorized", "message": "unknown token"}}`)
		case "3":
			answer(w, 502, `<html>bad gateway</html>`)
		case "4":
			answer(w, 409, `{"error": {"code": "conflict", "message": "job changed concurrently; retry"}}`)
		}
	})
	mux.HandleFunc("POST /v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		answer(w, 400, `{"error": {"code": "invalid", "field": "resources.accelerators", "message": "t.yaml:2: resources.accelerators: unknown GPU", "errors": ["t.yaml:2: a", "t.yaml:3: b"]}}`)
	})
	mux.HandleFunc("GET /v1/fleet", func(w http.ResponseWriter, r *http.Request) {
		answer(w, 403, `{"error": {"code": "forbidden", "message": "no", "field": "team"}}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := api.NewClient(srv.URL+"/", "gpb_x", nil)
	ctx := t.Context()

	tests := []struct {
		name string
		call func() error
		is   error
		code int
		msg  string
	}{
		{"not found", func() error { _, err := c.Job(ctx, 1); return err }, api.ErrNotFound, 404, "job 1 not found"},
		{"unauthorized", func() error { _, err := c.Job(ctx, 2); return err }, api.ErrUnauthorized, 401, "unknown token"},
		{"proxy page", func() error { _, err := c.Job(ctx, 3); return err }, api.ErrUnavailable, 502, "<html>bad gateway</html>"},
		{"conflict", func() error { _, err := c.Job(ctx, 4); return err }, api.ErrConflict, 409, "job changed concurrently; retry"},
		{"several problems", func() error { _, err := c.Submit(ctx, api.SubmitRequest{Spec: "x"}); return err }, api.ErrInvalid, 400, "t.yaml:2: a\nt.yaml:3: b"},
		{"field named", func() error { _, err := c.Fleet(ctx); return err }, api.ErrForbidden, 403, "team: no"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := fmt.Errorf("wrapped: %w", tt.call())
			if !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) is false", err, tt.is)
			}
			for _, other := range []error{api.ErrNotFound, api.ErrUnauthorized, api.ErrUnavailable, api.ErrConflict, api.ErrInvalid, api.ErrForbidden} {
				if other != tt.is && errors.Is(err, other) {
					t.Errorf("%v is also %v", err, other)
				}
			}
			var ae *api.Error
			if !errors.As(err, &ae) {
				t.Fatalf("%v is no *api.Error", err)
			}
			if ae.Status != tt.code || ae.Error() != tt.msg {
				t.Errorf("got %d %q, want %d %q", ae.Status, ae.Error(), tt.code, tt.msg)
			}
		})
	}
}

// TestClientPages: AllJobs pages with after and limit, sending the bearer
// token and the filters, until a short page.
func TestClientPages(t *testing.T) {
	t.Parallel()
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer gpb_x" {
			w.WriteHeader(401)
			return
		}
		seen = append(seen, r.URL.RawQuery)
		q := r.URL.Query()
		after, _ := strconv.ParseInt(q.Get("after"), 10, 64)
		limit, _ := strconv.Atoi(q.Get("limit"))
		out := api.JobList{Jobs: []*api.Job{}}
		for id := after + 1; id <= 5 && len(out.Jobs) < limit; id++ {
			out.Jobs = append(out.Jobs, &api.Job{ID: id, State: api.Running})
		}
		json.NewEncoder(w).Encode(out)
	}))
	defer srv.Close()
	jobs, err := api.NewClient(srv.URL, "gpb_x", nil).AllJobs(t.Context(), api.ListOptions{Team: "ml", States: []api.State{api.Running, api.Pending}, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, j := range jobs {
		ids = append(ids, j.ID)
	}
	if diff := cmp.Diff([]int64{1, 2, 3, 4, 5}, ids); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
	want := []string{
		"limit=2&state=RUNNING%2CPENDING&team=ml",
		"after=2&limit=2&state=RUNNING%2CPENDING&team=ml",
		"after=4&limit=2&state=RUNNING%2CPENDING&team=ml",
	}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("queries (-want +got):\n%s", diff)
	}
}
