package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"gpubroker/internal/api"
)

// Tests of the API commands against fakeAPI: the requests they send, what
// they print and how they exit. The same commands against the real server
// (SQLite, local backend, a killed and restarted process) are tested in
// internal/e2e.

func apiArgs(url string, args ...string) []string {
	return append(args, "--server", url, "--token", fakeToken)
}

func TestLaunchFollows(t *testing.T) {
	t.Parallel()
	f, srv := newFakeAPI(t)
	r := runCLI(t, apiArgs(srv.URL, "launch", "examples/hello.yaml", "--key", "k1")...)
	if r.code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
	}
	want := "submitted job 1 (hello)\nhello from hello\njob 1 (hello) SUCCEEDED after 2s\n"
	if diff := cmp.Diff(want, r.stdout); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
	for _, w := range []string{"warning: task.yaml:2: file_mounts: ignored", "job 1: PENDING: waiting for the next round"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
		}
	}
	reqs := f.requested()
	if reqs[0] != "POST /v1/jobs" || !slices.Contains(reqs, "GET /v1/jobs/1/logs?attempt=1&follow=1") {
		t.Errorf("requests: %v", reqs)
	}
	// The same key again is the same job: nothing new is submitted.
	r = runCLI(t, apiArgs(srv.URL, "launch", "examples/hello.yaml", "--key", "k1", "--detach")...)
	if r.code != exitOK || r.stdout != "submitted job 1 (hello)\n" {
		t.Errorf("second launch with the same key: exit %d, stdout %q", r.code, r.stdout)
	}
}

func TestLaunchFailedJobExits1(t *testing.T) {
	t.Parallel()
	_, srv := newFakeAPI(t)
	task := filepath.Join(t.TempDir(), "fail.yaml")
	if err := os.WriteFile(task, []byte("name: fail\nresources:\n  accelerators: H100:1\nrun: exit 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, apiArgs(srv.URL, "launch", task)...)
	if r.code != exitFailure {
		t.Errorf("exit %d, want 1", r.code)
	}
	if !strings.Contains(r.stdout, "job 1 (fail) FAILED after 2s: exit code 3") || !strings.Contains(r.stderr, "error: job 1 FAILED") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
}

func TestLaunchDetach(t *testing.T) {
	t.Parallel()
	f, srv := newFakeAPI(t)
	r := runCLI(t, apiArgs(srv.URL, "launch", "examples/hello.yaml", "-d", "--team", "research")...)
	if r.code != exitOK || r.stdout != "submitted job 1 (hello)\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if f.jobs[0].Team != "research" || !strings.HasPrefix(f.jobs[0].Key, "launch-") {
		t.Errorf("submitted %+v, want team research and a random launch- key", f.jobs[0])
	}
	if n := len(f.requested()); n != 1 {
		t.Errorf("detached launch made %d requests, want 1", n)
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	_, srv := newFakeAPI(t)
	for range 2 {
		runCLI(t, apiArgs(srv.URL, "launch", "examples/hello.yaml", "-d")...)
	}
	runCLI(t, apiArgs(srv.URL, "logs", "-f", "2")...) // job 2 runs to its end

	r := runCLI(t, apiArgs(srv.URL, "status")...)
	want := `ID  NAME   TEAM     STATE      GPUS    WHERE        ATTEMPT  AGE  REASON
1   hello  default  PENDING    H100:1  -            1        1m   waiting for the next round
2   hello  default  SUCCEEDED  H100:1  local/local  1        1m   -
`
	if diff := cmp.Diff(want, r.stdout); diff != "" || r.code != exitOK {
		t.Errorf("status: exit %d (-want +got):\n%s%s", r.code, diff, r.stderr)
	}
	r = runCLI(t, apiArgs(srv.URL, "queue", "--state", "succeeded", "-o", "wide")...)
	if !strings.Contains(r.stdout, "PROVIDER") || !strings.Contains(r.stdout, "onprem") || strings.Contains(r.stdout, "PENDING") {
		t.Errorf("queue --state succeeded -o wide:\n%s%s", r.stdout, r.stderr)
	}

	var doc struct {
		Jobs []struct {
			ID    int64  `json:"id" yaml:"id"`
			State string `json:"state" yaml:"state"`
		} `json:"jobs" yaml:"jobs"`
	}
	r = runCLI(t, apiArgs(srv.URL, "status", "-o", "json")...)
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Jobs) != 2 || doc.Jobs[1].State != "SUCCEEDED" {
		t.Errorf("status -o json: %v %+v\n%s", err, doc, r.stdout)
	}
	r = runCLI(t, apiArgs(srv.URL, "status", "2", "-o", "yaml")...)
	doc.Jobs = nil
	if err := yaml.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Jobs) != 1 || doc.Jobs[0].ID != 2 || doc.Jobs[0].State != "SUCCEEDED" {
		t.Errorf("status 2 -o yaml: %v %+v\n%s", err, doc, r.stdout)
	}
	if !strings.HasPrefix(r.stdout, "jobs:\n  - id: 2\n") {
		t.Errorf("status -o yaml is not block style in the API's key order:\n%s", r.stdout)
	}

	for _, bad := range [][]string{{"status", "--state", "sleeping"}, {"status", "-o", "xml"}, {"status", "x1"}} {
		if r := runCLI(t, apiArgs(srv.URL, bad...)...); r.code != exitUsage {
			t.Errorf("%v: exit %d, want %d; stderr %s", bad, r.code, exitUsage, r.stderr)
		}
	}
	if r := runCLI(t, apiArgs(srv.URL, "status", "9")...); r.code != exitFailure || !strings.Contains(r.stderr, "job 9: no job 9") {
		t.Errorf("status 9: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestLogsCancelEvents(t *testing.T) {
	t.Parallel()
	_, srv := newFakeAPI(t)
	runCLI(t, apiArgs(srv.URL, "launch", "examples/hello.yaml", "-d")...)

	r := runCLI(t, apiArgs(srv.URL, "logs", "1")...)
	if r.code != exitFailure || !strings.Contains(r.stderr, "no output yet") {
		t.Errorf("logs of a pending job: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runCLI(t, apiArgs(srv.URL, "cancel", "1", "7")...); r.code != exitFailure ||
		r.stdout != "cancelled job 1 (hello)\n" || !strings.Contains(r.stderr, "job 7: no job 7") {
		t.Errorf("cancel 1 7: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, apiArgs(srv.URL, "cancel", "1")...); r.code != exitOK || r.stdout != "job 1 (hello) had already ended: CANCELLED\n" {
		t.Errorf("cancel again: exit %d, stdout %q", r.code, r.stdout)
	}
	r = runCLI(t, apiArgs(srv.URL, "events", "1")...)
	if r.code != exitOK || !strings.Contains(r.stdout, "SEQ") || !strings.Contains(r.stdout, "cancelled by api:tok-1") {
		t.Errorf("events: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, apiArgs(srv.URL, "events", "1", "-o", "json")...)
	var evs struct {
		Events []map[string]any `json:"events"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &evs); err != nil || len(evs.Events) != 2 || evs.Events[1]["to"] != "CANCELLED" {
		t.Errorf("events -o json: %v\n%s", err, r.stdout)
	}
}

func TestFleetUsageToken(t *testing.T) {
	t.Parallel()
	_, srv := newFakeAPI(t)
	if r := runCLI(t, apiArgs(srv.URL, "fleet", "show", "--doc")...); r.code != exitFailure || !strings.Contains(r.stderr, "no fleet applied yet") {
		t.Errorf("fleet show --doc before apply: exit %d, stderr %q", r.code, r.stderr)
	}
	r := runCLI(t, apiArgs(srv.URL, "fleet", "apply", "examples/fleet.yaml")...)
	if r.code != exitOK || r.stdout != "applied examples/fleet.yaml as fleet version 1\n" || !strings.Contains(r.stderr, "warning: fleet.yaml:3: x: ignored") {
		t.Errorf("fleet apply: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, apiArgs(srv.URL, "fleet", "apply", "examples/hello.yaml")...); r.code != exitFailure || !strings.Contains(r.stderr, "error: examples/hello.yaml: no clusters") {
		t.Errorf("fleet apply of a task file: exit %d, stderr %q", r.code, r.stderr)
	}
	want := "CLUSTER  PROVIDER  REGION  BACKEND  STATUS   CHECKED  POOL   GPU     NODES  GPUS FREE  CLASS\nlocal    onprem    local   local    HEALTHY  -        local  H100:8  1      7/8        committed\n"
	if r := runCLI(t, apiArgs(srv.URL, "fleet", "show")...); r.stdout != want {
		t.Errorf("fleet show (-want +got):\n%s", cmp.Diff(want, r.stdout))
	}
	want = "usage from 2026-05-02 00:00 UTC to 2026-06-01 00:00 UTC\nPROVIDER  TEAM     GPU-HOURS  COST USD\nonprem    default  2.5        12.50\ntotal: $12.50\n"
	if r := runCLI(t, apiArgs(srv.URL, "usage", "--since", "30d")...); r.stdout != want {
		t.Errorf("usage (-want +got):\n%s%s", cmp.Diff(want, r.stdout), r.stderr)
	}
	r = runCLI(t, apiArgs(srv.URL, "token", "create", "--team", "research", "--role", "Member", "--name", "alice")...)
	if r.code != exitOK || r.stdout != "gpb_new\n" || !strings.Contains(r.stderr, "created token tok-2 for team research, role member") {
		t.Errorf("token create: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, apiArgs(srv.URL, "token", "create", "--team", "x", "--role", "root")...); r.code != exitUsage {
		t.Errorf("token create --role root: exit %d, want %d", r.code, exitUsage)
	}
	want = `ID     TEAM      ROLE    NAME         CREATED  EXPIRES         LAST USE  REVOKED
tok-1  default   admin   local admin  1h ago   never           5m ago    -
tok-3  research  member  alice        2d ago   expired 2h ago  never     3h ago
tok-4  research  member  alice        1h ago   in 23h          never     -
`
	if r := runCLI(t, apiArgs(srv.URL, "token", "list")...); r.stdout != want {
		t.Errorf("token list (-want +got):\n%s%s", cmp.Diff(want, r.stdout), r.stderr)
	}
}

func TestTokenCreateTTLAndRevoke(t *testing.T) {
	t.Parallel()
	_, srv := newFakeAPI(t)
	r := runCLI(t, apiArgs(srv.URL, "token", "create", "--team", "research", "--ttl", "24h")...)
	if r.code != exitOK || !strings.Contains(r.stderr, "it expires at 2026-") {
		t.Errorf("token create --ttl 24h: exit %d, stderr %q", r.code, r.stderr)
	}
	for _, bad := range []string{"0s", "-1h", "soon", "4000d", "NaNd"} {
		if r := runCLI(t, apiArgs(srv.URL, "token", "create", "--team", "x", "--ttl", bad)...); r.code != exitUsage || !strings.Contains(r.stderr, "--ttl") {
			t.Errorf("token create --ttl %s: exit %d, stderr %q; want a usage error naming --ttl", bad, r.code, r.stderr)
		}
	}
	// By name: the one alice not revoked yet; by ID, any.
	if r := runCLI(t, apiArgs(srv.URL, "token", "revoke", "alice", "tok-1")...); r.code != exitOK ||
		r.stdout != "revoked token tok-4 (team research, role member, name alice)\nrevoked token tok-1 (team default, role admin, name local admin)\n" {
		t.Errorf("token revoke alice tok-1: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, apiArgs(srv.URL, "token", "revoke", "bob")...); r.code != exitFailure || !strings.Contains(r.stderr, `no token has the ID or name "bob"`) {
		t.Errorf("token revoke bob: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runCLI(t, apiArgs(srv.URL, "token", "revoke")...); r.code != exitUsage {
		t.Errorf("token revoke with no argument: exit %d, want %d", r.code, exitUsage)
	}
}

func TestPickToken(t *testing.T) {
	t.Parallel()
	toks := []api.Token{{ID: "tok-a", Name: "ci"}, {ID: "tok-b", Name: "ci"}, {ID: "tok-c", Name: "ci", Revoked: testNow}}
	if _, err := pickToken(toks, "ci"); err == nil || !strings.Contains(err.Error(), "2 tokens are named \"ci\" (tok-a, tok-b)") {
		t.Errorf("pickToken of an ambiguous name: %v", err)
	}
	if id, err := pickToken(toks, "tok-c"); id != "tok-c" || err != nil {
		t.Errorf("pickToken of a revoked token's ID: %q %v", id, err)
	}
}

func TestUnauthorized(t *testing.T) {
	t.Parallel()
	_, srv := newFakeAPI(t)
	r := runCLI(t, "status", "--server", srv.URL, "--token", "wrong")
	if r.code != exitFailure || !strings.Contains(r.stderr, "error: missing bearer token (give a token with --token or GPUBROKER_TOKEN)") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestConnect checks where the client finds its server and token: flags,
// then the environment, then the local state directory, and that without
// any it says what to do (only launch starts a server).
func TestConnect(t *testing.T) {
	_, srv := newFakeAPI(t)
	dir := t.TempDir()
	t.Setenv("GPUBROKER_SERVER", "")
	t.Setenv("GPUBROKER_TOKEN", "")
	t.Setenv("GPUBROKER_STATE_DIR", dir)

	r := runCLI(t, "status")
	if r.code != exitFailure || !strings.Contains(r.stderr, "no gpubroker server: none answers in "+dir) {
		t.Errorf("no server: exit %d, stderr %q", r.code, r.stderr)
	}
	// The state directory's files, as a local server writes them.
	if err := writeStateFile(dir, urlFile, srv.URL, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeStateFile(dir, tokenFile, fakeToken, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, "status"); r.code != exitOK {
		t.Errorf("from the state directory: exit %d, stderr %q", r.code, r.stderr)
	}
	// The environment wins over the state directory; flags over both.
	t.Setenv("GPUBROKER_TOKEN", "wrong")
	if r := runCLI(t, "status"); r.code != exitFailure {
		t.Errorf("GPUBROKER_TOKEN=wrong: exit %d, want 1", r.code)
	}
	if r := runCLI(t, "status", "--token", fakeToken); r.code != exitOK {
		t.Errorf("--token: exit %d, stderr %q", r.code, r.stderr)
	}
	t.Setenv("GPUBROKER_SERVER", "http://127.0.0.1:1")
	if r := runCLI(t, "status", "--token", fakeToken); r.code != exitFailure || !strings.Contains(r.stderr, "127.0.0.1:1") {
		t.Errorf("GPUBROKER_SERVER unreachable: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestStateDir(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		env  map[string]string
		want string
	}{
		"override": {map[string]string{"GPUBROKER_STATE_DIR": "/s", "XDG_STATE_HOME": "/x", "HOME": "/h"}, "/s"},
		"xdg":      {map[string]string{"XDG_STATE_HOME": "/x", "HOME": "/h"}, "/x/gpubroker"},
		"home":     {map[string]string{"HOME": "/h"}, "/h/.local/state/gpubroker"},
	} {
		got, err := stateDir(func(k string) string { return c.env[k] })
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", name, got, err, c.want)
		}
	}
}

func TestWriteYAML(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	v := map[string]any{"b": []any{map[string]any{"x": 1, "s": "two\nlines"}}, "a": "plain"}
	if err := writeYAML(&buf, v); err != nil {
		t.Fatal(err)
	}
	want := "a: plain\nb:\n  - s: |-\n      two\n      lines\n    x: 1\n"
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestServerNeedsDrivers(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), []string{"server", "--state-dir", t.TempDir()}, strings.NewReader(""), &stdout, &stderr)
	if code != exitFailure || !strings.Contains(stderr.String(), "no store or backend drivers") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}
