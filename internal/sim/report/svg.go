package report

import (
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"
)

// The charts are drawn in a fixed coordinate space and scaled by the browser
// (viewBox, width 100%), so fonts keep their size relative to the plot.
const (
	chartW      = 640.0 // a panel in the two-column grid
	wideW       = 900.0 // a chart on its own row
	marginL     = 76.0
	marginR     = 36.0
	marginB     = 54.0
	titleY      = 22.0
	legendY     = 44.0
	legendRowH  = 18.0
	fontPx      = 12.0
	charW       = 6.8 // average glyph width at fontPx, for layout estimates
	maxPoints   = 800 // longer series are thinned for drawing
	targetTicks = 6
)

var xmlEscaper = strings.NewReplacer(
	"&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;",
)

// esc escapes text for an SVG text node or attribute. The SVG carries no
// xmlns: inline SVG in HTML needs none, and the page names no URL at all.
func esc(s string) string { return xmlEscaper.Replace(s) }

// svgDoc accumulates one SVG element. Every piece of text that enters it goes
// through esc, so names from a trace or fleet can never inject markup.
type svgDoc struct {
	b strings.Builder
}

func newSVG(w, h float64, label string) *svgDoc {
	s := &svgDoc{}
	s.b.WriteString(`<svg viewBox="0 0 ` + num(w) + ` ` + num(h) +
		`" role="img" aria-label="` + esc(label) + `" font-size="` + num(fontPx) + `">`)
	return s
}

func (s *svgDoc) raw(x string) { s.b.WriteString(x) }

// text draws a label; anchor is start, middle or end; class selects CSS.
func (s *svgDoc) text(x, y float64, anchor, class, txt string) {
	s.b.WriteString(`<text x="` + num(x) + `" y="` + num(y) + `" text-anchor="` + anchor + `"`)
	if class != "" {
		s.b.WriteString(` class="` + class + `"`)
	}
	s.b.WriteString(`>` + esc(txt) + `</text>`)
}

// vtext draws a label rotated to read bottom-up, centred on (x, y).
func (s *svgDoc) vtext(x, y float64, class, txt string) {
	s.b.WriteString(`<text x="` + num(x) + `" y="` + num(y) + `" text-anchor="middle" class="` + class +
		`" transform="rotate(-90 ` + num(x) + ` ` + num(y) + `)">` + esc(txt) + `</text>`)
}

func (s *svgDoc) line(x1, y1, x2, y2 float64, stroke string, width float64, dash string) {
	s.b.WriteString(`<line x1="` + num(x1) + `" y1="` + num(y1) + `" x2="` + num(x2) + `" y2="` + num(y2) +
		`" stroke="` + esc(stroke) + `" stroke-width="` + num(width) + `"`)
	if dash != "" {
		s.b.WriteString(` stroke-dasharray="` + dash + `"`)
	}
	s.b.WriteString(`/>`)
}

func (s *svgDoc) rect(x, y, w, h float64, fill string, title string) {
	s.b.WriteString(`<rect x="` + num(x) + `" y="` + num(y) + `" width="` + num(math.Max(w, 0)) +
		`" height="` + num(math.Max(h, 0)) + `" fill="` + esc(fill) + `"`)
	if title == "" {
		s.b.WriteString(`/>`)
		return
	}
	s.b.WriteString(`><title>` + esc(title) + `</title></rect>`)
}

func (s *svgDoc) circle(x, y, r float64, fill string) {
	s.b.WriteString(`<circle cx="` + num(x) + `" cy="` + num(y) + `" r="` + num(r) + `" fill="` + esc(fill) + `"/>`)
}

// polyline draws a line through pts; fewer than two points draw a dot.
func (s *svgDoc) polyline(pts [][2]float64, stroke string, width float64, dash string) {
	switch len(pts) {
	case 0:
		return
	case 1:
		s.circle(pts[0][0], pts[0][1], width+1.5, stroke)
		return
	}
	s.b.WriteString(`<polyline fill="none" stroke="` + esc(stroke) + `" stroke-width="` + num(width) +
		`" stroke-linejoin="round" points="`)
	for i, p := range pts {
		if i > 0 {
			s.b.WriteByte(' ')
		}
		s.b.WriteString(num(p[0]) + "," + num(p[1]))
	}
	s.b.WriteString(`"`)
	if dash != "" {
		s.b.WriteString(` stroke-dasharray="` + dash + `"`)
	}
	s.b.WriteString(`/>`)
}

// polygon fills the closed shape through pts.
func (s *svgDoc) polygon(pts [][2]float64, fill string, opacity float64) {
	if len(pts) < 3 {
		return
	}
	s.b.WriteString(`<polygon fill="` + esc(fill) + `" fill-opacity="` + num(opacity) + `" stroke="none" points="`)
	for i, p := range pts {
		if i > 0 {
			s.b.WriteByte(' ')
		}
		s.b.WriteString(num(p[0]) + "," + num(p[1]))
	}
	s.b.WriteString(`"/>`)
}

func (s *svgDoc) html() template.HTML {
	s.b.WriteString(`</svg>`)
	// The content is built from escaped text and numbers only (see esc).
	return template.HTML(s.b.String())
}

// legendItem is one entry of a chart legend.
type legendItem struct {
	label string
	color string
	kind  string // "line", "dash", "box" (solid fill) or "shade" (pale fill)
}

// legendLayout lays out items left to right, wrapping at the chart width, and
// returns how many rows it needs.
func legendLayout(items []legendItem, width float64) (pos [][2]float64, rows int) {
	x, row := marginL, 0
	for _, it := range items {
		w := 22 + float64(len([]rune(fit(it.label, width/2, charW))))*charW + 16
		if x+w > width-marginR && x > marginL {
			x, row = marginL, row+1
		}
		pos = append(pos, [2]float64{x, legendY + float64(row)*legendRowH})
		x += w
	}
	if len(items) > 0 {
		rows = row + 1
	}
	return pos, rows
}

// drawLegend draws items at the positions from legendLayout.
func (s *svgDoc) drawLegend(items []legendItem, pos [][2]float64) {
	for i, it := range items {
		x, y := pos[i][0], pos[i][1]
		switch it.kind {
		case "box":
			s.rect(x, y-9, 16, 11, it.color, "")
		case "dash":
			s.line(x, y-4, x+16, y-4, it.color, 2.5, "5 3")
		case "shade":
			s.raw(`<rect x="` + num(x) + `" y="` + num(y-9) + `" width="16" height="11" fill="` + esc(it.color) +
				`" fill-opacity="0.25" stroke="` + esc(it.color) + `" stroke-width="0.8"/>`)
		default:
			s.line(x, y-4, x+16, y-4, it.color, 2.5, "")
		}
		s.text(x+22, y, "start", "lg", fit(it.label, chartW/2, charW))
	}
}

// frame is the plot area of one chart and the data ranges it shows.
type frame struct {
	left, right, top, bottom float64 // pixel edges of the plot area
	x0, x1, y0, y1           float64 // data domain
	xlog                     bool    // x is log10-scaled (x0, x1 > 0)
}

func (f frame) X(v float64) float64 {
	v = finite(v)
	lo, hi := f.x0, f.x1
	if f.xlog {
		v, lo, hi = math.Log10(math.Max(v, f.x0)), math.Log10(lo), math.Log10(hi)
	}
	if hi == lo {
		return (f.left + f.right) / 2
	}
	return f.left + (v-lo)/(hi-lo)*(f.right-f.left)
}

func (f frame) Y(v float64) float64 {
	v = finite(v)
	if f.y1 == f.y0 {
		return f.bottom
	}
	return f.bottom - (v-f.y0)/(f.y1-f.y0)*(f.bottom-f.top)
}

// chart is a titled, legended plot under construction.
type chart struct {
	s *svgDoc
	f frame
}

// newChart starts a chart with a title and legend; the plot area takes the
// space left between the legend and the x-axis labels.
func newChart(width float64, title string, legend []legendItem, plotH float64) *chart {
	pos, rows := legendLayout(legend, width)
	top := legendY + float64(max(rows, 0))*legendRowH + 6
	if rows == 0 {
		top = legendY
	}
	h := top + plotH + marginB
	c := &chart{s: newSVG(width, h, title)}
	c.f = frame{left: marginL, right: width - marginR, top: top, bottom: top + plotH}
	c.s.raw(`<rect x="0" y="0" width="` + num(width) + `" height="` + num(h) + `" fill="#fff"/>`)
	c.s.text(marginL, titleY, "start", "tt", fit(title, width-marginL-8, 8.6))
	c.s.drawLegend(legend, pos)
	return c
}

// tick is one labelled axis position.
type tick struct {
	v     float64
	label string
}

// niceStep returns a 1, 2 or 5 x 10^k step giving about n intervals over span.
func niceStep(span float64, n int) float64 {
	if !(span > 0) || math.IsInf(span, 0) {
		return 1
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

// linearTicks returns ticks from 0 to a round maximum at or above hi, and
// that maximum. A zero or negative hi gives a 0..1 axis.
func linearTicks(hi float64, format func(float64) string) ([]tick, float64) {
	hi = finite(hi)
	if hi <= 0 {
		hi = 1
	}
	step := niceStep(hi, targetTicks-1)
	top := math.Ceil(hi/step-1e-9) * step
	var ts []tick
	for i := 0; ; i++ {
		v := float64(i) * step
		if v > top+step/2 {
			break
		}
		ts = append(ts, tick{v, format(v)})
	}
	return ts, top
}

// yAxis draws horizontal gridlines with labels, and the rotated axis title.
func (c *chart) yAxis(ts []tick, title string) {
	for _, t := range ts {
		y := c.f.Y(t.v)
		c.s.line(c.f.left, y, c.f.right, y, "#e3e3e3", 1, "")
		c.s.text(c.f.left-6, y+4, "end", "tk", t.label)
	}
	c.s.line(c.f.left, c.f.top, c.f.left, c.f.bottom, "#888", 1, "")
	c.s.vtext(16, (c.f.top+c.f.bottom)/2, "ax", title)
}

// xAxis draws tick marks with labels under the plot and the axis title.
func (c *chart) xAxis(ts []tick, title string, grid bool) {
	for _, t := range ts {
		x := c.f.X(t.v)
		if grid {
			c.s.line(x, c.f.top, x, c.f.bottom, "#efefef", 1, "")
		}
		c.s.line(x, c.f.bottom, x, c.f.bottom+5, "#888", 1, "")
		c.s.text(x, c.f.bottom+18, "middle", "tk", t.label)
	}
	c.s.line(c.f.left, c.f.bottom, c.f.right, c.f.bottom, "#888", 1, "")
	c.s.text((c.f.left+c.f.right)/2, c.f.bottom+42, "middle", "ax", title)
}

// unix converts a time to the float seconds used on time axes.
func unix(t time.Time) float64 { return float64(t.Unix()) }

// timeTicks chooses calendar-aligned ticks (hours, days, weeks, months or
// years, UTC) between t0 and t1, the finest step whose labels fit side by
// side in widthPx pixels.
func timeTicks(t0, t1 time.Time, widthPx float64) []tick {
	t0, t1 = t0.UTC(), t1.UTC()
	span := t1.Sub(t0)
	type unit struct {
		d      time.Duration // approximate step length, for choosing
		hours  int
		days   int
		months int
		layout string
	}
	units := []unit{
		{time.Hour, 1, 0, 0, ""},
		{3 * time.Hour, 3, 0, 0, ""},
		{6 * time.Hour, 6, 0, 0, ""},
		{12 * time.Hour, 12, 0, 0, ""},
		{24 * time.Hour, 0, 1, 0, "Jan 2"},
		{48 * time.Hour, 0, 2, 0, "Jan 2"},
		{7 * 24 * time.Hour, 0, 7, 0, "Jan 2"},
		{14 * 24 * time.Hour, 0, 14, 0, "Jan 2"},
		{30 * 24 * time.Hour, 0, 0, 1, "Jan 2006"},
		{61 * 24 * time.Hour, 0, 0, 2, "Jan 2006"},
		{91 * 24 * time.Hour, 0, 0, 3, "Jan 2006"},
		{182 * 24 * time.Hour, 0, 0, 6, "Jan 2006"},
		{365 * 24 * time.Hour, 0, 0, 12, "2006"},
		{2 * 365 * 24 * time.Hour, 0, 0, 24, "2006"},
		{5 * 365 * 24 * time.Hour, 0, 0, 60, "2006"},
		{10 * 365 * 24 * time.Hour, 0, 0, 120, "2006"},
		{100 * 365 * 24 * time.Hour, 0, 0, 1200, "2006"},
	}
	u := units[len(units)-1]
	for _, c := range units {
		chars := len(c.layout)
		if chars == 0 {
			chars = len("Jan 2")
		}
		maxN := int(widthPx / (float64(chars)*charW + 22))
		if span/c.d+1 <= time.Duration(maxN) {
			u = c
			break
		}
	}
	var t time.Time
	switch {
	case u.hours > 0:
		t = t0.Truncate(time.Duration(u.hours) * time.Hour)
	case u.days > 0:
		t = time.Date(t0.Year(), t0.Month(), t0.Day(), 0, 0, 0, 0, time.UTC)
		if u.days == 7 || u.days == 14 { // weeks start on Monday
			t = t.AddDate(0, 0, -((int(t.Weekday()) + 6) % 7))
		}
	default:
		m := (int(t0.Month()) - 1) / min(u.months, 12) * min(u.months, 12)
		t = time.Date(t0.Year(), time.Month(m+1), 1, 0, 0, 0, 0, time.UTC)
		if u.months > 12 {
			y := t0.Year() / (u.months / 12) * (u.months / 12)
			t = time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
		}
	}
	var ts []tick
	for i := 0; i < 1000; i++ {
		var c time.Time
		switch {
		case u.hours > 0:
			c = t.Add(time.Duration(i*u.hours) * time.Hour)
		case u.days > 0:
			c = t.AddDate(0, 0, i*u.days)
		default:
			c = t.AddDate(0, i*u.months, 0)
		}
		if c.After(t1) {
			break
		}
		if c.Before(t0) {
			continue
		}
		label := c.Format(u.layout)
		if u.hours > 0 { // the date at midnight, the hour in between
			label = c.Format("15:04")
			if c.Hour() == 0 {
				label = c.Format("Jan 2")
			}
		}
		ts = append(ts, tick{unix(c), label})
	}
	return ts
}

// timeAxisTitle names the years a time axis spans, e.g. "date (UTC), 2017".
func timeAxisTitle(t0, t1 time.Time) string {
	y0, y1 := t0.UTC().Year(), t1.UTC().Year()
	if y0 == y1 {
		return "date (UTC), " + itoa(y0)
	}
	return "date (UTC), " + itoa(y0) + "–" + itoa(y1)
}

func itoa(n int) string { return strconv.Itoa(n) }

// thin keeps at most maxPoints evenly spaced indexes of a series of length n,
// always the first and the last, so long runs draw quickly.
func thin(n int) []int {
	idx := make([]int, 0, min(n, maxPoints))
	if n <= maxPoints {
		for i := range n {
			idx = append(idx, i)
		}
		return idx
	}
	for k := range maxPoints {
		idx = append(idx, k*(n-1)/(maxPoints-1))
	}
	return idx
}

// fit shortens s with an ellipsis so that it takes at most px pixels at
// charPx pixels per character; the full text stays in tables and labels.
func fit(s string, px, charPx float64) string {
	r := []rune(s)
	n := int(px / charPx)
	if len(r) <= n || n < 2 {
		return s
	}
	return string(r[:n-1]) + "…"
}
