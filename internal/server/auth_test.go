package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gpubroker/internal/api"
	"gpubroker/internal/server/httpapi"
	"gpubroker/internal/store"
)

// routePath fills a route's {id} with id.
func routePath(rt route, id int64) string {
	return strings.ReplaceAll(rt.path, "{id}", fmt.Sprint(id))
}

func TestNoTokenIs401EverywhereButHealthz(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	id := e.submit(e.admin, task("echo hi"))[0].ID
	for _, rt := range e.srv.apiRoutes() {
		for _, tok := range []string{"", "gpb_not-a-token"} {
			code, body := e.do(rt.method, routePath(rt, id), tok, nil)
			if code != http.StatusUnauthorized || !strings.Contains(string(body), `"code":"unauthorized"`) {
				t.Errorf("%s %s with token %q: %d %s", rt.method, rt.path, tok, code, body)
			}
		}
	}
	for _, p := range []string{"/v1/nothing", "/", "/v1/jobs/1/nothing"} {
		if code, _ := e.do("GET", p, "", nil); code != http.StatusUnauthorized {
			t.Errorf("GET %s without token: %d", p, code)
		}
	}
	if code, _ := e.do("DELETE", fmt.Sprintf("/v1/jobs/%d", id), "", nil); code != http.StatusUnauthorized {
		t.Errorf("DELETE without token: %d", code)
	}
	if code, body := e.do("GET", "/healthz", "", nil); code != http.StatusOK || string(body) != "ok\n" {
		t.Errorf("healthz: %d %q", code, body)
	}
	if code, _ := e.do("GET", "/v1/nothing", e.admin, nil); code != http.StatusNotFound {
		t.Errorf("unknown path with a token: %d", code)
	}
}

func TestAdminTokenFile(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	fi, err := os.Stat(filepath.Join(e.stateDir, AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("admin.token mode %v", fi.Mode().Perm())
	}
	if !strings.HasPrefix(e.admin, "gpb_") {
		t.Errorf("admin token %q", e.admin)
	}
	toks, err := e.st.ListTokens(t.Context())
	if err != nil || len(toks) != 1 || toks[0].Role != RoleAdmin || toks[0].Team != DefaultTeam || toks[0].Hash != HashToken(e.admin) {
		t.Errorf("tokens %+v %v", toks, err)
	}
	// A second start on the same store makes no new token.
	e.stop()
	e.start()
	if toks, _ := e.st.ListTokens(t.Context()); len(toks) != 1 {
		t.Errorf("%d tokens after a restart", len(toks))
	}
}

func TestTeamsCannotSeeEachOthersWork(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	a := e.token("team-a", RoleMember)
	b := e.token("team-b", RoleMember)
	bid := e.submit(b, task("sleep 30"))[0].ID
	aid := e.submit(a, task("echo a"))[0].ID
	if j := e.job(bid); j.Team != "team-b" {
		t.Fatalf("b's job is of team %q", j.Team)
	}
	for _, p := range []string{"", "/events", "/logs", "/logs?follow=1"} {
		code, body := e.do("GET", fmt.Sprintf("/v1/jobs/%d%s", bid, p), a, nil)
		if code != http.StatusNotFound {
			t.Errorf("team a GET b's job%s: %d %s", p, code, body)
		}
		// Exactly the answer for a job that does not exist.
		_, none := e.do("GET", fmt.Sprintf("/v1/jobs/%d%s", 999999, p), a, nil)
		if strings.ReplaceAll(string(body), fmt.Sprint(bid), "N") != strings.ReplaceAll(string(none), "999999", "N") {
			t.Errorf("b's job%s answers %s, a missing one %s", p, body, none)
		}
	}
	if code, _ := e.do("POST", fmt.Sprintf("/v1/jobs/%d/cancel", bid), a, nil); code != http.StatusNotFound {
		t.Errorf("team a cancels b's job: %d", code)
	}
	if j := e.job(bid); j.State == store.Cancelled {
		t.Errorf("b's job was cancelled by a")
	}
	for _, q := range []string{"", "?team=team-b", "?state=PENDING,ADMITTED,DISPATCHED,RUNNING"} {
		var list listResponse
		e.mustDo(http.StatusOK, "GET", "/v1/jobs"+q, a, nil, &list)
		for _, j := range list.Jobs {
			if j.Team != "team-a" {
				t.Errorf("team a lists %q job %d (query %q)", j.Team, j.ID, q)
			}
		}
		if q == "" && (len(list.Jobs) != 1 || list.Jobs[0].ID != aid) {
			t.Errorf("team a lists %d jobs", len(list.Jobs))
		}
	}
	// A member cannot submit for another team, in the body or the file.
	var er struct{ Error api.Error }
	e.mustDo(http.StatusForbidden, "POST", "/v1/jobs", a, api.SubmitRequest{Spec: task("echo"), Team: "team-b"}, &er)
	if er.Error.Field != "team" {
		t.Errorf("field %q", er.Error.Field)
	}
	e.mustDo(http.StatusForbidden, "POST", "/v1/jobs", a, api.SubmitRequest{Spec: task("echo", "x-gpubroker:\n  team: team-b\n")}, &er)
	if er.Error.Field != "x-gpubroker.team" {
		t.Errorf("field %q", er.Error.Field)
	}
	// b still sees and cancels its own.
	var j store.Job
	e.mustDo(http.StatusOK, "POST", fmt.Sprintf("/v1/jobs/%d/cancel", bid), b, nil, &j)
	if j.State != store.Cancelled {
		t.Errorf("b's cancel: %s", j.State)
	}
	// Non-admins cannot touch tokens or the fleet.
	for _, r := range []struct{ method, path string }{{"GET", "/v1/tokens"}, {"POST", "/v1/tokens"}, {"PUT", "/v1/fleet"}} {
		var body any
		if r.method != "GET" {
			body = map[string]string{}
		}
		if code, _ := e.do(r.method, r.path, a, body); code != http.StatusForbidden {
			t.Errorf("member %s %s: %d", r.method, r.path, code)
		}
	}
}

func TestViewerReadsButCannotWrite(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	m := e.token("lab", RoleMember)
	v := e.token("lab", RoleViewer)
	id := e.submit(m, task("sleep 30"))[0].ID
	if code, body := e.do("POST", "/v1/jobs", v, api.SubmitRequest{Spec: task("echo")}); code != http.StatusForbidden || !strings.Contains(string(body), `"code":"forbidden"`) {
		t.Errorf("viewer submit: %d %s", code, body)
	}
	if code, _ := e.do("POST", fmt.Sprintf("/v1/jobs/%d/cancel", id), v, nil); code != http.StatusForbidden {
		t.Errorf("viewer cancel: %d", code)
	}
	for _, p := range []string{fmt.Sprintf("/v1/jobs/%d", id), fmt.Sprintf("/v1/jobs/%d/events", id), "/v1/jobs", "/v1/clusters", "/v1/teams", "/v1/usage", "/v1/openapi.json"} {
		if code, body := e.do("GET", p, v, nil); code != http.StatusOK {
			t.Errorf("viewer GET %s: %d %s", p, code, body)
		}
	}
	// /metrics counts every team's work: not for a team's viewer.
	if code, body := e.do("GET", "/metrics", v, nil); code != http.StatusForbidden {
		t.Errorf("viewer GET /metrics: %d %s; want 403", code, body)
	}
	if code, body := e.do("POST", "/v1/plan", v, api.PlanRequest{Spec: task("echo")}); code != http.StatusOK {
		t.Errorf("viewer plan: %d %s", code, body)
	}
	if n, _ := e.st.CountByState(t.Context()); n[store.Pending]+n[store.Admitted]+n[store.Dispatched]+n[store.Running] != 1 {
		t.Errorf("counts %v", n)
	}
}

func TestAdminCanDoEverything(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	b := e.token("team-b", RoleMember)
	id := e.submit(b, task("sleep 30"))[0].ID
	for _, p := range []string{fmt.Sprintf("/v1/jobs/%d", id), fmt.Sprintf("/v1/jobs/%d/events", id), fmt.Sprintf("/v1/jobs/%d/logs", id), "/v1/jobs?team=team-b", "/v1/tokens"} {
		if code, body := e.do("GET", p, e.admin, nil); code != http.StatusOK {
			t.Errorf("admin GET %s: %d %s", p, code, body)
		}
	}
	// Submit for another team.
	var resp submitResponse
	e.mustDo(http.StatusCreated, "POST", "/v1/jobs", e.admin, api.SubmitRequest{Spec: task("echo"), Team: "team-c"}, &resp)
	if resp.Jobs[0].Team != "team-c" {
		t.Errorf("admin submitted for %q", resp.Jobs[0].Team)
	}
	var j store.Job
	e.mustDo(http.StatusOK, "POST", fmt.Sprintf("/v1/jobs/%d/cancel", id), e.admin, nil, &j)
	if j.State != store.Cancelled {
		t.Errorf("admin cancel: %s", j.State)
	}
	evs := e.events(id)
	if last := evs[len(evs)-1]; last.To != store.Cancelled || !strings.HasPrefix(last.Actor, "api:tok-") {
		t.Errorf("cancel event %+v", last)
	}
	var toks struct{ Tokens []json.RawMessage }
	e.mustDo(http.StatusOK, "GET", "/v1/tokens", e.admin, nil, &toks)
	for _, raw := range toks.Tokens {
		if strings.Contains(string(raw), "gpb_") || strings.Contains(strings.ToLower(string(raw)), "hash") {
			t.Errorf("token list leaks a secret: %s", raw)
		}
	}
	if len(toks.Tokens) != 2 {
		t.Errorf("%d tokens", len(toks.Tokens))
	}
}

func TestBadRequestsStoreNothing(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	var put struct{ Version int64 }
	e.mustDo(http.StatusOK, "PUT", "/v1/fleet", e.admin, api.FleetRequest{Fleet: twoNodeFleet + "teams:\n  - name: research\n    quota: {H100: 4}\n"}, &put)
	cases := []struct {
		name   string
		body   string
		status int
		field  string
		msg    string
	}{
		{"not json", `{"spec": `, 400, "", "JSON"},
		{"wrong type", `{"spec": 5}`, 400, "spec", "string"},
		{"unknown field", `{"spec": "run: x", "tema": "a"}`, 400, "tema", "unknown field"},
		{"two values", `{"spec": "x"} {}`, 400, "", "more than one"},
		{"empty spec", `{"spec": "  "}`, 400, "spec", "empty"},
		{"bad yaml", `{"spec": "resources:\n  accelerators: [oops\nrun: x\n", "team": "research"}`, 400, "", "task.yaml:"},
		{"bad accelerators", `{"spec": "resources:\n  accelerators: H100:zero\nrun: x\n", "team": "research"}`, 400, "resources.accelerators", "task.yaml:2:"},
		{"unknown team", `{"spec": "resources:\n  accelerators: H100:1\nrun: x\n", "team": "nobody"}`, 400, "x-gpubroker.team", "nobody"},
		{"named file", `{"spec": "resources:\n  accelerators: H100:zero\n", "file": "train.yaml", "team": "research"}`, 400, "resources.accelerators", "train.yaml:2:"},
		{"too big", `{"spec": "` + strings.Repeat("x", httpapi.MaxSpecBody) + `"}`, 413, "", "over"},
	}
	for _, c := range cases {
		code, body := e.do("POST", "/v1/jobs", e.admin, c.body)
		var er struct{ Error api.Error }
		json.Unmarshal(body, &er)
		if code != c.status || er.Error.Field != c.field || !strings.Contains(er.Error.Message, c.msg) {
			t.Errorf("%s: %d field %q: %s", c.name, code, er.Error.Field, body)
		}
	}
	if n, _ := e.st.CountByState(t.Context()); n[store.Pending] != 0 {
		t.Errorf("bad submits stored %d jobs", n[store.Pending])
	}
	// A bad fleet is not applied.
	code, body := e.do("PUT", "/v1/fleet", e.admin, api.FleetRequest{Fleet: "clusters:\n  - name: x\n    provider: aws\n    region: r\n    backend: local\n    pools:\n      - name: p\n        gpu: H100\n        gpus_per_node: 99\n        nodes: 1\n        price_class: ondemand\n"})
	if code != 400 || !strings.Contains(string(body), "gpus_per_node") {
		t.Errorf("bad fleet: %d %s", code, body)
	}
	var f struct{ Version int64 }
	e.mustDo(http.StatusOK, "GET", "/v1/fleet", e.admin, nil, &f)
	if f.Version != 1 {
		t.Errorf("fleet version %d after a bad apply", f.Version)
	}
}

func TestIdempotentSubmit(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	req := api.SubmitRequest{Spec: task("echo once"), Key: "run-42"}
	var first, again submitResponse
	e.mustDo(http.StatusCreated, "POST", "/v1/jobs", e.admin, req, &first)
	e.mustDo(http.StatusOK, "POST", "/v1/jobs", e.admin, req, &again)
	if len(again.Jobs) != 1 || again.Jobs[0].ID != first.Jobs[0].ID {
		t.Errorf("second submit gave %+v, first %+v", again.Jobs, first.Jobs)
	}
	// Another team's same key is its own job.
	m := e.token("other", RoleMember)
	var other submitResponse
	e.mustDo(http.StatusCreated, "POST", "/v1/jobs", m, req, &other)
	if other.Jobs[0].ID == first.Jobs[0].ID {
		t.Errorf("team other got team default's job")
	}
	jobs, _ := e.st.ListJobs(t.Context(), store.Filter{})
	if len(jobs) != 2 {
		t.Errorf("%d jobs stored", len(jobs))
	}
	e.waitState(first.Jobs[0].ID, 20*time.Second, store.Succeeded)
}
