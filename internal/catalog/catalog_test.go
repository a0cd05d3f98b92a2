package catalog

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/model"
)

func testCatalog() *Catalog {
	c := &Catalog{Offers: []Offer{
		{Provider: "gcp", InstanceType: "a3-highgpu-8g", GPU: H100, GPUCount: 8, Region: "us-central1", OnDemand: 88.49, Spot: 50.61},
		{Provider: "aws", InstanceType: "p5.48xlarge", GPU: H100, GPUCount: 8, Region: "us-west-2", OnDemand: 55.04},
		{Provider: "aws", InstanceType: "p5.48xlarge", GPU: H100, GPUCount: 8, Region: "ap-northeast-1", OnDemand: 68.8},
		{Provider: "aws", InstanceType: "p5.48xlarge", GPU: H100, GPUCount: 8, Region: "us-east-1", Zone: "us-east-1b", OnDemand: 55.04},
		{Provider: "aws", InstanceType: "p5.48xlarge", GPU: H100, GPUCount: 8, Region: "us-east-1", Zone: "us-east-1a", OnDemand: 56},
		{Provider: "aws", InstanceType: "g4dn.xlarge", GPU: T4, GPUCount: 1, Region: "us-east-1", OnDemand: 0.526},
	}}
	c.Sort()
	return c
}

func TestCatalogOrder(t *testing.T) {
	t.Parallel()
	type k struct{ P, IT, R, Z string }
	var got []k
	for _, o := range testCatalog().Offers {
		got = append(got, k{string(o.Provider), o.InstanceType, o.Region, o.Zone})
	}
	want := []k{
		{"aws", "g4dn.xlarge", "us-east-1", ""},
		{"aws", "p5.48xlarge", "ap-northeast-1", ""},
		{"aws", "p5.48xlarge", "us-east-1", "us-east-1a"},
		{"aws", "p5.48xlarge", "us-east-1", "us-east-1b"},
		{"aws", "p5.48xlarge", "us-west-2", ""},
		{"gcp", "a3-highgpu-8g", "us-central1", ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	c := testCatalog()
	tests := map[string]struct {
		p          model.Provider
		it, region string
		wantRegion string
		wantZone   string
		wantOK     bool
	}{
		"exact region":            {"aws", "p5.48xlarge", "ap-northeast-1", "ap-northeast-1", "", true},
		"cheapest region, tie":    {"aws", "p5.48xlarge", "", "us-east-1", "us-east-1b", true},
		"cheapest zone in region": {"aws", "p5.48xlarge", "us-east-1", "us-east-1", "us-east-1b", true},
		"case-insensitive type":   {"aws", "P5.48XLARGE", "us-west-2", "us-west-2", "", true},
		"wrong provider":          {"gcp", "p5.48xlarge", "", "", "", false},
		"unknown region":          {"aws", "p5.48xlarge", "eu-west-1", "", "", false},
		"unknown instance type":   {"aws", "p9.48xlarge", "", "", "", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			o, ok := c.Lookup(tc.p, tc.it, tc.region)
			if ok != tc.wantOK || o.Region != tc.wantRegion || o.Zone != tc.wantZone {
				t.Errorf("Lookup = %s/%s, %v; want %s/%s, %v", o.Region, o.Zone, ok, tc.wantRegion, tc.wantZone, tc.wantOK)
			}
		})
	}
}

func TestByGPU(t *testing.T) {
	t.Parallel()
	c := testCatalog()
	if got := len(c.ByGPU(H100)); got != 5 {
		t.Errorf("ByGPU(H100) = %d offers, want 5", got)
	}
	if got := c.ByGPU(T4); len(got) != 1 || got[0].InstanceType != "g4dn.xlarge" {
		t.Errorf("ByGPU(T4) = %+v", got)
	}
	if got := c.ByGPU(B200); len(got) != 0 {
		t.Errorf("ByGPU(B200) = %+v, want none", got)
	}
}

func TestMerge(t *testing.T) {
	t.Parallel()
	c := testCatalog()
	fresh := &Catalog{
		Offers:  []Offer{{Provider: "aws", InstanceType: "p5.48xlarge", GPU: H100, GPUCount: 8, Region: "us-east-1", OnDemand: 50}},
		Skipped: []SkippedRow{{Provider: "aws", Line: 3, InstanceType: "inf2.xlarge", Reason: "unsupported"}},
	}
	c.Merge(fresh)
	var got []string
	for _, o := range c.Offers {
		got = append(got, string(o.Provider)+" "+o.InstanceType+" "+o.Region)
	}
	want := []string{"aws p5.48xlarge us-east-1", "gcp a3-highgpu-8g us-central1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after merge (-want +got):\n%s", diff)
	}
	if len(c.Skipped) != 1 {
		t.Errorf("skipped rows not carried over: %+v", c.Skipped)
	}
	// A catalog with only skipped rows still covers its provider.
	c.Merge(&Catalog{Skipped: []SkippedRow{{Provider: "gcp", Reason: "x"}}})
	if len(c.Offers) != 1 || c.Offers[0].Provider != "aws" {
		t.Errorf("gcp offers not replaced: %+v", c.Offers)
	}
	c.Merge(nil)
	if diff := cmp.Diff([]model.Provider{"aws", "gcp"}, c.Providers()); diff != "" {
		t.Errorf("providers (-want +got):\n%s", diff)
	}
}

func TestMergeBuiltinWithRealLoad(t *testing.T) {
	t.Parallel()
	c := Builtin()
	before := len(c.ByGPU(H100))
	fresh, err := LoadSkyPilotCSV(openFile(t, "testdata/skypilot_gcp_tpu.csv"), "gcp")
	if err != nil {
		t.Fatal(err)
	}
	c.Merge(fresh)
	for _, o := range c.Offers {
		if o.Provider == "gcp" && o.InstanceType != "a3-highgpu-8g" && o.InstanceType != "a2-ultragpu-1g" {
			t.Fatalf("builtin gcp offer %s survived the merge", o.InstanceType)
		}
	}
	if after := len(c.ByGPU(H100)); after >= before {
		t.Errorf("H100 offers %d -> %d; merging a smaller gcp list should shrink it", before, after)
	}
}
