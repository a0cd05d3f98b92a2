package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The token attacks of issue 21: a leaked member token is revoked and
// stops working at once, on the API and the dashboard; a token given a
// lifetime stops working when it ends; a member cannot read the
// fleet-wide /metrics. Against a real server on SQLite, through the real
// CLI where an operator would use it.

// gpubrokerCLI runs the gpubroker binary against d as its admin and
// returns its stdout; a failure fails the test with its stderr.
func (d *dashServer) gpubrokerCLI(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary(t), append(args, "--server", d.url, "--token", d.admin)...)
	cmd.Env = cleanEnv()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gpubroker %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// dashboardGet is GET path of the dashboard as a browser logged in with
// token; it returns the status and the page.
func (d *dashServer) dashboardGet(t *testing.T, path, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", d.url+path, nil)
	req.AddCookie(&http.Cookie{Name: "gpubroker_token", Value: token})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHostileRevokedTokenRefusedAtOnce(t *testing.T) {
	t.Parallel()
	d := startHostileBroker(t)
	secret := strings.TrimSpace(d.gpubrokerCLI(t, "token", "create", "--team", "lab", "--role", "member", "--name", "leaked"))
	if code, body := d.rawCall(t, "GET", "/v1/jobs", secret, nil); code != http.StatusOK {
		t.Fatalf("the member token before revoking: %d %.300s", code, body)
	}
	if code, _ := d.dashboardGet(t, "/queue", secret); code != http.StatusOK {
		t.Fatalf("the dashboard with the member token before revoking: %d", code)
	}
	out := d.gpubrokerCLI(t, "token", "revoke", "leaked")
	if !strings.Contains(out, "revoked token tok-") {
		t.Errorf("token revoke leaked: %q", out)
	}
	// At once: the very next requests, no wait.
	if code, body := d.rawCall(t, "GET", "/v1/jobs", secret, nil); code != http.StatusUnauthorized || !strings.Contains(body, "revoked") {
		t.Errorf("the API with the revoked token: %d %.300s; want 401 saying revoked", code, body)
	}
	if code, body := d.rawCall(t, "POST", "/v1/jobs", secret, map[string]string{"spec": "resources:\n  accelerators: H100:1\nrun: echo hi\n"}); code != http.StatusUnauthorized {
		t.Errorf("submitting with the revoked token: %d %.300s; want 401", code, body)
	}
	if code, page := d.dashboardGet(t, "/queue", secret); code != http.StatusUnauthorized || !strings.Contains(page, "revoked") {
		t.Errorf("the dashboard with the revoked token: %d; want 401 saying revoked", code)
	}
	var list struct {
		Tokens []struct {
			Name     string    `json:"name"`
			Revoked  time.Time `json:"revoked"`
			LastUsed time.Time `json:"last_used"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal([]byte(d.gpubrokerCLI(t, "token", "list", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, tk := range list.Tokens {
		if tk.Name == "leaked" {
			found = true
			if tk.Revoked.IsZero() || tk.LastUsed.IsZero() {
				t.Errorf("token list shows the leaked token revoked at %v, last used at %v; want both set", tk.Revoked, tk.LastUsed)
			}
		}
	}
	if !found {
		t.Errorf("token list does not show the revoked token: %+v", list.Tokens)
	}
}

func TestHostileExpiredTokenRefused(t *testing.T) {
	t.Parallel()
	d := startHostileBroker(t)
	secret := strings.TrimSpace(d.gpubrokerCLI(t, "token", "create", "--team", "lab", "--role", "viewer", "--ttl", "2s"))
	if code, body := d.rawCall(t, "GET", "/v1/jobs", secret, nil); code != http.StatusOK {
		t.Fatalf("the token before it expires: %d %.300s", code, body)
	}
	time.Sleep(2100 * time.Millisecond)
	if code, body := d.rawCall(t, "GET", "/v1/jobs", secret, nil); code != http.StatusUnauthorized || !strings.Contains(body, "expired") {
		t.Errorf("the API with the expired token: %d %.300s; want 401 saying expired", code, body)
	}
	if code, _ := d.dashboardGet(t, "/queue", secret); code != http.StatusUnauthorized {
		t.Errorf("the dashboard with the expired token: %d; want 401", code)
	}
}

func TestHostileMemberReadsMetrics(t *testing.T) {
	t.Parallel()
	d := startHostileBroker(t)
	member := d.token(t, "lab", "member")
	if code, body := d.rawCall(t, "GET", "/metrics", member, nil); code != http.StatusForbidden || strings.Contains(body, "gpubroker_") {
		t.Errorf("/metrics with a member token: %d %.300s; want 403 and no counters", code, body)
	}
	scraper := strings.TrimSpace(d.gpubrokerCLI(t, "token", "create", "--team", "ops", "--role", "metrics", "--name", "prometheus"))
	for who, tok := range map[string]string{"admin": d.admin, "metrics": scraper} {
		if code, body := d.rawCall(t, "GET", "/metrics", tok, nil); code != http.StatusOK || !strings.Contains(body, "gpubroker_queue_depth") {
			t.Errorf("/metrics with the %s token: %d %.200s; want 200 with the counters", who, code, body)
		}
	}
	if code, body := d.rawCall(t, "GET", "/v1/jobs", scraper, nil); code != http.StatusForbidden {
		t.Errorf("/v1/jobs with the metrics token: %d %.300s; want 403", code, body)
	}
}
