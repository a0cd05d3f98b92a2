package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

type usageOptions struct {
	client clientOptions
	output string
	since  string
	by     []string
}

func newUsageCmd(env *Env) *cobra.Command {
	var o usageOptions
	cmd := &cobra.Command{
		Use:   "usage",
		Short: "Show GPU-hours and spend, grouped by provider, team, ...",
		Long: `usage sums the GPU-hours and cost of every attempt that ran in the window
(--since, e.g. 24h, 30d), grouped by the columns named in --by (provider,
team, cluster, pool, price_class, contract). Members and viewers see their
own team only.`,
		Example: `  # Spend by provider and team over the last 30 days
  gpubroker usage --since 30d --by provider,team

  # Everything as JSON
  gpubroker usage --since 7d -o json`,
		Args: exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(cmd, o.output, "table", "json", "yaml"); err != nil {
				return err
			}
			by := splitList(o.by)
			ctx := cmd.Context()
			c, err := env.connect(ctx, o.client, false)
			if err != nil {
				return err
			}
			rep, err := c.Usage(ctx, o.since, by)
			if err != nil {
				return err
			}
			rep.Rows = nonNil(rep.Rows)
			if ok, err := writeDoc(env.Stdout, o.output, rep); ok {
				return err
			}
			fmt.Fprintf(env.Stdout, "usage from %s to %s\n", shortTime(rep.Since), shortTime(rep.Until))
			tw := newTable(env.Stdout)
			var head []string
			for _, b := range by {
				head = append(head, strings.ToUpper(b))
			}
			fmt.Fprintln(tw, strings.Join(append(head, "GPU-HOURS", "COST USD"), "\t"))
			for _, r := range rep.Rows {
				var cells []string
				for _, b := range by {
					cells = append(cells, orDash(r.Column(b)))
				}
				cells = append(cells, fmt.Sprintf("%.1f", r.GPUHours()), fmt.Sprintf("%.2f", r.CostUSD()))
				fmt.Fprintln(tw, strings.Join(cells, "\t"))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			_, err = fmt.Fprintf(env.Stdout, "total: $%.2f\n", rep.TotalCostUSD)
			return err
		},
	}
	addClientFlags(cmd, &o.client)
	addOutputFlag(cmd, &o.output, "table", "json", "yaml")
	f := cmd.Flags()
	f.StringVar(&o.since, "since", "30d", "window `DURATION` back from now (e.g. 24h, 7d, 30d)")
	f.StringSliceVar(&o.by, "by", []string{"provider", "team"}, "group by these `COLUMNS` (provider, team, cluster, pool, price_class, contract)")
	return cmd
}

// shortTime shows a time from the API to the minute, in UTC.
func shortTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}
