package arch

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// listModule runs `go list` over the whole module. Only parsing is needed,
// so a package that does not compile yet still shows its imports.
func listModule(t *testing.T) []pkg {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the layering test needs the go command on PATH: %v", err)
	}
	cmd := exec.Command(goBin, "list", "-e", "-json=ImportPath,Dir,GoFiles,Imports", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestLayering fails when a package of this module imports against the
// arrows of STYLE.md.
func TestLayering(t *testing.T) {
	pkgs := listModule(t)
	found := map[string]bool{}
	for _, p := range pkgs {
		found[p.ImportPath] = true
	}
	for _, want := range []string{module + "/internal/model", module + "/internal/engine"} {
		if !found[want] {
			t.Fatalf("go list did not report %s; is the test running inside the module?", want)
		}
	}
	for _, v := range checkImports(pkgs) {
		t.Errorf("%s", v)
	}
	for _, p := range pkgs {
		c := classify(p.ImportPath)
		for _, f := range p.GoFiles {
			if !c.project || !fileRuleApplies(c.rel, f) {
				continue
			}
			imps, err := fileImports(filepath.Join(p.Dir, f))
			if err != nil {
				t.Errorf("parsing %s: %v", f, err)
				continue
			}
			for _, v := range checkFileImports(p.ImportPath, f, imps) {
				t.Errorf("%s", v)
			}
		}
	}
}

// TestPureSource fails when model, engine or ledger read the clock or start
// goroutines.
func TestPureSource(t *testing.T) {
	for _, p := range listModule(t) {
		c := classify(p.ImportPath)
		if !c.project || !pure(c.rel) {
			continue
		}
		for _, f := range p.GoFiles {
			vs, err := checkSource(filepath.Join(p.Dir, f), nil)
			if err != nil {
				t.Errorf("parsing %s: %v", f, err)
				continue
			}
			for _, v := range vs {
				t.Errorf("%s", v)
			}
		}
	}
}

// TestControlPlaneClock fails when the server, its API or its controllers
// read the wall clock or start a timer other than through clock.Clock.
func TestControlPlaneClock(t *testing.T) {
	for _, p := range listModule(t) {
		c := classify(p.ImportPath)
		if !c.project || !controlPlane(c.rel) {
			continue
		}
		for _, f := range p.GoFiles {
			vs, err := checkClock(filepath.Join(p.Dir, f), nil)
			if err != nil {
				t.Errorf("parsing %s: %v", f, err)
				continue
			}
			for _, v := range vs {
				t.Errorf("%s", v)
			}
		}
	}
}

// maxFileLines bounds a production (non-test) Go file of the module
// (issue 20: the reconciler was one 1,054-line file, the SQLite store 984).
const maxFileLines = 600

// TestFileLength fails when a production Go file of the module (test
// support included) grows past maxFileLines lines: split it by step or by
// resource (docs/adr/0007-server-split.md), moving whole functions.
func TestFileLength(t *testing.T) {
	for _, p := range listModule(t) {
		c := classify(p.ImportPath)
		if !c.project {
			continue
		}
		for _, f := range p.GoFiles {
			b, err := os.ReadFile(filepath.Join(p.Dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if n := bytes.Count(b, []byte("\n")); n > maxFileLines {
				t.Errorf("%s/%s: %d lines, more than %d", c.rel, f, n, maxFileLines)
			}
		}
	}
}

// TestRules proves each rule can fail: a table of import edges, good and
// bad, and the rules each bad one breaks.
func TestRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		from string
		to   string
		want []string
	}{
		{"model uses stdlib", "gpubroker/internal/model", "fmt", nil},
		{"model imports catalog", "gpubroker/internal/model", "gpubroker/internal/catalog",
			[]string{"model imports only the standard library"}},
		{"model imports a library", "gpubroker/internal/model", "go.yaml.in/yaml/v3",
			[]string{"model imports only the standard library"}},
		{"model reads files", "gpubroker/internal/model", "os",
			[]string{"pure packages (model, engine, ledger) do no I/O and keep no clock, randomness, logger or goroutines"}},
		{"spec imports catalog", "gpubroker/internal/spec", "gpubroker/internal/catalog", nil},
		{"spec imports engine", "gpubroker/internal/spec", "gpubroker/internal/engine",
			[]string{"catalog, spec, trace and ledger never import engine, store, backend, server, sim or cli"}},
		{"catalog imports cli", "gpubroker/internal/catalog", "gpubroker/internal/cli",
			[]string{
				"catalog, spec, trace and ledger never import engine, store, backend, server, sim or cli",
				"only cmd/ imports cli, and only cli and cmd/ import server",
			}},
		{"engine imports ledger", "gpubroker/internal/engine", "gpubroker/internal/ledger", nil},
		{"engine subpackage", "gpubroker/internal/engine/rank", "gpubroker/internal/engine", nil},
		{"engine imports spec", "gpubroker/internal/engine", "gpubroker/internal/spec",
			[]string{"engine imports only model, ledger and the standard library"}},
		{"engine imports os", "gpubroker/internal/engine", "os",
			[]string{"pure packages (model, engine, ledger) do no I/O and keep no clock, randomness, logger or goroutines"}},
		{"engine imports net/http", "gpubroker/internal/engine/rank", "net/http",
			[]string{"pure packages (model, engine, ledger) do no I/O and keep no clock, randomness, logger or goroutines"}},
		{"engine imports math/rand/v2", "gpubroker/internal/engine", "math/rand/v2",
			[]string{"pure packages (model, engine, ledger) do no I/O and keep no clock, randomness, logger or goroutines"}},
		{"engine imports slog", "gpubroker/internal/engine", "log/slog",
			[]string{"pure packages (model, engine, ledger) do no I/O and keep no clock, randomness, logger or goroutines"}},
		{"engine imports sync", "gpubroker/internal/engine", "sync",
			[]string{"pure packages (model, engine, ledger) do no I/O and keep no clock, randomness, logger or goroutines"}},
		{"engine imports database/sql", "gpubroker/internal/engine", "database/sql",
			[]string{"pure packages (model, engine, ledger) do no I/O and keep no clock, randomness, logger or goroutines"}},
		{"engine imports store", "gpubroker/internal/engine", "gpubroker/internal/store",
			[]string{"engine imports only model, ledger and the standard library"}},
		{"engine imports enginetest", "gpubroker/internal/engine", "gpubroker/internal/engine/enginetest",
			[]string{"production code never imports a *test package"}},
		{"enginetest may use os", "gpubroker/internal/engine/enginetest", "os", nil},
		{"ledger imports engine", "gpubroker/internal/ledger", "gpubroker/internal/engine",
			[]string{
				"catalog, spec, trace and ledger never import engine, store, backend, server, sim or cli",
				"ledger imports only model and the standard library",
			}},
		{"store contract imports model", "gpubroker/internal/store", "gpubroker/internal/model", nil},
		{"store contract imports engine", "gpubroker/internal/store", "gpubroker/internal/engine",
			[]string{"store and backend contracts import only model and the standard library"}},
		{"backend contract imports client-go", "gpubroker/internal/backend", "k8s.io/client-go/kubernetes",
			[]string{"store and backend contracts import only model and the standard library"}},
		{"driver imports its contract", "gpubroker/internal/store/sqlite", "gpubroker/internal/store", nil},
		{"driver imports its own subpackage", "gpubroker/internal/store/sqlite", "gpubroker/internal/store/sqlite/migrations", nil},
		{"driver imports its SDK", "gpubroker/internal/store/postgres", "github.com/jackc/pgx/v5", nil},
		{"driver imports another driver", "gpubroker/internal/store/postgres", "gpubroker/internal/store/sqlite",
			[]string{"a driver imports its contract, model and its SDK, never engine, server, sim, cli or another driver"}},
		{"driver imports engine", "gpubroker/internal/backend/slurm", "gpubroker/internal/engine",
			[]string{"a driver imports its contract, model and its SDK, never engine, server, sim, cli or another driver"}},
		{"driver imports the SQL layer", "gpubroker/internal/store/postgres", "gpubroker/internal/store/sqlstore", nil},
		{"SQL layer imports its contract", "gpubroker/internal/store/sqlstore", "gpubroker/internal/store", nil},
		{"SQL layer uses database/sql", "gpubroker/internal/store/sqlstore", "database/sql", nil},
		{"SQL layer imports a driver's SDK", "gpubroker/internal/store/sqlstore", "github.com/jackc/pgx/v5",
			[]string{"a driver-support package imports only its contract, model and the standard library"}},
		{"SQL layer imports a driver", "gpubroker/internal/store/sqlstore", "gpubroker/internal/store/sqlite",
			[]string{
				"a driver-support package imports only its contract, model and the standard library",
				"concrete drivers are named only in cmd/",
			}},
		{"server imports the SQL layer", "gpubroker/internal/server", "gpubroker/internal/store/sqlstore",
			[]string{"only drivers import a driver-support package"}},
		{"sim imports engine", "gpubroker/internal/sim", "gpubroker/internal/engine", nil},
		{"sim imports store", "gpubroker/internal/sim/report", "gpubroker/internal/store",
			[]string{"sim never imports store, backend, server or cli"}},
		{"sim imports server", "gpubroker/internal/sim", "gpubroker/internal/server",
			[]string{
				"sim never imports store, backend, server or cli",
				"only cmd/ imports cli, and only cli and cmd/ import server",
			}},
		{"server imports a driver", "gpubroker/internal/server", "gpubroker/internal/store/sqlite",
			[]string{"concrete drivers are named only in cmd/"}},
		{"server imports the store contract", "gpubroker/internal/server", "gpubroker/internal/store", nil},
		{"cmd imports drivers", "gpubroker/cmd/gpubroker", "gpubroker/internal/store/sqlite", nil},
		{"cmd imports cli", "gpubroker/cmd/gpubroker", "gpubroker/internal/cli", nil},
		{"cli imports server", "gpubroker/internal/cli", "gpubroker/internal/server", nil},
		{"server imports cli", "gpubroker/internal/server", "gpubroker/internal/cli",
			[]string{"only cmd/ imports cli, and only cli and cmd/ import server"}},
		{"cli imports cmd", "gpubroker/internal/cli", "gpubroker/cmd/gpubroker",
			[]string{"nothing imports cmd/"}},
		{"cli imports storetest", "gpubroker/internal/cli", "gpubroker/internal/store/storetest",
			[]string{"production code never imports a *test package"}},
		{"storetest imports a driver", "gpubroker/internal/store/storetest", "gpubroker/internal/store/sqlite", nil},
		{"api imports model", "gpubroker/internal/api", "gpubroker/internal/model", nil},
		{"api imports net/http", "gpubroker/internal/api", "net/http", nil},
		{"api imports store", "gpubroker/internal/api", "gpubroker/internal/store",
			[]string{"api imports only model and the standard library"}},
		{"api imports engine", "gpubroker/internal/api", "gpubroker/internal/engine",
			[]string{"api imports only model and the standard library"}},
		{"api imports a library", "gpubroker/internal/api", "github.com/spf13/cobra",
			[]string{"api imports only model and the standard library"}},
		{"api imports server", "gpubroker/internal/api", "gpubroker/internal/server",
			[]string{
				"only cmd/ imports cli, and only cli and cmd/ import server",
				"api imports only model and the standard library",
			}},
		{"server imports api", "gpubroker/internal/server", "gpubroker/internal/api", nil},
		{"dashboard imports api", "gpubroker/internal/server/web", "gpubroker/internal/api", nil},
		{"cli imports api", "gpubroker/internal/cli", "gpubroker/internal/api", nil},
		{"plandoc imports engine", "gpubroker/internal/plandoc", "gpubroker/internal/engine", nil},
		{"plandoc imports api", "gpubroker/internal/plandoc", "gpubroker/internal/api", nil},
		{"plandoc imports store", "gpubroker/internal/plandoc", "gpubroker/internal/store",
			[]string{"plandoc imports only engine, model and api"}},
		{"engine imports api", "gpubroker/internal/engine", "gpubroker/internal/api",
			[]string{"engine imports only model, ledger and the standard library"}},
		{"store imports api", "gpubroker/internal/store", "gpubroker/internal/api",
			[]string{"store and backend contracts import only model and the standard library"}},
		{"httpapi imports view", "gpubroker/internal/server/httpapi", "gpubroker/internal/server/view", nil},
		{"httpapi imports the store contract", "gpubroker/internal/server/httpapi", "gpubroker/internal/store", nil},
		{"httpapi imports the dashboard", "gpubroker/internal/server/httpapi", "gpubroker/internal/server/web", nil},
		{"httpapi imports control", "gpubroker/internal/server/httpapi", "gpubroker/internal/server/control",
			[]string{"the HTTP API (server/httpapi) never imports the controllers (server/control): it asks them through httpapi.Control"}},
		{"control imports view", "gpubroker/internal/server/control", "gpubroker/internal/server/view", nil},
		{"control imports engine", "gpubroker/internal/server/control", "gpubroker/internal/engine", nil},
		{"control imports httpapi", "gpubroker/internal/server/control", "gpubroker/internal/server/httpapi",
			[]string{"the controllers (server/control) never import the HTTP API or the dashboard"}},
		{"control imports web", "gpubroker/internal/server/control", "gpubroker/internal/server/web",
			[]string{"the controllers (server/control) never import the HTTP API or the dashboard"}},
		{"server wires control and httpapi", "gpubroker/internal/server", "gpubroker/internal/server/control", nil},
		{"view imports engine", "gpubroker/internal/server/view", "gpubroker/internal/engine", nil},
		{"view imports control", "gpubroker/internal/server/view", "gpubroker/internal/server/control",
			[]string{"server/view and server/clock import no other part of the server"}},
		{"view imports httpapi", "gpubroker/internal/server/view", "gpubroker/internal/server/httpapi",
			[]string{"server/view and server/clock import no other part of the server"}},
		{"clock imports server", "gpubroker/internal/server/clock", "gpubroker/internal/server",
			[]string{
				"server/view and server/clock import no other part of the server",
				"server/clock imports only the standard library",
			}},
		{"clock imports model", "gpubroker/internal/server/clock", "gpubroker/internal/model",
			[]string{"server/clock imports only the standard library"}},
		// procnode, a kubelet for tests, sits below kubetest: test support,
		// which no production package imports, the driver it serves and
		// cmd/ included.
		{"kubernetes driver imports procnode", "gpubroker/internal/backend/kubernetes", "gpubroker/internal/backend/kubernetes/kubetest/procnode",
			[]string{"production code never imports a *test package"}},
		{"cmd imports procnode", "gpubroker/cmd/gpubroker", "gpubroker/internal/backend/kubernetes/kubetest/procnode",
			[]string{"production code never imports a *test package"}},
		{"server imports procnode", "gpubroker/internal/server", "gpubroker/internal/backend/kubernetes/kubetest/procnode",
			[]string{"production code never imports a *test package"}},
		{"procnode imports client-go", "gpubroker/internal/backend/kubernetes/kubetest/procnode", "k8s.io/client-go/kubernetes", nil},
		{"procnode imports kubetest", "gpubroker/internal/backend/kubernetes/kubetest/procnode", "gpubroker/internal/backend/kubernetes/kubetest", nil},
		{"procnode imports the kubernetes driver", "gpubroker/internal/backend/kubernetes/kubetest/procnode", "gpubroker/internal/backend/kubernetes", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, v := range checkImports([]pkg{{ImportPath: tt.from, Imports: []string{tt.to}}}) {
				got = append(got, v.Rule)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s -> %s: rules broken (-want +got):\n%s", tt.from, tt.to, diff)
			}
		})
	}
}

// TestFileRules proves each per-file rule can fail: the CLI's API commands
// may not import server, store or backend, the files that start a server
// may.
func TestFileRules(t *testing.T) {
	t.Parallel()
	const cliRule = "the CLI's API commands import neither server, store nor backend; only server.go, drivers.go and tokenstore.go may"
	tests := []struct {
		name, pkg, file, to string
		want                []string
	}{
		{"status imports api", "gpubroker/internal/cli", "status.go", "gpubroker/internal/api", nil},
		{"plan imports engine", "gpubroker/internal/cli", "plan.go", "gpubroker/internal/engine", nil},
		{"status imports server", "gpubroker/internal/cli", "status.go", "gpubroker/internal/server", []string{cliRule}},
		{"client imports store", "gpubroker/internal/cli", "client.go", "gpubroker/internal/store", []string{cliRule}},
		{"launch imports backend", "gpubroker/internal/cli", "launch.go", "gpubroker/internal/backend", []string{cliRule}},
		{"token imports server", "gpubroker/internal/cli", "token.go", "gpubroker/internal/server", []string{cliRule}},
		{"server command imports server", "gpubroker/internal/cli", "server.go", "gpubroker/internal/server", nil},
		{"drivers import store", "gpubroker/internal/cli", "drivers.go", "gpubroker/internal/store", nil},
		{"token create --store imports server", "gpubroker/internal/cli", "tokenstore.go", "gpubroker/internal/server", nil},
		{"another package's status.go", "gpubroker/internal/server/web", "status.go", "gpubroker/internal/store", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, v := range checkFileImports(tt.pkg, tt.file, []string{tt.to}) {
				got = append(got, v.Rule)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s (%s) -> %s: rules broken (-want +got):\n%s", tt.pkg, tt.file, tt.to, diff)
			}
		})
	}
}

// TestSourceRules proves the source check finds clock reads and goroutines,
// also under an import alias, and leaves time arithmetic alone.
func TestSourceRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want int
	}{
		{"clean", "package engine\nimport \"time\"\nfunc f(now time.Time) time.Time { return now.Add(time.Hour) }\n", 0},
		{"time.Now", "package engine\nimport \"time\"\nfunc f() time.Time { return time.Now() }\n", 1},
		{"aliased", "package engine\nimport clock \"time\"\nfunc f() { clock.Sleep(1); _ = clock.Since(clock.Time{}) }\n", 2},
		{"goroutine", "package engine\nfunc f() { go func() {}() }\n", 1},
		{"no time import", "package engine\ntype x struct{}\nfunc (x) Now() {}\nvar time x\nfunc f() { time.Now() }\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			vs, err := checkSource("x.go", tt.src)
			if err != nil {
				t.Fatal(err)
			}
			if len(vs) != tt.want {
				var lines []string
				for _, v := range vs {
					lines = append(lines, v.String())
				}
				t.Errorf("got %d violations, want %d:\n%s", len(vs), tt.want, strings.Join(lines, "\n"))
			}
		})
	}
}

// TestClockRules proves the control plane's clock check finds clock reads
// and timers, also under an alias, and allows goroutines, time arithmetic
// and a clock.Clock's methods.
func TestClockRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want int
	}{
		{"clock", "package control\nimport \"time\"\nfunc f(c interface{ Now() time.Time }) time.Time { return c.Now().Add(time.Second) }\n", 0},
		{"goroutine", "package control\nfunc f() { go func() {}() }\n", 0},
		{"time.Now", "package control\nimport \"time\"\nfunc f() time.Time { return time.Now() }\n", 1},
		{"timer and since", "package control\nimport \"time\"\nfunc f(t time.Time) { time.NewTimer(time.Since(t)) }\n", 2},
		{"aliased sleep", "package httpapi\nimport tm \"time\"\nfunc f() { tm.Sleep(tm.Second) }\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			vs, err := checkClock("x.go", tt.src)
			if err != nil {
				t.Fatal(err)
			}
			if len(vs) != tt.want {
				var lines []string
				for _, v := range vs {
					lines = append(lines, v.String())
				}
				t.Errorf("got %d violations, want %d:\n%s", len(vs), tt.want, strings.Join(lines, "\n"))
			}
		})
	}
}
