package cli

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"

	"gpubroker/internal/engine"
	"gpubroker/internal/model"
)

// Table output of plan: per workload a header line, the ranked candidates
// kubectl-style, and a summary of the infeasible ones by reason.

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
}

func writePlanTables(w io.Writer, fleet *model.Fleet, catalogMode, wide, all bool, plans []workloadPlan) error {
	contracts := map[engine.PoolRef]string{}
	for _, cl := range fleet.Clusters {
		for _, p := range cl.Pools {
			if p.Contract != "" {
				contracts[engine.PoolRef{Cluster: cl.Name, Pool: p.Name}] = p.Contract
			}
		}
	}
	for i, p := range plans {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, workloadHeader(p.w))
		if err := writeCandidates(w, p, contracts, catalogMode, wide, all); err != nil {
			return err
		}
	}
	return nil
}

// workloadHeader describes a workload in one line:
// "llama-70b-finetune: job, 2 nodes x H100:8 (16 GPUs), team research, priority 100".
func workloadHeader(w *model.Workload) string {
	unit := plural(w.NumNodes, "node", "nodes")
	labels := make([]string, len(w.Options))
	sameShape := true
	for i, o := range w.Options {
		labels[i] = optionLabel(o)
		if o.GPUsPerNode != w.Options[0].GPUsPerNode {
			sameShape = false
		}
	}
	var shape string
	switch {
	case len(labels) == 0:
		shape = "no GPU"
	case len(labels) == 1:
		shape = labels[0]
	case w.Order == model.Ordered:
		shape = "first of " + strings.Join(labels, " > ")
	default:
		shape = "any of " + strings.Join(labels, " | ")
	}
	s := fmt.Sprintf("%s: %s, %d %s x %s", workloadName(w), w.Kind, w.NumNodes, unit, shape)
	if len(w.Options) > 0 && sameShape {
		n := w.GPUs(0)
		s += fmt.Sprintf(" (%d %s)", n, plural(n, "GPU", "GPUs"))
	}
	if w.Kind == model.Service && w.Service != nil {
		s += fmt.Sprintf(", %s", replicas(w.Service))
	}
	if w.Team != "" {
		s += ", team " + w.Team
	}
	if w.Priority != 0 {
		s += fmt.Sprintf(", priority %d", w.Priority)
	}
	return s
}

// replicas describes a service's replica range: "2-6 replicas".
func replicas(s *model.ServiceSpec) string {
	if s.MaxReplicas <= s.MinReplicas {
		return fmt.Sprintf("%d %s", s.MinReplicas, plural(s.MinReplicas, "replica", "replicas"))
	}
	return fmt.Sprintf("%d-%d replicas", s.MinReplicas, s.MaxReplicas)
}

// optionLabel writes one resource option as the user would: "H100:8",
// "A10G:1 spot", "H100:8 aws/us-east-1".
func optionLabel(o model.Resources) string {
	s := fmt.Sprintf("%s:%d", o.GPU, o.GPUsPerNode)
	if o.InstanceType != "" {
		s += " " + o.InstanceType
	}
	switch {
	case o.Provider != "" && o.Region != "":
		s += " " + string(o.Provider) + "/" + o.Region
	case o.Provider != "":
		s += " " + string(o.Provider)
	case o.Region != "":
		s += " " + o.Region
	}
	switch {
	case o.UseSpot:
		s += " spot"
	case o.AllowSpot:
		s += " spot-ok"
	}
	return s
}

func writeCandidates(w io.Writer, p workloadPlan, contracts map[engine.PoolRef]string, catalogMode, wide, all bool) error {
	if len(p.candidates) == 0 {
		_, err := fmt.Fprintln(w, "  no pool in the fleet offers any of the requested GPUs")
		return err
	}
	var feasible, infeasible []engine.Candidate
	for _, c := range p.candidates {
		if c.Feasible {
			feasible = append(feasible, c)
		} else {
			infeasible = append(infeasible, c)
		}
	}

	rows := feasible
	hiddenFeasible := 0
	switch {
	case all:
		rows = append(append([]engine.Candidate{}, feasible...), infeasible...)
	case len(feasible) == 0:
		rows = infeasible
		if len(rows) > planTop {
			rows = rows[:planTop]
		}
	case len(feasible) > planTop:
		rows = feasible[:planTop]
		hiddenFeasible = len(feasible) - planTop
	}

	tw := newTable(w)
	where := "CLUSTER/POOL"
	if catalogMode {
		where = "INSTANCE TYPE"
	}
	header := []string{"RANK", "PROVIDER", "REGION", where, "GPU", "CLASS", "LIST $/H", "EFFECTIVE $/H"}
	if wide {
		header = []string{"RANK", "PROVIDER", "REGION", "CLUSTER/POOL", "INSTANCE TYPE", "OPTION", "GPU", "CLASS",
			"LIST $/H", "BILLED $/H", "EFFECTIVE $/H",
			"DISCOUNT/GPU-H", "COMMITTED/GPU-H", "SHADOW/GPU-H", "SPOT RISK/GPU-H", "EGRESS/GPU-H"}
	}
	header = append(header, "WHY")
	fmt.Fprintln(tw, strings.Join(header, "\t"))

	var first, second *engine.Candidate
	if len(feasible) > 0 {
		first = &feasible[0]
	}
	if len(feasible) > 1 {
		second = &feasible[1]
	}
	for i := range rows {
		c := &rows[i]
		rank := "-"
		if c.Feasible {
			rank = fmt.Sprint(c.Rank)
		}
		place := c.Pool.String()
		if catalogMode && !wide && c.InstanceType != "" {
			place = c.InstanceType
		}
		gpu := fmt.Sprintf("%s:%d x%d", c.GPU, c.GPUsPerNode, c.NumNodes)
		cols := []string{rank, string(c.Provider), c.Region, place}
		if wide {
			cols = append(cols, orDash(c.InstanceType), fmt.Sprint(c.Option+1))
		}
		cols = append(cols, gpu, string(c.PriceClass), money(c.ListPerHour))
		if wide {
			gpus := float64(c.GPUsPerNode * c.NumNodes)
			cols = append(cols, money(c.Cost.BilledPerGPUHour*gpus))
		}
		cols = append(cols, money(c.EffectivePerHour))
		if wide {
			cols = append(cols, money(c.Cost.Discount), money(c.Cost.CommittedCredit), money(c.Cost.ShadowDiscount),
				money(c.Cost.SpotRisk), money(c.Cost.Egress))
		}
		var why string
		switch {
		case !c.Feasible:
			why = rejectionText(c.Rejections)
		case c == first || (first != nil && c.Rank == first.Rank && c.Pool == first.Pool):
			why = winnerWhy(c, second, contracts[c.Pool], p.w.Order == model.Ordered)
		default:
			why = loserWhy(c, first, p.w.Order == model.Ordered)
		}
		cols = append(cols, why)
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if hiddenFeasible > 0 {
		fmt.Fprintf(w, "... %d more feasible %s (--all shows every row)\n", hiddenFeasible, plural(hiddenFeasible, "candidate", "candidates"))
	}
	if !all && len(infeasible) > 0 {
		return writeInfeasibleSummary(w, infeasible, len(feasible) == 0 && len(infeasible) <= planTop)
	}
	return nil
}

// writeInfeasibleSummary counts infeasible candidates by rejection reason
// (a candidate with several reasons counts under each), most common first,
// with one example each. shown says the rows were all listed already.
func writeInfeasibleSummary(w io.Writer, infeasible []engine.Candidate, shown bool) error {
	type group struct {
		reason  engine.Reason
		count   int
		example string
	}
	byReason := map[engine.Reason]*group{}
	for _, c := range infeasible {
		seen := map[engine.Reason]bool{}
		for _, r := range c.Rejections {
			if seen[r.Reason] {
				continue
			}
			seen[r.Reason] = true
			g := byReason[r.Reason]
			if g == nil {
				g = &group{reason: r.Reason, example: c.Pool.String()}
				if r.Detail != "" {
					g.example += ": " + r.Detail
				}
				byReason[r.Reason] = g
			}
			g.count++
		}
	}
	groups := make([]*group, 0, len(byReason))
	for _, g := range byReason {
		groups = append(groups, g)
	}
	sort.Slice(groups, func(i, j int) bool {
		if groups[i].count != groups[j].count {
			return groups[i].count > groups[j].count
		}
		return groups[i].reason < groups[j].reason
	})
	note := ""
	if !shown {
		note = " (--all lists them)"
	}
	fmt.Fprintf(w, "%d infeasible %s%s:\n", len(infeasible), plural(len(infeasible), "candidate", "candidates"), note)
	tw := newTable(w)
	fmt.Fprintln(tw, "  REASON\tCANDIDATES\tFOR EXAMPLE")
	for _, g := range groups {
		fmt.Fprintf(tw, "  %s\t%d\t%s\n", g.reason, g.count, g.example)
	}
	return tw.Flush()
}

// winnerWhy says what made the chosen candidate cheapest and by how much.
func winnerWhy(c, next *engine.Candidate, contract string, ordered bool) string {
	var parts []string
	k := c.Cost
	if k.CommittedCredit > 0 {
		parts = append(parts, "already-paid committed capacity")
	}
	if k.Discount > 0 {
		parts = append(parts, fmt.Sprintf("discount -$%s/GPU-h", money(k.Discount)))
	}
	if k.ShadowDiscount > 0 {
		parts = append(parts, fmt.Sprintf("shadow -$%s/GPU-h for an under-burned commitment", money(k.ShadowDiscount)))
	}
	if c.PriceClass == model.Spot {
		parts = append(parts, "spot price"+risk(k.SpotRisk))
	}
	if len(parts) == 0 {
		parts = append(parts, "lowest list price")
	}
	if k.Egress >= 0.005 {
		parts = append(parts, fmt.Sprintf("egress +$%s/GPU-h", money(k.Egress)))
	}
	why := strings.Join(parts, ", ")
	if contract != "" {
		why = contract + ": " + why
	}
	if next != nil {
		if margin := next.EffectivePerHour - c.EffectivePerHour; ordered && next.Option > c.Option {
			why += fmt.Sprintf("; earlier choice in the ordered list than #%d", next.Rank)
		} else if margin < 0.005 {
			why += fmt.Sprintf("; ties #%d on cost, ranked first", next.Rank)
		} else {
			why += fmt.Sprintf("; $%s/h below #%d", money(margin), next.Rank)
		}
	}
	return why
}

func risk(v float64) string {
	if v < 0.005 {
		return ""
	}
	return fmt.Sprintf(", preemption risk +$%s/GPU-h", money(v))
}

// loserWhy says why a feasible candidate ranked below the winner.
func loserWhy(c, first *engine.Candidate, ordered bool) string {
	if first == nil {
		return ""
	}
	var parts []string
	margin := c.EffectivePerHour - first.EffectivePerHour
	switch {
	case ordered && c.Option > first.Option && margin <= -0.005:
		parts = append(parts, fmt.Sprintf("later choice in the ordered list than #%d, though $%s/h cheaper", first.Rank, money(-margin)))
	case ordered && c.Option > first.Option:
		parts = append(parts, fmt.Sprintf("later choice in the ordered list than #%d, and costlier by $%s/h", first.Rank, money(margin)))
	case margin < 0.005:
		parts = append(parts, fmt.Sprintf("ties #%d on cost, ranked after it", first.Rank))
	default:
		parts = append(parts, fmt.Sprintf("costlier by $%s/h than #%d", money(margin), first.Rank))
	}
	if c.Cost.Egress >= 0.005 && c.Cost.Egress > first.Cost.Egress {
		parts = append(parts, fmt.Sprintf("egress +$%s/GPU-h", money(c.Cost.Egress)))
	}
	if c.Cost.SpotRisk >= 0.005 {
		parts = append(parts, fmt.Sprintf("preemption risk +$%s/GPU-h", money(c.Cost.SpotRisk)))
	}
	if len(c.Rejections) > 0 {
		parts = append(parts, rejectionText(c.Rejections))
	}
	return strings.Join(parts, "; ")
}

func rejectionText(rs []engine.Rejection) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = string(r.Reason)
		if r.Detail != "" {
			parts[i] += ": " + r.Detail
		}
	}
	return strings.Join(parts, "; ")
}

// money formats USD with cents, never as "-0.00".
func money(v float64) string {
	if math.Abs(v) < 0.005 {
		return "0.00"
	}
	return fmt.Sprintf("%.2f", v)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
