package web

import (
	"fmt"
	"html/template"
	"time"
)

// funcs are the helpers templates may call.
var funcs = template.FuncMap{
	"money": money,
	"pct":   func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	},
	"date": func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"dur":  fmtDur,
	"ago": func(t, now time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return fmtDur(now.Sub(t)) + " ago"
	},
	"num": func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"pagerArgs": func(key string, p pager) map[string]any {
		return map[string]any{"Key": key, "P": p}
	},
}

// fmtDur is a duration to the second, in the two largest units.
func fmtDur(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%d days", int(d.Hours())/24)
	default:
		return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}
