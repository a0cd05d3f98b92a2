package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"gpubroker/internal/api"
)

func newFleetCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Apply or show the server's fleet: clusters, pools, contracts, teams, policy",
		Long: `fleet manages the fleet the server schedules onto. Until a fleet is applied,
a server runs its built-in local fleet: this machine's GPUs, through the
local backend.`,
		Example: `  gpubroker fleet apply examples/fleet.yaml
  gpubroker fleet show`,
		Args: exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newFleetApplyCmd(env), newFleetShowCmd(env))
	return cmd
}

func newFleetApplyCmd(env *Env) *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "apply FLEET.yaml",
		Short: "Replace the server's fleet with a fleet file (admin)",
		Long: `apply sends a fleet file to the server, which checks it whole and stores it
as a new version; a file with an error changes nothing. Warnings (fields
accepted but ignored) are printed on stderr.`,
		Example: `  gpubroker fleet apply examples/fleet.yaml`,
		Args:    exactArgs(1, "the fleet file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := env.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("fleet file: %w", err)
			}
			ctx := cmd.Context()
			c, err := env.connect(ctx, o, false)
			if err != nil {
				return err
			}
			out, err := c.PutFleet(ctx, string(data))
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			for _, w := range out.Warnings {
				fmt.Fprintf(env.Stderr, "warning: %s\n", w)
			}
			_, err = fmt.Fprintf(env.Stdout, "applied %s as fleet version %d\n", args[0], out.Version)
			return err
		},
	}
	addClientFlags(cmd, &o)
	return cmd
}

type fleetShowOptions struct {
	client clientOptions
	output string
	doc    bool
}

func newFleetShowCmd(env *Env) *cobra.Command {
	var o fleetShowOptions
	cmd := &cobra.Command{
		Use:   "show",
		Short: "List the server's clusters and pools with free GPUs",
		Long: `show lists every cluster and pool the server schedules onto: provider,
region, backend, health status (HEALTHY; CLOSED: answers, takes no new
work; UNHEALTHY: its last check failed or timed out; UNKNOWN: not checked
yet) and when it was last checked, GPU model and shape, free GPUs and
price class. Below the table, each cluster that is not healthy with why.
--doc prints the fleet file as last applied instead.`,
		Example: `  gpubroker fleet show
  gpubroker fleet show -o yaml
  gpubroker fleet show --doc > fleet.yaml`,
		Args: exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(cmd, o.output, "table", "json", "yaml"); err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := env.connect(ctx, o.client, false)
			if err != nil {
				return err
			}
			if o.doc {
				d, err := c.Fleet(ctx)
				if notFound(err) {
					return fmt.Errorf("no fleet applied yet: the server runs its built-in local fleet (gpubroker fleet show lists it)")
				}
				if err != nil {
					return err
				}
				if d.Error != "" {
					fmt.Fprintf(env.Stderr, "error: %s\n", d.Error)
				}
				if ok, err := writeDoc(env.Stdout, o.output, d); ok {
					return err
				}
				_, err = fmt.Fprint(env.Stdout, d.Fleet)
				return err
			}
			// A stored fleet that does not validate (one an older version
			// accepted) is not in force: say so before what is.
			if d, err := c.Fleet(ctx); err == nil && d.Error != "" {
				fmt.Fprintf(env.Stderr, "error: %s\n", d.Error)
			}
			cls, err := c.Clusters(ctx)
			if err != nil {
				return err
			}
			if ok, err := writeDoc(env.Stdout, o.output, map[string]any{"clusters": nonNil(cls)}); ok {
				return err
			}
			now := env.Now()
			tw := newTable(env.Stdout)
			fmt.Fprintln(tw, "CLUSTER\tPROVIDER\tREGION\tBACKEND\tSTATUS\tCHECKED\tPOOL\tGPU\tNODES\tGPUS FREE\tCLASS")
			var why []string
			for _, cl := range cls {
				state, checked := clusterState(cl), "-"
				if cl.CheckedAt != nil {
					checked = age(now.Sub(*cl.CheckedAt))
				}
				if state != "HEALTHY" && cl.Why != "" {
					why = append(why, fmt.Sprintf("%s: %s: %s", cl.Name, state, cl.Why))
				}
				if len(cl.Pools) == 0 {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\n", cl.Name, orDash(string(cl.Provider)), orDash(cl.Region), orDash(cl.Backend), state, checked)
				}
				for _, p := range cl.Pools {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s:%d\t%d\t%s/%d\t%s\n", cl.Name, orDash(string(cl.Provider)), orDash(cl.Region),
						orDash(cl.Backend), state, checked, p.Name, p.GPU, p.GPUsPerNode, p.Nodes,
						strconv.Itoa(p.GPUsFree), p.GPUsPerNode*p.Nodes, orDash(string(p.PriceClass)))
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(why) > 0 {
				fmt.Fprintln(env.Stdout)
			}
			for _, w := range why {
				if _, err := fmt.Fprintln(env.Stdout, w); err != nil {
					return err
				}
			}
			return nil
		},
	}
	addClientFlags(cmd, &o.client)
	addOutputFlag(cmd, &o.output, "table", "json", "yaml")
	cmd.Flags().BoolVar(&o.doc, "doc", false, "print the applied fleet file (YAML) instead of the cluster table")
	return cmd
}

// clusterState is cl's health state: HEALTHY, CLOSED, UNHEALTHY or
// UNKNOWN; a server older than the state field says only whether the
// cluster is healthy.
func clusterState(cl api.Cluster) string {
	switch {
	case cl.State != "":
		return cl.State
	case cl.Healthy:
		return "HEALTHY"
	}
	return "UNHEALTHY"
}
