package catalog

import (
	"fmt"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/model"
)

func TestBuiltinParses(t *testing.T) {
	t.Parallel()
	c, err := loadBuiltin()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.Offers); n < 150 || n > 450 {
		t.Errorf("built-in catalog has %d offers; expected a few hundred", n)
	}
	if diff := cmp.Diff(c, Builtin()); diff != "" {
		t.Errorf("two parses differ:\n%s", diff)
	}
	if !sort.SliceIsSorted(c.Offers, func(i, j int) bool { return offerLess(c.Offers[i], c.Offers[j]) }) {
		t.Errorf("offers are not in catalog order")
	}
	type key struct {
		p          model.Provider
		it, region string
	}
	seen := map[key]bool{}
	for _, o := range c.Offers {
		k := key{o.Provider, o.InstanceType, o.Region}
		if seen[k] {
			t.Errorf("duplicate offer %v", k)
		}
		seen[k] = true
		if o.OnDemand <= 0 || o.Spot < 0 || o.Spot >= o.OnDemand || o.VCPUs <= 0 || o.MemoryGiB <= 0 {
			t.Errorf("implausible offer %+v", o)
		}
		if o.GPUMemoryGiB != GPUMemoryGiB(o.GPU) {
			t.Errorf("%s %s: GPU memory %d, want %d", o.Provider, o.InstanceType, o.GPUMemoryGiB, GPUMemoryGiB(o.GPU))
		}
		if perGPU := o.PricePerGPUHour(); perGPU < 0.1 || perGPU > 20 {
			t.Errorf("%s %s %s: $%.2f per GPU-hour is implausible", o.Provider, o.InstanceType, o.Region, perGPU)
		}
	}
}

// TestBuiltinCoverage pins which provider sells which GPU. false marks a
// combination the provider does not sell as a listed on-demand instance
// (e.g. AWS GB200 comes only as UltraServer capacity blocks).
func TestBuiltinCoverage(t *testing.T) {
	t.Parallel()
	gpus := []model.GPUModel{GB200, B200, H200, H100, A100_80GB, A100, L40S, L4, A10G, A10, V100, T4, K80}
	sells := map[model.Provider][]model.GPUModel{
		"aws":       {B200, H200, H100, A100_80GB, A100, L40S, L4, A10G, V100, T4, K80},
		"azure":     {GB200, H200, H100, A100_80GB, A100, A10, V100, T4},
		"gcp":       {B200, H200, H100, A100_80GB, A100, L4, V100, T4},
		"oci":       {GB200, B200, H200, H100, A100_80GB, A100, L40S, A10, V100},
		"lambda":    {B200, H100, A100_80GB, A100, A10, V100},
		"coreweave": {GB200, B200, H200, H100, A100_80GB, L40S},
		"nebius":    {B200, H200, H100, L40S},
	}
	c := Builtin()
	have := map[string]bool{}
	for _, o := range c.Offers {
		have[fmt.Sprintf("%s/%s", o.Provider, o.GPU)] = true
	}
	for p, list := range sells {
		want := map[model.GPUModel]bool{}
		for _, g := range list {
			want[g] = true
		}
		for _, g := range gpus {
			k := fmt.Sprintf("%s/%s", p, g)
			if have[k] != want[g] {
				t.Errorf("%s: in catalog %v, expected %v", k, have[k], want[g])
			}
		}
	}
	// Spot is sold by aws, azure, gcp and nebius only.
	spot := map[model.Provider]bool{}
	for _, o := range c.Offers {
		if o.Spot > 0 {
			spot[o.Provider] = true
		}
	}
	if diff := cmp.Diff(map[model.Provider]bool{"aws": true, "azure": true, "gcp": true, "nebius": true}, spot); diff != "" {
		t.Errorf("providers with spot (-want +got):\n%s", diff)
	}
	// Several regions per provider.
	regions := map[model.Provider]map[string]bool{}
	for _, o := range c.Offers {
		if regions[o.Provider] == nil {
			regions[o.Provider] = map[string]bool{}
		}
		regions[o.Provider][o.Region] = true
	}
	for p, rs := range regions {
		if len(rs) < 3 {
			t.Errorf("%s has %d regions, want at least 3", p, len(rs))
		}
	}
}

func TestBuiltinFacts(t *testing.T) {
	t.Parallel()
	c := Builtin()
	tests := map[string]struct {
		p          model.Provider
		it, region string
		gpu        model.GPUModel
		n          int
		od, spot   float64
	}{
		"aws p5":         {"aws", "p5.48xlarge", "us-east-1", H100, 8, 55.04, 30.272},
		"aws p4d":        {"aws", "p4d.24xlarge", "us-east-1", A100, 8, 21.957642, 9.8809},
		"aws p4de":       {"aws", "p4de.24xlarge", "us-east-1", A100_80GB, 8, 27.44705, 12.3512},
		"gcp a3":         {"gcp", "a3-highgpu-8g", "us-central1", H100, 8, 88.4899999025753, 50.6095408219178},
		"nebius h200":    {"nebius", "gpu-h200-sxm_8gpu-128vcpu-1600gb", "eu-north1", H200, 8, 28, 11.60},
		"lambda h100":    {"lambda", "gpu_8x_h100_sxm5", "us-east-1", H100, 8, 23.92, 0},
		"oci h100":       {"oci", "BM.GPU.H100.8", "us-ashburn-1", H100, 8, 80, 0},
		"azure nd h100":  {"azure", "Standard_ND96isr_H100_v5", "eastus", H100, 8, 98.32, 39.328},
		"coreweave h100": {"coreweave", "gd-8xh100ib-i128", "us-east-04", H100, 8, 49.24, 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			o, ok := c.Lookup(tc.p, tc.it, tc.region)
			if !ok {
				t.Fatalf("%s %s %s not in the built-in catalog", tc.p, tc.it, tc.region)
			}
			if o.GPU != tc.gpu || o.GPUCount != tc.n || !cents(o.OnDemand, tc.od) || !cents(o.Spot, tc.spot) {
				t.Errorf("got %+v; want %s x%d, %v on-demand, %v spot", o, tc.gpu, tc.n, tc.od, tc.spot)
			}
		})
	}
}
