package spec

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/model"
)

func readTestdata(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func job(name string, order model.OptionOrder, opts ...model.Resources) *model.Workload {
	return &model.Workload{
		Name: name, Kind: model.Job, NumNodes: 1, Order: order, Options: opts,
		Recovery: model.Recovery{Strategy: "failover"},
	}
}

func gpu(g model.GPUModel, n int, arg string) model.Resources {
	return model.Resources{GPU: g, GPUsPerNode: n, AcceleratorArg: arg}
}

func TestParseTask(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		want     func() []*model.Workload
		warnings []string // "line: path" of each warning
	}{
		"single.yaml": {
			want: func() []*model.Workload {
				o := gpu("H100", 8, "H100:8")
				o.Provider, o.Region, o.DiskSizeGiB, o.MaxHourlyCost = "aws", "us-east-1", 512, 40
				w := job("llama-8b-sft", model.AnyOf, o)
				w.Envs = map[string]string{"MODEL": "meta-llama/Meta-Llama-3-8B", "EPOCHS": "3", "BF16": "true", "HF_TOKEN": ""}
				w.Workdir = "."
				w.FileMounts = map[string]string{"/data": "s3://bucket/data", "/ckpt": "s3://bucket/ckpt"}
				w.Setup, w.Run = "pip install -r requirements.txt", "python train.py\n"
				w.Team, w.Priority = "research", 100
				w.Deadline = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
				w.CheckpointDir, w.CheckpointInterval = "s3://bucket/ckpt", 30*time.Minute
				w.DataRegion, w.DataGB, w.Duration = "us-east-1", 500, 36*time.Hour
				return []*model.Workload{w}
			},
			warnings: []string{"13: envs"},
		},
		"multinode.yaml": {
			want: func() []*model.Workload {
				o := gpu("H100", 8, "nvidia-h100-80gb-hbm3:8")
				o.Provider, o.Region, o.Zone = "aws", "us-west-2", "us-west-2b"
				o.CPUs, o.CPUsAtLeast, o.MemoryGiB, o.MemoryAtLeast = 96, true, 1024, true
				w := job("pretrain", model.AnyOf, o)
				w.NumNodes, w.Run = 4, "torchrun train.py"
				w.Recovery = model.Recovery{Strategy: "eager_next_region", MaxRestartsOnErrors: 3}
				return []*model.Workload{w}
			},
		},
		"spot.yaml": {
			want: func() []*model.Workload {
				o := gpu("T4", 1, "T4")
				o.UseSpot = true
				w := job("bert-spot", model.AnyOf, o)
				w.Run, w.CheckpointInterval = "python run_glue.py", 10*time.Minute
				return []*model.Workload{w}
			},
		},
		"anyof.yaml": {
			want: func() []*model.Workload {
				a := gpu("A100-80GB", 1, "A100-80GB:1")
				a.Provider, a.Region, a.UseSpot, a.CPUs = "gcp", "us-central1", true, 8
				b := gpu("L40S", 1, "L40S:1")
				b.Provider, b.CPUs = "aws", 8
				w := job("eval", model.AnyOf, a, b)
				w.Run = "python eval.py"
				return []*model.Workload{w}
			},
		},
		"ordered.yaml": {
			want: func() []*model.Workload {
				a := gpu("H200", 8, "H200:8")
				a.Region, a.MemoryGiB, a.MemoryAtLeast = "us-east-1", 256, true
				b := gpu("H100", 8, "H100:8")
				b.MemoryGiB, b.MemoryAtLeast = 256, true
				w := job("prefer-h200", model.Ordered, a, b)
				w.Run = "python train.py"
				return []*model.Workload{w}
			},
		},
		"accel_set.yaml": {
			want: func() []*model.Workload {
				set := job("serve-set", model.AnyOf, gpu("H100", 8, "H100:8"), gpu("A100-80GB", 8, "A100-80GB:8"))
				list := job("serve-list", model.Ordered, gpu("H100", 8, "H100:8"), gpu("A100", 8, "A100:8"))
				set.Run, list.Run = "python serve.py", "python serve.py"
				return []*model.Workload{set, list}
			},
			warnings: []string{"4: resources.accelerators"},
		},
		"service.yaml": {
			want: func() []*model.Workload {
				w := job("chat", model.AnyOf, gpu("L4", 1, "L4:1"))
				w.Kind = model.Service
				w.Service = &model.ServiceSpec{MinReplicas: 2, MaxReplicas: 6, ReadinessPath: "/health", Port: 8000}
				w.Run = "vllm serve meta-llama/Meta-Llama-3-8B-Instruct --port 8000"
				return []*model.Workload{w}
			},
			warnings: []string{
				"5: service.readiness_probe.initial_delay_seconds",
				"9: service.replica_policy.target_qps_per_replica",
				"13: resources.image_id",
			},
		},
		"pipeline.yaml": {
			want: func() []*model.Workload {
				a := job("train", model.AnyOf, gpu("H100", 8, "H100:8"))
				b := job("eval", model.AnyOf, gpu("L4", 1, "L4:1"))
				a.Run, a.Team = "python train.py", "research"
				b.Run, b.Team = "python eval.py", "research"
				return []*model.Workload{a, b}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			task, err := ParseTask(readTestdata(t, filepath.Join("testdata/task", name)), name)
			if err != nil {
				t.Fatalf("ParseTask: %v", err)
			}
			if diff := cmp.Diff(tc.want(), task.Workloads); diff != "" {
				t.Errorf("workloads (-want +got):\n%s", diff)
			}
			var got []string
			for _, w := range task.Warnings {
				if w.File != name {
					t.Errorf("warning %v: File = %q, want %q", w, w.File, name)
				}
				got = append(got, fmt.Sprintf("%d: %s", w.Line, w.Path))
			}
			if diff := cmp.Diff(tc.warnings, got); diff != "" {
				t.Errorf("warnings (-want +got):\n%s\nall: %v", diff, task.Warnings)
			}
		})
	}
}

func TestParseTaskPipelineName(t *testing.T) {
	t.Parallel()
	task, err := ParseTask(readTestdata(t, "testdata/task/pipeline.yaml"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if task.Name != "train-then-eval" {
		t.Errorf("Name = %q, want train-then-eval", task.Name)
	}
}

// wantErrors reads the "# want: LINE: PATH: MSG" comments at the top of a
// bad fixture.
func wantErrors(data []byte) []string {
	var want []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "# want: "); ok {
			want = append(want, rest)
		}
	}
	return want
}

// checkBad compares an error from a bad fixture with its want comments and
// checks the error's shape: an Errors of *Error, each naming the file and
// a field path (YAML syntax errors excepted: they have no field).
func checkBad(t *testing.T, name string, data []byte, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	var list Errors
	if !errors.As(err, &list) {
		t.Fatalf("error %T is not spec.Errors: %v", err, err)
	}
	var one *Error
	if !errors.As(err, &one) || one != list[0] {
		t.Errorf("errors.As(*Error) does not find the first error")
	}
	var got []string
	for _, e := range list {
		if e.File != name {
			t.Errorf("%v: File = %q, want %q", e, e.File, name)
		}
		if e.Line <= 0 {
			t.Errorf("%v: no line", e)
		}
		if e.Path == "" && !strings.HasPrefix(e.Msg, "not valid YAML") {
			t.Errorf("%v: no field path", e)
		}
		if !strings.HasPrefix(e.Error(), fmt.Sprintf("%s:%d: ", name, e.Line)) {
			t.Errorf("%q does not start with file:line", e.Error())
		}
		if e.Path == "" {
			got = append(got, fmt.Sprintf("%d: %s", e.Line, e.Msg))
		} else {
			got = append(got, fmt.Sprintf("%d: %s: %s", e.Line, e.Path, e.Msg))
		}
	}
	if diff := cmp.Diff(wantErrors(data), got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestParseTaskErrors(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("testdata/badtask/*.yaml")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data := readTestdata(t, f)
			task, err := ParseTask(data, name)
			if task == nil || task.Workloads != nil {
				t.Errorf("want a task with warnings only alongside the error, got %+v", task)
			}
			checkBad(t, name, data, err)
		})
	}
}

func TestParseTaskWarnings(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		yaml string
		want []string
	}{
		"unknown top-level key with suggestion": {
			yaml: "resources: {accelerators: H100:1}\nsetpu: x\n",
			want: []string{`t.yaml:2: setpu: unknown field "setpu" is ignored; did you mean "setup"?`},
		},
		"unknown key, nothing close": {
			yaml: "resources: {accelerators: H100:1}\nfrobnicate: 1\n",
			want: []string{`t.yaml:2: frobnicate: unknown field "frobnicate" is ignored`},
		},
		"unknown resources key": {
			yaml: "resources:\n  accelerators: H100:1\n  use_spots: true\n",
			want: []string{`t.yaml:3: resources.use_spots: unknown field "use_spots" is ignored; did you mean "use_spot"?`},
		},
		"k8s leaves provider open": {
			yaml: "resources: {infra: k8s, accelerators: H100:1}\n",
			want: []string{`t.yaml:1: resources.infra: "k8s" names a cluster manager, not a provider: the provider is left open and the fleet's clusters decide`},
		},
		"secrets": {
			yaml: "resources: {accelerators: H100:1}\nsecrets:\n  HF_TOKEN: abc\n",
			want: []string{`t.yaml:3: secrets: secrets are kept as environment variables of the workload and are not redacted yet`},
		},
		"unsupported section": {
			yaml: "resources: {accelerators: H100:1}\nvolumes:\n  /data: vol\n",
			want: []string{`t.yaml:2: volumes: not supported by gpubroker yet; ignored`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			task, err := ParseTask([]byte(tc.yaml), "t.yaml")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range task.Warnings {
				got = append(got, w.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseTaskErrorKeepsWarnings(t *testing.T) {
	t.Parallel()
	task, err := ParseTask([]byte("resources:\n  acclerators: H100:8\nrun: x\n"), "t.yaml")
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{`t.yaml:2: resources.acclerators: unknown field "acclerators" is ignored; did you mean "accelerators"?`}
	var got []string
	for _, w := range task.Warnings {
		got = append(got, w.String())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// TestEveryErrorNamesAField runs every bad fixture and requires each error
// to carry a field path and a line (YAML syntax errors have no field).
func TestEveryErrorNamesAField(t *testing.T) {
	t.Parallel()
	tasks, _ := filepath.Glob("testdata/badtask/*.yaml")
	fleets, _ := filepath.Glob("testdata/badfleet/*.yaml")
	for _, f := range append(tasks, fleets...) {
		data := readTestdata(t, f)
		var err error
		if strings.Contains(f, "badfleet") {
			_, _, err = ParseFleet(data, "x.yaml", testCatalog())
		} else {
			_, err = ParseTask(data, "x.yaml")
		}
		var list Errors
		if !errors.As(err, &list) {
			t.Errorf("%s: want spec.Errors, got %v", f, err)
			continue
		}
		for _, e := range list {
			if (e.Path == "" && !strings.HasPrefix(e.Msg, "not valid YAML")) || e.Line == 0 {
				t.Errorf("%s: error names no field or line: %v", f, e)
			}
		}
	}
}

func TestParseTaskAllowSpotAndDefaults(t *testing.T) {
	t.Parallel()
	task, err := ParseTask([]byte("resources:\n  accelerators: H100:8\nx-gpubroker:\n  allow_spot: true\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w := task.Workloads[0]
	if !w.Options[0].AllowSpot || w.Options[0].UseSpot {
		t.Errorf("AllowSpot/UseSpot = %v/%v, want true/false", w.Options[0].AllowSpot, w.Options[0].UseSpot)
	}
	if w.NumNodes != 1 || w.Kind != model.Job || w.Recovery.Strategy != "failover" || w.Order != model.AnyOf {
		t.Errorf("defaults: %+v", w)
	}
}

// TestRepoExamples keeps the task and fleet files under examples/ parsing.
func TestRepoExamples(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("../../examples/*.yaml")
	for _, f := range files {
		name := filepath.Base(f)
		data := readTestdata(t, f)
		if strings.Contains(name, "fleet") {
			if _, _, err := ParseFleet(data, name, nil); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if _, err := ParseTask(data, name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestParseTaskInstanceTypeOnly(t *testing.T) {
	t.Parallel()
	// SkyPilot lets a task name an instance type instead of accelerators;
	// the GPU comes from the built-in catalog.
	task, err := ParseTask([]byte("resources:\n  cloud: aws\n  instance_type: p5.48xlarge\nrun: x\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	o := task.Workloads[0].Options[0]
	if o.GPU != "H100" || o.GPUsPerNode != 8 || o.InstanceType != "p5.48xlarge" || o.Provider != "aws" {
		t.Errorf("option = %+v", o)
	}
}
