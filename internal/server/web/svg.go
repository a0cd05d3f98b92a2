package web

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"
)

// Charts are inline SVG drawn here, sized by viewBox so they scale with
// the page (phone or desktop); colours come from CSS classes.

var esc = template.HTMLEscapeString

// bar is one row of a horizontal bar chart. Parts stack left to right
// (CSS classes c0, c1, ...); Note is printed after the bar.
type bar struct {
	Label string
	Parts []float64
	Note  string
}

// barChart draws horizontal bars scaled to the largest total (or to max
// when larger). capAt >= 0 draws a vertical dashed line at that value,
// labelled capLabel.
func barChart(title string, bars []bar, max float64, capAt float64, capLabel string) template.HTML {
	if len(bars) == 0 {
		return template.HTML(`<p class="muted">Nothing to show yet.</p>`)
	}
	for _, b := range bars {
		t := 0.0
		for _, p := range b.Parts {
			t += p
		}
		max = math.Max(max, t)
	}
	max = math.Max(max, capAt)
	if max <= 0 {
		max = 1
	}
	const w, labelW, noteW, rowH = 540.0, 150.0, 150.0, 26.0
	plotW := w - labelW - noteW
	hgt := rowH*float64(len(bars)) + 24
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s" preserveAspectRatio="xMinYMin meet">`, w, hgt, esc(title))
	fmt.Fprintf(&sb, `<title>%s</title>`, esc(title))
	for i, b := range bars {
		y := 6 + rowH*float64(i)
		fmt.Fprintf(&sb, `<text class="lbl" x="%.0f" y="%.1f" text-anchor="end">%s</text>`, labelW-8, y+15, esc(b.Label))
		fmt.Fprintf(&sb, `<rect class="track" x="%.0f" y="%.1f" width="%.1f" height="18" rx="3"/>`, labelW, y+2, plotW)
		x := labelW
		for k, p := range b.Parts {
			if p <= 0 {
				continue
			}
			pw := plotW * p / max
			fmt.Fprintf(&sb, `<rect class="c%d" x="%.1f" y="%.1f" width="%.1f" height="18" rx="3"/>`, k, x, y+2, pw)
			x += pw
		}
		fmt.Fprintf(&sb, `<text class="note" x="%.0f" y="%.1f">%s</text>`, labelW+plotW+8, y+15, esc(b.Note))
	}
	if capAt > 0 {
		x := labelW + plotW*capAt/max
		fmt.Fprintf(&sb, `<line class="cap" x1="%.1f" y1="2" x2="%.1f" y2="%.0f"/>`, x, x, hgt-18)
		fmt.Fprintf(&sb, `<text class="caplbl" x="%.1f" y="%.0f" text-anchor="middle">%s</text>`, x, hgt-4, esc(capLabel))
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

// point is one sample of a time series.
type point struct {
	T time.Time
	V float64
}

// burnChart draws a contract's plan (line over the whole term), its spend
// so far, and the forecast from now to the end at the current rate.
func burnChart(title string, start, end time.Time, plan, spent, forecast []point, commit float64) template.HTML {
	const w, h, l, r, t, b = 560.0, 220.0, 64.0, 16.0, 12.0, 30.0
	top := commit
	for _, s := range [][]point{plan, spent, forecast} {
		for _, p := range s {
			top = math.Max(top, p.V)
		}
	}
	if top <= 0 {
		top = 1
	}
	span := end.Sub(start).Seconds()
	if span <= 0 {
		span = 1
	}
	x := func(tm time.Time) float64 {
		f := tm.Sub(start).Seconds() / span
		return l + (w-l-r)*math.Max(0, math.Min(1, f))
	}
	y := func(v float64) float64 { return t + (h-t-b)*(1-v/top) }
	path := func(ps []point) string {
		var sb strings.Builder
		for i, p := range ps {
			c := "L"
			if i == 0 {
				c = "M"
			}
			fmt.Fprintf(&sb, "%s%.1f %.1f ", c, x(p.T), y(p.V))
		}
		return strings.TrimSpace(sb.String())
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s">`, w, h, esc(title))
	fmt.Fprintf(&sb, `<title>%s</title>`, esc(title))
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		fmt.Fprintf(&sb, `<line class="grid" x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f"/>`, l, y(v), w-r, y(v))
		fmt.Fprintf(&sb, `<text class="axis" x="%.0f" y="%.1f" text-anchor="end">%s</text>`, l-6, y(v)+4, esc(money(v)))
	}
	fmt.Fprintf(&sb, `<text class="axis" x="%.0f" y="%.0f">%s</text>`, l, h-8, start.Format("2006-01-02"))
	fmt.Fprintf(&sb, `<text class="axis" x="%.0f" y="%.0f" text-anchor="end">%s</text>`, w-r, h-8, end.Format("2006-01-02"))
	if commit > 0 {
		fmt.Fprintf(&sb, `<line class="cap" x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f"/>`, l, y(commit), w-r, y(commit))
	}
	if len(plan) > 1 {
		fmt.Fprintf(&sb, `<path class="plan" d="%s"/>`, path(plan))
	}
	if len(forecast) > 1 {
		fmt.Fprintf(&sb, `<path class="forecast" d="%s"/>`, path(forecast))
	}
	if len(spent) > 1 {
		fmt.Fprintf(&sb, `<path class="spent" d="%s"/>`, path(spent))
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

// qty formats a count compactly: 950, 12.3k, 1.47M.
func qty(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case a >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// money formats USD compactly: $950, $12.3k, $4.5M, $38.0B.
func money(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e9:
		return fmt.Sprintf("$%.1fB", v/1e9)
	case a >= 1e6:
		return fmt.Sprintf("$%.1fM", v/1e6)
	case a >= 1e4:
		return fmt.Sprintf("$%.1fk", v/1e3)
	case a >= 100:
		return fmt.Sprintf("$%.0f", v)
	default:
		return fmt.Sprintf("$%.2f", v)
	}
}
