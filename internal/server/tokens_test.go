package server

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gpubroker/internal/api"
	"gpubroker/internal/store"
	"gpubroker/internal/store/sqlite"
)

// replica starts a second server on e's database file, through its own
// store handle, as another process sharing the store would.
func (e *testEnv) replica(opts ...envOption) (url string) {
	e.t.Helper()
	st, err := sqlite.Open(filepath.Join(e.dir, "broker.db"))
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := e.config(opts...)
	cfg.Store, cfg.StateDir = st, filepath.Join(e.dir, "state2")
	srv, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := srv.Open(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Close(ctx)
		st.Close()
	})
	return "http://" + srv.Addr()
}

// page sends a dashboard request as a browser logged in with token:
// the token in the cookie, form as the body.
func page(t *testing.T, base, method, path, token string, form url.Values) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "gpubroker_token", Value: token})
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// api sends an API request to base (another replica than e.url, say).
func apiAt(t *testing.T, base, method, path, token string) int {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A revoked token gets 401 on the very next request, on the API and the
// dashboard, on the replica that revoked it and on another sharing the
// store (nothing caches tokens).
func TestRevokedTokenRefusedAtOnceOnEveryReplica(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	other := e.replica()
	var created api.CreatedToken
	e.mustDo(http.StatusCreated, "POST", "/v1/tokens", e.admin, api.TokenRequest{Team: "lab", Role: RoleMember, Name: "alice"}, &created)
	for _, base := range []string{e.url, other} {
		if code := apiAt(t, base, "GET", "/v1/jobs", created.Token); code != http.StatusOK {
			t.Fatalf("GET /v1/jobs at %s before revoking: %d", base, code)
		}
		if code, _ := page(t, base, "GET", "/queue", created.Token, nil); code != http.StatusOK {
			t.Fatalf("dashboard /queue at %s before revoking: %d", base, code)
		}
	}
	if code, body := e.do("POST", "/v1/tokens/"+created.ID+"/revoke", created.Token, nil); code != http.StatusForbidden {
		t.Errorf("a member revoking: %d %s; want 403", code, body)
	}
	var revoked api.Token
	e.mustDo(http.StatusOK, "POST", "/v1/tokens/"+created.ID+"/revoke", e.admin, nil, &revoked)
	if revoked.Revoked.IsZero() || revoked.ID != created.ID {
		t.Errorf("revoke answered %+v", revoked)
	}
	for _, base := range []string{e.url, other} {
		if code := apiAt(t, base, "GET", "/v1/jobs", created.Token); code != http.StatusUnauthorized {
			t.Errorf("GET /v1/jobs at %s after revoking: %d; want 401", base, code)
		}
		if code, body := page(t, base, "GET", "/queue", created.Token, nil); code != http.StatusUnauthorized || !strings.Contains(body, "revoked") {
			t.Errorf("dashboard /queue at %s after revoking: %d; want 401 saying revoked", base, code)
		}
	}
	code, body := e.do("POST", "/v1/jobs", created.Token, api.SubmitRequest{Spec: task("echo")})
	if code != http.StatusUnauthorized || !strings.Contains(string(body), "revoked") {
		t.Errorf("submit with a revoked token: %d %s", code, body)
	}
	var again api.Token
	e.mustDo(http.StatusOK, "POST", "/v1/tokens/"+created.ID+"/revoke", e.admin, nil, &again)
	if !again.Revoked.Equal(revoked.Revoked) {
		t.Errorf("revoking again moved the time from %v to %v", revoked.Revoked, again.Revoked)
	}
	if code, body := e.do("POST", "/v1/tokens/tok-nope/revoke", e.admin, nil); code != http.StatusNotFound {
		t.Errorf("revoking an unknown token: %d %s", code, body)
	}
	var list api.TokenList
	e.mustDo(http.StatusOK, "GET", "/v1/tokens", e.admin, nil, &list)
	if len(list.Tokens) != 2 || list.Tokens[1].ID != created.ID && list.Tokens[0].ID != created.ID {
		t.Errorf("tokens listed: %+v; want the admin and the revoked one", list.Tokens)
	}
}

// fakeNow is a clock that a test moves forward.
type fakeNow struct{ off atomic.Int64 }

func (f *fakeNow) now() time.Time          { return time.Now().Add(time.Duration(f.off.Load())) }
func (f *fakeNow) add(d time.Duration)     { f.off.Add(int64(d)) }
func (f *fakeNow) option() envOption       { return func(c *Config) { c.Now = f.now } }
func (f *fakeNow) since(t time.Time) int64 { return int64(f.now().Sub(t)) }

func TestExpiredTokenRefused(t *testing.T) {
	t.Parallel()
	clk := &fakeNow{}
	e := newStoppedEnv(t)
	e.start(clk.option())
	t.Cleanup(e.drain)
	e.admin = adminOf(t, e)
	var created api.CreatedToken
	e.mustDo(http.StatusCreated, "POST", "/v1/tokens", e.admin, api.TokenRequest{Team: "lab", Role: RoleViewer, TTL: "1h"}, &created)
	if d := created.Expires.Sub(clk.now()); d < 59*time.Minute || d > time.Hour {
		t.Errorf("expires %v, in %v; want in an hour", created.Expires, d)
	}
	if code, body := e.do("GET", "/v1/jobs", created.Token, nil); code != http.StatusOK {
		t.Fatalf("before expiry: %d %s", code, body)
	}
	clk.add(time.Hour)
	if code, body := e.do("GET", "/v1/jobs", created.Token, nil); code != http.StatusUnauthorized || !strings.Contains(string(body), "expired") {
		t.Errorf("after expiry: %d %s; want 401 saying expired", code, body)
	}
	for _, ttl := range []string{"0s", "-5m", "forever", "4000d", strings.Repeat("9", 1000)} {
		code, body := e.do("POST", "/v1/tokens", e.admin, api.TokenRequest{Team: "lab", Role: RoleViewer, TTL: ttl})
		if code != http.StatusBadRequest || !strings.Contains(string(body), `"field":"ttl"`) || len(body) > 1000 {
			t.Errorf("ttl %.20q: %d %.300s; want a short 400 naming ttl", ttl, code, body)
		}
	}
}

func adminOf(t *testing.T, e *testEnv) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.stateDir, AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// countingStore counts the last-use writes.
type countingStore struct {
	store.Store
	touches atomic.Int64
}

func (c *countingStore) TouchToken(ctx context.Context, id string, at time.Time) error {
	c.touches.Add(1)
	return c.Store.TouchToken(ctx, id, at)
}

// Last use costs one store write a minute per token, not one a request.
func TestLastUseWrittenAtMostOnceAMinute(t *testing.T) {
	t.Parallel()
	clk := &fakeNow{}
	e := newStoppedEnv(t)
	cs := &countingStore{Store: e.st}
	e.start(clk.option(), func(c *Config) { c.Store = cs })
	t.Cleanup(e.drain)
	e.admin = adminOf(t, e)
	m := e.token("lab", RoleMember)
	before := cs.touches.Load() // the admin's, creating m
	for range 50 {
		if code, _ := e.do("GET", "/v1/jobs", m, nil); code != http.StatusOK {
			t.Fatal(code)
		}
	}
	if n := cs.touches.Load() - before; n != 1 {
		t.Errorf("%d last-use writes for 50 requests in a minute; want 1", n)
	}
	clk.add(61 * time.Second)
	for range 10 {
		e.do("GET", "/v1/jobs", m, nil)
	}
	if n := cs.touches.Load() - before; n != 2 {
		t.Errorf("%d last-use writes after a minute more; want 2", n)
	}
	var list api.TokenList
	e.mustDo(http.StatusOK, "GET", "/v1/tokens", e.admin, nil, &list)
	for _, tk := range list.Tokens {
		if tk.LastUsed.IsZero() || clk.since(tk.LastUsed) > int64(time.Minute) {
			t.Errorf("token %s last used %v; want within the last minute of %v", tk.ID, tk.LastUsed, clk.now())
		}
	}
}

// /metrics counts every team's work: admin and metrics tokens only. A
// metrics token reads nothing else, nor logs in to the dashboard.
func TestMetricsNeedAdminOrMetricsToken(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	mt := e.token("ops", RoleMetrics)
	for _, tc := range []struct {
		token string
		want  int
	}{
		{"", http.StatusUnauthorized},
		{e.token("lab", RoleMember), http.StatusForbidden},
		{e.token("lab", RoleViewer), http.StatusForbidden},
		{e.admin, http.StatusOK},
		{mt, http.StatusOK},
	} {
		code, body := e.do("GET", "/metrics", tc.token, nil)
		if code != tc.want {
			t.Errorf("GET /metrics with %.12q: %d %.200s; want %d", tc.token, code, body, tc.want)
		}
		if code == http.StatusOK && !strings.Contains(string(body), "gpubroker_http_requests_total") {
			t.Errorf("GET /metrics: no gpubroker series in %.200s", body)
		}
	}
	for _, p := range []string{"/v1/jobs", "/v1/teams", "/v1/usage", "/v1/tokens", "/v1/fleet"} {
		if code, body := e.do("GET", p, mt, nil); code != http.StatusForbidden || !strings.Contains(string(body), "metrics token") {
			t.Errorf("GET %s with a metrics token: %d %s; want 403", p, code, body)
		}
	}
	if code, body := page(t, e.url, "GET", "/queue", mt, nil); code != http.StatusUnauthorized || !strings.Contains(body, "metrics token") {
		t.Errorf("dashboard with a metrics token: %d; want 401 saying why", code)
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// A form served by one replica is accepted by another on the same store,
// and by the same server after a restart: the key is the store's.
func TestCSRFKeySharedByReplicasAndRestarts(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	m := e.token("lab", RoleMember)
	code, body := page(t, e.url, "GET", "/queue", m, nil)
	match := csrfField.FindStringSubmatch(body)
	if code != http.StatusOK || match == nil {
		t.Fatalf("dashboard /queue: %d, no csrf field", code)
	}
	form := url.Values{"csrf": {match[1]}}
	other := e.replica()
	if code, _ := page(t, other, "POST", "/logout", m, url.Values{"csrf": {"forged"}}); code != http.StatusForbidden {
		t.Errorf("logout with a forged form token at the other replica: %d; want 403", code)
	}
	if code, _ := page(t, other, "POST", "/logout", m, form); code != http.StatusSeeOther {
		t.Errorf("logout at the other replica with the first one's form token: %d; want 303", code)
	}
	e.stop()
	e.start()
	if code, _ := page(t, e.url, "POST", "/logout", m, form); code != http.StatusSeeOther {
		t.Errorf("logout after a restart with the form token from before: %d; want 303", code)
	}
}

// Team names on submit follow the same rule as on tokens, even for an
// admin: job keys are TEAM/KEY, so team "beta/x" with key "k" would be
// team "beta" with key "x/k".
func TestSubmitTeamFollowsNameRule(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	code, body := e.do("POST", "/v1/jobs", e.admin, api.SubmitRequest{Spec: task("echo"), Team: "beta/x", Key: "k"})
	if code != http.StatusBadRequest || !strings.Contains(string(body), `"field":"team"`) {
		t.Errorf("submit for team beta/x: %d %s; want 400 naming team", code, body)
	}
	code, body = e.do("POST", "/v1/jobs", e.admin, api.SubmitRequest{Spec: task("echo", "x-gpubroker:\n  team: \"nul\\0team\"")})
	if code != http.StatusBadRequest || !strings.Contains(string(body), `"field":"x-gpubroker.team"`) {
		t.Errorf("submit with x-gpubroker.team holding NUL: %d %s; want 400 naming x-gpubroker.team", code, body)
	}
}
