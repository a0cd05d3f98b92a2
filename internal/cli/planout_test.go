package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"gpubroker/internal/engine"
	"gpubroker/internal/model"
)

func TestWhy(t *testing.T) {
	t.Parallel()
	committed := engine.Candidate{Rank: 1, Option: 0, PriceClass: model.Committed, EffectivePerHour: 0,
		Cost: engine.Cost{CommittedCredit: 3.9, Discount: 1.36}}
	ondemand := engine.Candidate{Rank: 2, Option: 0, PriceClass: model.OnDemand, EffectivePerHour: 12.5,
		Cost: engine.Cost{Egress: 0.16}}
	spot := engine.Candidate{Rank: 1, PriceClass: model.Spot, EffectivePerHour: 0.5, Cost: engine.Cost{SpotRisk: 0.02}}
	tie := engine.Candidate{Rank: 2, PriceClass: model.Spot, EffectivePerHour: 0.5}
	later := engine.Candidate{Rank: 2, Option: 1, PriceClass: model.OnDemand, EffectivePerHour: 0.25}
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"committed winner", winnerWhy(&committed, &ondemand, "aws-2026", false),
			"aws-2026: already-paid committed capacity, discount -$1.36/GPU-h; $12.50/h below #2"},
		{"spot winner in a tie", winnerWhy(&spot, &tie, "", false),
			"spot price, preemption risk +$0.02/GPU-h; ties #2 on cost, ranked first"},
		{"alone", winnerWhy(&ondemand, nil, "", false), "lowest list price, egress +$0.16/GPU-h"},
		{"ordered winner", winnerWhy(&spot, &later, "", true), "spot price, preemption risk +$0.02/GPU-h; earlier choice in the ordered list than #2"},
		{"costlier loser", loserWhy(&ondemand, &committed, false), "costlier by $12.50/h than #1; egress +$0.16/GPU-h"},
		{"tied loser", loserWhy(&tie, &spot, false), "ties #1 on cost, ranked after it"},
		{"later option", loserWhy(&later, &spot, true), "later choice in the ordered list than #1, though $0.25/h cheaper"},
		{"rejections", rejectionText([]engine.Rejection{{Reason: engine.ReasonQuota, Detail: "needs 16"}, {Reason: engine.ReasonSpot}}),
			"QuotaExceeded: needs 16; SpotMismatch"},
		{"negative zero", money(-0.001), "0.00"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, tt.got, tt.want)
		}
	}
}

// plan -o yaml is the -o json document in YAML: the same fields and
// values, read back.
func TestPlanYAMLIsTheJSONDocument(t *testing.T) {
	t.Parallel()
	args := []string{"plan", "examples/bert-spot.yaml", "--now", "2026-06-01T00:00:00Z"}
	j := runCLI(t, append(args, "-o", "json")...)
	y := runCLI(t, append(args, "-o", "yaml")...)
	if j.code != exitOK || y.code != exitOK {
		t.Fatalf("exit %d (json), %d (yaml); stderr:\n%s\n%s", j.code, y.code, j.stderr, y.stderr)
	}
	var fromJSON, fromYAML any
	if err := json.Unmarshal([]byte(j.stdout), &fromJSON); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(y.stdout), &fromYAML); err != nil {
		t.Fatalf("plan -o yaml does not parse: %v\n%s", err, y.stdout)
	}
	// YAML reads whole numbers as ints where JSON reads float64: compare
	// through JSON.
	b, err := json.Marshal(fromYAML)
	if err != nil {
		t.Fatal(err)
	}
	var again any
	json.Unmarshal(b, &again)
	if diff := cmp.Diff(fromJSON, again); diff != "" {
		t.Errorf("-o yaml differs from -o json (-json +yaml):\n%s", diff)
	}
	if !strings.Contains(y.stdout, "workloads:") {
		t.Errorf("-o yaml is not block YAML:\n%.300s", y.stdout)
	}
}
