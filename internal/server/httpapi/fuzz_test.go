package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"

	"gpubroker/internal/api"
	"gpubroker/internal/model"
	"gpubroker/internal/server/clock"
	"gpubroker/internal/store"
	"gpubroker/internal/store/sqlite"
)

// fuzzAPI is the API over a real SQLite store, with one token of each
// role. The token routes and /metrics use neither the control side nor
// the fleet, so Control is left nil: a fuzzed request that reached it
// would panic, and fail the target.
type fuzzAPI struct {
	srv *Server
	st  store.Store
	tok map[string]string // role -> secret
	ids map[string]string // role -> token ID
}

func newFuzzAPI(tb testing.TB) *fuzzAPI {
	tb.Helper()
	st, err := sqlite.Open(filepath.Join(tb.TempDir(), "fuzz.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	reg := prometheus.NewRegistry()
	f := &fuzzAPI{st: st, tok: map[string]string{}, ids: map[string]string{}}
	f.srv = New(Config{Store: st, Clock: clock.Real(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registry: reg, Gatherer: reg})
	for _, role := range []string{RoleAdmin, RoleMember, RoleViewer, RoleMetrics} {
		secret, t := NewToken("fuzz", role, role)
		t.Created = time.Now().UTC()
		if err := st.CreateToken(tb.Context(), t); err != nil {
			tb.Fatal(err)
		}
		f.tok[role], f.ids[role] = secret, t.ID
	}
	return f
}

func (f *fuzzAPI) do(tb testing.TB, method, path, token string, body []byte) *httptest.ResponseRecorder {
	req, err := http.NewRequest(method, path, bytes.NewReader(body))
	if err != nil {
		return nil // not a request a client could send
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(rec, req)
	if rec.Code >= 500 {
		tb.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body.String())
	}
	return rec
}

// FuzzTokenCreate drives the token routes (create, list, revoke) and
// /metrics with any body, any token ID and any caller: never a panic or a
// 5xx; a created token has a team of the fleet's name rule, a printable
// name and an expiry after its creation, and works at once; a revoked one
// gets 401 at once.
func FuzzTokenCreate(f *testing.F) {
	for _, s := range []struct {
		op, who uint8
		id      string
		body    string
	}{
		{0, 0, "", `{"team":"research","role":"member","name":"alice"}`},
		{0, 0, "", `{"team":"research","role":"viewer","name":"ci","ttl":"24h"}`},
		{0, 0, "", `{"team":"ops","role":"metrics","ttl":"30d"}`},
		{0, 0, "", `{"team":"beta/x","role":"member"}`},
		{0, 0, "", `{"team":"a","role":"member","name":"nul\u0000name"}`},
		{0, 0, "", `{"team":"a","role":"root"}`},
		{0, 0, "", `{"team":"a","role":"admin","ttl":"1e300d"}`},
		{0, 1, "", `{"team":"a","role":"admin"}`},
		{0, 0, "", `{"team":"a","role":"member"} {}`},
		{0, 0, "", `[1,2]`},
		{1, 0, "", ``},
		{1, 2, "", ``},
		{2, 0, "$fresh", ``},
		{2, 0, "tok-000000000000", ``},
		{2, 0, "\x00", ``},
		{2, 1, "$member", ``},
		{3, 3, "", ``},
		{3, 1, "", ``},
		{1, 5, "gpb_garbage", ``},
	} {
		f.Add(s.op, s.who, s.id, []byte(s.body))
	}
	api := newFuzzAPI(f)
	roles := []string{RoleAdmin, RoleMember, RoleViewer, RoleMetrics}
	f.Fuzz(func(t *testing.T, op, who uint8, id string, body []byte) {
		token := ""
		switch w := int(who) % 6; {
		case w < 4:
			token = api.tok[roles[w]]
		case w == 4:
			token = "" // none
		default:
			token = id // whatever the fuzzer makes of a secret
		}
		switch op % 4 {
		case 0:
			rec := api.do(t, "POST", "/v1/tokens", token, body)
			if rec != nil && rec.Code == http.StatusCreated {
				checkCreated(t, api, body, rec.Body.Bytes())
			}
		case 1:
			api.do(t, "GET", "/v1/tokens", token, nil)
		case 2:
			switch id {
			case "$fresh":
				secret, tk := NewToken("fuzz", RoleViewer, "fresh")
				if err := api.st.CreateToken(t.Context(), tk); err != nil {
					t.Fatal(err)
				}
				if rec := api.do(t, "POST", "/v1/tokens/"+tk.ID+"/revoke", api.tok[RoleAdmin], nil); rec.Code != http.StatusOK {
					t.Fatalf("revoking %s: %d %s", tk.ID, rec.Code, rec.Body)
				}
				if rec := api.do(t, "GET", "/v1/tokens", secret, nil); rec.Code != http.StatusUnauthorized {
					t.Fatalf("a revoked token: %d %s; want 401", rec.Code, rec.Body)
				}
				return
			case "$member":
				id = api.ids[RoleMember]
			}
			if id == api.ids[RoleAdmin] {
				return // the fuzzer's own admin stays
			}
			api.do(t, "POST", "/v1/tokens/"+url.PathEscape(id)+"/revoke", token, body)
		case 3:
			api.do(t, "GET", "/metrics", token, nil)
		}
	})
}

// checkCreated checks a 201 of POST /v1/tokens with body.
func checkCreated(t *testing.T, a *fuzzAPI, body, answer []byte) {
	var got api.CreatedToken
	if err := json.Unmarshal(answer, &got); err != nil {
		t.Fatalf("201 with %s: %v", answer, err)
	}
	if !model.ValidName(got.Team) {
		t.Fatalf("created a token for team %q, against the name rule", got.Team)
	}
	if strings.IndexFunc(got.Name, unicode.IsControl) >= 0 {
		t.Fatalf("created a token named %q, with control characters", got.Name)
	}
	var req api.TokenRequest
	json.Unmarshal(body, &req)
	if req.TTL != "" && !got.Expires.After(time.Now().Add(-time.Minute)) {
		t.Fatalf("ttl %q gave expiry %v", req.TTL, got.Expires)
	}
	// It authenticates at once: listing tokens is 200 for an admin, 403
	// (known, not allowed) for the others; /metrics 200 for metrics.
	path, want := "/v1/tokens", http.StatusForbidden
	switch got.Role {
	case RoleAdmin:
		want = http.StatusOK
	case RoleMetrics:
		path, want = "/metrics", http.StatusOK
	}
	if rec := a.do(t, "GET", path, got.Token, nil); rec.Code != want {
		t.Fatalf("the new %s token on GET %s: %d %s; want %d", got.Role, path, rec.Code, rec.Body, want)
	}
}
