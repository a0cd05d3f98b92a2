package report

import (
	"html/template"
	"math"
	"time"
)

// timeDomain returns the span shown on every time axis: the report's start
// and end widened to cover every sample, and at least a day wide.
func timeDomain(r *Report) (time.Time, time.Time) {
	var lo, hi time.Time
	add := func(t time.Time) {
		if t.IsZero() {
			return
		}
		if lo.IsZero() || t.Before(lo) {
			lo = t
		}
		if hi.IsZero() || t.After(hi) {
			hi = t
		}
	}
	add(r.Start)
	add(r.End)
	for _, p := range r.Policies {
		for _, c := range p.CostOverTime {
			add(c.Time)
		}
		for _, s := range p.ProviderShare {
			add(s.Time)
		}
		for _, c := range p.Commitments {
			for _, b := range c.Series {
				add(b.Time)
			}
		}
	}
	if lo.IsZero() {
		lo = time.Unix(0, 0).UTC()
		hi = lo
	}
	if hi.Sub(lo) < 24*time.Hour {
		mid := lo.Add(hi.Sub(lo) / 2)
		lo, hi = mid.Add(-12*time.Hour), mid.Add(12*time.Hour)
	}
	return lo.UTC(), hi.UTC()
}

// timeX sets a chart's x domain to the report's span.
func (c *chart) timeX(t0, t1 time.Time) {
	c.f.x0, c.f.x1 = unix(t0), unix(t1)
}

// drawTimeAxis draws calendar ticks and the date axis title.
func (c *chart) drawTimeAxis(t0, t1 time.Time) {
	c.xAxis(timeTicks(t0, t1, c.f.right-c.f.left), timeAxisTitle(t0, t1), true)
}

// costOverTime draws, per policy, cumulative spend stacked by provider. All
// panels share one y scale so their heights compare.
func costOverTime(r *Report, prov palette) []template.HTML {
	t0, t1 := timeDomain(r)
	hi := 0.0
	for _, p := range r.Policies {
		for _, pt := range p.CostOverTime {
			hi = math.Max(hi, positiveSum(pt.ByProvider))
		}
	}
	ticks, top := linearTicks(hi, usd)
	var out []template.HTML
	for _, p := range r.Policies {
		used := map[string]bool{}
		for _, pt := range p.CostOverTime {
			for k, v := range pt.ByProvider {
				if finite(v) > 0 {
					used[k] = true
				}
			}
		}
		var names []string
		var legend []legendItem
		for _, n := range prov.order {
			if used[n] {
				names = append(names, n)
				legend = append(legend, legendItem{n, prov.color(n), "box"})
			}
		}
		title := "Cumulative cost by provider — " + p.Name
		if len(legend) == 0 {
			legend = append(legend, legendItem{"no spend recorded", "#cccccc", "box"})
		}
		c := newChart(chartW, title, legend, 210)
		c.timeX(t0, t1)
		c.f.y1 = top
		c.yAxis(ticks, "cumulative cost (USD)")
		idx := thin(len(p.CostOverTime))
		base := make([]float64, len(idx))
		for _, n := range names {
			var upper, lower [][2]float64
			for j, i := range idx {
				pt := p.CostOverTime[i]
				x := c.f.X(unix(pt.Time))
				lower = append(lower, [2]float64{x, c.f.Y(base[j])})
				base[j] += math.Max(finite(pt.ByProvider[n]), 0)
				upper = append(upper, [2]float64{x, c.f.Y(base[j])})
			}
			if len(upper) == 1 { // a single sample: draw it as a bar segment
				x := upper[0][0]
				c.s.rect(x-4, upper[0][1], 8, lower[0][1]-upper[0][1], prov.color(n), n)
				continue
			}
			poly := append([][2]float64{}, upper...)
			for k := len(lower) - 1; k >= 0; k-- {
				poly = append(poly, lower[k])
			}
			c.s.polygon(poly, prov.color(n), 0.85)
			c.s.polyline(upper, prov.color(n), 1.2, "")
		}
		if len(idx) > 0 {
			last := p.CostOverTime[idx[len(idx)-1]]
			sum := positiveSum(last.ByProvider)
			c.s.text(c.f.left+8, c.f.top+14, "start", "note", "total "+usd(sum)+" by "+day(last.Time))
		}
		c.drawTimeAxis(t0, t1)
		out = append(out, c.s.html())
	}
	return out
}

// burnDown draws, per contract and policy, the actual cumulative spend
// against the planned one, shading the gap where actual trails the plan.
func burnDown(r *Report, prov palette) []template.HTML {
	t0, t1 := timeDomain(r)
	var names []string
	seen := map[string]bool{}
	hi := map[string]float64{}
	for _, p := range r.Policies {
		for _, c := range p.Commitments {
			if !seen[c.Contract] {
				seen[c.Contract] = true
			}
			for _, b := range c.Series {
				hi[c.Contract] = math.Max(hi[c.Contract], math.Max(finite(b.PlannedUSD), finite(b.ActualUSD)))
			}
		}
	}
	names = sortedKeys(seen)
	var out []template.HTML
	for _, name := range names {
		ticks, top := linearTicks(hi[name], usd)
		for _, p := range r.Policies {
			for _, cm := range p.Commitments {
				if cm.Contract != name {
					continue
				}
				color := prov.color(cm.Provider)
				legend := []legendItem{
					{"planned", "#444444", "dash"},
					{"actual", color, "line"},
					{"shortfall (actual behind plan)", "#d62728", "shade"},
				}
				kind := "contract"
				if cm.TakeOrPay {
					kind = "take-or-pay contract"
				}
				title := kind + " " + name + " (" + cm.Provider + ") — " + p.Name
				c := newChart(chartW, title, legend, 210)
				c.timeX(t0, t1)
				c.f.y1 = top
				c.yAxis(ticks, "cumulative spend (USD)")
				idx := thin(len(cm.Series))
				var plan, act, gap [][2]float64
				for _, i := range idx {
					b := cm.Series[i]
					x := c.f.X(unix(b.Time))
					plan = append(plan, [2]float64{x, c.f.Y(b.PlannedUSD)})
					act = append(act, [2]float64{x, c.f.Y(b.ActualUSD)})
					gap = append(gap, [2]float64{x, c.f.Y(math.Min(finite(b.ActualUSD), finite(b.PlannedUSD)))})
				}
				shade := append([][2]float64{}, plan...)
				for k := len(gap) - 1; k >= 0; k-- {
					shade = append(shade, gap[k])
				}
				c.s.polygon(shade, "#d62728", 0.18)
				c.s.polyline(plan, "#444444", 2, "6 4")
				c.s.polyline(act, color, 2.5, "")
				note := "used " + usd(cm.UsedUSD) + " of " + usd(cm.CommittedUSD)
				if cm.ShortfallUSD > 0 {
					note += " · shortfall " + usd(cm.ShortfallUSD)
				}
				if cm.WastedUSD > 0 {
					note += " · wasted " + usd(cm.WastedUSD)
				}
				c.s.text(c.f.left+8, c.f.top+14, "start", "note", note)
				c.drawTimeAxis(t0, t1)
				out = append(out, c.s.html())
			}
		}
	}
	return out
}

// providerShare draws, per policy, each provider's share of GPU-hours over
// time with the cap as a dashed red line.
func providerShare(r *Report, prov palette) []template.HTML {
	t0, t1 := timeDomain(r)
	ticks, _ := linearTicks(1, pct)
	var out []template.HTML
	for _, p := range r.Policies {
		used := map[string]bool{}
		for _, s := range p.ProviderShare {
			for k, v := range s.Share {
				if finite(v) > 0 {
					used[k] = true
				}
			}
		}
		var names []string
		var legend []legendItem
		for _, n := range prov.order {
			if used[n] {
				names = append(names, n)
				legend = append(legend, legendItem{n, prov.color(n), "line"})
			}
		}
		if p.ProviderShareCap > 0 {
			legend = append(legend, legendItem{"cap " + pct(p.ProviderShareCap), "#d62728", "dash"})
		}
		if len(legend) == 0 {
			legend = append(legend, legendItem{"no GPU-hours recorded", "#cccccc", "box"})
		}
		c := newChart(chartW, "Provider share of GPU-hours — "+p.Name, legend, 210)
		c.timeX(t0, t1)
		c.f.y1 = 1
		c.yAxis(ticks, "share of GPU-hours")
		if cp := p.ProviderShareCap; cp > 0 { // under the lines, so none hides
			y := c.f.Y(math.Min(cp, 1))
			c.s.line(c.f.left, y, c.f.right, y, "#d62728", 2, "7 4")
			c.s.text(c.f.right-4, y-5, "end", "cap", "cap "+pct(cp))
		}
		idx := thin(len(p.ProviderShare))
		for _, n := range names {
			var pts [][2]float64
			for _, i := range idx {
				s := p.ProviderShare[i]
				pts = append(pts, [2]float64{c.f.X(unix(s.Time)), c.f.Y(math.Min(math.Max(s.Share[n], 0), 1))})
			}
			c.s.polyline(pts, prov.color(n), 2, "")
		}
		maxShare, hhi := shareStats(p)
		if len(p.ProviderShare) > 0 {
			c.s.text(c.f.left+8, c.f.top+14, "start", "note",
				"highest share "+pct(maxShare)+" · mean HHI "+fixed2(hhi))
		}
		c.drawTimeAxis(t0, t1)
		out = append(out, c.s.html())
	}
	return out
}

// shareStats returns the highest share any provider reached and the mean HHI.
func shareStats(p PolicyRun) (maxShare, meanHHI float64) {
	for _, s := range p.ProviderShare {
		for _, v := range s.Share {
			maxShare = math.Max(maxShare, finite(v))
		}
		meanHHI += finite(s.HHI)
	}
	if n := len(p.ProviderShare); n > 0 {
		meanHHI /= float64(n)
	}
	return maxShare, meanHHI
}

// durationTicks are the x ticks of the log duration axes, in seconds.
var durationTicks = []tick{
	{1, "1s"}, {10, "10s"}, {60, "1m"}, {600, "10m"}, {3600, "1h"}, {6 * 3600, "6h"},
	{86400, "1d"}, {7 * 86400, "1w"}, {30 * 86400, "30d"}, {365 * 86400, "1y"},
}

// cdf draws one cumulative distribution line per policy over a log time axis:
// the height at x is the share of jobs that took at most x.
func cdf(r *Report, title, xTitle, yTitle string, pick func(PolicyRun) Dist) template.HTML {
	hi := 10.0
	var legend []legendItem
	for i, p := range r.Policies {
		d := pick(p)
		if d.Count > 0 && len(d.Hist) > 0 {
			hi = math.Max(hi, finite(d.Hist[len(d.Hist)-1].Upper))
		}
		color, dash := policyStyle(i)
		kind := "line"
		if dash != "" {
			kind = "dash"
		}
		label := p.Name + " (no jobs)"
		if d.Count > 0 {
			label = p.Name + " (median " + duration(d.P50) + ")"
		}
		legend = append(legend, legendItem{label, color, kind})
	}
	c := newChart(wideW, title, legend, 260)
	c.f.x0, c.f.x1, c.f.xlog, c.f.y1 = 1, hi, true, 1
	yt, _ := linearTicks(1, pct)
	c.yAxis(yt, yTitle)
	var xt []tick
	for _, t := range durationTicks {
		if t.v >= c.f.x0 && t.v <= c.f.x1*1.0001 {
			xt = append(xt, t)
		}
	}
	c.xAxis(xt, xTitle, true)
	for _, g := range []float64{0.5, 0.99} {
		y := c.f.Y(g)
		c.s.line(c.f.left, y, c.f.right, y, "#bbbbbb", 1, "3 3")
		c.s.text(c.f.right+4, y+4, "start", "tk", "p"+itoa(int(math.Round(g*100))))
	}
	for i, p := range r.Policies {
		d := pick(p)
		if d.Count == 0 || len(d.Hist) == 0 {
			continue
		}
		color, dash := policyStyle(i)
		cum := d.Hist[0].Count
		pts := [][2]float64{{c.f.X(1), c.f.Y(float64(cum) / float64(d.Count))}}
		for _, b := range d.Hist[1:] {
			cum += b.Count
			pts = append(pts, [2]float64{c.f.X(b.Upper), c.f.Y(float64(cum) / float64(d.Count))})
		}
		c.s.polyline(pts, color, 2.5, dash)
	}
	return c.s.html()
}

// priceClassBars draws one horizontal bar per policy, split by price class.
func priceClassBars(r *Report) template.HTML {
	classes := map[string]bool{}
	hi := 0.0
	longest := 0
	for _, p := range r.Policies {
		for k, v := range p.CostByPriceClass {
			if finite(v) > 0 {
				classes[k] = true
			}
		}
		hi = math.Max(hi, positiveSum(p.CostByPriceClass))
		longest = max(longest, len([]rune(p.Name)))
	}
	pal := newPalette(classes, priceClassColors, priceClassOrder)
	var legend []legendItem
	for _, n := range pal.order {
		legend = append(legend, legendItem{priceClassLabel(n), pal.color(n), "box"})
	}
	if len(legend) == 0 {
		legend = append(legend, legendItem{"no spend recorded", "#cccccc", "box"})
	}
	const barH, gap = 26.0, 16.0
	plotH := math.Max(float64(len(r.Policies))*(barH+gap), barH+gap)
	c := newChart(wideW, "Cost by price class", legend, plotH)
	c.f.left = math.Min(math.Max(marginL, float64(longest)*charW+16), wideW/2)
	c.f.right = wideW - 80 // room for the total after the longest bar
	ticks, top := linearTicks(hi, usd)
	c.f.x1 = top
	for _, t := range ticks {
		x := c.f.X(t.v)
		c.s.line(x, c.f.top, x, c.f.bottom, "#e3e3e3", 1, "")
	}
	c.xAxis(ticks, "total cost over the run (USD)", false)
	c.s.line(c.f.left, c.f.top, c.f.left, c.f.bottom, "#888", 1, "")
	for i, p := range r.Policies {
		y := c.f.top + gap/2 + float64(i)*(barH+gap)
		c.s.text(c.f.left-8, y+barH/2+4, "end", "tk", fit(p.Name, c.f.left-12, charW))
		x := 0.0
		for _, n := range pal.order {
			v := math.Max(finite(p.CostByPriceClass[n]), 0)
			if v == 0 {
				continue
			}
			x0, x1 := c.f.X(x), c.f.X(x+v)
			c.s.rect(x0, y, x1-x0, barH, pal.color(n), p.Name+", "+priceClassLabel(n)+": "+usd(v))
			if lbl := usd(v); x1-x0 > float64(len(lbl))*charW+8 {
				c.s.text((x0+x1)/2, y+barH/2+4, "middle", "in", lbl)
			}
			x += v
		}
		c.s.text(c.f.X(x)+6, y+barH/2+4, "start", "tot", usd(x))
	}
	return c.s.html()
}

// priceClassLabel spells a price class for people.
func priceClassLabel(c string) string {
	switch c {
	case "ondemand":
		return "on-demand"
	case "committed":
		return "committed (take-or-pay)"
	}
	return c
}

func fixed2(v float64) string {
	return strconvF(finite(v), 2)
}

// positiveSum adds the positive, finite values of m in key order, so the
// floating-point result never depends on map iteration order.
func positiveSum(m map[string]float64) float64 {
	sum := 0.0
	for _, k := range sortedKeys(m) {
		sum += math.Max(finite(m[k]), 0)
	}
	return sum
}
