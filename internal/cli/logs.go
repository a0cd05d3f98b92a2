package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"gpubroker/internal/api"
)

type logsOptions struct {
	client clientOptions
	follow bool
	tail   int
}

func newLogsCmd(env *Env) *cobra.Command {
	var o logsOptions
	cmd := &cobra.Command{
		Use:   "logs [-f | --tail N] ID",
		Short: "Print a job's output",
		Long: `logs prints the output of a job's current attempt (every node; prefixed by
node rank when the job has several).

With --tail N it prints only the last N lines of each node's output, read
from the end of the log: quick however long the log is.

A log stops growing at the server's --max-log-size (default 1 GiB per
attempt): it keeps the job's first output, then a line starting
"[gpubroker] output truncated:"; the job runs on.

With -f it waits for a pending job to start, streams its output as it is
written, carries on through new attempts after a preemption or a lost node,
and returns when the job ends. A server restart while following is ridden
out: the stream resumes where it stopped.`,
		Example: `  # What job 42 printed so far
  gpubroker logs 42

  # Follow it until it ends
  gpubroker logs -f 42

  # Its last 100 lines
  gpubroker logs --tail 100 42`,
		Args: exactArgs(1, "the job ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseJobID(cmd, args[0])
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("tail") && (o.tail < 1 || o.tail > maxTailLines) {
				return usageError(cmd, "--tail: %d is not a number of lines from 1 to %d", o.tail, maxTailLines)
			}
			if o.follow && o.tail > 0 {
				return usageError(cmd, "--tail and -f cannot be combined; give one")
			}
			ctx := cmd.Context()
			c, err := env.connect(ctx, o.client, false)
			if err != nil {
				return err
			}
			if o.tail > 0 {
				rc, err := c.TailLogs(ctx, id, 0, o.tail)
				if err != nil {
					return fmt.Errorf("job %d: %w", id, err)
				}
				defer rc.Close()
				_, err = io.Copy(env.Stdout, rc)
				return err
			}
			if o.follow {
				_, err := env.follow(ctx, c, id)
				return err
			}
			rc, err := c.Logs(ctx, id, 0, false)
			if err != nil {
				return fmt.Errorf("job %d: %w", id, err)
			}
			defer rc.Close()
			_, err = io.Copy(env.Stdout, rc)
			return err
		},
	}
	addClientFlags(cmd, &o.client)
	cmd.Flags().BoolVarP(&o.follow, "follow", "f", false, "stream the output until the job ends")
	cmd.Flags().IntVar(&o.tail, "tail", 0, "print only the last `N` lines of each node's output (1 to 10000)")
	return cmd
}

// maxTailLines is the most lines --tail may ask for (the API's bound).
const maxTailLines = 10_000

// pollInterval is how often follow looks at a job that has not started.
const pollInterval = 250 * time.Millisecond

// serverPatience is how long a following command waits for a server that
// went away (a restart) before it gives up.
const serverPatience = 2 * time.Minute

// follow prints a job's output to stdout from its first attempt to its
// end and returns the job as it ended. Notes (waiting, new attempt) go to
// stderr. Output already printed is not printed again when the stream is
// reopened, after a restart of the server or for the final read.
func (env *Env) follow(ctx context.Context, c *api.Client, id int64) (*api.Job, error) {
	printed := map[int]int64{} // attempt -> bytes of its output printed
	lastReason, lastAttempt := "", 0
	for {
		j, err := retry(ctx, serverPatience, func() (*api.Job, error) { return c.Job(ctx, id) })
		if err != nil {
			return nil, fmt.Errorf("job %d: %w", id, err)
		}
		if lastAttempt != 0 && j.Attempt != lastAttempt {
			fmt.Fprintf(env.Stderr, "job %d: attempt %d (%s)\n", id, j.Attempt, orDash(oneLine(j.Reason)))
		}
		lastAttempt = j.Attempt
		switch {
		case j.State == api.Pending || j.State == api.Admitted:
			if j.Reason != lastReason && j.Reason != "" {
				fmt.Fprintf(env.Stderr, "job %d: %s: %s\n", id, j.State, oneLine(j.Reason))
				lastReason = j.Reason
			}
			if err := sleep(ctx, pollInterval); err != nil {
				return nil, err
			}
		case j.State.Terminal():
			if err := env.copyLogs(ctx, c, j, false, printed); err != nil && !notFound(err) && !transient(err) {
				return nil, err
			}
			return j, nil
		default: // dispatched or running: stream until the attempt ends
			err := env.copyLogs(ctx, c, j, true, printed)
			switch {
			case err == nil, notFound(err):
				// Ended, or not started yet on the backend: look again.
				if err := sleep(ctx, pollInterval/5); err != nil {
					return nil, err
				}
			case transient(err):
				if err := sleep(ctx, pollInterval); err != nil {
					return nil, err
				}
			default:
				return nil, err
			}
		}
	}
}

// copyLogs copies the output of j's current attempt to stdout, skipping
// what was printed before. Following, it stops where the server's stream
// would go on to the next attempt (a line "==> attempt N <=="): follow
// reads each attempt on its own, so a reconnect resumes at the right byte.
func (env *Env) copyLogs(ctx context.Context, c *api.Client, j *api.Job, follow bool, printed map[int]int64) error {
	rc, err := c.Logs(ctx, j.ID, j.Attempt, follow)
	if err != nil {
		return err
	}
	defer rc.Close()
	skip := printed[j.Attempt]
	if skip > 0 {
		n, err := io.CopyN(io.Discard, rc, skip)
		if err != nil {
			if errors.Is(err, io.EOF) && n < skip {
				return nil // the stream is shorter than what we printed: nothing new
			}
			return err
		}
	}
	br := bufio.NewReader(rc)
	for {
		line, err := br.ReadString('\n')
		if follow && strings.HasPrefix(line, nextAttemptMarker) {
			return nil
		}
		if len(line) > 0 {
			n, werr := io.WriteString(env.Stdout, line)
			printed[j.Attempt] += int64(n)
			if werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// nextAttemptMarker starts the line with which the server's log stream
// goes on to a job's next attempt.
const nextAttemptMarker = "==> attempt "

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
