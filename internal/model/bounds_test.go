package model

import (
	"strings"
	"testing"
)

// A fleet's lists and the nodes of all its pools together are bounded;
// each refusal names the field.
func TestFleetBounds(t *testing.T) {
	t.Parallel()
	pool := func(nodes int) Pool {
		return Pool{Name: "p", GPU: "H100", GPUsPerNode: 8, Nodes: nodes, PriceClass: Committed}
	}
	tests := map[string]struct {
		edit func(f *Fleet)
		want string
	}{
		"clusters": {func(f *Fleet) {
			c := f.Clusters[0]
			c.Pools[0].Contract = ""
			for i := 0; i < MaxClusters; i++ {
				c.Name = "c" + strings.Repeat("x", i%3) + string(rune('a'+i%26))
				f.Clusters = append(f.Clusters, c)
			}
		}, "clusters: 10001 entries are more than 10000"},
		"fleet nodes": {func(f *Fleet) {
			for i := 0; i < 41; i++ {
				f.Clusters[0].Pools = append(f.Clusters[0].Pools, pool(MaxPoolNodes))
				f.Clusters[0].Pools[i+1].Name = "p" + string(rune('a'+i%26)) + string(rune('a'+i/26))
			}
		}, "clusters: the pools hold 4100004 nodes (max_nodes for elastic pools), more than 4000000"},
		"region":        {func(f *Fleet) { f.Clusters[0].Region = "us\x00east" }, `clusters[0].region: "us\x00east" holds a control character`},
		"long region":   {func(f *Fleet) { f.Clusters[0].Region = strings.Repeat("r", 129) }, "clusters[0].region: 129 bytes is too long"},
		"contract term": {func(f *Fleet) { f.Contracts[0].End = f.Contracts[0].Start.AddDate(1000, 0, 0) }, "contracts[0].term: the term is longer than 100 years"},
		"team regions":  {func(f *Fleet) { f.Teams[0].Regions = make([]string, MaxRegions+1) }, "teams[0].regions: 1001 entries are more than 1000"},
	}
	for name, tc := range tests {
		f := validFleet()
		tc.edit(f)
		err := f.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %.300v; want %q", name, err, tc.want)
		}
	}
}
