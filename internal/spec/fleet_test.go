package spec

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/catalog"
	"gpubroker/internal/model"
)

// testCatalog is a small fixed catalog so fleet tests do not move when the
// built-in prices do.
func testCatalog() *catalog.Catalog {
	return &catalog.Catalog{Offers: []catalog.Offer{
		{Provider: "aws", InstanceType: "p5.48xlarge", GPU: "H100", GPUCount: 8, GPUMemoryGiB: 80, VCPUs: 192, MemoryGiB: 2048, Region: "us-east-1", OnDemand: 55.04, Spot: 30.4},
		{Provider: "aws", InstanceType: "p5.48xlarge", GPU: "H100", GPUCount: 8, GPUMemoryGiB: 80, VCPUs: 192, MemoryGiB: 2048, Region: "us-west-2", OnDemand: 55.04, Spot: 31.2},
		{Provider: "aws", InstanceType: "p4d.24xlarge", GPU: "A100", GPUCount: 8, GPUMemoryGiB: 40, VCPUs: 96, MemoryGiB: 1152, Region: "us-east-1", OnDemand: 21.96},
	}}
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func TestParseFleet(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		want     *model.Fleet
		warnings []string
	}{
		"full.yaml": {
			want: &model.Fleet{
				Providers: []model.ProviderInfo{
					{Name: "aws", EgressPerGB: 0.09, SpotPreemptionPerHour: 0.05},
					{Name: "azure", EgressPerGB: 0.087},
				},
				Contracts: []model.Contract{
					{Name: "aws-2026", Provider: "aws", Kind: model.SpendCommitment, SpendUSD: 38e9,
						Start: date(2026, 1, 1), End: date(2033, 1, 1), Discount: 0.35, TakeOrPay: true,
						YearlyMinimumsUSD: []float64{2e9, 3e9}},
					{Name: "azure-h100-reserve", Provider: "azure", Kind: model.CapacityCommitment, GPU: "H100", GPUs: 4096,
						PricePerGPUHour: 2.1, Start: date(2025, 1, 1), End: date(2028, 1, 1), TakeOrPay: true},
				},
				Clusters: []model.Cluster{
					{Name: "aws-use1", Provider: "aws", Region: "us-east-1", Backend: model.BackendKubernetes, Endpoint: "kubeconfig:aws-use1",
						Pools: []model.Pool{
							{Name: "h100", GPU: "H100", GPUsPerNode: 8, Nodes: 512, PriceClass: model.Committed, Contract: "aws-2026", PricePerGPUHour: 3.9},
							{Name: "p5-spot", GPU: "H100", GPUsPerNode: 8, MaxNodes: 64, PriceClass: model.Spot, InstanceType: "p5.48xlarge",
								PricePerGPUHour: 30.4 / 8, CPUsPerNode: 192, MemoryGiBPerNode: 2048},
							{Name: "p5-od", GPU: "H100", GPUsPerNode: 8, PriceClass: model.OnDemand, InstanceType: "p5.48xlarge",
								PricePerGPUHour: 7, CPUsPerNode: 192, MemoryGiBPerNode: 2048},
						}},
					{Name: "azure-eastus", Provider: "azure", Region: "eastus", Backend: model.BackendKubernetes,
						Pools: []model.Pool{
							{Name: "nd-h100", GPU: "H100", GPUsPerNode: 8, Nodes: 512, PriceClass: model.Committed, Contract: "azure-h100-reserve", PricePerGPUHour: 2.1},
						}},
				},
				Teams: []model.Team{
					{Name: "research", Weight: 2, Cohort: "lab", Quota: map[model.GPUModel]int{"H100": 2048, "A100-80GB": 256},
						MonthlyBudgetUSD: 5e6, Regions: []string{"us-east-1"}},
					{Name: "applied", Weight: 1},
				},
				Policy: model.Policy{
					MaxProviderShare: 0.6, ShareWindow: 14 * 24 * time.Hour, SpotAllowed: true, Preemption: true,
					Regions:            []string{"us-east-1", "eastus"},
					MaxPricePerGPUHour: map[model.GPUModel]float64{"H100": 6, "*": 10},
				},
			},
		},
		"engines.yaml": {
			want: &model.Fleet{
				Clusters: []model.Cluster{
					{Name: "aws-slurm", Provider: "aws", Region: "us-east-1", Backend: model.BackendSlurm,
						Slurm: &model.SlurmTarget{Conf: "/etc/slurm/slurm.conf", Partition: "gpu", GRESType: "h100", Dir: "/shared/gpubroker",
							Account: "ml", QOS: "normal", TeamAccounts: map[string]string{"research": "research"}, TeamQOS: map[string]string{"research": "high"}},
						Pools: []model.Pool{{Name: "h100", GPU: "H100", GPUsPerNode: 8, Nodes: 4, PriceClass: model.Committed}}},
					{Name: "azure-k8s", Provider: "azure", Region: "eastus", Backend: model.BackendKubernetes,
						Kubernetes: &model.KubernetesTarget{Kubeconfig: "/etc/gpubroker/azure.kubeconfig", Context: "azure-eastus",
							Namespace: "gpubroker", Products: map[string]string{"h100": "NVIDIA-H100-80GB-HBM3"}, Compression: true},
						Pools: []model.Pool{{Name: "h100", GPU: "H100", GPUsPerNode: 8, Nodes: 2, PriceClass: model.OnDemand, PricePerGPUHour: 4}}},
					{Name: "onprem", Provider: "onprem", Region: "dc1", Backend: model.BackendLocal,
						Pools: []model.Pool{{Name: "h100", GPU: "H100", GPUsPerNode: 8, Nodes: 1, PriceClass: model.Committed}}},
				},
				Teams:  []model.Team{{Name: "research", Weight: 1}},
				Policy: model.DefaultPolicy(),
			},
		},
		"minimal.yaml": {
			want: &model.Fleet{
				Clusters: []model.Cluster{{Name: "dc1", Provider: "onprem", Region: "dc1", Backend: model.BackendSlurm, Endpoint: "slurmrestd:dc1",
					Pools: []model.Pool{{Name: "a100", GPU: "A100-80GB", GPUsPerNode: 8, Nodes: 128, PriceClass: model.Committed}}}},
				Policy: model.DefaultPolicy(),
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f, warns, err := ParseFleet(readTestdata(t, filepath.Join("testdata/fleet", name)), name, testCatalog())
			if err != nil {
				t.Fatalf("ParseFleet: %v", err)
			}
			if diff := cmp.Diff(tc.want, f); diff != "" {
				t.Errorf("fleet (-want +got):\n%s", diff)
			}
			var got []string
			for _, w := range warns {
				got = append(got, w.String())
			}
			if diff := cmp.Diff(tc.warnings, got); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseFleetErrors(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("testdata/badfleet/*.yaml")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data := readTestdata(t, f)
			fleet, _, err := ParseFleet(data, name, testCatalog())
			if fleet != nil {
				t.Errorf("got a fleet with an error")
			}
			checkBad(t, name, data, err)
		})
	}
}

func TestParseFleetWarnings(t *testing.T) {
	t.Parallel()
	const yaml = `clusters:
  - name: c
    provider: aws
    region: us-east-1
    backend: cloud
    pools: [{name: p, gpu: H100, gpus_per_node: 8, price_class: spot, pirce_class: x}]
teams:
  - {name: t, wieght: 2}
polcy: {}
`
	_, warns, err := ParseFleet([]byte(yaml), "f.yaml", testCatalog())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range warns {
		got = append(got, w.String())
	}
	want := []string{
		`f.yaml:6: clusters[0].pools[0].pirce_class: unknown field "pirce_class" is ignored; did you mean "price_class"?`,
		`f.yaml:8: teams[0].wieght: unknown field "wieght" is ignored; did you mean "weight"?`,
		`f.yaml:9: polcy: unknown field "polcy" is ignored; did you mean "policy"?`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestParseFleetBuiltinCatalog(t *testing.T) {
	t.Parallel()
	// A nil catalog means the built-in one.
	const yaml = `clusters:
  - {name: c, provider: aws, region: us-east-1, backend: cloud,
     pools: [{name: p, instance_type: p5.48xlarge, price_class: ondemand}]}
`
	f, _, err := ParseFleet([]byte(yaml), "f.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	p := f.Clusters[0].Pools[0]
	if p.GPU != "H100" || p.GPUsPerNode != 8 || p.PricePerGPUHour <= 0 {
		t.Errorf("pool from built-in catalog = %+v", p)
	}
}
