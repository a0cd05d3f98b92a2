package spec

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"gpubroker/internal/catalog"
)

// TestSkyPilotTasks parses a directory of real SkyPilot task files (from
// SkyPilot's examples/ and llm/ folders) named by GPUBROKER_SKYPILOT_TASKS.
// The files are not in this repository (their license is not ours); the
// test skips when the variable is unset. CPU-only tasks must fail with the
// "no GPU requested" error and TPU/Inferentia tasks with the unsupported
// accelerator error; at least nine in ten of the rest must parse.
func TestSkyPilotTasks(t *testing.T) {
	dir := os.Getenv("GPUBROKER_SKYPILOT_TASKS")
	if dir == "" {
		t.Skip("GPUBROKER_SKYPILOT_TASKS not set")
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no *.yaml files in %s (%v)", dir, err)
	}
	sort.Strings(files)
	parsed, tried, cpuOnly, unsupported := 0, 0, 0, 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		task, err := ParseTask(data, name)
		var unsup *catalog.UnsupportedError
		switch {
		case err == nil:
			parsed++
			tried++
			t.Logf("ok   %s: %d workload(s), %d warning(s)", name, len(task.Workloads), len(task.Warnings))
			if testing.Verbose() {
				for _, w := range task.Warnings {
					t.Logf("       warning %s", w)
				}
			}
		case strings.Contains(err.Error(), "no GPU requested"):
			cpuOnly++
			t.Logf("cpu  %s: %v", name, firstLine(err))
		case errors.As(err, &unsup) || strings.Contains(err.Error(), "cannot be placed yet"):
			unsupported++
			t.Logf("unsup %s: %v", name, firstLine(err))
		default:
			tried++
			t.Logf("FAIL %s:\n%v", name, err)
		}
	}
	t.Logf("parsed %d of %d GPU tasks; %d CPU-only, %d unsupported accelerators; %d files", parsed, tried, cpuOnly, unsupported, len(files))
	if parsed*10 < tried*9 {
		t.Errorf("only %d of %d GPU tasks parsed; want at least 90%%", parsed, tried)
	}
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
