package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"gpubroker/internal/backend"
	"gpubroker/internal/backend/local"
	"gpubroker/internal/model"
	"gpubroker/internal/server"
	"gpubroker/internal/store"
	"gpubroker/internal/store/sqlite"
)

// testDrivers are the real drivers, as cmd/gpubroker wires them.
var testDrivers = Drivers{
	OpenStore: func(ctx context.Context, url string) (store.Store, error) {
		return sqlite.Open(strings.TrimPrefix(url, "sqlite:"))
	},
	Backends: []backend.Driver{{Name: "local", Open: func(cl model.Cluster, dir string) (backend.Backend, error) {
		return local.New(dir, local.Options{GPUs: 8})
	}}},
}

// TestTokenCreateStore bootstraps a token straight into a SQLite store and
// finds it there by the hash the server looks tokens up by.
func TestTokenCreateStore(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "gpubroker.db")
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"token", "create", "--team", "platform", "--role", "admin", "--name", "ops", "--store", "sqlite:" + db},
		strings.NewReader(""), &stdout, &stderr, testDrivers)
	if code != exitOK {
		t.Fatalf("exit %d; stderr %s", code, stderr.String())
	}
	secret := strings.TrimSpace(stdout.String())
	if !strings.HasPrefix(secret, "gpb_") || !strings.Contains(stderr.String(), "for team platform, role admin") {
		t.Fatalf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}
	st, err := sqlite.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tok, err := st.TokenByHash(context.Background(), server.HashToken(secret))
	if err != nil || tok.Team != "platform" || tok.Role != "admin" || tok.Name != "ops" {
		t.Errorf("stored token %+v, %v", tok, err)
	}
}
