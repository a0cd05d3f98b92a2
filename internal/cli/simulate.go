package cli

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"gpubroker/internal/catalog"
	"gpubroker/internal/model"
	"gpubroker/internal/sim"
	"gpubroker/internal/sim/report"
	"gpubroker/internal/trace"
)

// defaultSimOut is where simulate writes its report without --out.
const defaultSimOut = "simulate-out"

// scaleJitter is the window a replicated job's submission time is moved
// by (uniformly, from the seed): copies of one job arrive spread over the
// next hour instead of all at once.
const scaleJitter = time.Hour

type simulateOptions struct {
	trace      string
	fleet      string
	policies   []string
	seed       int64
	scale      float64
	gpu        string
	gpusPer    int
	start      string
	allowSpot  bool
	checkpoint time.Duration
	limit      int
	round      time.Duration
	out        string
	output     string
	progress   bool
}

func newSimulateCmd(env *Env) *cobra.Command {
	var o simulateOptions
	cmd := &cobra.Command{
		Use:   "simulate --trace KIND:PATH --fleet FLEET.yaml --seed N",
		Short: "Replay a real GPU-cluster trace through a fleet under several policies",
		Long: `simulate replays a public GPU-cluster trace through a fleet with the same
scheduling engine the server uses, once per policy, over the same jobs and
seed, and prints one row per policy side by side. It writes report.json and
a self-contained report.html (charts: cost by provider over time, commitment
burn-down against plan, provider share against the cap, JCT and queueing
distributions) into --out.

Traces (--trace KIND:PATH, PATH a file or a trace directory):
  philly        Microsoft Philly (Pollux job table), DIR/philly_jobs.csv
  itp           Microsoft ITP, DIR/raw/cluster*.csv
  itp-deadline  ITP with deadlines, DIR/elasticflow-augmented/cluster*.csv
  openb         Alibaba GPU 2023 (FGD), DIR/openb_pod_list_default.csv
Malformed rows are skipped, counted and listed on stderr. Philly and ITP do
not say which GPU a job used; --gpu maps them onto a model of your fleet
(default: the reader's guess, P100 for Philly, V100 for ITP); a list
(--gpu H100,H200) lets each such job run on any of the models, same shape. Trace teams
the fleet does not list are mapped round-robin onto the fleet's teams.

Policies (--policy, repeatable; default gpubroker):
  gpubroker        the fleet and its policy as configured
  single:PROVIDER  everything on one provider, on demand at list, no contracts
  cheapest         cheapest feasible list price, blind to commitments and
                   the share cap (commitments signed are still paid)
  fifo             the fleet's policy without fair share between teams

--scale X replicates the trace to fill a bigger fleet: every job is
submitted floor(X) times, plus once more with probability X - floor(X)
(0.5 keeps about half the jobs). Copy k of job ID is ID-xK, submitted
uniformly within the hour after the original; its size and duration are
the original's. Which jobs get the extra copy and each copy's delay come
from --seed, so the same seed gives the same jobs. Job shapes stay as the
trace recorded them; only the arrival rate grows.

The trace's first arrival is moved to --start (default: the start of the
fleet's latest-starting contract, so that every contract is in force), and
the report covers the replayed span only: a seven-year commitment's
burn-down shows the months the trace covers.

Columns: COST is all spend over the span, take-or-pay capacity included
whether used or not; $/GPU-H is COST per GPU-hour of work kept; COMMIT
SHORTFALL is how far contract spend trails the contracts' plans; JCT is
arrival to completion, QUEUE arrival to first start; GPU-H LOST is work
thrown away by preemptions and outages; MAX SHARE is the largest share of
GPU-hours any provider held over the policy's window, as it turned out (the
cap is enforced on each admission's projection, so runs that last longer
than expected or restart can push it past the cap); OVER CAP counts
admissions the policy let over the cap because nothing fitted within it
(cap_fallback); NEVER RUNNABLE counts
jobs that could not run by the end (report.json says why).

A progress bar goes to stderr when it is a terminal (or with --progress).
-o json prints report.json to stdout instead of the table.`,
		Example: `  # The lab scenario: Philly scaled 4x, four policies side by side
  gpubroker simulate --trace philly:../shared/data/traces/philly \
    --fleet examples/lab-2026/fleet.yaml \
    --policy gpubroker --policy single:azure --policy cheapest --policy fifo \
    --seed 1 --scale 4 --gpu H100 --allow-spot --checkpoint 30m --out /tmp/lab

  # A quick look at the first 5,000 jobs under the fleet's own policy
  gpubroker simulate --trace philly:../shared/data/traces/philly \
    --fleet examples/fleet.yaml --gpu H100 --seed 7 --limit 5000

  # ITP with deadlines, report as JSON on stdout
  gpubroker simulate --trace itp-deadline:../shared/data/traces/microsoft-itp \
    --fleet examples/fleet.yaml --gpu A100-80GB --seed 1 -o json`,
		Args: exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.simulate(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.trace, "trace", "", "trace to replay as `KIND:PATH` (philly, itp, itp-deadline, openb; PATH a file or directory)")
	f.StringVarP(&o.fleet, "fleet", "f", "", "fleet `FILE` (YAML) to replay the trace through")
	f.StringArrayVar(&o.policies, "policy", nil, "policy `NAME` to run: gpubroker, single:PROVIDER, cheapest or fifo (repeatable; default gpubroker)")
	f.Int64Var(&o.seed, "seed", 0, "random seed `N` (required, non-zero): the same seed replays the same run")
	f.Float64Var(&o.scale, "scale", 1, "replicate the trace `X` times (fractional: an extra copy of each job with probability X-floor(X))")
	f.StringVar(&o.gpu, "gpu", "", "GPU `MODEL[,MODEL...]` the trace's jobs ask for when it names none; several: any of them (default: the trace kind's, P100 for philly)")
	f.IntVar(&o.gpusPer, "gpus-per-node", 0, "node size `N` trace jobs are shaped into (default 8)")
	f.StringVar(&o.start, "start", "", "move the trace's first arrival to `TIME` (RFC 3339 or YYYY-MM-DD; default: the latest contract start)")
	f.BoolVar(&o.allowSpot, "allow-spot", false, "let every trace job run on spot capacity (traces do not say)")
	f.DurationVar(&o.checkpoint, "checkpoint", 0, "checkpoint `INTERVAL` for trace jobs (e.g. 30m; default none: a preempted job restarts from scratch)")
	f.IntVar(&o.limit, "limit", 0, "replay only the first `N` jobs of the trace (before --scale; 0: all)")
	f.DurationVar(&o.round, "round", sim.DefaultRoundInterval, "least simulated `TIME` between scheduling rounds")
	f.StringVar(&o.out, "out", defaultSimOut, "`DIR` to write report.json and report.html into (created)")
	f.StringVarP(&o.output, "output", "o", "table", "output `FORMAT`: table or json")
	f.BoolVar(&o.progress, "progress", false, "show a progress bar on stderr even when it is not a terminal")
	return cmd
}

func (env *Env) simulate(cmd *cobra.Command, o simulateOptions) error {
	if err := checkSimulateFlags(cmd, &o); err != nil {
		return err
	}
	var opt trace.Options
	var gpus []model.GPUModel
	if o.gpu != "" {
		for _, name := range strings.Split(o.gpu, ",") {
			g, err := catalog.ParseGPU(strings.TrimSpace(name))
			if err != nil {
				return usageError(cmd, "--gpu: %v", err)
			}
			if !slices.Contains(gpus, g) {
				gpus = append(gpus, g)
			}
		}
		opt.DefaultGPU = gpus[0]
	}
	opt.GPUsPerNode = o.gpusPer
	opt.Limit = o.limit

	fleet, err := env.loadFleet(o.fleet, catalog.Builtin())
	if err != nil {
		return err
	}
	for _, p := range o.policies {
		if _, err := sim.ApplyPolicy(fleet, p); err != nil {
			return usageError(cmd, "--policy: %v", err)
		}
	}
	start, err := simStart(o.start, fleet)
	if err != nil {
		return usageError(cmd, "--start: %v", err)
	}

	tr, err := trace.Open(o.trace, opt)
	if err != nil {
		return fmt.Errorf("--trace %s: %w", o.trace, err)
	}
	env.reportTrace(o.trace, tr)
	if len(tr.Workloads) == 0 {
		return fmt.Errorf("--trace %s: no usable jobs (%d rows read, %d malformed)", o.trace, tr.Rows, len(tr.Malformed))
	}
	if len(gpus) > 1 {
		anyOfGPUs(tr.Workloads, opt.DefaultGPU, gpus[1:])
	}
	jobs := scaleTrace(tr.Workloads, o.scale, o.seed)
	if len(jobs) == 0 {
		return fmt.Errorf("--scale %v keeps none of the trace's %d jobs; give a larger scale", o.scale, len(tr.Workloads))
	}
	fmt.Fprintf(env.Stderr, "simulating %s jobs (%s from the trace x scale %s) through %s: %s, seed %d\n",
		thousands(len(jobs)), thousands(len(tr.Workloads)), strconv.FormatFloat(o.scale, 'g', -1, 64),
		o.fleet, strings.Join(o.policies, ", "), o.seed)

	cfg := sim.Config{
		Seed:               o.seed,
		Fleet:              fleet,
		RoundInterval:      o.round,
		Start:              start,
		AllowSpot:          o.allowSpot,
		CheckpointInterval: o.checkpoint,
	}
	var bar *progressBar
	if o.progress || isTerminal(env.Stderr) {
		bar = &progressBar{w: env.Stderr, start: time.Now()}
		cfg.Progress = bar.update
	}
	results, err := runPolicies(cmd, cfg, jobs, o.policies)
	bar.finish()
	if err != nil {
		return err
	}
	for _, r := range results {
		for _, n := range r.Notes {
			fmt.Fprintf(env.Stderr, "note: %s: %s\n", r.Policy, n)
		}
	}

	rep := sim.NewReport(o.trace, o.fleet, o.seed, o.scale, results)
	var js, page bytes.Buffer
	if err := report.WriteJSON(&js, &rep); err != nil {
		return err
	}
	if err := report.WriteHTML(&page, &rep); err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	jsonFile, htmlFile := filepath.Join(o.out, "report.json"), filepath.Join(o.out, "report.html")
	if err := os.WriteFile(jsonFile, js.Bytes(), 0o644); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if err := os.WriteFile(htmlFile, page.Bytes(), 0o644); err != nil {
		return fmt.Errorf("--out: %w", err)
	}

	if o.output == "json" {
		_, err = env.Stdout.Write(js.Bytes())
	} else {
		err = writeSimTable(env.Stdout, results)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "simulated %s .. %s (%s); wrote %s and %s\n",
		rep.Start.Format("2006-01-02"), rep.End.Format("2006-01-02"), simDuration(rep.End.Sub(rep.Start).Seconds()), jsonFile, htmlFile)
	return nil
}

// checkSimulateFlags checks what needs no file, so a mistyped command line
// fails before a large trace is read.
func checkSimulateFlags(cmd *cobra.Command, o *simulateOptions) error {
	switch {
	case o.trace == "":
		return usageError(cmd, "--trace is required: give the trace as KIND:PATH, e.g. --trace philly:data/traces/philly")
	case o.fleet == "":
		return usageError(cmd, "--fleet is required: give the fleet file to replay the trace through, e.g. --fleet examples/fleet.yaml")
	case o.seed == 0:
		return usageError(cmd, "--seed is required (any non-zero integer): the same seed replays the same run")
	case !(o.scale > 0) || math.IsInf(o.scale, 0):
		return usageError(cmd, "--scale: %v is not a positive number; give e.g. 1, 2.5 or 4", o.scale)
	case o.limit < 0:
		return usageError(cmd, "--limit: %d is negative; give 0 (all jobs) or more", o.limit)
	case o.round <= 0:
		return usageError(cmd, "--round: %s must be positive, e.g. 1m", o.round)
	case o.checkpoint < 0:
		return usageError(cmd, "--checkpoint: %s must not be negative", o.checkpoint)
	case o.gpusPer < 0 || o.gpusPer > model.MaxGPUsPerNode:
		return usageError(cmd, "--gpus-per-node: %d is out of range; give 1 to %d", o.gpusPer, model.MaxGPUsPerNode)
	case o.out == "":
		return usageError(cmd, "--out: give a directory for report.json and report.html")
	}
	switch o.output {
	case "table", "json":
	default:
		return usageError(cmd, "--output: unknown format %q; use table or json", o.output)
	}
	if len(o.policies) == 0 {
		o.policies = []string{"gpubroker"}
	}
	seen := map[string]bool{}
	for i, p := range o.policies {
		p = strings.TrimSpace(p)
		o.policies[i] = p
		switch {
		case p == "gpubroker", p == "cheapest", p == "fifo":
		case strings.HasPrefix(p, "single:") && len(p) > len("single:"):
		default:
			return usageError(cmd, "--policy: unknown policy %q; use one of %s", p, strings.Join(sim.PolicyNames, ", "))
		}
		if seen[p] {
			return usageError(cmd, "--policy: %q is given twice", p)
		}
		seen[p] = true
	}
	return nil
}

// simStart is the instant the trace's first arrival moves to: the --start
// flag, else the start of the fleet's latest-starting contract, else zero
// (the trace's own clock).
func simStart(flag string, f *model.Fleet) (time.Time, error) {
	if flag != "" {
		for _, layout := range []string{time.RFC3339, time.DateOnly} {
			if t, err := time.Parse(layout, flag); err == nil {
				return t.UTC(), nil
			}
		}
		return time.Time{}, fmt.Errorf("%q is not a time; write e.g. 2026-01-01 or 2026-01-01T00:00:00Z", flag)
	}
	var t time.Time
	for _, c := range f.Contracts {
		if c.Start.After(t) {
			t = c.Start
		}
	}
	return t.UTC(), nil
}

// reportTrace prints what the trace reader skipped or guessed: the count of
// malformed rows by reason with a few examples, and its notes.
func (env *Env) reportTrace(name string, tr *trace.Result) {
	if n := len(tr.Malformed); n > 0 {
		by := tr.MalformedByReason()
		reasons := make([]string, 0, len(by))
		for r := range by {
			reasons = append(reasons, r)
		}
		slices.SortFunc(reasons, func(a, b string) int {
			return cmp.Or(cmp.Compare(by[b], by[a]), cmp.Compare(a, b))
		})
		parts := make([]string, len(reasons))
		for i, r := range reasons {
			parts[i] = fmt.Sprintf("%s %s", thousands(by[r]), r)
		}
		fmt.Fprintf(env.Stderr, "warning: %s: %s of %s rows malformed and skipped: %s\n",
			name, thousands(n), thousands(tr.Rows), strings.Join(parts, ", "))
		const examples = 5
		for _, m := range tr.Malformed[:min(n, examples)] {
			fmt.Fprintf(env.Stderr, "warning:   %s\n", m)
		}
		if n > examples {
			fmt.Fprintf(env.Stderr, "warning:   ... and %s more\n", thousands(n-examples))
		}
	}
	for _, note := range tr.Notes {
		fmt.Fprintf(env.Stderr, "note: %s: %s\n", name, note)
	}
}

// anyOfGPUs lets every job that asks only for def (the trace named no GPU)
// run on any of def and more, in the same shape.
func anyOfGPUs(ws []*model.Workload, def model.GPUModel, more []model.GPUModel) {
	for _, w := range ws {
		if len(w.Options) != 1 || w.Options[0].GPU != def {
			continue
		}
		opts := make([]model.Resources, 0, 1+len(more))
		opts = append(opts, w.Options[0])
		for _, g := range more {
			r := w.Options[0]
			r.GPU = g
			opts = append(opts, r)
		}
		w.Options = opts
		w.Order = model.AnyOf
	}
}

// scaleTrace replicates ws: floor(x) copies of each job plus one more with
// probability x - floor(x). Copy 0 is the job itself; copy k > 0 has ID
// "<ID>-x<k>" and is submitted up to scaleJitter later. Draws come from a
// generator seeded by seed alone, in trace order, so the result depends
// only on ws, x and seed. The result is sorted by (Submitted, ID); ws is
// not modified.
func scaleTrace(ws []*model.Workload, x float64, seed int64) []*model.Workload {
	if x == 1 {
		return ws
	}
	whole := int(math.Floor(x))
	frac := x - float64(whole)
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5ca1e5ca1e))
	out := make([]*model.Workload, 0, int(math.Ceil(x*float64(len(ws)))))
	for _, w := range ws {
		n := whole
		if frac > 0 && rng.Float64() < frac {
			n++
		}
		for k := range n {
			if k == 0 {
				out = append(out, w)
				continue
			}
			c := *w
			c.ID = fmt.Sprintf("%s-x%d", w.ID, k)
			delay := time.Duration(rng.Int64N(int64(scaleJitter)))
			c.Submitted = w.Submitted.Add(delay)
			if !w.Deadline.IsZero() {
				c.Deadline = w.Deadline.Add(delay)
			}
			out = append(out, &c)
		}
	}
	slices.SortStableFunc(out, func(a, b *model.Workload) int {
		return cmp.Or(a.Submitted.Compare(b.Submitted), strings.Compare(a.ID, b.ID))
	})
	return out
}

// runPolicies runs the simulations, returning early (and leaving them to
// the process's exit) when ctx is cancelled: the simulator has no
// cancellation of its own.
func runPolicies(cmd *cobra.Command, cfg sim.Config, jobs []*model.Workload, names []string) ([]*sim.Result, error) {
	type out struct {
		rs  []*sim.Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		rs, err := sim.RunPolicies(cfg, jobs, names)
		done <- out{rs, err}
	}()
	select {
	case o := <-done:
		if errors.Is(o.err, sim.ErrUnknownPolicy) {
			return nil, fmt.Errorf("--policy: %w", o.err)
		}
		return o.rs, o.err
	case <-cmd.Context().Done():
		return nil, cmd.Context().Err()
	}
}
