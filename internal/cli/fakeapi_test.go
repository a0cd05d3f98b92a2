package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gpubroker/internal/api"
)

// fakeAPI speaks the parts of docs/api.md the commands use, over a tiny
// in-memory state, so the commands' requests, output and exit codes can be
// checked without a store or backend. Each GET of a job moves it one step
// along PENDING -> RUNNING -> its end (SUCCEEDED, or FAILED with exit
// code 3 for a task named "fail"), so following a job is deterministic.
// The end-to-end behaviour against the real server, store and backend is
// internal/e2e's.
type fakeAPI struct {
	t     *testing.T
	token string

	mu       sync.Mutex
	jobs     []*api.Job
	keys     map[string]int64
	events   map[int64][]api.Event
	fleet    string
	requests []string
	// gets counts GETs of each job, which drive its progress.
	gets map[int64]int
}

const fakeToken = "gpb_test"

func newFakeAPI(t *testing.T) (*fakeAPI, *httptest.Server) {
	f := &fakeAPI{t: t, token: fakeToken, keys: map[string]int64{}, events: map[int64][]api.Event{}, gets: map[int64]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("POST /v1/jobs", f.auth(f.submit))
	mux.HandleFunc("GET /v1/jobs", f.auth(f.list))
	mux.HandleFunc("GET /v1/jobs/{id}", f.auth(f.withJob(f.get)))
	mux.HandleFunc("POST /v1/jobs/{id}/cancel", f.auth(f.withJob(f.cancel)))
	mux.HandleFunc("GET /v1/jobs/{id}/events", f.auth(f.withJob(func(w http.ResponseWriter, r *http.Request, j *api.Job) {
		writeJSONResp(w, 200, api.EventList{Events: f.events[j.ID]})
	})))
	mux.HandleFunc("GET /v1/jobs/{id}/attempts", f.auth(f.withJob(func(w http.ResponseWriter, r *http.Request, j *api.Job) {
		a := api.Attempt{Attempt: j.Attempt, State: j.State}
		if p := j.Placement; p != nil {
			a.Cluster, a.Pool, a.Provider, a.Region = p.Cluster, p.Pool, string(p.Provider), p.Region
		}
		writeJSONResp(w, 200, api.AttemptList{Attempts: []api.Attempt{a}})
	})))
	mux.HandleFunc("GET /v1/jobs/{id}/logs", f.auth(f.withJob(f.logs)))
	mux.HandleFunc("GET /v1/fleet", f.auth(func(w http.ResponseWriter, r *http.Request) {
		if f.fleet == "" {
			apiErr(w, 404, "not_found", "no fleet applied", "")
			return
		}
		writeJSONResp(w, 200, api.FleetDoc{Version: 1, Fleet: f.fleet})
	}))
	mux.HandleFunc("PUT /v1/fleet", f.auth(func(w http.ResponseWriter, r *http.Request) {
		var body api.FleetRequest
		json.NewDecoder(r.Body).Decode(&body)
		if !strings.Contains(body.Fleet, "clusters:") {
			apiErr(w, 400, "invalid", "no clusters", "clusters")
			return
		}
		f.fleet = body.Fleet
		writeJSONResp(w, 200, api.FleetApplied{Version: 1, Warnings: []string{"fleet.yaml:3: x: ignored"}})
	}))
	mux.HandleFunc("GET /v1/clusters", f.auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSONResp(w, 200, api.ClusterList{Clusters: []api.Cluster{{Name: "local", Provider: "onprem", Region: "local", Backend: "local", Healthy: true,
			Pools: []api.Pool{{Name: "local", GPU: "H100", GPUsPerNode: 8, Nodes: 1, GPUsFree: 7, PriceClass: "committed"}}}}})
	}))
	mux.HandleFunc("GET /v1/usage", f.auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSONResp(w, 200, api.Usage{
			Since: time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC), Until: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), TotalCostUSD: 12.5,
			By:   []string{"provider", "team"},
			Rows: []api.UsageRow{{"provider": "onprem", "team": "default", "gpu_hours": 2.5, "cost_usd": 12.5}},
		})
	}))
	mux.HandleFunc("POST /v1/tokens", f.auth(func(w http.ResponseWriter, r *http.Request) {
		var body api.TokenRequest
		json.NewDecoder(r.Body).Decode(&body)
		ct := api.CreatedToken{Token: "gpb_new", ID: "tok-2", Team: body.Team, Role: body.Role, Name: body.Name}
		if d, err := api.ParseTTL(body.TTL); err == nil && d > 0 {
			ct.Expires = testNow.Add(d)
		}
		writeJSONResp(w, 201, ct)
	}))
	mux.HandleFunc("GET /v1/tokens", f.auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSONResp(w, 200, api.TokenList{Tokens: fakeTokens()})
	}))
	mux.HandleFunc("POST /v1/tokens/{id}/revoke", f.auth(func(w http.ResponseWriter, r *http.Request) {
		for _, t := range fakeTokens() {
			if t.ID == r.PathValue("id") {
				t.Revoked = testNow
				writeJSONResp(w, 200, t)
				return
			}
		}
		apiErr(w, 404, "not_found", "no token", "")
	}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return f, srv
}

// fakeTokens are the tokens GET /v1/tokens lists: two named alice, one of
// them revoked.
func fakeTokens() []api.Token {
	return []api.Token{
		{ID: "tok-1", Team: "default", Role: "admin", Name: "local admin", Created: testNow.Add(-time.Hour), LastUsed: testNow.Add(-5 * time.Minute)},
		{ID: "tok-3", Team: "research", Role: "member", Name: "alice", Created: testNow.Add(-50 * time.Hour), Expires: testNow.Add(-2 * time.Hour), Revoked: testNow.Add(-3 * time.Hour)},
		{ID: "tok-4", Team: "research", Role: "member", Name: "alice", Created: testNow.Add(-time.Hour), Expires: testNow.Add(23 * time.Hour)},
	}
}

func writeJSONResp(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func apiErr(w http.ResponseWriter, code int, kind, msg, field string) {
	writeJSONResp(w, code, api.ErrorBody{Error: &api.Error{Code: kind, Message: msg, Field: field}})
}

func (f *fakeAPI) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
		if r.Header.Get("Authorization") != "Bearer "+f.token {
			apiErr(w, 401, "unauthorized", "missing bearer token", "")
			return
		}
		h(w, r)
	}
}

func (f *fakeAPI) withJob(h func(http.ResponseWriter, *http.Request, *api.Job)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if id < 1 || int(id) > len(f.jobs) {
			apiErr(w, 404, "not_found", fmt.Sprintf("no job %d", id), "")
			return
		}
		h(w, r, f.jobs[id-1])
	}
}

var nameRE = regexp.MustCompile(`(?m)^name:\s*(\S+)`)

func (f *fakeAPI) submit(w http.ResponseWriter, r *http.Request) {
	var req api.SubmitRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Spec == "" {
		apiErr(w, 400, "invalid", "spec: empty", "spec")
		return
	}
	if id, ok := f.keys[req.Key]; ok && req.Key != "" {
		writeJSONResp(w, 200, api.SubmitResponse{Jobs: []*api.Job{f.jobs[id-1]}})
		return
	}
	name := "task"
	if m := nameRE.FindStringSubmatch(req.Spec); m != nil {
		name = m[1]
	}
	team := req.Team
	if team == "" {
		team = "default"
	}
	id := int64(len(f.jobs) + 1)
	j := &api.Job{ID: id, Key: req.Key, Team: team, User: "tok-1", State: api.Pending, Attempt: 1,
		Reason: "waiting for the next round", Created: testNow.Add(-90 * time.Second), Updated: testNow,
		Workload: &api.Workload{Name: name, Kind: "job", NumNodes: 1, Options: []api.Resources{{GPU: "H100", GPUsPerNode: 1}}}}
	f.jobs = append(f.jobs, j)
	if req.Key != "" {
		f.keys[req.Key] = id
	}
	f.event(j, "", api.Pending, "submitted")
	writeJSONResp(w, 201, api.SubmitResponse{Jobs: []*api.Job{j}, Warnings: []string{"task.yaml:2: file_mounts: ignored"}})
}

func (f *fakeAPI) event(j *api.Job, from, to api.State, msg string) {
	f.events[j.ID] = append(f.events[j.ID], api.Event{JobID: j.ID, Seq: int64(len(f.events[j.ID]) + 1),
		At: testNow, Actor: "reconciler", From: from, To: to, Attempt: j.Attempt, Message: msg})
}

func (f *fakeAPI) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, _ := strconv.ParseInt(q.Get("after"), 10, 64)
	limit, _ := strconv.Atoi(q.Get("limit"))
	var states []string
	if s := q.Get("state"); s != "" {
		states = strings.Split(s, ",")
	}
	out := []*api.Job{}
	for _, j := range f.jobs {
		if j.ID <= after || (q.Get("team") != "" && j.Team != q.Get("team")) ||
			(len(states) > 0 && !slices.Contains(states, string(j.State))) {
			continue
		}
		if limit > 0 && len(out) == limit {
			break
		}
		out = append(out, j)
	}
	writeJSONResp(w, 200, api.JobList{Jobs: out})
}

func (f *fakeAPI) get(w http.ResponseWriter, r *http.Request, j *api.Job) {
	f.gets[j.ID]++
	if !j.State.Terminal() {
		switch f.gets[j.ID] {
		case 1:
		case 2:
			f.event(j, j.State, api.Running, "started")
			j.State, j.Reason = api.Running, ""
			j.Placement = &api.Placement{Cluster: "local", Pool: "local", Provider: "onprem", Region: "local", GPU: "H100", GPUsPerNode: 1, Nodes: []int{0}, PriceClass: "committed"}
			j.StartedAt = testNow.Add(-2 * time.Second)
		default:
			code := 0
			to := api.Succeeded
			if j.Workload.Name == "fail" {
				code, to = 3, api.Failed
				j.Reason = "exit code 3"
			}
			f.event(j, j.State, to, "ended")
			j.State, j.ExitCode, j.EndedAt = to, &code, testNow
		}
	}
	writeJSONResp(w, 200, j)
}

func (f *fakeAPI) cancel(w http.ResponseWriter, r *http.Request, j *api.Job) {
	if !j.State.Terminal() {
		f.event(j, j.State, api.Cancelled, "cancelled by api:tok-1")
		j.State = api.Cancelled
	}
	writeJSONResp(w, 200, j)
}

func (f *fakeAPI) logs(w http.ResponseWriter, r *http.Request, j *api.Job) {
	if j.State == api.Pending {
		apiErr(w, 404, "not_found", "no output yet", "")
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "hello from %s\n", j.Workload.Name)
	if r.URL.Query().Get("follow") == "1" {
		// The real server goes on with the next attempt; follow must stop
		// here and read that attempt on its own.
		fmt.Fprintf(w, "==> attempt %d <==\nnot this attempt's output\n", j.Attempt+1)
	}
}

// requested returns the requests the fake saw, in order.
func (f *fakeAPI) requested() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}
