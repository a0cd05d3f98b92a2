package model

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func validFleet() *Fleet {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &Fleet{
		Providers: []ProviderInfo{{Name: "aws", EgressPerGB: 0.09}},
		Contracts: []Contract{{Name: "aws-7y", Provider: "aws", Kind: SpendCommitment, Start: start, End: start.AddDate(7, 0, 0), SpendUSD: 38e9, Discount: 0.3, TakeOrPay: true}},
		Clusters: []Cluster{{Name: "aws-use1", Provider: "aws", Region: "us-east-1", Backend: BackendKubernetes,
			Pools: []Pool{{Name: "h100", GPU: "H100", GPUsPerNode: 8, Nodes: 4, PriceClass: Committed, PricePerGPUHour: 3, Contract: "aws-7y"}}}},
		Teams:  []Team{{Name: "research", Quota: map[GPUModel]int{"H100": 32}, Weight: 1}},
		Policy: DefaultPolicy(),
	}
}

func TestFleetValidate(t *testing.T) {
	tests := map[string]struct {
		edit func(f *Fleet)
		want []string // "path: fragment"
	}{
		"valid": {edit: func(*Fleet) {}},
		"bad gpus per node": {
			edit: func(f *Fleet) { f.Clusters[0].Pools[0].GPUsPerNode = 17 },
			want: []string{"clusters[0].pools[0].gpus_per_node: 17 is out of range"},
		},
		"unknown contract": {
			edit: func(f *Fleet) { f.Clusters[0].Pools[0].Contract = "nope" },
			want: []string{`clusters[0].pools[0].contract: unknown contract "nope"`},
		},
		"contract of another provider": {
			edit: func(f *Fleet) { f.Clusters[0].Provider = "gcp" },
			want: []string{`clusters[0].pools[0].contract: contract "aws-7y" is with "aws" but the cluster is on "gcp"`},
		},
		"duplicate cluster and bad backend": {
			edit: func(f *Fleet) {
				c := f.Clusters[0]
				c.Backend = "mesos"
				f.Clusters = append(f.Clusters, c)
			},
			want: []string{`clusters[1].backend: unknown backend "mesos"`, `clusters[1].name: cluster "aws-use1" is defined twice`},
		},
		"share cap out of range": {
			edit: func(f *Fleet) { f.Policy.MaxProviderShare = 1.5 },
			want: []string{"policy.max_provider_share: 1.5 is out of range"},
		},
		"contract term backwards": {
			edit: func(f *Fleet) { f.Contracts[0].End = f.Contracts[0].Start },
			want: []string{"contracts[0].term: the term needs a start before its end"},
		},
		"yearly minimums above the commitment": {
			edit: func(f *Fleet) { f.Contracts[0].YearlyMinimumsUSD = []float64{30e9, 10e9} },
			want: []string{"contracts[0].yearly_minimums_usd: yearly minimums add up to"},
		},
		"negative quota": {
			edit: func(f *Fleet) { f.Teams[0].Quota["H100"] = -1 },
			want: []string{"teams[0].quota.H100: -1 is negative"},
		},
		"capacity contract without gpus": {
			edit: func(f *Fleet) {
				f.Contracts = append(f.Contracts, Contract{Name: "az", Provider: "azure", Kind: CapacityCommitment, Start: f.Contracts[0].Start, End: f.Contracts[0].End})
			},
			want: []string{"contracts[1].gpu: a capacity commitment needs the GPU model", "contracts[1].gpus: a capacity commitment needs the number of GPUs"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := validFleet()
			tc.edit(f)
			err := f.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var list FieldErrors
			if !errors.As(err, &list) {
				t.Fatalf("Validate() = %v, want FieldErrors", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if len(list) != len(tc.want) {
				t.Errorf("got %d errors, want %d:\n%v", len(list), len(tc.want), err)
			}
		})
	}
}

func TestWorkloadValidate(t *testing.T) {
	ok := Workload{Kind: Job, NumNodes: 2, Order: AnyOf, Options: []Resources{{GPU: "H100", GPUsPerNode: 8}}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid workload: %v", err)
	}
	bad := ok
	bad.NumNodes = 0
	bad.Options = []Resources{{GPU: "", GPUsPerNode: 0, CPUs: -1}}
	bad.Recovery.MaxRestartsOnErrors = -2
	err := bad.Validate()
	for _, w := range []string{"num_nodes: 0 is out of range", "resources[0].accelerators: no GPU model", "resources[0].accelerators: 0 GPUs per node", "resources[0].cpus: -1 is negative", "job_recovery.max_restarts_on_errors"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not contain %q", err, w)
		}
	}
}

func TestFieldErrorsMergePrefixesPaths(t *testing.T) {
	var inner FieldErrors
	inner.Add("name", "bad")
	inner.Add("[2]", "also bad")
	var outer FieldErrors
	outer.Merge("clusters[0]", inner.Err())
	outer.Merge("policy", errors.New("plain"))
	got := outer.Error()
	want := "clusters[0].name: bad\nclusters[0][2]: also bad\npolicy: plain"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if (FieldErrors{}).Err() != nil {
		t.Fatal("empty FieldErrors.Err() must be nil")
	}
}
