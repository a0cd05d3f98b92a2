package arch

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"strings"
)

// module is the module path every project import starts with.
const module = "gpubroker"

// pkg is one package of the module as `go list` reports it.
type pkg struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	// Imports are the non-test imports: what production code depends on.
	// Tests may import anything (fakes, harnesses, drivers).
	Imports []string
}

// violation is one arrow pointing the wrong way (To set), or one forbidden
// construct in a pure package's source (Pos set).
type violation struct {
	From, To string
	Pos      string
	Rule     string
}

func (v violation) String() string {
	if v.Pos != "" {
		return fmt.Sprintf("%s: %s", v.Pos, v.Rule)
	}
	return fmt.Sprintf("%s -> %s: %s", v.From, v.To, v.Rule)
}

// imp classifies an import path once so the rules read as sentences.
type imp struct {
	path string
	// rel is the path below the module ("internal/engine"), "" outside it.
	rel     string
	project bool
	std     bool
}

func classify(path string) imp {
	switch {
	case path == module:
		return imp{path: path, project: true}
	case strings.HasPrefix(path, module+"/"):
		return imp{path: path, rel: strings.TrimPrefix(path, module+"/"), project: true}
	}
	first, _, _ := strings.Cut(path, "/")
	return imp{path: path, std: !strings.Contains(first, ".")}
}

// under reports whether rel is dir or below it.
func under(rel string, dirs ...string) bool {
	for _, d := range dirs {
		if rel == d || strings.HasPrefix(rel, d+"/") {
			return true
		}
	}
	return false
}

// testSupport reports whether a package exists to help tests (enginetest,
// storetest, backendtest, ...): an element of its path ends in "test", so
// that what sits below such a package (kubetest/procnode, a kubelet for
// tests) is test support too.
func testSupport(rel string) bool {
	for _, el := range strings.Split(rel, "/") {
		if strings.HasSuffix(el, "test") {
			return true
		}
	}
	return false
}

// driverSupport reports whether rel is a package that the drivers of one
// contract share (the SQL layer under the store drivers): it is no driver,
// drivers may import it, and nothing else does.
func driverSupport(rel string) bool {
	return rel == "internal/store/sqlstore"
}

// driver reports whether rel is a concrete store or backend driver: a
// package below the store or backend contract that is not test support or
// driver support.
func driver(rel string) bool {
	for _, c := range []string{"internal/store", "internal/backend"} {
		if strings.HasPrefix(rel, c+"/") && !testSupport(rel) && !driverSupport(rel) {
			return true
		}
	}
	return false
}

// driverRoot is the driver a package belongs to ("internal/store/sqlite" for
// "internal/store/sqlite/migrations").
func driverRoot(rel string) string {
	parts := strings.SplitN(rel, "/", 4)
	if len(parts) < 3 {
		return rel
	}
	return strings.Join(parts[:3], "/")
}

// pure packages (the vocabulary, the scheduling core, the ledger and the
// job lifecycle) do no I/O and hold no clock, randomness, logger or
// goroutine state.
func pure(rel string) bool {
	return under(rel, "internal/model", "internal/engine", "internal/ledger", "internal/lifecycle") && !testSupport(rel)
}

// impureStd are standard packages a pure package must not import: I/O,
// global randomness, loggers, synchronisation (a sign of goroutines).
var impureStd = []string{
	"os", "net", "syscall", "io/ioutil", "io/fs", "path/filepath", "database/sql",
	"math/rand", "crypto/rand", "log", "sync", "unsafe", "plugin", "embed",
	"runtime", "time/tzdata", "testing",
}

func impure(path string) bool {
	for _, p := range impureStd {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// rule is one arrow of STYLE.md: for importers matched by from, an import
// for which bad returns true is a violation.
type rule struct {
	name string
	from func(rel string) bool
	bad  func(from string, to imp) bool
}

var rules = []rule{
	{
		name: "model imports only the standard library",
		from: func(r string) bool { return under(r, "internal/model") },
		bad:  func(_ string, to imp) bool { return !to.std },
	},
	{
		name: "catalog, spec, trace and ledger never import engine, store, backend, server, sim or cli",
		from: func(r string) bool {
			return under(r, "internal/catalog", "internal/spec", "internal/trace", "internal/ledger")
		},
		bad: func(_ string, to imp) bool {
			return under(to.rel, "internal/engine", "internal/store", "internal/backend",
				"internal/server", "internal/sim", "internal/cli")
		},
	},
	{
		name: "ledger imports only model and the standard library",
		from: func(r string) bool { return under(r, "internal/ledger") && !testSupport(r) },
		bad: func(_ string, to imp) bool {
			return to.project && !under(to.rel, "internal/model", "internal/ledger")
		},
	},
	{
		name: "engine imports only model, ledger and the standard library",
		from: func(r string) bool { return under(r, "internal/engine") && !testSupport(r) },
		bad: func(_ string, to imp) bool {
			return !to.std && !under(to.rel, "internal/model", "internal/ledger", "internal/engine")
		},
	},
	{
		name: "pure packages (model, engine, ledger) do no I/O and keep no clock, randomness, logger or goroutines",
		from: pure,
		bad:  func(_ string, to imp) bool { return to.std && impure(to.path) },
	},
	{
		name: "lifecycle imports only model and the standard library, and does no I/O",
		from: func(r string) bool { return under(r, "internal/lifecycle") && !testSupport(r) },
		bad: func(_ string, to imp) bool {
			return (to.project && !under(to.rel, "internal/model", "internal/lifecycle")) || (!to.project && !to.std) || (to.std && impure(to.path))
		},
	},
	{
		name: "store and backend contracts import only model and the standard library",
		from: func(r string) bool { return r == "internal/store" || r == "internal/backend" },
		bad:  func(_ string, to imp) bool { return !to.std && !under(to.rel, "internal/model") },
	},
	{
		name: "a driver imports its contract, model and its SDK, never engine, server, sim, cli or another driver",
		from: driver,
		bad: func(from string, to imp) bool {
			if under(to.rel, "internal/engine", "internal/server", "internal/sim", "internal/cli", "cmd") {
				return true
			}
			return driver(to.rel) && driverRoot(to.rel) != driverRoot(from)
		},
	},
	{
		name: "a driver-support package imports only its contract, model and the standard library",
		from: driverSupport,
		bad: func(_ string, to imp) bool {
			return !to.std && to.rel != "internal/store" && !under(to.rel, "internal/model")
		},
	},
	{
		name: "only drivers import a driver-support package",
		from: func(r string) bool { return !driver(r) && !testSupport(r) && !driverSupport(r) },
		bad:  func(_ string, to imp) bool { return driverSupport(to.rel) },
	},
	{
		name: "sim never imports store, backend, server or cli",
		from: func(r string) bool { return under(r, "internal/sim") },
		bad: func(_ string, to imp) bool {
			return under(to.rel, "internal/store", "internal/backend", "internal/server", "internal/cli")
		},
	},
	{
		name: "concrete drivers are named only in cmd/",
		from: func(r string) bool { return !under(r, "cmd") && !driver(r) && !testSupport(r) },
		bad:  func(_ string, to imp) bool { return driver(to.rel) },
	},
	{
		name: "only cmd/ imports cli, and only cli and cmd/ import server",
		from: func(r string) bool { return !under(r, "cmd") },
		bad: func(from string, to imp) bool {
			if under(to.rel, "internal/cli") {
				return !under(from, "internal/cli")
			}
			return under(to.rel, "internal/server") && !under(from, "internal/server", "internal/cli")
		},
	},
	{
		name: "api imports only model and the standard library",
		from: func(r string) bool { return under(r, "internal/api") },
		bad:  func(_ string, to imp) bool { return !to.std && !under(to.rel, "internal/model") },
	},
	{
		name: "plandoc imports only engine, model and api",
		from: func(r string) bool { return under(r, "internal/plandoc") },
		bad: func(_ string, to imp) bool {
			return to.project && !under(to.rel, "internal/engine", "internal/model", "internal/api")
		},
	},
	{
		name: "the HTTP API (server/httpapi) never imports the controllers (server/control): it asks them through httpapi.Control",
		from: func(r string) bool { return under(r, "internal/server/httpapi") },
		bad:  func(_ string, to imp) bool { return under(to.rel, "internal/server/control") },
	},
	{
		name: "the controllers (server/control) never import the HTTP API or the dashboard",
		from: func(r string) bool { return under(r, "internal/server/control") },
		bad: func(_ string, to imp) bool {
			return under(to.rel, "internal/server/httpapi", "internal/server/web")
		},
	},
	{
		name: "server/view and server/clock import no other part of the server",
		from: func(r string) bool { return under(r, "internal/server/view", "internal/server/clock") },
		bad: func(from string, to imp) bool {
			return under(to.rel, "internal/server") && !under(to.rel, "internal/server/clock", "internal/server/view")
		},
	},
	{
		name: "server/clock imports only the standard library",
		from: func(r string) bool { return under(r, "internal/server/clock") },
		bad:  func(_ string, to imp) bool { return !to.std },
	},
	{
		name: "nothing imports cmd/",
		from: func(r string) bool { return !under(r, "cmd") },
		bad:  func(_ string, to imp) bool { return under(to.rel, "cmd") },
	},
	{
		name: "production code never imports a *test package",
		from: func(r string) bool { return !testSupport(r) },
		bad:  func(_ string, to imp) bool { return to.project && testSupport(to.rel) },
	},
}

// checkImports applies every rule to every non-test import of pkgs and
// returns the violations in a stable order (package, import, rule).
func checkImports(pkgs []pkg) []violation {
	var out []violation
	for _, p := range pkgs {
		from := classify(p.ImportPath)
		if !from.project {
			continue
		}
		for _, path := range p.Imports {
			to := classify(path)
			for _, r := range rules {
				if r.from(from.rel) && r.bad(from.rel, to) {
					out = append(out, violation{From: p.ImportPath, To: path, Rule: r.name})
				}
			}
		}
	}
	return out
}

// fileRule is an arrow drawn per file, where one package holds two sides:
// for files matched by from (package path below the module, file name),
// an import for which bad returns true is a violation.
type fileRule struct {
	name string
	from func(rel, file string) bool
	bad  func(to imp) bool
}

// serverSideCLI are the files of internal/cli that start a server or open
// its store: `gpubroker server`, the drivers it is given, and `token
// create --store`. Every other file of the package is an API client.
var serverSideCLI = []string{"server.go", "drivers.go", "tokenstore.go"}

var fileRules = []fileRule{
	{
		name: "the CLI's API commands import neither server, store nor backend; only server.go, drivers.go and tokenstore.go may",
		from: func(rel, file string) bool { return rel == "internal/cli" && !slices.Contains(serverSideCLI, file) },
		bad: func(to imp) bool {
			return under(to.rel, "internal/server", "internal/store", "internal/backend")
		},
	},
}

// fileRuleApplies reports whether some file rule covers a file of the
// package rel, so that only those packages' files are parsed.
func fileRuleApplies(rel, file string) bool {
	for _, r := range fileRules {
		if r.from(rel, file) {
			return true
		}
	}
	return false
}

// checkFileImports applies every file rule to the imports of one file of
// package pkgPath.
func checkFileImports(pkgPath, file string, imports []string) []violation {
	from := classify(pkgPath)
	if !from.project {
		return nil
	}
	var out []violation
	for _, path := range imports {
		to := classify(path)
		for _, r := range fileRules {
			if r.from(from.rel, file) && r.bad(to) {
				out = append(out, violation{From: pkgPath + " (" + file + ")", To: path, Rule: r.name})
			}
		}
	}
	return out
}

// fileImports reads the import paths of one Go file.
func fileImports(path string) ([]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, is := range f.Imports {
		p, err := strconv.Unquote(is.Path.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// clockCalls are the time functions that read the wall clock or start
// timers; a pure package takes `now` as an argument instead, the control
// plane a clock.Clock.
var clockCalls = map[string]bool{
	"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true,
	"AfterFunc": true, "Tick": true, "NewTicker": true, "NewTimer": true,
}

// checkSource parses one Go file of a pure package and reports clock reads
// and go statements, which imports alone cannot show.
func checkSource(name string, src any) ([]violation, error) {
	return inspectSource(name, src, "pure packages start no goroutines; the caller owns concurrency",
		"pure packages never read the clock (time.%s); take now as an argument")
}

// controlPlane reports whether rel is a package of the control plane
// whose clock is injected (Config.Clock): the server, its API and its
// controllers. The dashboard (server/web) takes Now in its Config;
// server/clock is the real clock.
func controlPlane(rel string) bool {
	return under(rel, "internal/server") && !under(rel, "internal/server/web", "internal/server/clock") && !testSupport(rel)
}

// checkClock parses one Go file of the control plane and reports its reads
// of the wall clock.
func checkClock(name string, src any) ([]violation, error) {
	return inspectSource(name, src, "",
		"the control plane reads the time and starts timers only through its clock.Clock, never time.%s")
}

// inspectSource reports the go statements of a file (as goRule, unless
// empty) and its calls of clockCalls (as clockRule, %s the function).
func inspectSource(name string, src any, goRule, clockRule string) ([]violation, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	timeName := ""
	for _, is := range f.Imports {
		if p, _ := strconv.Unquote(is.Path.Value); p == "time" {
			timeName = "time"
			if is.Name != nil {
				timeName = is.Name.Name
			}
		}
	}
	var out []violation
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.GoStmt:
			if goRule != "" {
				out = append(out, violation{Pos: fset.Position(n.Pos()).String(), Rule: goRule})
			}
		case *ast.SelectorExpr:
			if id, ok := n.X.(*ast.Ident); ok && timeName != "" && id.Name == timeName && clockCalls[n.Sel.Name] {
				out = append(out, violation{Pos: fset.Position(n.Pos()).String(), Rule: fmt.Sprintf(clockRule, n.Sel.Name)})
			}
		}
		return true
	})
	return out, nil
}
