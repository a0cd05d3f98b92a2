package arch

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
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

// driver reports whether rel is a concrete store or backend driver: a
// package below the store or backend contract that is not test support.
func driver(rel string) bool {
	for _, c := range []string{"internal/store", "internal/backend"} {
		if strings.HasPrefix(rel, c+"/") && !testSupport(rel) {
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

// pure packages (the vocabulary, the scheduling core and the ledger) do no
// I/O and hold no clock, randomness, logger or goroutine state.
func pure(rel string) bool {
	return under(rel, "internal/model", "internal/engine", "internal/ledger") && !testSupport(rel)
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

// clockCalls are the time functions that read the wall clock or start
// timers; a pure package takes `now` as an argument instead.
var clockCalls = map[string]bool{
	"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true,
	"AfterFunc": true, "Tick": true, "NewTicker": true, "NewTimer": true,
}

// checkSource parses one Go file of a pure package and reports clock reads
// and go statements, which imports alone cannot show.
func checkSource(name string, src any) ([]violation, error) {
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
			out = append(out, violation{Pos: fset.Position(n.Pos()).String(),
				Rule: "pure packages start no goroutines; the caller owns concurrency"})
		case *ast.SelectorExpr:
			if id, ok := n.X.(*ast.Ident); ok && timeName != "" && id.Name == timeName && clockCalls[n.Sel.Name] {
				out = append(out, violation{Pos: fset.Position(n.Pos()).String(),
					Rule: fmt.Sprintf("pure packages never read the clock (time.%s); take now as an argument", n.Sel.Name)})
			}
		}
		return true
	})
	return out, nil
}
