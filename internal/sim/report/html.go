package report

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
)

// WriteHTML writes r as one self-contained HTML page: inline CSS and inline
// SVG charts, no scripts, and no reference to any URL, so it opens offline.
// All text from the Report is escaped. The same Report gives the same bytes.
func WriteHTML(w io.Writer, r *Report) error {
	if r == nil {
		return errors.New("report: nil Report")
	}
	v := buildView(r)
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, v); err != nil {
		return fmt.Errorf("report: rendering HTML: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// cell is one table cell: Class "best" highlights the best value in its
// column, "warn" flags a broken limit; Title is the hover text.
type cell struct {
	Text, Class, Title string
}

type table struct {
	Head []cell
	Rows [][]cell
}

type view struct {
	Trace, Fleet, Seed, Scale, Jobs, Span string

	Policies    int
	Summary     table
	CostCharts  []template.HTML
	PriceChart  template.HTML
	BurnCharts  []template.HTML
	BurnTable   table
	ShareCharts []template.HTML
	JCTChart    template.HTML
	JCTSize     table
	QueueChart  template.HTML
	QueueSize   table
	Util        table
	UtilNote    string
	Teams       table
	TeamsNote   string
	Outcomes    table
}

func buildView(r *Report) view {
	v := view{
		Trace:    r.Trace,
		Fleet:    r.Fleet,
		Seed:     strconv.FormatInt(r.Seed, 10),
		Scale:    trimZeros(strconvF(finite(r.Scale), 3)),
		Jobs:     count(r.Jobs),
		Policies: len(r.Policies),
	}
	if !r.Start.IsZero() || !r.End.IsZero() {
		d := r.End.Sub(r.Start).Hours() / 24
		v.Span = day(r.Start) + " → " + day(r.End) + " (" + trimZeros(strconvF(d, 1)) + " days)"
	}
	if len(r.Policies) == 0 {
		return v
	}
	prov := providers(r)
	v.Summary = summaryTable(r, prov)
	v.CostCharts = costOverTime(r, prov)
	v.PriceChart = priceClassBars(r)
	v.BurnCharts = burnDown(r, prov)
	v.BurnTable = burnTable(r)
	v.ShareCharts = providerShare(r, prov)
	v.JCTChart = cdf(r, "Job completion time (arrival to finish), CDF", "time from arrival to finish (log scale)",
		"jobs finished within x",
		func(p PolicyRun) Dist { return p.JCT })
	v.QueueChart = cdf(r, "Queueing delay (arrival to first start), CDF", "time from arrival to first start (log scale)",
		"jobs started within x",
		func(p PolicyRun) Dist { return p.Queueing })
	v.JCTSize = sizeTable(r, func(p PolicyRun) map[string]Dist { return p.JCTBySize })
	v.QueueSize = sizeTable(r, func(p PolicyRun) map[string]Dist { return p.QueueingBySize })
	v.Util, v.UtilNote = utilTable(r)
	v.Teams, v.TeamsNote = teamTable(r)
	v.Outcomes = outcomeTable(r)
	return v
}

// providers gathers every provider named anywhere in the report.
func providers(r *Report) palette {
	names := map[string]bool{}
	for _, p := range r.Policies {
		for k := range p.CostByProvider {
			names[k] = true
		}
		for _, c := range p.CostOverTime {
			for k := range c.ByProvider {
				names[k] = true
			}
		}
		for _, s := range p.ProviderShare {
			for k := range s.Share {
				names[k] = true
			}
		}
		for _, c := range p.Commitments {
			names[c.Provider] = true
		}
	}
	return newPalette(names, providerColors, providerOrder)
}

// column describes one numeric column of a policy table: value returns the
// number to compare and the text to show (ok false: no value, shown as "–").
type column struct {
	head, title string
	value       func(PolicyRun) (v float64, text string, ok bool)
	lowIsBest   bool
}

// policyTable lays out one row per policy and highlights, in each column
// marked lowIsBest, the lowest value when the policies differ. Values are
// compared as shown: cells that read the same as the best are highlighted
// too, and a column whose cells all read the same gets no highlight.
func policyTable(r *Report, cols []column) table {
	t := table{Head: []cell{{Text: "policy"}}}
	for _, c := range cols {
		t.Head = append(t.Head, cell{Text: c.head, Title: c.title})
	}
	for _, p := range r.Policies {
		row := []cell{{Text: p.Name, Class: "name"}}
		for _, c := range cols {
			cl := cell{Text: "–", Class: "num"}
			if _, text, ok := c.value(p); ok {
				cl.Text = text
			}
			row = append(row, cl)
		}
		t.Rows = append(t.Rows, row)
	}
	for j, c := range cols {
		if !c.lowIsBest {
			continue
		}
		vals := make([]float64, len(r.Policies))
		oks := make([]bool, len(r.Policies))
		for i, p := range r.Policies {
			vals[i], _, oks[i] = c.value(p)
		}
		for _, i := range bestOf(vals, oks, func(i int) string { return t.Rows[i][j+1].Text }) {
			t.Rows[i][j+1].Class = "num best"
			t.Rows[i][j+1].Title = "best in column"
		}
	}
	return t
}

// bestOf returns the indexes whose shown text equals that of the lowest
// valid value, or none when every valid value shows the same text.
func bestOf(vals []float64, ok []bool, text func(int) string) []int {
	best, distinct := -1, map[string]bool{}
	for i, v := range vals {
		if !ok[i] {
			continue
		}
		distinct[text(i)] = true
		if best < 0 || v < vals[best] {
			best = i
		}
	}
	if len(distinct) < 2 {
		return nil
	}
	var out []int
	for i := range vals {
		if ok[i] && text(i) == text(best) {
			out = append(out, i)
		}
	}
	return out
}

func summaryTable(r *Report, prov palette) table {
	cols := []column{
		{head: "total cost", title: "all spend over the run, incl. unused take-or-pay, USD", lowIsBest: true,
			value: func(p PolicyRun) (float64, string, bool) { return p.CostUSD, usd(p.CostUSD), true }},
		{head: "$ per GPU-h", title: "total cost divided by GPU-hours of useful work (work lost to preemption not counted)", lowIsBest: true,
			value: func(p PolicyRun) (float64, string, bool) {
				if !(p.GPUHoursRun > 0) {
					return 0, "", false
				}
				v := p.CostUSD / p.GPUHoursRun
				return v, "$" + strconvF(finite(v), 2), true
			}},
	}
	for _, n := range prov.order {
		cols = append(cols, column{head: "$\u00a0" + n, title: "spend on " + n + ", USD",
			value: func(p PolicyRun) (float64, string, bool) {
				v := p.CostByProvider[n]
				return v, usd(v), true
			}})
	}
	dist := func(head, title string, pick func(PolicyRun) float64, d func(PolicyRun) Dist) column {
		return column{head: head, title: title, lowIsBest: true,
			value: func(p PolicyRun) (float64, string, bool) {
				if d(p).Count == 0 {
					return 0, "", false
				}
				v := pick(p)
				return v, duration(v), true
			}}
	}
	cols = append(cols,
		dist("JCT p50", "median job completion time, arrival to finish",
			func(p PolicyRun) float64 { return p.JCT.P50 }, func(p PolicyRun) Dist { return p.JCT }),
		dist("JCT p99", "99th percentile job completion time",
			func(p PolicyRun) float64 { return p.JCT.P99 }, func(p PolicyRun) Dist { return p.JCT }),
		dist("queue p50", "median wait from arrival to first start",
			func(p PolicyRun) float64 { return p.Queueing.P50 }, func(p PolicyRun) Dist { return p.Queueing }),
		dist("queue p99", "99th percentile wait from arrival to first start",
			func(p PolicyRun) float64 { return p.Queueing.P99 }, func(p PolicyRun) Dist { return p.Queueing }),
		column{head: "GPU-h lost", title: "GPU-hours of work thrown away by preemptions and outages", lowIsBest: true,
			value: func(p PolicyRun) (float64, string, bool) { return p.GPUHoursLost, si(p.GPUHoursLost), true }},
		column{head: "deadlines missed", title: "jobs that missed their deadline / jobs with a deadline", lowIsBest: true,
			value: func(p PolicyRun) (float64, string, bool) {
				if p.WithDeadline == 0 {
					return 0, "", false
				}
				return float64(p.DeadlinesMissed), count(p.DeadlinesMissed) + " / " + count(p.WithDeadline), true
			}},
		column{head: "over-cap admissions", title: "placements the policy let over the provider share cap because nothing fitted within it (cap_fallback)", lowIsBest: true,
			value: func(p PolicyRun) (float64, string, bool) {
				if p.ProviderShareCap == 0 {
					return 0, "", false
				}
				return float64(p.OverCapAdmissions), count(p.OverCapAdmissions) + " of " + count(p.Admissions), true
			}},
		column{head: "max provider share", title: "highest share of GPU-hours any provider held over a trailing window, as it turned out (over at least the policy's share floor); the cap is enforced on each admission's projection (use so far + running work's expected use + the admission), so jobs that run longer or restart can push the realised share past it", lowIsBest: true,
			value: func(p PolicyRun) (float64, string, bool) {
				if len(p.ProviderShare) == 0 && p.PeakCapShare == 0 {
					return 0, "", false
				}
				m := peakShare(p)
				return m, pct(m), true
			}},
		column{head: "HHI (mean)", title: "Herfindahl-Hirschman index of provider shares, 0 to 1 (1 = one provider), averaged over time", lowIsBest: true,
			value: func(p PolicyRun) (float64, string, bool) {
				if len(p.ProviderShare) == 0 {
					return 0, "", false
				}
				_, h := shareStats(p)
				return h, fixed2(h), true
			}},
	)
	t := policyTable(r, cols)
	// Flag a provider share above the cap.
	shareCol := len(cols) - 1
	for i, p := range r.Policies {
		m := peakShare(p)
		if p.ProviderShareCap > 0 && m > p.ProviderShareCap+1e-9 {
			c := &t.Rows[i][shareCol]
			c.Class = "num warn"
			c.Title = "above the cap of " + pct(p.ProviderShareCap)
			c.Text += " > cap"
		}
	}
	return t
}

// peakShare is the share the cap is judged by: PeakCapShare when the
// simulator gives it, else the highest point of the plain share series.
func peakShare(p PolicyRun) float64 {
	if p.PeakCapShare > 0 {
		return p.PeakCapShare
	}
	m, _ := shareStats(p)
	return m
}

func burnTable(r *Report) table {
	t := table{Head: []cell{{Text: "contract"}, {Text: "provider"}, {Text: "policy"},
		{Text: "committed", Title: "commitment value over the simulated span, USD"},
		{Text: "used", Title: "spend that burned the commitment, USD"},
		{Text: "burned", Title: "used / committed"},
		{Text: "wasted", Title: "take-or-pay value paid for but never used, USD"},
		{Text: "shortfall", Title: "how far actual burn trails the plan at the end, USD"}}}
	type row struct {
		contract string
		policy   int
		c        Commitment
	}
	var rows []row
	for i, p := range r.Policies {
		for _, c := range p.Commitments {
			rows = append(rows, row{c.Contract, i, c})
		}
	}
	sort.SliceStable(rows, func(a, b int) bool {
		if rows[a].contract != rows[b].contract {
			return rows[a].contract < rows[b].contract
		}
		return rows[a].policy < rows[b].policy
	})
	for _, x := range rows {
		burned := "–"
		if x.c.CommittedUSD > 0 {
			burned = pct(x.c.UsedUSD / x.c.CommittedUSD)
		}
		short := cell{Text: usd(x.c.ShortfallUSD), Class: "num"}
		if x.c.ShortfallUSD > 0 {
			short.Class = "num warn"
		}
		waste := cell{Text: usd(x.c.WastedUSD), Class: "num"}
		if x.c.WastedUSD > 0 {
			waste.Class = "num warn"
		}
		t.Rows = append(t.Rows, []cell{
			{Text: x.contract, Class: "name"}, {Text: x.c.Provider}, {Text: r.Policies[x.policy].Name},
			{Text: usd(x.c.CommittedUSD), Class: "num"}, {Text: usd(x.c.UsedUSD), Class: "num"},
			{Text: burned, Class: "num"}, waste, short,
		})
	}
	return t
}

// sizeTable shows p50 / p99 per job-size bucket, one column per policy, and
// highlights the lowest p99 in each row.
func sizeTable(r *Report, pick func(PolicyRun) map[string]Dist) table {
	t := table{Head: []cell{{Text: "job size (GPUs)"}}}
	for _, p := range r.Policies {
		t.Head = append(t.Head, cell{Text: p.Name + " p50 / p99", Title: "median / 99th percentile; hover a cell for the job count"})
	}
	buckets := append([]string{}, SizeBuckets...)
	for _, p := range r.Policies {
		for _, k := range sortedKeys(pick(p)) {
			if !slices.Contains(buckets, k) {
				buckets = append(buckets, k)
			}
		}
	}
	for _, b := range buckets {
		row := []cell{{Text: b, Class: "name"}}
		vals := make([]float64, len(r.Policies))
		oks := make([]bool, len(r.Policies))
		for i, p := range r.Policies {
			d := pick(p)[b]
			if d.Count == 0 {
				row = append(row, cell{Text: "–", Class: "num", Title: "no jobs"})
				continue
			}
			vals[i], oks[i] = d.P99, true
			row = append(row, cell{Text: duration(d.P50) + " / " + duration(d.P99), Class: "num", Title: count(d.Count) + " jobs"})
		}
		if !slices.Contains(oks, true) {
			continue
		}
		for _, i := range bestOf(vals, oks, func(i int) string { return duration(vals[i]) }) {
			row[i+1].Class = "num best"
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// maxClusterRows bounds the utilisation table; larger fleets are summarised.
const maxClusterRows = 40

func utilTable(r *Report) (table, string) {
	clusters := map[string]bool{}
	for _, p := range r.Policies {
		for k := range p.Utilisation {
			clusters[k] = true
		}
	}
	t := table{Head: []cell{{Text: "cluster"}}}
	for _, p := range r.Policies {
		t.Head = append(t.Head, cell{Text: p.Name})
	}
	names := sortedKeys(clusters)
	if len(names) == 0 {
		return table{}, ""
	}
	if len(names) <= maxClusterRows {
		for _, n := range names {
			row := []cell{{Text: n, Class: "name"}}
			for _, p := range r.Policies {
				u, ok := p.Utilisation[n]
				if !ok {
					row = append(row, cell{Text: "–", Class: "num"})
					continue
				}
				row = append(row, utilCell(u))
			}
			t.Rows = append(t.Rows, row)
		}
		return t, ""
	}
	t.Head[0].Text = "across clusters"
	stats := []struct {
		name string
		q    float64
	}{{"lowest", 0}, {"p10", 0.1}, {"median", 0.5}, {"p90", 0.9}, {"highest", 1}}
	per := make([][]float64, len(r.Policies)) // each policy's clusters, sorted
	for i, p := range r.Policies {
		for _, n := range sortedKeys(p.Utilisation) {
			per[i] = append(per[i], finite(p.Utilisation[n]))
		}
		sort.Float64s(per[i])
	}
	row := []cell{{Text: "clusters", Class: "name", Title: "clusters in this policy's fleet"}}
	for i := range r.Policies {
		row = append(row, cell{Text: count(len(per[i])), Class: "num"})
	}
	t.Rows = append(t.Rows, row)
	row = []cell{{Text: "clusters used", Class: "name", Title: "clusters that ran any work"}}
	for i := range r.Policies {
		n := 0
		for _, u := range per[i] {
			if u > 0 {
				n++
			}
		}
		row = append(row, cell{Text: count(n), Class: "num"})
	}
	t.Rows = append(t.Rows, row)
	row = []cell{{Text: "mean", Class: "name", Title: "unweighted mean over clusters"}}
	for i := range r.Policies {
		sum := 0.0
		for _, u := range per[i] {
			sum += u
		}
		c := cell{Text: "–", Class: "num"}
		if len(per[i]) > 0 {
			c = utilCell(sum / float64(len(per[i])))
		}
		row = append(row, c)
	}
	t.Rows = append(t.Rows, row)
	for _, s := range stats {
		row := []cell{{Text: s.name, Class: "name"}}
		for i := range r.Policies {
			c := cell{Text: "–", Class: "num"}
			if len(per[i]) > 0 {
				c = utilCell(nearestRank(per[i], math.Max(s.q, 1e-9)))
			}
			row = append(row, c)
		}
		t.Rows = append(t.Rows, row)
	}
	return t, strconv.Itoa(len(names)) + " clusters: too many to list, so the table shows the spread of their utilisation (each policy over the clusters it could use)."
}

func utilCell(u float64) cell {
	return cell{Text: pct(u), Class: "num", Title: "busy fraction of GPU capacity over the run"}
}

// maxTeamRows bounds the team table; the rest is summed into one row.
const maxTeamRows = 25

func teamTable(r *Report) (table, string) {
	totals := map[string]float64{}
	for _, p := range r.Policies {
		for k, v := range p.CostByTeam {
			totals[k] += math.Abs(finite(v))
		}
	}
	names := sortedKeys(totals)
	if len(names) == 0 {
		return table{}, ""
	}
	sort.SliceStable(names, func(a, b int) bool { return totals[names[a]] > totals[names[b]] })
	t := table{Head: []cell{{Text: "team"}}}
	for _, p := range r.Policies {
		t.Head = append(t.Head, cell{Text: p.Name})
	}
	shown, note := names, ""
	if len(names) > maxTeamRows {
		shown = names[:maxTeamRows]
		note = "The " + strconv.Itoa(maxTeamRows) + " teams with the highest spend; the other " +
			strconv.Itoa(len(names)-maxTeamRows) + " are summed in the last row."
	}
	for _, n := range shown {
		row := []cell{{Text: n, Class: "name"}}
		for _, p := range r.Policies {
			row = append(row, cell{Text: usd(p.CostByTeam[n]), Class: "num"})
		}
		t.Rows = append(t.Rows, row)
	}
	if len(shown) < len(names) {
		row := []cell{{Text: "other teams", Class: "name"}}
		for _, p := range r.Policies {
			sum := 0.0
			for _, n := range names[maxTeamRows:] {
				sum += finite(p.CostByTeam[n])
			}
			row = append(row, cell{Text: usd(sum), Class: "num"})
		}
		t.Rows = append(t.Rows, row)
	}
	return t, note
}

func outcomeTable(r *Report) table {
	t := table{Head: []cell{{Text: ""}}}
	for _, p := range r.Policies {
		t.Head = append(t.Head, cell{Text: p.Name})
	}
	line := func(name, title string, f func(PolicyRun) string) {
		row := []cell{{Text: name, Class: "name", Title: title}}
		for _, p := range r.Policies {
			row = append(row, cell{Text: f(p), Class: "num"})
		}
		t.Rows = append(t.Rows, row)
	}
	line("jobs completed", "jobs that ran to completion", func(p PolicyRun) string { return count(p.JobsCompleted) })
	line("never runnable", "jobs no pool in the fleet could ever run", func(p PolicyRun) string {
		n := 0
		for _, v := range p.NeverRunnable {
			n += v
		}
		return count(n)
	})
	reasons := map[string]bool{}
	for _, p := range r.Policies {
		for k := range p.NeverRunnable {
			reasons[k] = true
		}
	}
	for _, reason := range sortedKeys(reasons) {
		line("  · "+reason, "never runnable for this reason", func(p PolicyRun) string { return count(p.NeverRunnable[reason]) })
	}
	line("GPU-hours run", "GPU-hours of work that counted toward completion", func(p PolicyRun) string { return gpuHours(p.GPUHoursRun) })
	line("GPU-hours billed", "GPU-hours paid for: run plus lost", func(p PolicyRun) string { return gpuHours(p.GPUHoursBilled) })
	line("GPU-hours lost", "work thrown away by preemptions and outages", func(p PolicyRun) string { return gpuHours(p.GPUHoursLost) })
	line("events processed", "simulator events", func(p PolicyRun) string { return count(p.Events) })
	return t
}
