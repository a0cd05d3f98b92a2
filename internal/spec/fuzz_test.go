package spec

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func addSeeds(f *testing.F, globs ...string) {
	for _, g := range globs {
		files, _ := filepath.Glob(g)
		for _, name := range files {
			data, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
}

// checkResult holds for any input: either a result or an Errors whose
// every entry names the file, never both nil.
func checkResult(t *testing.T, ok bool, err error) {
	t.Helper()
	if err == nil {
		if !ok {
			t.Fatal("nil result and nil error")
		}
		return
	}
	var list Errors
	if !errors.As(err, &list) || len(list) == 0 {
		t.Fatalf("error %T is not a non-empty spec.Errors: %v", err, err)
	}
	for _, e := range list {
		if e.File != "fuzz.yaml" {
			t.Fatalf("error without the file name: %v", e)
		}
		_ = e.Error()
	}
}

func FuzzParseTask(f *testing.F) {
	addSeeds(f, "testdata/task/*.yaml", "testdata/badtask/*.yaml", "../../examples/*.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		task, err := ParseTask(data, "fuzz.yaml")
		if task == nil {
			t.Fatal("nil task")
		}
		checkResult(t, err != nil || len(task.Workloads) > 0, err)
		if err != nil {
			return
		}
		if len(task.Workloads) == 0 {
			t.Fatal("a task with no workloads and no error")
		}
		for _, w := range task.Workloads {
			if verr := w.Validate(); verr != nil {
				t.Fatalf("parsed workload does not validate: %v", verr)
			}
		}
	})
}

func FuzzParseFleet(f *testing.F) {
	addSeeds(f, "testdata/fleet/*.yaml", "testdata/badfleet/*.yaml", "../../examples/fleet.yaml")
	cat := testCatalog()
	f.Fuzz(func(t *testing.T, data []byte) {
		fleet, _, err := ParseFleet(data, "fuzz.yaml", cat)
		checkResult(t, fleet != nil, err)
		if err == nil {
			if verr := fleet.Validate(); verr != nil {
				t.Fatalf("parsed fleet does not validate: %v", verr)
			}
		}
	})
}

// TestAliasBomb checks that a file built to explode when its aliases are
// expanded ("billion laughs") is rejected or accepted quickly.
func TestAliasBomb(t *testing.T) {
	t.Parallel()
	doc := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for _, name := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		doc += name + ": &" + name + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
		prev = name
	}
	task := doc + "resources:\n  accelerators: H100:1\n  ports: *i\nenvs: {X: *i}\nfile_mounts: *i\n"
	_, _ = ParseTask([]byte(task), "bomb.yaml")
	fleet := doc + "clusters: *i\nteams: *i\npolicy: {regions: *i}\n"
	_, _, _ = ParseFleet([]byte(fleet), "bomb.yaml", testCatalog())
}
