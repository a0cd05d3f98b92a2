package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gpubroker/internal/backend/local"
	"gpubroker/internal/model"
)

// The attacks of issue 21 that this broker now refuses, each against a
// real server on SQLite and the real local backend. (The rest of that
// issue's attacks are not covered yet; see its notes.)

// rawCall sends body as JSON with token and returns the status and body,
// whatever the status.
func (d *dashServer) rawCall(t *testing.T, method, path, token string, body any) (int, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, d.url+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func startHostileBroker(t *testing.T) *dashServer {
	t.Helper()
	dir := t.TempDir()
	be, err := local.New(filepath.Join(dir, "local"), local.Options{GPUs: 4, Grace: 300 * time.Millisecond, LogPoll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return startLocalBroker(t, dir, 50*time.Millisecond, func(model.Cluster) *local.Backend { return be })
}

// Token teams follow the fleet's name rule: a team "beta/x" would build
// the same job keys as team "beta" (keys are TEAM/KEY), and NUL or 10 KB
// names end up in every listing.
func TestHostileTokenTeams(t *testing.T) {
	t.Parallel()
	d := startHostileBroker(t)
	for _, team := range []string{"beta/x", "nul\x00team", strings.Repeat("t", 10<<10), "../admin", "a b"} {
		code, body := d.rawCall(t, "POST", "/v1/tokens", d.admin, map[string]string{"team": team, "role": "member"})
		if code != http.StatusBadRequest || !strings.Contains(body, `"field":"team"`) || !strings.Contains(body, "not a valid team name") {
			t.Errorf("token for team %.20q: %d %.300s; want 400 naming the team field", team, code, body)
		}
		if len(body) > 4<<10 {
			t.Errorf("the refusal of a %d-byte team name is %d bytes; it should not echo the name whole", len(team), len(body))
		}
	}
	if code, body := d.rawCall(t, "POST", "/v1/tokens", d.admin, map[string]string{"team": "beta", "role": "member", "name": strings.Repeat("n", 300)}); code != http.StatusBadRequest || !strings.Contains(body, `"field":"name"`) {
		t.Errorf("token with a 300-character name: %d %.300s; want 400 naming the name field", code, body)
	}
	if code, body := d.rawCall(t, "POST", "/v1/tokens", d.admin, map[string]string{"team": "beta", "role": "member"}); code != http.StatusCreated {
		t.Errorf("token for team beta: %d %.300s; want 201", code, body)
	}
}

// A pool of 10^9 nodes (which once took a server to 23 GB) is refused at
// apply, with the field and the bound named; nothing is stored.
func TestHostileFleetSizes(t *testing.T) {
	t.Parallel()
	d := startHostileBroker(t)
	for _, tc := range []struct{ pool, field string }{
		{"{name: p, gpu: H100, gpus_per_node: 8, nodes: 1000000000, price_class: committed}", "clusters[0].pools[0].nodes: 1000000000 is more than 100000"},
		{"{name: p, gpu: H100, gpus_per_node: 8, nodes: 1, max_nodes: 1e9, price_class: ondemand, price_per_gpu_hour: 1}", "clusters[0].pools[0].max_nodes"},
		{"{name: p, gpu: H100, gpus_per_node: 8, nodes: 1e15, price_class: committed}", "clusters[0].pools[0].nodes: 1e15 is too large"},
	} {
		fleet := "clusters:\n  - name: c\n    provider: onprem\n    region: r\n    backend: local\n    pools: [" + tc.pool + "]\n"
		code, body := d.rawCall(t, "PUT", "/v1/fleet", d.admin, map[string]string{"fleet": fleet})
		if code != http.StatusBadRequest || !strings.Contains(body, tc.field) {
			t.Errorf("PUT a fleet with pool %s: %d %.400s; want 400 with %q", tc.pool, code, body, tc.field)
		}
	}
	if code, body := d.rawCall(t, "GET", "/v1/fleet", d.admin, nil); code == http.StatusOK && strings.Contains(body, "1000000000") {
		t.Errorf("a refused fleet was stored: %.300s", body)
	}
}

// priority: 1e15 in float form is a whole number, but not one that fits:
// refused at submit like any other out-of-range priority.
func TestHostilePriority(t *testing.T) {
	t.Parallel()
	d := startHostileBroker(t)
	for _, p := range []string{"1e15", "2147483648", "1.5"} {
		spec := "resources:\n  accelerators: H100:1\nx-gpubroker:\n  priority: " + p + "\nrun: echo hi\n"
		code, body := d.rawCall(t, "POST", "/v1/jobs", d.admin, map[string]string{"spec": spec})
		if code != http.StatusBadRequest || !strings.Contains(body, "x-gpubroker.priority") {
			t.Errorf("submit with priority %s: %d %.300s; want 400 naming x-gpubroker.priority", p, code, body)
		}
	}
}

// Priority decides who preempts whom, so a member may not give any: the
// team's max_priority (else the policy's) bounds it at submit; admins are
// not held to it.
func TestHostilePriorityAboveTeamMax(t *testing.T) {
	t.Parallel()
	d := startHostileBroker(t)
	fleet := `clusters:
  - {name: c, provider: onprem, region: r, backend: local,
     pools: [{name: p, gpu: H100, gpus_per_node: 4, nodes: 1, price_class: committed}]}
teams:
  - {name: research, max_priority: 10}
  - {name: other}
policy: {max_priority: 5}
`
	if code, body := d.rawCall(t, "PUT", "/v1/fleet", d.admin, map[string]string{"fleet": fleet}); code != http.StatusOK {
		t.Fatalf("PUT fleet: %d %s", code, body)
	}
	tokens := map[string]string{"research": d.token(t, "research", "member"), "other": d.token(t, "other", "member"), "admin": d.admin}
	for _, tc := range []struct {
		who      string
		priority int
		want     int
	}{
		{"research", 10, http.StatusCreated},
		{"research", 11, http.StatusForbidden},
		{"other", 5, http.StatusCreated},
		{"other", 6, http.StatusForbidden},
		{"admin", 1000, http.StatusCreated},
	} {
		team := tc.who
		if team == "admin" {
			team = "research"
		}
		spec := "resources:\n  accelerators: H100:1\nx-gpubroker:\n  team: " + team + "\n  priority: " + strconv.Itoa(tc.priority) + "\nrun: echo hi\n"
		code, body := d.rawCall(t, "POST", "/v1/jobs", tokens[tc.who], map[string]string{"spec": spec})
		if code != tc.want || (code == http.StatusForbidden && !strings.Contains(body, `"field":"x-gpubroker.priority"`)) {
			t.Errorf("%s submits priority %d: %d %.300s; want %d", tc.who, tc.priority, code, body, tc.want)
		}
	}
}
