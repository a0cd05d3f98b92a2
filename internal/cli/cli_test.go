package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"

	"gpubroker/internal/api"
	"gpubroker/internal/model"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden files under testdata/ with the current output")

// repoRoot is where file arguments are resolved from, so tests name files
// as a user at the top of the checkout would ("examples/fleet.yaml").
const repoRoot = "../.."

// testNow pins the clock: contract burn-down depends on it.
var testNow = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

type result struct {
	stdout, stderr string
	code           int
}

func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := &Env{
		Stdin:  strings.NewReader(""),
		Stdout: &stdout,
		Stderr: &stderr,
		Now:    func() time.Time { return testNow },
		ReadFile: func(name string) ([]byte, error) {
			if filepath.IsAbs(name) {
				return os.ReadFile(name)
			}
			data, err := os.ReadFile(filepath.Join(repoRoot, name))
			var pe *os.PathError
			if errors.As(err, &pe) {
				pe.Path = name // as the user typed it
			}
			return data, err
		},
	}
	code := env.Run(context.Background(), args)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// golden compares a command's whole outcome with testdata/NAME.golden.
// Run `go test ./internal/cli -rewrite` after an intended change and review
// the diff.
func golden(t *testing.T, name string, args []string, r result) {
	t.Helper()
	got := fmt.Sprintf("$ gpubroker %s\n%s--- stderr\n%s--- exit %d\n", strings.Join(args, " "), r.stdout, r.stderr, r.code)
	file := filepath.Join("testdata", name+".golden")
	if *rewrite {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/cli -rewrite to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs from the golden file (-want +got); rerun with -rewrite if intended:\n%s", file, diff)
	}
}

// exampleTasks lists the task files in examples/ (everything but the fleet).
func exampleTasks(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var tasks []string
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), "fleet") {
			continue
		}
		tasks = append(tasks, filepath.ToSlash(filepath.Join("examples", filepath.Base(f))))
	}
	if len(tasks) < 5 {
		t.Fatalf("found %d example tasks, want at least 5: %v", len(tasks), tasks)
	}
	return tasks
}

func TestPlanGolden(t *testing.T) {
	t.Parallel()
	type tc struct {
		name string
		args []string
	}
	var cases []tc
	for _, task := range exampleTasks(t) {
		base := strings.TrimSuffix(filepath.Base(task), ".yaml")
		cases = append(cases,
			tc{"plan/" + base + ".fleet", []string{"plan", task, "--fleet", "examples/fleet.yaml"}},
			tc{"plan/" + base + ".catalog", []string{"plan", task}},
		)
	}
	cases = append(cases,
		tc{"plan/llama-70b-finetune.fleet.wide", []string{"plan", "examples/llama-70b-finetune.yaml", "--fleet", "examples/fleet.yaml", "-o", "wide"}},
		tc{"plan/llama-70b-finetune.fleet.all", []string{"plan", "examples/llama-70b-finetune.yaml", "--fleet", "examples/fleet.yaml", "--all"}},
		tc{"plan/bert-spot.fleet.json", []string{"plan", "examples/bert-spot.yaml", "--fleet", "examples/fleet.yaml", "-o", "json"}},
		tc{"plan/gb200-pretrain.fleet.2031", []string{"plan", "examples/gb200-pretrain.yaml", "--fleet", "examples/fleet.yaml", "--now", "2031-06-01T00:00:00Z"}},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, c.args...)
			if r.code != exitOK {
				t.Errorf("exit %d, want 0; stderr:\n%s", r.code, r.stderr)
			}
			golden(t, c.name, c.args, r)
		})
	}
}

// planJSONOut runs plan -o json and decodes the result.
func planJSONOut(t *testing.T, args ...string) api.Plan {
	t.Helper()
	r := runCLI(t, append(append([]string{"plan"}, args...), "-o", "json")...)
	if r.code != exitOK {
		t.Fatalf("plan %v: exit %d; stderr:\n%s", args, r.code, r.stderr)
	}
	var out api.Plan
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("plan %v -o json does not parse: %v\n%s", args, err, r.stdout)
	}
	return out
}

// TestPlanExamples checks each example's winner makes sense, through the
// JSON output.
func TestPlanExamples(t *testing.T) {
	t.Parallel()
	fleet := []string{"--fleet", "examples/fleet.yaml"}
	tests := []struct {
		task string
		args []string
		// check the winner of each workload, in task order.
		want []func(t *testing.T, w api.WorkloadPlan)
	}{
		{"examples/llama-70b-finetune.yaml", fleet, []func(*testing.T, api.WorkloadPlan){
			func(t *testing.T, w api.WorkloadPlan) {
				c := w.Candidates[0]
				if c.Provider != "aws" || c.PriceClass != model.Committed || c.GPU != "H100" || c.NumNodes != 2 {
					t.Errorf("winner %s (%s %s %s x%d), want the committed AWS H100 capacity", c.Pool, c.Provider, c.PriceClass, c.GPU, c.NumNodes)
				}
			},
		}},
		{"examples/bert-spot.yaml", fleet, []func(*testing.T, api.WorkloadPlan){
			func(t *testing.T, w api.WorkloadPlan) {
				for _, c := range w.Candidates {
					if c.Feasible && c.PriceClass != model.Spot {
						t.Errorf("feasible %s is %s; a use_spot task runs on spot only", c.Pool, c.PriceClass)
					}
				}
			},
		}},
		{"examples/bert-spot.yaml", nil, []func(*testing.T, api.WorkloadPlan){
			func(t *testing.T, w api.WorkloadPlan) {
				if c := w.Candidates[0]; c.PriceClass != model.Spot {
					t.Errorf("winner %s is %s, want spot", c.Pool, c.PriceClass)
				}
			},
		}},
		{"examples/inference-service.yaml", fleet, []func(*testing.T, api.WorkloadPlan){
			func(t *testing.T, w api.WorkloadPlan) {
				if w.Kind != model.Service || w.Order != model.Ordered {
					t.Errorf("kind %s order %s, want an ordered service", w.Kind, w.Order)
				}
				if c := w.Candidates[0]; c.GPU != "L40S" {
					t.Errorf("winner %s has %s, want L40S (first of the ordered list)", c.Pool, c.GPU)
				}
			},
		}},
		{"examples/pipeline.yaml", fleet, []func(*testing.T, api.WorkloadPlan){
			func(t *testing.T, w api.WorkloadPlan) {
				if w.Name != "train" || w.Candidates[0].GPU != "H100" {
					t.Errorf("stage 1 is %s on %s, want train on H100", w.Name, w.Candidates[0].GPU)
				}
			},
			func(t *testing.T, w api.WorkloadPlan) {
				if w.Name != "eval" || w.NumNodes != 1 {
					t.Errorf("stage 2 is %s with %d nodes, want eval on 1", w.Name, w.NumNodes)
				}
			},
		}},
		{"examples/gb200-pretrain.yaml", fleet, []func(*testing.T, api.WorkloadPlan){
			func(t *testing.T, w api.WorkloadPlan) {
				c := w.Candidates[0]
				if c.Provider != "aws" || c.GPU != "GB200" || c.NumNodes*c.GPUsPerNode != 64 {
					t.Errorf("winner %s (%s %s, %d GPUs), want 64 GB200 on the AWS commitment", c.Pool, c.Provider, c.GPU, c.NumNodes*c.GPUsPerNode)
				}
			},
		}},
	}
	for _, tt := range tests {
		name := tt.task
		if tt.args == nil {
			name += "/catalog"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out := planJSONOut(t, append([]string{tt.task}, tt.args...)...)
			if len(out.Workloads) != len(tt.want) {
				t.Fatalf("%d workloads, want %d", len(out.Workloads), len(tt.want))
			}
			for i, w := range out.Workloads {
				checkRanking(t, w)
				if w.Feasible == 0 {
					t.Errorf("%s: no feasible candidate", w.Name)
					continue
				}
				tt.want[i](t, w)
			}
		})
	}
}

// TestPlanCatalogFlag merges a SkyPilot catalog CSV over the built-in
// prices: its cheap H100 offer wins, with the provider named by flag or by
// the CSV's directory.
func TestPlanCatalogFlag(t *testing.T) {
	t.Parallel()
	const csv = "internal/cli/testdata/catalog/acme/vms.csv"
	for name, args := range map[string][]string{
		"provider flag": {"examples/llama-70b-finetune.yaml", "--catalog", csv, "--catalog-provider", "ACME"},
		"directory":     {"examples/llama-70b-finetune.yaml", "--catalog", csv},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out := planJSONOut(t, args...)
			if c := out.Workloads[0].Candidates[0]; c.Provider != "acme" || c.InstanceType != "acme-8x-h100" {
				t.Errorf("winner %s %s, want acme's acme-8x-h100", c.Provider, c.InstanceType)
			}
		})
	}
}

// checkRanking checks the invariants of every plan: feasible candidates
// first, ranked 1..n by non-decreasing effective cost (within one option,
// since an ordered workload prefers earlier options); infeasible ones carry
// at least one reason.
func checkRanking(t *testing.T, w api.WorkloadPlan) {
	t.Helper()
	feasible := 0
	for i, c := range w.Candidates {
		if !c.Feasible {
			if len(c.Rejections) == 0 {
				t.Errorf("%s: infeasible %s has no reason", w.Name, c.Pool)
			}
			continue
		}
		if i != feasible {
			t.Errorf("%s: feasible %s listed after an infeasible candidate", w.Name, c.Pool)
		}
		feasible++
		if c.Rank != feasible {
			t.Errorf("%s: %s has rank %d, want %d", w.Name, c.Pool, c.Rank, feasible)
		}
		// An ordered workload ranks by option first, cost second.
		if i > 0 && c.Option == w.Candidates[i-1].Option && c.EffectivePerHour < w.Candidates[i-1].EffectivePerHour-1e-9 {
			t.Errorf("%s: rank %d is cheaper than rank %d", w.Name, c.Rank, c.Rank-1)
		}
	}
	if feasible != w.Feasible {
		t.Errorf("%s: feasible count %d, want %d", w.Name, w.Feasible, feasible)
	}
}

// TestPlanEveryExample plans every example against both the fleet and the
// built-in catalog: each succeeds, and its JSON parses.
func TestPlanEveryExample(t *testing.T) {
	t.Parallel()
	for _, task := range exampleTasks(t) {
		for _, extra := range [][]string{nil, {"--fleet", "examples/fleet.yaml"}} {
			t.Run(strings.Join(append([]string{task}, extra...), " "), func(t *testing.T) {
				t.Parallel()
				out := planJSONOut(t, append([]string{task}, extra...)...)
				if len(out.Workloads) == 0 {
					t.Fatal("no workloads")
				}
				for _, w := range out.Workloads {
					checkRanking(t, w)
					if w.Feasible == 0 {
						t.Errorf("%s: nothing feasible", w.Name)
					}
				}
			})
		}
	}
}

// TestPlanErrors checks that bad input fails with the right exit code and
// a message naming the field or flag at fault.
func TestPlanErrors(t *testing.T) {
	t.Parallel()
	const bad = "internal/cli/testdata/bad/"
	tests := []struct {
		name     string
		args     []string
		code     int
		stderr   []string // substrings
		noStdout bool
	}{
		{"missing task file", []string{"plan", "examples/nope.yaml"}, exitFailure,
			[]string{"error: task file:", "examples/nope.yaml"}, true},
		{"missing fleet file", []string{"plan", "examples/bert-spot.yaml", "--fleet", "nope.yaml"}, exitFailure,
			[]string{"error: --fleet:", "nope.yaml"}, true},
		{"unknown GPU", []string{"plan", bad + "unknown-gpu.yaml"}, exitFailure,
			[]string{"error: " + bad + "unknown-gpu.yaml:", "resources.accelerators", "H1000"}, true},
		{"bad num_nodes", []string{"plan", bad + "bad-num-nodes.yaml"}, exitFailure,
			[]string{"num_nodes"}, true},
		{"bad fleet field", []string{"plan", "examples/bert-spot.yaml", "--fleet", bad + "bad-fleet.yaml"}, exitFailure,
			[]string{bad + "bad-fleet.yaml:", "gpus_per_node"}, true},
		{"no feasible placement", []string{"plan", bad + "too-big.yaml", "--fleet", "examples/fleet.yaml"}, exitFailure,
			[]string{"error: no feasible placement for too-big"}, false},
		{"no task", []string{"plan"}, exitUsage,
			[]string{"error: gpubroker plan needs the task file", "Run 'gpubroker plan --help' for usage."}, true},
		{"bad output format", []string{"plan", "examples/bert-spot.yaml", "-o", "xml"}, exitUsage,
			[]string{"--output", "xml", "table, wide, json, yaml"}, true},
		{"bad now", []string{"plan", "examples/bert-spot.yaml", "--now", "tomorrow"}, exitUsage,
			[]string{"--now", "RFC 3339"}, true},
		{"unknown flag", []string{"plan", "examples/bert-spot.yaml", "--fleeet", "x"}, exitUsage,
			[]string{"unknown flag: --fleeet"}, true},
		{"catalog provider without catalog", []string{"plan", "examples/bert-spot.yaml", "--catalog-provider", "aws"}, exitUsage,
			[]string{"--catalog-provider"}, true},
		{"catalog provider count", []string{"plan", "examples/bert-spot.yaml", "--catalog", "a.csv", "--catalog", "b.csv", "--catalog-provider", "aws"}, exitFailure,
			[]string{"--catalog-provider: give one per --catalog"}, true},
		{"missing catalog", []string{"plan", "examples/bert-spot.yaml", "--catalog", "nope.csv", "--catalog-provider", "aws"}, exitFailure,
			[]string{"--catalog:", "nope.csv"}, true},
		{"malformed catalog", []string{"plan", "examples/bert-spot.yaml", "--catalog", "internal/cli/testdata/catalog/broken.csv", "--catalog-provider", "acme"}, exitFailure,
			[]string{"--catalog internal/cli/testdata/catalog/broken.csv:", "line 2", "Price"}, true},
		{"unknown command", []string{"plna"}, exitUsage,
			[]string{`unknown command "plna"`, `did you mean "plan"?`}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", r.code, tt.code, r.stderr)
			}
			for _, s := range tt.stderr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr does not mention %q:\n%s", s, r.stderr)
				}
			}
			if tt.noStdout && r.stdout != "" {
				t.Errorf("stdout should be empty on this error, got:\n%s", r.stdout)
			}
		})
	}
}

// TestPlanErrorGolden keeps the exact wording of the main error messages
// and of the no-feasible-placement table under review.
func TestPlanErrorGolden(t *testing.T) {
	t.Parallel()
	const bad = "internal/cli/testdata/bad/"
	for name, args := range map[string][]string{
		"errors/unknown-gpu":   {"plan", bad + "unknown-gpu.yaml"},
		"errors/bad-fleet":     {"plan", "examples/bert-spot.yaml", "--fleet", bad + "bad-fleet.yaml"},
		"errors/too-big":       {"plan", bad + "too-big.yaml", "--fleet", "examples/fleet.yaml"},
		"errors/too-big.all":   {"plan", bad + "too-big.yaml", "--fleet", "examples/fleet.yaml", "--all"},
		"errors/too-big.json":  {"plan", bad + "too-big.yaml", "--fleet", "examples/fleet.yaml", "-o", "json"},
		"errors/no-task":       {"plan"},
		"errors/warning":       {"plan", bad + "warning.yaml", "--fleet", "examples/fleet.yaml"},
		"errors/missing-fleet": {"plan", "examples/bert-spot.yaml", "--fleet", "nope.yaml"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			golden(t, name, args, runCLI(t, args...))
		})
	}
}

// walk calls fn for cmd and every command below it.
func walk(cmd *cobra.Command, fn func(*cobra.Command)) {
	fn(cmd)
	for _, c := range cmd.Commands() {
		walk(c, fn)
	}
}

// TestHelp checks that every command has help with an example, reachable
// both as `CMD --help` and `help CMD`.
func TestHelp(t *testing.T) {
	t.Parallel()
	root := newRootCmd(&Env{})
	var paths [][]string
	walk(root, func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		if c.Example == "" {
			t.Errorf("%s has no Example", c.CommandPath())
		}
		if c.Short == "" {
			t.Errorf("%s has no Short description", c.CommandPath())
		}
		paths = append(paths, strings.Fields(c.CommandPath())[1:])
	})
	if len(paths) < 3 {
		t.Fatalf("found commands %v, want at least root, plan and version", paths)
	}
	for _, path := range paths {
		for _, args := range [][]string{append(append([]string{}, path...), "--help"), append([]string{"help"}, path...)} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				t.Parallel()
				r := runCLI(t, args...)
				if r.code != exitOK {
					t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
				}
				for _, want := range []string{"Usage:", "Examples:"} {
					if !strings.Contains(r.stdout, want) {
						t.Errorf("help does not show %q:\n%s", want, r.stdout)
					}
				}
			})
		}
	}
	if r := runCLI(t); r.code != exitOK || !strings.Contains(r.stdout, "Available Commands:") {
		t.Errorf("gpubroker with no arguments: exit %d, want help listing the commands:\n%s%s", r.code, r.stdout, r.stderr)
	}
	golden(t, "help/plan", []string{"plan", "--help"}, runCLI(t, "plan", "--help"))
}

func TestVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r := runCLI(t, args...)
		if r.code != exitOK || !strings.HasPrefix(r.stdout, "gpubroker ") || !strings.Contains(r.stdout, "go1.") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
	if r := runCLI(t, "version", "extra"); r.code != exitUsage {
		t.Errorf("version extra: exit %d, want %d", r.code, exitUsage)
	}
}

// TestRunRealStdio runs the exported entry point main uses.
func TestRunRealStdio(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if code := Run(context.Background(), []string{"version"}, strings.NewReader(""), &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d; stderr %s", code, stderr.String())
	}
}

// BenchmarkPlan measures one whole `gpubroker plan` (catalog, parse, plan,
// render) against the example fleet and against the built-in catalog.
func BenchmarkPlan(b *testing.B) {
	for name, args := range map[string][]string{
		"fleet":   {"plan", "examples/llama-70b-finetune.yaml", "--fleet", "examples/fleet.yaml"},
		"catalog": {"plan", "examples/llama-70b-finetune.yaml"},
	} {
		b.Run(name, func(b *testing.B) {
			env := &Env{
				Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard,
				Now:      func() time.Time { return testNow },
				ReadFile: func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(repoRoot, name)) },
			}
			for b.Loop() {
				if code := env.Run(context.Background(), args); code != exitOK {
					b.Fatalf("exit %d", code)
				}
			}
		})
	}
}
