package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

func newCancelCmd(env *Env) *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "cancel ID...",
		Short: "Cancel jobs",
		Long: `cancel stops each job named: a pending job never runs, a running one has
all its processes (every node) killed. A job that already ended is left
as it is, and cancel says how it ended. cancel exits 1 when some ID could
not be cancelled (unknown, or another team's), after trying every one.`,
		Example: `  gpubroker cancel 42
  gpubroker cancel 42 43 44`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError(cmd, "%s needs at least one job ID", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var ids []int64
			for _, a := range args {
				id, err := parseJobID(cmd, a)
				if err != nil {
					return err
				}
				ids = append(ids, id)
			}
			ctx := cmd.Context()
			c, err := env.connect(ctx, o, false)
			if err != nil {
				return err
			}
			var errs []error
			for _, id := range ids {
				// The API answers alike for "cancelled now" and "had ended
				// before"; the state before tells the user which.
				j, err := c.Job(ctx, id)
				ended := err == nil && j.State.Terminal()
				if err == nil && !ended {
					j, err = c.Cancel(ctx, id)
				}
				switch {
				case err != nil:
					errs = append(errs, fmt.Errorf("job %d: %w", id, err))
				case ended:
					fmt.Fprintf(env.Stdout, "job %d (%s) had already ended: %s\n", j.ID, orDash(j.Name()), j.State)
				default:
					fmt.Fprintf(env.Stdout, "cancelled job %d (%s)\n", j.ID, orDash(j.Name()))
				}
			}
			return errors.Join(errs...)
		},
	}
	addClientFlags(cmd, &o)
	return cmd
}
