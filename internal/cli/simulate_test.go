package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gpubroker/internal/model"
	"gpubroker/internal/sim/report"
)

// The fixture trace is read by the trace package straight from disk,
// relative to this package; the fleet goes through Env.ReadFile, relative
// to the repository root.
const (
	simTrace = "philly:testdata/simulate/philly.csv"
	simFleet = "internal/cli/testdata/simulate/fleet.yaml"
)

func simArgs(out string, extra ...string) []string {
	args := []string{"simulate", "--trace", simTrace, "--fleet", simFleet, "--gpu", "H100",
		"--seed", "7", "--allow-spot", "--checkpoint", "30m", "--out", out}
	return append(args, extra...)
}

func TestSimulateTable(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	policies := []string{"gpubroker", "single:azure", "cheapest", "fifo"}
	args := simArgs(out, "--scale", "2.5")
	for _, p := range policies {
		args = append(args, "--policy", p)
	}
	r := runCLI(t, args...)
	if r.code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 1+len(policies) {
		t.Fatalf("%d table lines, want a header and %d rows:\n%s", len(lines), len(policies), r.stdout)
	}
	for _, col := range []string{"POLICY", "COST", "$/GPU-H", "COST BY PROVIDER", "COMMIT SHORTFALL", "JCT P50", "JCT P99",
		"QUEUE P50", "QUEUE P99", "GPU-H LOST", "MAX SHARE", "DEADLINES MISSED", "NEVER RUNNABLE"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header lacks %q: %s", col, lines[0])
		}
	}
	for i, p := range policies {
		if f := strings.Fields(lines[i+1]); len(f) == 0 || f[0] != p {
			t.Errorf("row %d is %q, want policy %s first", i+1, lines[i+1], p)
		}
	}
	// The fixture's two bad rows are counted and explained on stderr.
	for _, s := range []string{"2 of 12 rows malformed and skipped", "1 bad duration", "1 no GPU", "line 11",
		"report.json", "report.html", out} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr does not mention %q:\n%s", s, r.stderr)
		}
	}
	data, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	if len(rep.Policies) != len(policies) || rep.Seed != 7 || rep.Scale != 2.5 {
		t.Errorf("report: %d policies, seed %d, scale %v; want %d, 7, 2.5", len(rep.Policies), rep.Seed, rep.Scale, len(policies))
	}
	for _, p := range rep.Policies {
		if p.JobsCompleted != rep.Jobs {
			t.Errorf("%s: %d of %d jobs completed; the fixture fleet runs them all", p.Name, p.JobsCompleted, rep.Jobs)
		}
	}
	page, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(page, []byte("<svg")) || !bytes.Contains(page, []byte("single:azure")) {
		t.Errorf("report.html has no chart or lacks a policy (%d bytes)", len(page))
	}
}

// TestSimulateDeterministic runs the same command twice: report.json is
// byte for byte the same, and the table too.
func TestSimulateDeterministic(t *testing.T) {
	t.Parallel()
	var reports, tables []string
	for range 2 {
		out := t.TempDir()
		r := runCLI(t, simArgs(out, "--scale", "3.3", "--policy", "gpubroker", "--policy", "cheapest")...)
		if r.code != exitOK {
			t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
		}
		data, err := os.ReadFile(filepath.Join(out, "report.json"))
		if err != nil {
			t.Fatal(err)
		}
		reports = append(reports, string(data))
		tables = append(tables, r.stdout)
	}
	if reports[0] != reports[1] {
		t.Error("two runs with the same seed wrote different report.json")
	}
	if tables[0] != tables[1] {
		t.Errorf("two runs with the same seed printed different tables:\n%s\n%s", tables[0], tables[1])
	}
}

func TestSimulateJSON(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	r := runCLI(t, simArgs(out, "-o", "json")...)
	if r.code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
	}
	data, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if r.stdout != string(data) {
		t.Error("-o json stdout differs from report.json")
	}
}

func TestScaleTrace(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var ws []*model.Workload
	for i := range 1000 {
		ws = append(ws, &model.Workload{ID: "j" + thousands(i), Submitted: t0.Add(time.Duration(i) * time.Minute)})
	}
	if got := scaleTrace(ws, 1, 1); len(got) != len(ws) {
		t.Errorf("scale 1: %d jobs, want %d", len(got), len(ws))
	}
	got := scaleTrace(ws, 3, 1)
	if len(got) != 3000 {
		t.Fatalf("scale 3: %d jobs, want 3000", len(got))
	}
	ids := map[string]bool{}
	for i, w := range got {
		if ids[w.ID] {
			t.Fatalf("scale 3: ID %s repeated", w.ID)
		}
		ids[w.ID] = true
		if i > 0 && w.Submitted.Before(got[i-1].Submitted) {
			t.Fatalf("scale 3: not sorted at %d", i)
		}
	}
	if !ids["j1-x2"] || ws[1].ID != "j1" {
		t.Error("copies are named ID-xK and the input is untouched")
	}
	// Fractional: about half the jobs get a third copy; the same seed
	// gives the same jobs, another seed others.
	a, b, c := scaleTrace(ws, 2.5, 1), scaleTrace(ws, 2.5, 1), scaleTrace(ws, 2.5, 2)
	if n := len(a); n < 2400 || n > 2600 {
		t.Errorf("scale 2.5: %d jobs, want about 2500", n)
	}
	same := len(a) == len(b)
	for i := 0; same && i < len(a); i++ {
		same = a[i].ID == b[i].ID && a[i].Submitted.Equal(b[i].Submitted)
	}
	if !same {
		t.Error("scale 2.5: the same seed gave different jobs")
	}
	if len(a) == len(c) && a[len(a)-1].ID == c[len(c)-1].ID && a[len(a)/2].Submitted.Equal(c[len(c)/2].Submitted) {
		t.Error("scale 2.5: seeds 1 and 2 gave the same jobs")
	}
	if n := len(scaleTrace(ws, 0.5, 1)); n < 400 || n > 600 {
		t.Errorf("scale 0.5: %d jobs, want about 500", n)
	}
}

func TestSimulateErrors(t *testing.T) {
	t.Parallel()
	base := []string{"simulate", "--trace", simTrace, "--fleet", simFleet}
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr []string
	}{
		{"missing seed", base, exitUsage, []string{"--seed is required", "Run 'gpubroker simulate --help'"}},
		{"zero seed", append(base[:len(base):len(base)], "--seed", "0"), exitUsage, []string{"--seed is required"}},
		{"missing trace", []string{"simulate", "--fleet", simFleet, "--seed", "1"}, exitUsage, []string{"--trace is required"}},
		{"missing fleet", []string{"simulate", "--trace", simTrace, "--seed", "1"}, exitUsage, []string{"--fleet is required"}},
		{"unknown policy", append(base[:len(base):len(base)], "--seed", "1", "--policy", "greedy"), exitUsage,
			[]string{"--policy", `"greedy"`, "single:PROVIDER"}},
		{"single on a provider the fleet lacks", append(base[:len(base):len(base)], "--seed", "1", "--policy", "single:oci"), exitUsage,
			[]string{"--policy", "oci", "aws, azure, gcp"}},
		{"policy twice", append(base[:len(base):len(base)], "--seed", "1", "--policy", "fifo", "--policy", "fifo"), exitUsage,
			[]string{"--policy", "twice"}},
		{"bad trace path", []string{"simulate", "--trace", "philly:testdata/simulate/nope.csv", "--fleet", simFleet, "--seed", "1"}, exitFailure,
			[]string{"--trace philly:testdata/simulate/nope.csv", "nope.csv"}},
		{"bad trace kind", []string{"simulate", "--trace", "phily:testdata/simulate/philly.csv", "--fleet", simFleet, "--seed", "1"}, exitFailure,
			[]string{"--trace", "phily"}},
		{"missing fleet file", []string{"simulate", "--trace", simTrace, "--fleet", "nope.yaml", "--seed", "1"}, exitFailure,
			[]string{"--fleet", "nope.yaml"}},
		{"bad scale", append(base[:len(base):len(base)], "--seed", "1", "--scale", "-2"), exitUsage, []string{"--scale"}},
		{"bad gpu", append(base[:len(base):len(base)], "--seed", "1", "--gpu", "H1000"), exitUsage, []string{"--gpu", "H1000"}},
		{"bad start", append(base[:len(base):len(base)], "--seed", "1", "--start", "soon"), exitUsage, []string{"--start", "soon"}},
		{"bad output", append(base[:len(base):len(base)], "--seed", "1", "-o", "yaml"), exitUsage, []string{"--output", "yaml"}},
		{"arguments", append(base[:len(base):len(base)], "--seed", "1", "extra"), exitUsage, []string{"takes no arguments"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, append(tt.args, "--out", t.TempDir())...)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", r.code, tt.code, r.stderr)
			}
			for _, s := range tt.stderr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr does not mention %q:\n%s", s, r.stderr)
				}
			}
			if r.stdout != "" {
				t.Errorf("stdout should be empty on this error, got:\n%s", r.stdout)
			}
		})
	}
}

func TestSimulateHelp(t *testing.T) {
	t.Parallel()
	r := runCLI(t, "simulate", "--help")
	if r.code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
	}
	for _, s := range []string{"--trace", "--seed", "--scale", "--policy", "single:PROVIDER", "floor(X)", "Examples:", "examples/lab-2026/fleet.yaml"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("help does not mention %q", s)
		}
	}
}

// TestSimulateProgress forces the bar on a buffer: it draws and ends its
// line; without --progress a buffer gets none.
func TestSimulateProgress(t *testing.T) {
	t.Parallel()
	r := runCLI(t, simArgs(t.TempDir(), "--progress")...)
	if r.code != exitOK || !strings.Contains(r.stderr, "\rsimulating [") || !strings.Contains(r.stderr, "100%") {
		t.Errorf("exit %d; no progress bar on stderr:\n%q", r.code, r.stderr)
	}
	if r := runCLI(t, simArgs(t.TempDir())...); strings.Contains(r.stderr, "\r") {
		t.Errorf("progress bar drawn without --progress on a non-terminal:\n%q", r.stderr)
	}
}
