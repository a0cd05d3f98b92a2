package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

type eventsOptions struct {
	client clientOptions
	output string
}

func newEventsCmd(env *Env) *cobra.Command {
	var o eventsOptions
	cmd := &cobra.Command{
		Use:   "events ID",
		Short: "Show a job's history: every state change, who made it and why",
		Long: `events lists a job's history in order: when, who (an API token, the
reconciler), the state change, the attempt, and the message (the engine's
placement, the backend's exit status, a preemption, a cancel).`,
		Example: `  gpubroker events 42
  gpubroker events 42 -o json`,
		Args: exactArgs(1, "the job ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(cmd, o.output, "table", "json", "yaml"); err != nil {
				return err
			}
			id, err := parseJobID(cmd, args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := env.connect(ctx, o.client, false)
			if err != nil {
				return err
			}
			evs, err := c.Events(ctx, id)
			if err != nil {
				return fmt.Errorf("job %d: %w", id, err)
			}
			if ok, err := writeDoc(env.Stdout, o.output, map[string]any{"events": nonNil(evs)}); ok {
				return err
			}
			tw := newTable(env.Stdout)
			fmt.Fprintln(tw, "SEQ\tAT\tACTOR\tFROM\tTO\tATTEMPT\tMESSAGE")
			for _, e := range evs {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\n", e.Seq, e.At.Local().Format(time.DateTime),
					orDash(e.Actor), orDash(string(e.From)), e.To, e.Attempt, orDash(oneLine(e.Message)))
			}
			return tw.Flush()
		},
	}
	addClientFlags(cmd, &o.client)
	addOutputFlag(cmd, &o.output, "table", "json", "yaml")
	return cmd
}
