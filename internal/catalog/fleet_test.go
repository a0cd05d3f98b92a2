package catalog

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/model"
)

func TestBuiltinFleetValidates(t *testing.T) {
	t.Parallel()
	f := Builtin().Fleet()
	if err := f.Validate(); err != nil {
		t.Fatalf("Builtin().Fleet() does not validate:\n%v", err)
	}
	if diff := cmp.Diff(f, Builtin().Fleet()); diff != "" {
		t.Errorf("two calls differ:\n%s", diff)
	}
	if diff := cmp.Diff(model.DefaultPolicy(), f.Policy); diff != "" {
		t.Errorf("policy (-want +got):\n%s", diff)
	}
	var providers []model.Provider
	for _, p := range f.Providers {
		providers = append(providers, p.Name)
	}
	want := []model.Provider{"aws", "azure", "coreweave", "gcp", "lambda", "nebius", "oci"}
	if diff := cmp.Diff(want, providers); diff != "" {
		t.Errorf("providers (-want +got):\n%s", diff)
	}
	if got := f.Provider("oci").EgressPerGB; got != 0.0085 {
		t.Errorf("oci egress = %v, want 0.0085", got)
	}
	for i := 1; i < len(f.Clusters); i++ {
		a, b := f.Clusters[i-1], f.Clusters[i]
		if a.Provider > b.Provider || (a.Provider == b.Provider && a.Region >= b.Region) {
			t.Errorf("clusters out of order: %s before %s", a.Name, b.Name)
		}
	}
}

func TestFleetPools(t *testing.T) {
	t.Parallel()
	c := &Catalog{Offers: []Offer{
		{Provider: "aws", InstanceType: "p5.48xlarge", GPU: H100, GPUCount: 8, VCPUs: 192, MemoryGiB: 2048, Region: "us-east-1", Zone: "us-east-1a", OnDemand: 56, Spot: 32},
		{Provider: "aws", InstanceType: "p5.48xlarge", GPU: H100, GPUCount: 8, VCPUs: 192, MemoryGiB: 2048, Region: "us-east-1", Zone: "us-east-1b", OnDemand: 55.04, Spot: 30},
		{Provider: "aws", InstanceType: "g4dn.xlarge", GPU: T4, GPUCount: 1, VCPUs: 4, MemoryGiB: 16, Region: "us-east-1", OnDemand: 0.526},
		{Provider: "lambda", InstanceType: "gpu_8x_h100_sxm5", GPU: H100, GPUCount: 8, VCPUs: 208, MemoryGiB: 1800, Region: "us-east-1", OnDemand: 23.92},
		// left out: too many GPUs per node, bad name, negative price
		{Provider: "x", InstanceType: "rack-72", GPU: GB200, GPUCount: 72, Region: "r1", OnDemand: 300},
		{Provider: "x", InstanceType: "bad name!", GPU: GB200, GPUCount: 4, Region: "r1", OnDemand: 40},
		{Provider: "x", InstanceType: "neg", GPU: GB200, GPUCount: 4, Region: "r1", OnDemand: -1},
	}}
	c.Sort()
	f := c.Fleet()
	if err := f.Validate(); err != nil {
		t.Fatalf("fleet does not validate:\n%v", err)
	}
	want := []model.Cluster{
		{Name: "aws-us-east-1", Provider: "aws", Region: "us-east-1", Backend: model.BackendCloud, Pools: []model.Pool{
			{Name: "g4dn.xlarge", GPU: T4, GPUsPerNode: 1, PriceClass: model.OnDemand, PricePerGPUHour: 0.526, InstanceType: "g4dn.xlarge", CPUsPerNode: 4, MemoryGiBPerNode: 16, MaxNodes: 4096},
			{Name: "p5.48xlarge", GPU: H100, GPUsPerNode: 8, PriceClass: model.OnDemand, PricePerGPUHour: 6.88, InstanceType: "p5.48xlarge", CPUsPerNode: 192, MemoryGiBPerNode: 2048, MaxNodes: 4096},
			{Name: "p5.48xlarge-spot", GPU: H100, GPUsPerNode: 8, PriceClass: model.Spot, PricePerGPUHour: 3.75, InstanceType: "p5.48xlarge", CPUsPerNode: 192, MemoryGiBPerNode: 2048, MaxNodes: 4096},
		}},
		{Name: "lambda-us-east-1", Provider: "lambda", Region: "us-east-1", Backend: model.BackendCloud, Pools: []model.Pool{
			{Name: "gpu_8x_h100_sxm5", GPU: H100, GPUsPerNode: 8, PriceClass: model.OnDemand, PricePerGPUHour: 2.99, InstanceType: "gpu_8x_h100_sxm5", CPUsPerNode: 208, MemoryGiBPerNode: 1800, MaxNodes: 4096},
		}},
	}
	if diff := cmp.Diff(want, f.Clusters); diff != "" {
		t.Errorf("clusters (-want +got):\n%s", diff)
	}
	wantProviders := []model.ProviderInfo{
		{Name: "aws", EgressPerGB: 0.09, SpotPreemptionPerHour: 0.05},
		{Name: "lambda"},
	}
	if diff := cmp.Diff(wantProviders, f.Providers); diff != "" {
		t.Errorf("providers (-want +got):\n%s", diff)
	}
}

func TestFleetEmpty(t *testing.T) {
	t.Parallel()
	f := (&Catalog{}).Fleet()
	if len(f.Clusters) != 0 || len(f.Providers) != 0 {
		t.Errorf("empty catalog gave %+v", f)
	}
	if err := f.Validate(); err != nil {
		t.Errorf("empty fleet does not validate: %v", err)
	}
}
