package cli

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"gpubroker/internal/api"
)

type statusOptions struct {
	client clientOptions
	output string
	teams  []string
	states []string
}

func newStatusCmd(env *Env) *cobra.Command {
	var o statusOptions
	cmd := &cobra.Command{
		Use:     "status [ID...]",
		Aliases: []string{"queue"},
		Short:   "List jobs: state, where they run, and why pending work waits",
		Long: `status lists jobs like squeue: ID, NAME, TEAM, STATE, GPUS (requested, or
placed as MODEL:per-node xNODES), WHERE (cluster/pool of the current
attempt), ATTEMPT, AGE (since submission) and REASON (for pending work the
engine's reason it waits; for ended work why it ended).

With IDs it shows those jobs, each followed by its attempts: every run of
the job, oldest first, with where it ran (cluster/pool, provider, region),
when it started and ended, and how and why it ended (SUCCEEDED, FAILED,
CANCELLED, or RETRIED: lost with its cluster, preempted, restarted after an
error). A job that failed over from a cluster shows its earlier attempts
there. Without IDs it lists every job the token may see, in ID order,
filtered by --team and --state.

-o wide adds provider, region, price class, price, user and exit code; -o
json and -o yaml print the API's Job objects (with IDs, each job's attempts
too, under "attempts" keyed by job ID). queue is another name for status.`,
		Example: `  # Everything, like squeue
  gpubroker status

  # What is waiting or running for team research, and why
  gpubroker queue --team research --state pending,running

  # One job and its attempts: where each ran and why it ended
  gpubroker status 42

  # One job as YAML
  gpubroker status 42 -o yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.status(cmd, args, o)
		},
	}
	addClientFlags(cmd, &o.client)
	addOutputFlag(cmd, &o.output, "table", "wide", "json", "yaml")
	f := cmd.Flags()
	f.StringSliceVar(&o.teams, "team", nil, "only these `TEAMS` (comma-separated)")
	f.StringSliceVar(&o.states, "state", nil, "only these `STATES` (comma-separated: pending, admitted, dispatched, running, succeeded, failed, cancelled)")
	return cmd
}

func (env *Env) status(cmd *cobra.Command, args []string, o statusOptions) error {
	if err := checkOutput(cmd, o.output, "table", "wide", "json", "yaml"); err != nil {
		return err
	}
	var states []api.State
	for _, s := range splitList(o.states) {
		st := api.State(strings.ToUpper(s))
		if !st.Valid() {
			return usageError(cmd, "--state: unknown state %q; use pending, admitted, dispatched, running, succeeded, failed or cancelled", s)
		}
		states = append(states, st)
	}
	var ids []int64
	for _, a := range args {
		id, err := parseJobID(cmd, a)
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	ctx := cmd.Context()
	c, err := env.connect(ctx, o.client, false)
	if err != nil {
		return err
	}
	var jobs []*api.Job
	if len(ids) > 0 {
		for _, id := range ids {
			j, err := c.Job(ctx, id)
			if err != nil {
				return fmt.Errorf("job %d: %w", id, err)
			}
			jobs = append(jobs, j)
		}
	} else {
		teams := splitList(o.teams)
		if len(teams) <= 1 {
			team := ""
			if len(teams) == 1 {
				team = teams[0]
			}
			jobs, err = c.AllJobs(ctx, api.ListOptions{Team: team, States: states})
		} else {
			for _, t := range teams {
				js, err := c.AllJobs(ctx, api.ListOptions{Team: t, States: states})
				if err != nil {
					return err
				}
				jobs = append(jobs, js...)
			}
			sortJobs(jobs)
		}
		if err != nil {
			return err
		}
	}
	if len(ids) == 0 {
		if ok, err := writeDoc(env.Stdout, o.output, map[string]any{"jobs": nonNil(jobs)}); ok {
			return err
		}
		return writeJobTable(env.Stdout, jobs, env.Now(), o.output == "wide")
	}
	attempts := make(map[string][]api.Attempt, len(jobs))
	for _, j := range jobs {
		as, err := c.Attempts(ctx, j.ID)
		if err != nil {
			return fmt.Errorf("job %d: attempts: %w", j.ID, err)
		}
		attempts[strconv.FormatInt(j.ID, 10)] = nonNil(as)
	}
	doc := struct {
		Jobs     []*api.Job               `json:"jobs"`
		Attempts map[string][]api.Attempt `json:"attempts"`
	}{nonNil(jobs), attempts}
	if ok, err := writeDoc(env.Stdout, o.output, doc); ok {
		return err
	}
	if err := writeJobTable(env.Stdout, jobs, env.Now(), o.output == "wide"); err != nil {
		return err
	}
	for _, j := range jobs {
		fmt.Fprintf(env.Stdout, "\nJob %d attempts:\n", j.ID)
		if err := writeAttempts(env.Stdout, attempts[strconv.FormatInt(j.ID, 10)]); err != nil {
			return err
		}
	}
	return nil
}

// writeAttempts is the attempts table of one job: where each attempt ran,
// when, and why it ended.
func writeAttempts(w io.Writer, as []api.Attempt) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ATTEMPT\tWHERE\tPROVIDER\tREGION\tSTARTED\tENDED\tOUTCOME\tWHY")
	for _, a := range as {
		where := "-"
		if a.Cluster != "" {
			where = a.Cluster + "/" + a.Pool
		}
		outcome := a.Outcome
		if outcome == "" {
			outcome = string(a.State)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Attempt, where, orDash(a.Provider), orDash(a.Region),
			clock(a.Started), clock(a.Ended), outcome, orDash(oneLine(a.Reason)))
	}
	return tw.Flush()
}

// clock is a time of day in the local zone, "-" for none.
func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.TimeOnly)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func sortJobs(jobs []*api.Job) {
	slices.SortFunc(jobs, func(a, b *api.Job) int { return cmp.Compare(a.ID, b.ID) })
}

func writeJobTable(w io.Writer, jobs []*api.Job, now time.Time, wide bool) error {
	tw := newTable(w)
	head := "ID\tNAME\tTEAM\tSTATE\tGPUS\tWHERE\tATTEMPT\tAGE\tREASON"
	if wide {
		head += "\tPROVIDER\tREGION\tCLASS\t$/GPU-H\tUSER\tEXIT"
	}
	fmt.Fprintln(tw, head)
	for _, j := range jobs {
		where := "-"
		if p := j.Placement; p != nil {
			where = p.Cluster + "/" + p.Pool
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s", j.ID, orDash(j.Name()), orDash(j.Team), j.State,
			jobGPUs(j), where, j.Attempt, age(now.Sub(j.Created)), orDash(oneLine(j.Reason)))
		if wide {
			prov, region, class, price := "-", "-", "-", "-"
			if p := j.Placement; p != nil {
				prov, region, class = orDash(string(p.Provider)), orDash(p.Region), orDash(string(p.PriceClass))
				price = fmt.Sprintf("%.2f", p.BilledPerGPUHour)
			}
			exit := "-"
			if j.ExitCode != nil {
				exit = strconv.Itoa(*j.ExitCode)
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s\t%s\t%s", prov, region, class, price, orDash(j.User), exit)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// jobGPUs is what the job holds (placed) or asks for: "H100:8", "H100:8 x2",
// "H100|A100-80GB:8".
func jobGPUs(j *api.Job) string {
	if p := j.Placement; p != nil && p.GPU != "" {
		s := fmt.Sprintf("%s:%d", p.GPU, p.GPUsPerNode)
		if len(p.Nodes) > 1 {
			s += fmt.Sprintf(" x%d", len(p.Nodes))
		}
		return s
	}
	w := j.Workload
	if w == nil || len(w.Options) == 0 {
		return "-"
	}
	var models []string
	seen := map[string]bool{}
	for _, o := range w.Options {
		if g := string(o.GPU); !seen[g] {
			seen[g] = true
			models = append(models, g)
		}
	}
	s := fmt.Sprintf("%s:%d", strings.Join(models, "|"), w.Options[0].GPUsPerNode)
	if w.NumNodes > 1 {
		s += fmt.Sprintf(" x%d", w.NumNodes)
	}
	return s
}

// oneLine keeps a multi-line reason from breaking the table.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
