package cli

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gpubroker/internal/ledger"
	"gpubroker/internal/sim"
)

// writeSimTable prints one row per policy, kubectl style.
func writeSimTable(w io.Writer, results []*sim.Result) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "POLICY\tCOST\t$/GPU-H\tCOST BY PROVIDER\tCOMMIT SHORTFALL\tJCT P50\tJCT P99\tQUEUE P50\tQUEUE P99\tGPU-H LOST\tMAX SHARE\tOVER CAP\tDEADLINES MISSED\tNEVER RUNNABLE")
	for _, r := range results {
		s := r.Summary
		perGPUH := "-"
		if s.GPUHoursRun > 0 {
			perGPUH = fmt.Sprintf("%.2f", s.TotalUSD/s.GPUHoursRun)
		}
		shortfall := "-"
		if len(r.Commitments) > 0 {
			sum := 0.0
			for _, c := range r.Commitments {
				sum += c.ShortfallUSD
			}
			shortfall = usdShort(sum)
		}
		deadlines := "-"
		if r.WithDeadline > 0 {
			deadlines = fmt.Sprintf("%s/%s", thousands(r.DeadlinesMissed), thousands(r.WithDeadline))
		}
		overCap := "-"
		if r.ShareCap > 0 {
			overCap = thousands(r.OverCapAdmissions)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.Policy, usdShort(s.TotalUSD), perGPUH, costByProvider(s.ByProvider, s.TotalUSD), shortfall,
			distCell(r.JCT.Count, r.JCT.P50), distCell(r.JCT.Count, r.JCT.P99),
			distCell(r.Queueing.Count, r.Queueing.P50), distCell(r.Queueing.Count, r.Queueing.P99),
			siShort(s.GPUHoursLost), percent(r.MaxShare), overCap, deadlines, thousands(len(r.NeverRunnable)))
	}
	return tw.Flush()
}

// costByProvider is "aws $1.2B 58% · azure $0.6B 29% ...", largest first.
func costByProvider(as []ledger.Amount, total float64) string {
	as = slices.Clone(as)
	slices.SortStableFunc(as, func(a, b ledger.Amount) int { return cmp.Compare(b.USD, a.USD) })
	var parts []string
	for _, a := range as {
		if a.Key == "" || a.USD <= 0 {
			continue
		}
		p := ""
		if total > 0 {
			p = " " + percent(a.USD/total)
		}
		parts = append(parts, a.Key+" "+usdShort(a.USD)+p)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " · ")
}

func distCell(n int, seconds float64) string {
	if n == 0 {
		return "-"
	}
	return simDuration(seconds)
}

// siShort formats v with a k/M/B/T suffix and two or three significant
// digits: 950, 1.2k, 45k, 1.23M, 38B.
func siShort(v float64) string {
	a := math.Abs(v)
	suffixes := []string{"", "k", "M", "B", "T"}
	i := 0
	for a >= 999.5 && i < len(suffixes)-1 {
		a /= 1000
		i++
	}
	var s string
	switch {
	case a < 0.005:
		s = "0"
	case a < 10:
		s = trimFloat(a, 2)
	case a < 100:
		s = trimFloat(a, 1)
	default:
		s = strconv.FormatFloat(a, 'f', 0, 64)
	}
	if v < 0 && s != "0" {
		s = "-" + s
	}
	return s + suffixes[i]
}

func trimFloat(v float64, prec int) string {
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// usdShort formats dollars compactly: $0, $950, $1.2k, $1.23M, $38B.
func usdShort(v float64) string {
	s := siShort(v)
	if strings.HasPrefix(s, "-") {
		return "-$" + s[1:]
	}
	return "$" + s
}

// percent formats a fraction as a whole percentage, or with one decimal
// below 10%: 0.583 -> 58%, 0.042 -> 4.2%.
func percent(f float64) string {
	p := f * 100
	if p > 0 && p < 9.95 {
		return trimFloat(p, 1) + "%"
	}
	return strconv.FormatFloat(math.Round(p), 'f', 0, 64) + "%"
}

// simDuration formats seconds as people say them: 45s, 12m, 3.4h, 2.1d.
func simDuration(s float64) string {
	switch {
	case s < 60:
		return strconv.FormatFloat(math.Round(s), 'f', 0, 64) + "s"
	case s < 3600:
		return trimFloat(s/60, 1) + "m"
	case s < 86400:
		return trimFloat(s/3600, 1) + "h"
	default:
		return trimFloat(s/86400, 1) + "d"
	}
}

// thousands formats n with thousands separators: 82,247.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// isTerminal reports whether w is a character device (a terminal), as
// far as the standard library can tell.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressBar draws "simulating [=====>    ]  45% 123,456/330,000 jobs 12s"
// on one line, redrawn with \r; RunPolicies calls update from one goroutine
// at a time.
type progressBar struct {
	w     io.Writer
	start time.Time
	last  int // last percentage drawn
	drawn bool
}

const progressWidth = 30

func (b *progressBar) update(done, total int) {
	if total <= 0 {
		return
	}
	pct := done * 100 / total
	if b.drawn && pct == b.last && done != total {
		return
	}
	b.last, b.drawn = pct, true
	fill := done * progressWidth / total
	bar := strings.Repeat("=", fill)
	if fill < progressWidth {
		bar += ">" + strings.Repeat(" ", progressWidth-fill-1)
	}
	fmt.Fprintf(b.w, "\rsimulating [%s] %3d%% %s/%s jobs %s", bar, pct, thousands(done), thousands(total),
		time.Since(b.start).Round(time.Second))
}

// finish ends the bar's line; a nil bar does nothing.
func (b *progressBar) finish() {
	if b != nil && b.drawn {
		fmt.Fprintln(b.w)
	}
}
