package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"gpubroker/internal/api"
	"gpubroker/internal/engine"
	"gpubroker/internal/model"
	"gpubroker/internal/plandoc"
)

// planTop is how many feasible candidates the default output shows.
const planTop = 10

type planOptions struct {
	fleet            string
	catalogs         []string
	catalogProviders []string
	output           string
	all              bool
	now              string
}

func newPlanCmd(env *Env) *cobra.Command {
	var o planOptions
	cmd := &cobra.Command{
		Use:   "plan TASK.yaml",
		Short: "Show where a task would run, at what effective cost, and why",
		Long: `plan ranks every place each workload of a task file could run and says why
the winner wins and why each other candidate lost. It changes nothing.

With --fleet, gpubroker plans against that fleet's clusters, pools,
contracts, teams and policy. Without it, it plans against the built-in
price list of public clouds (one cluster per provider and region, on-demand
and spot pools per instance type), as SkyPilot's optimizer would.

Effective cost is what the ranking minimises: list price, less contract
discounts, less committed take-or-pay capacity already paid for, less a
shadow discount for spend that helps burn a commitment projected to fall
short, plus the expected cost of work lost to spot preemption, plus data
egress to the workload's data region.

The table shows the 10 cheapest feasible candidates and a count of the
infeasible ones by reason; --all shows every row. -o json (or -o yaml)
prints every candidate with its full cost breakdown. plan exits 1 when some workload has
no feasible candidate.`,
		Example: `  # Against a fleet: committed capacity, contracts, quotas, share cap
  gpubroker plan examples/llama-70b-finetune.yaml --fleet examples/fleet.yaml

  # Against the built-in catalog, every candidate, with the cost breakdown
  gpubroker plan examples/bert-spot.yaml --all -o wide

  # Add a SkyPilot catalog file to the built-in prices; JSON for scripts
  gpubroker plan task.yaml --catalog catalogs/aws/vms.csv --catalog-provider aws -o json

  # The same document as YAML
  gpubroker plan examples/bert-spot.yaml -o yaml

  # Plan as of a date (contract burn-down depends on it)
  gpubroker plan examples/gb200-pretrain.yaml --fleet examples/fleet.yaml --now 2027-06-01T00:00:00Z`,
		Args: exactArgs(1, "the task file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.plan(cmd, args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.fleet, "fleet", "f", "", "fleet `FILE` (YAML) to plan against; default: the built-in catalog")
	f.StringArrayVar(&o.catalogs, "catalog", nil, "SkyPilot catalog `CSV` to add to the built-in prices (repeatable)")
	f.StringArrayVar(&o.catalogProviders, "catalog-provider", nil, "`PROVIDER` of each --catalog, in the same order (default: the CSV's directory name)")
	f.StringVarP(&o.output, "output", "o", "table", "output `FORMAT`: table, wide, json or yaml")
	f.BoolVar(&o.all, "all", false, "show every candidate, not the top 10 and a summary")
	f.StringVar(&o.now, "now", "", "plan as of `TIME` (RFC 3339, e.g. 2026-06-01T00:00:00Z); default: now")
	return cmd
}

// workloadPlan is one workload and its ranked candidates.
type workloadPlan struct {
	w          *model.Workload
	candidates []engine.Candidate
}

func (p workloadPlan) feasible() int {
	n := 0
	for _, c := range p.candidates {
		if c.Feasible {
			n++
		}
	}
	return n
}

func (env *Env) plan(cmd *cobra.Command, taskFile string, o planOptions) error {
	if err := checkOutput(cmd, o.output, "table", "wide", "json", "yaml"); err != nil {
		return err
	}
	now := env.Now()
	if o.now != "" {
		t, err := time.Parse(time.RFC3339, o.now)
		if err != nil {
			return usageError(cmd, "--now: %q is not an RFC 3339 time; write e.g. 2026-06-01T00:00:00Z", o.now)
		}
		now = t
	}
	if len(o.catalogProviders) > 0 && len(o.catalogs) == 0 {
		return usageError(cmd, "--catalog-provider: given without --catalog")
	}

	cat, err := env.loadCatalog(o.catalogs, o.catalogProviders)
	if err != nil {
		return err
	}
	task, err := env.loadTask(taskFile)
	if err != nil {
		return err
	}
	fleetName := "built-in catalog"
	fleet := cat.Fleet()
	if o.fleet != "" {
		if fleet, err = env.loadFleet(o.fleet, cat); err != nil {
			return err
		}
		fleetName = o.fleet
	}

	snap := &engine.Snapshot{Fleet: fleet}
	plans := make([]workloadPlan, 0, len(task.Workloads))
	for _, w := range task.Workloads {
		if err := cmd.Context().Err(); err != nil {
			return err
		}
		plans = append(plans, workloadPlan{w: w, candidates: engine.Plan(snap, fleet.Policy, w, now)})
	}

	switch o.output {
	case "json", "yaml":
		_, err = writeDoc(env.Stdout, o.output, planDoc(fleetName, now, plans))
	default:
		err = writePlanTables(env.Stdout, fleet, o.fleet == "", o.output == "wide", o.all, plans)
	}
	if err != nil {
		return err
	}

	var stuck []string
	for _, p := range plans {
		if p.feasible() == 0 {
			stuck = append(stuck, workloadName(p.w))
		}
	}
	if len(stuck) > 0 {
		return fmt.Errorf("no feasible placement for %s in %s; the reasons are listed above", strings.Join(stuck, ", "), fleetName)
	}
	return nil
}

// workloadName is the name to show for a workload; unnamed ones get their
// ID or a placeholder.
func workloadName(w *model.Workload) string {
	switch {
	case w.Name != "":
		return w.Name
	case w.ID != "":
		return w.ID
	default:
		return "(unnamed)"
	}
}

// planDoc is the api.Plan document -o json and -o yaml print, the one
// POST /v1/plan answers too: field names and order only ever grow.
func planDoc(fleet string, now time.Time, plans []workloadPlan) api.Plan {
	out := api.Plan{Fleet: fleet, Now: now.UTC(), Workloads: make([]api.WorkloadPlan, 0, len(plans))}
	for _, p := range plans {
		out.Workloads = append(out.Workloads, plandoc.Describe(p.w, p.candidates))
	}
	return out
}
