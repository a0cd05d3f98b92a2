package spec

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/model"
)

// testBackends are a build's backends as the fleet parser sees them: the
// three real ones, and "vm", a driver with a block of its own that the
// vocabulary does not type and that its Check validates.
func testBackends() []Backend {
	return []Backend{
		{Name: "local"},
		{Name: "slurm"},
		{Name: "kubernetes", Aliases: []string{"k8s"}},
		{Name: "vm", Check: func(cl model.Cluster, _ *model.Fleet) error {
			var errs model.FieldErrors
			if cl.Target == nil {
				errs.Add("vm", "missing; give the vm block (endpoint, images)")
				return errs.Err()
			}
			if _, ok := cl.Target["endpoint"].(string); !ok {
				errs.Add("vm.endpoint", "missing; give the API endpoint, e.g. https://vm.example")
			}
			if imgs, _ := cl.Target["images"].([]any); len(imgs) > 1 {
				errs.Add("vm.images[1]", "one image per cluster; remove %v", imgs[1])
			}
			return errs.Err()
		}},
	}
}

func TestParseFleetBackends(t *testing.T) {
	t.Parallel()
	const yaml = `clusters:
  - name: v
    provider: onprem
    region: dc1
    backend: VM
    vm:
      endpoint: https://vm.example
      zones: {a: 1}
    pools: [{name: p, gpu: H100, gpus_per_node: 8, nodes: 1, price_class: committed}]
  - name: k
    provider: onprem
    region: dc1
    backend: k8s
    pools: [{name: p, gpu: H100, gpus_per_node: 8, nodes: 1, price_class: committed}]
`
	f, warns, err := ParseFleetWith([]byte(yaml), "f.yaml", FleetOptions{Catalog: testCatalog(), Backends: testBackends()})
	if err != nil || len(warns) > 0 {
		t.Fatalf("ParseFleetWith: %v (warnings %v)", err, warns)
	}
	if got := f.Clusters[0].Backend; got != "vm" {
		t.Errorf("backend %q, want vm", got)
	}
	want := map[string]any{"endpoint": "https://vm.example", "zones": map[string]any{"a": float64(1)}}
	if diff := cmp.Diff(want, f.Clusters[0].Target); diff != "" {
		t.Errorf("vm block (-want +got):\n%s", diff)
	}
	if got := f.Clusters[1]; got.Backend != model.BackendKubernetes || got.Target != nil {
		t.Errorf("k8s cluster: backend %q, target %v", got.Backend, got.Target)
	}
}

// Against a build's backends, a backend the build does not drive (cloud
// among them) is an error at the field, naming the backends there are; a
// driver's Check points at the lines of its own block.
func TestParseFleetBackendErrors(t *testing.T) {
	t.Parallel()
	const yaml = `clusters:
  - name: c
    provider: aws
    region: us-east-1
    backend: cloud
    pools: [{name: p, gpu: H100, gpus_per_node: 8, price_class: spot}]
  - name: v
    provider: onprem
    region: dc1
    backend: vm
    vm:
      images:
        - a
        - b
    pools: [{name: p, gpu: H100, gpus_per_node: 8, nodes: 1, price_class: committed}]
  - name: l
    provider: onprem
    region: dc1
    backend: local
    vm: {endpoint: x}
    pools: [{name: p, gpu: H100, gpus_per_node: 8, nodes: 1, price_class: committed}]
  - name: m
    provider: onprem
    region: dc1
    vm: [x]
    pools: [{name: p, gpu: H100, gpus_per_node: 8, nodes: 1, price_class: committed}]
`
	_, _, err := ParseFleetWith([]byte(yaml), "f.yaml", FleetOptions{Catalog: testCatalog(), Backends: testBackends()})
	var list Errors
	if !errors.As(err, &list) {
		t.Fatalf("err = %v, want Errors", err)
	}
	var got []string
	for _, e := range list {
		got = append(got, e.Error())
	}
	want := []string{
		`f.yaml:5: clusters[0].backend: unknown backend "cloud"; this build drives local, slurm, kubernetes or vm`,
		`f.yaml:11: clusters[1].vm.endpoint: missing; give the API endpoint, e.g. https://vm.example`,
		`f.yaml:14: clusters[1].vm.images[1]: one image per cluster; remove b`,
		`f.yaml:20: clusters[2].vm: a vm block on a local cluster; remove it or set backend: vm`,
		`f.yaml:22: clusters[3].backend: missing; say how work reaches the cluster: local, slurm, kubernetes or vm`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func FuzzParseFleetWith(f *testing.F) {
	addSeeds(f, "testdata/fleet/*.yaml", "testdata/badfleet/*.yaml", "../../examples/fleet.yaml")
	f.Add([]byte("clusters:\n  - {name: v, provider: onprem, region: dc1, backend: vm, vm: {endpoint: x, images: [a]},\n     pools: [{name: p, gpu: H100, gpus_per_node: 8, nodes: 1, price_class: committed}]}\n"))
	o := FleetOptions{Catalog: testCatalog(), Backends: testBackends()}
	f.Fuzz(func(t *testing.T, data []byte) {
		fleet, _, err := ParseFleetWith(data, "fuzz.yaml", o)
		checkResult(t, fleet != nil, err)
	})
}

// A driver block built to explode when its aliases are expanded is
// rejected or accepted quickly.
func TestAliasBombInDriverBlock(t *testing.T) {
	t.Parallel()
	doc := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for _, name := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		doc += name + ": &" + name + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
		prev = name
	}
	fleet := doc + "clusters: [{name: v, provider: onprem, region: dc1, backend: vm, vm: {images: *i}, pools: [{name: p, gpu: H100, gpus_per_node: 8, nodes: 1, price_class: committed}]}]\n"
	_, _, _ = ParseFleetWith([]byte(fleet), "bomb.yaml", FleetOptions{Catalog: testCatalog(), Backends: testBackends()})
}
