package report

import "html/template"

// pageTmpl is the whole page. html/template escapes every value from the
// Report; the SVG fragments are template.HTML built from escaped text (esc).
var pageTmpl = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gpubroker simulation — {{.Trace}}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1d1d1f;margin:0;background:#f6f7f9;font-size:15px;line-height:1.45}
main{max-width:1360px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:26px;margin:0 0 6px}
h2{font-size:20px;margin:36px 0 6px;padding-top:8px;border-top:1px solid #dde1e6}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:10px 0 0}
dl.meta dt{color:#555}dl.meta dd{margin:0;font-weight:600;overflow-wrap:anywhere}
p.lead{color:#444;margin:4px 0 12px;max-width:1000px}
p.caption{color:#444;font-size:14px;margin:6px 2px 0;font-style:italic}
p.note{color:#555;font-size:13.5px;margin:6px 0}
.scroll{overflow-x:auto}
table{border-collapse:collapse;background:#fff;font-size:14px;margin:6px 0}
th,td{padding:5px 8px;border-bottom:1px solid #e4e7eb;text-align:left;white-space:nowrap}
th{background:#eef1f5;font-weight:600;white-space:normal;vertical-align:bottom;max-width:110px}
th[title]{text-decoration:underline dotted #999;cursor:help}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.name{font-weight:600}
td.best{background:#d7f3df;color:#0b5d22;font-weight:700}
td.warn{color:#b00020;font-weight:700}
td.dim{color:#777}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(600px,1fr));gap:16px}
figure{margin:0;background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:8px}
figure svg{display:block;width:100%;height:auto}
.wide{max-width:920px}
svg text{fill:#222;font-family:inherit}
svg .tt{font-size:15px;font-weight:700}
svg .lg{font-size:12.5px}
svg .tk{font-size:12px;fill:#444}
svg .ax{font-size:13px;fill:#222}
svg .note{font-size:12.5px;fill:#333;paint-order:stroke;stroke:#fff;stroke-width:3px}
svg .cap{font-size:12.5px;font-weight:700;fill:#d62728;paint-order:stroke;stroke:#fff;stroke-width:3px}
svg .in{font-size:11.5px;fill:#fff;font-weight:600}
svg .tot{font-size:12.5px;font-weight:700}
.empty{color:#666;font-style:italic}
</style>
</head>
<body>
<main>
<h1>gpubroker simulation report</h1>
<dl class="meta">
<dt>trace</dt><dd>{{.Trace}}</dd>
<dt>fleet</dt><dd>{{.Fleet}}</dd>
<dt>seed</dt><dd>{{.Seed}}</dd>
<dt>scale</dt><dd>{{.Scale}}× arrival rate</dd>
<dt>jobs</dt><dd>{{.Jobs}}</dd>
{{- if .Span}}
<dt>simulated span</dt><dd>{{.Span}}</dd>
{{- end}}
<dt>policies</dt><dd>{{.Policies}}</dd>
</dl>
{{- if not .Policies}}
<p class="empty">This report holds no policy runs, so there is nothing to compare or chart.</p>
{{- else}}

<h2>Policies side by side</h2>
<p class="lead">Every policy replayed the same jobs with the same seed. Green cells are the best (lowest) value in their column; red marks a provider share above the cap. Hover a column heading for its definition.</p>
{{template "table" .Summary}}

<h2>Cost by provider over time</h2>
<div class="grid">
{{- range .CostCharts}}
<figure>{{.}}</figure>
{{- end}}
</div>
<p class="caption">How to read: one panel per policy; each coloured band is a provider's spend so far, stacked, so the top edge is the total spent by that date. All panels share the same vertical scale.</p>

<h2>Cost by price class</h2>
<figure class="wide">{{.PriceChart}}</figure>
<p class="caption">How to read: one bar per policy, split into what was paid for committed, reserved, on-demand and spot capacity; the figure at the end is the total. A shorter bar is cheaper.</p>

<h2>Commitment burn-down vs plan</h2>
{{- if .BurnCharts}}
<div class="grid">
{{- range .BurnCharts}}
<figure>{{.}}</figure>
{{- end}}
</div>
<p class="caption">How to read: the dashed line is the spend the contract plans by each date, the solid line what was actually spent against it; red shading is the shortfall, money still owed to the contract (paid anyway if it is take-or-pay).</p>
{{template "table" .BurnTable}}
{{- else}}
<p class="empty">The fleet has no contracts.</p>
{{- end}}

<h2>Provider share vs the cap</h2>
<div class="grid">
{{- range .ShareCharts}}
<figure>{{.}}</figure>
{{- end}}
</div>
<p class="caption">How to read: each line is one provider's share of the fleet's GPU-hours over the rolling policy window; the dashed red line is the cap no provider should cross. HHI is the sum of squared shares (1 = everything on one provider).</p>

<h2>Job completion time</h2>
<figure class="wide">{{.JCTChart}}</figure>
<p class="caption">How to read: one line per policy; its height at a time x is the share of jobs finished within x of arriving (log scale). A line further up and to the left is faster.</p>
<p class="note">By job size: median / 99th percentile per policy; green is the lowest p99 in the row.</p>
{{template "table" .JCTSize}}

<h2>Queueing delay</h2>
<figure class="wide">{{.QueueChart}}</figure>
<p class="caption">How to read: one line per policy; its height at a time x is the share of jobs that started within x of arriving (log scale). Jobs that started at once sit at the left edge.</p>
<p class="note">By job size: median / 99th percentile per policy; green is the lowest p99 in the row.</p>
{{template "table" .QueueSize}}

<h2>GPU utilisation by cluster</h2>
{{- if .Util.Rows}}
{{- if .UtilNote}}<p class="note">{{.UtilNote}}</p>{{end}}
{{template "table" .Util}}
{{- else}}
<p class="empty">No utilisation recorded.</p>
{{- end}}

{{- if .Teams.Rows}}
<h2>Cost by team</h2>
{{- if .TeamsNote}}<p class="note">{{.TeamsNote}}</p>{{end}}
{{template "table" .Teams}}
{{- end}}

<h2>Jobs and work</h2>
{{template "table" .Outcomes}}
{{- end}}
</main>
</body>
</html>
{{define "table"}}<div class="scroll"><table>
<thead><tr>{{range .Head}}<th{{if .Title}} title="{{.Title}}"{{end}}>{{.Text}}</th>{{end}}</tr></thead>
<tbody>
{{- range .Rows}}
<tr>{{range .}}<td{{if .Class}} class="{{.Class}}"{{end}}{{if .Title}} title="{{.Title}}"{{end}}>{{.Text}}</td>{{end}}</tr>
{{- end}}
</tbody>
</table></div>{{end}}
`))
