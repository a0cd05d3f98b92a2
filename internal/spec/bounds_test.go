package spec

import (
	"fmt"
	"strings"
	"testing"
)

// Every number and size of a task that sizes the broker's memory or work
// is bounded, and the refusal names the field.
func TestTaskBounds(t *testing.T) {
	t.Parallel()
	manyAccels := make([]string, 9)
	for i := range manyAccels {
		manyAccels[i] = fmt.Sprintf("H100:%d", i+1)
	}
	var anyOf strings.Builder
	for i := 0; i < 8; i++ {
		fmt.Fprintf(&anyOf, "    - region: r%d\n", i)
	}
	var manyEnvs strings.Builder
	for i := 0; i < 1001; i++ {
		fmt.Fprintf(&manyEnvs, "  V%d: x\n", i)
	}
	var bigEnvs strings.Builder
	for i := 0; i < 5; i++ {
		fmt.Fprintf(&bigEnvs, "  V%d: %s\n", i, strings.Repeat("x", 60<<10))
	}
	for name, tc := range map[string]struct{ body, want string }{
		"num_nodes":    {"num_nodes: 100001\n", "num_nodes: 100001 is more than 100000"},
		"replicas":     {"service:\n  replicas: 1001\n", "service.replicas: 1001 replicas are more than 1000"},
		"max_replicas": {"service:\n  replica_policy: {min_replicas: 1, max_replicas: 5000}\n", "service.replicas: 5000 replicas are more than 1000"},
		"options": {"resources:\n  accelerators: {" + strings.Join(manyAccels, ", ") + "}\n  any_of:\n" + anyOf.String(),
			"resources: 72 resource options (after any_of, ordered and accelerator sets are expanded) are more than 64"},
		"env NUL":        {"envs:\n  A: \"a\\0b\"\n", "envs.A: the value holds a NUL byte"},
		"env name NUL":   {"envs:\n  \"A\\0B\": x\n", `envs.A\x00B: an environment variable's name cannot hold a NUL byte`},
		"env name =":     {"envs:\n  \"A=B\": x\n", "envs.A=B: an environment variable's name cannot hold a NUL byte or '='"},
		"env value size": {"envs:\n  A: " + strings.Repeat("x", 900<<10) + "\n", "envs.A: the value is 921600 bytes; give at most 65536"},
		"env count":      {"envs:\n" + manyEnvs.String(), "envs: 1001 entries are more than 1000"},
		"env total":      {"envs:\n" + bigEnvs.String(), "envs: names and values add up to"},
		"env name size":  {"envs:\n  " + strings.Repeat("N", 300) + ": x\n", "the name is 300 bytes; give at most 256"},
		"name":           {"name: " + strings.Repeat("n", 200) + "\n", "name: \"" + strings.Repeat("n", 200) + "\" is not a valid name"},
		"team":           {"x-gpubroker:\n  team: \"a/b\"\n", `x-gpubroker.team: "a/b" is not a valid name`},
		"region":         {"resources:\n  accelerators: H100:1\n  region: " + strings.Repeat("r", 200) + "\n", "resources[0].region: 200 bytes is too long; give at most 128"},
		"workdir":        {"workdir: /" + strings.Repeat("w", 5000) + "\n", "workdir: 5001 bytes is too long for a path"},
		"checkpoint":     {"x-gpubroker:\n  checkpoint_dir: \"/a\\0b\"\n", "x-gpubroker.checkpoint_dir: holds a NUL byte"},
		"restarts":       {"job_recovery:\n  max_restarts_on_errors: 1000000\n", "job_recovery.max_restarts_on_errors: 1000000 is more than 100"},
	} {
		src := body(tc.body)
		_, err := ParseTask([]byte(src), "t.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %.500v; want an error with %q", name, err, tc.want)
		}
	}
	// At the bounds, accepted.
	ok := body("num_nodes: 100000\nenvs:\n  A: " + strings.Repeat("x", 64<<10) + "\nresources:\n  accelerators: {" + strings.Join(manyAccels[:8], ", ") + "}\n  any_of:\n" + anyOf.String())
	if _, err := ParseTask([]byte(ok), "t.yaml"); err != nil {
		t.Errorf("a task at the bounds: %v", err)
	}
}

// body completes a task: accelerators and run unless the fields give them.
func body(fields string) string {
	src := fields
	if !strings.Contains(fields, "resources:") {
		src += "resources:\n  accelerators: H100:1\n"
	}
	return src + "run: echo\n"
}

// An any_of list times an inherited accelerator set is counted before it
// is expanded: a small file cannot make the parser build millions of
// options.
func TestTaskOptionExpansionIsCounted(t *testing.T) {
	t.Parallel()
	accels := make([]string, 16)
	for i := range accels {
		accels[i] = fmt.Sprintf("H100:%d", i+1)
	}
	var b strings.Builder
	b.WriteString("resources:\n  accelerators: {" + strings.Join(accels, ", ") + "}\n  any_of:\n")
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&b, "    - {region: r%d}\n", i)
	}
	b.WriteString("run: echo\n")
	_, err := ParseTask([]byte(b.String()), "t.yaml")
	if err == nil || !strings.Contains(err.Error(), "resources: 320000 resource options") {
		t.Fatalf("%.300v; want resources: 320000 resource options ...", err)
	}
}
