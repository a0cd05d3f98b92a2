package report

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// finite returns v, or 0 when v is NaN or infinite, so a bad number in a
// Report never reaches an SVG coordinate.
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// trimZeros drops a trailing ".0" (or ".00") from a formatted number.
func trimZeros(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// si formats v with a k/M/B/T suffix and about three significant digits:
// 950, 1.2k, 45k, 450k, 1.23M, 38B.
func si(v float64) string {
	v = finite(v)
	neg := v < 0
	a := math.Abs(v)
	suffixes := []string{"", "k", "M", "B", "T"}
	i := 0
	for a >= 999.5 && i < len(suffixes)-1 {
		a /= 1000
		i++
	}
	var s string
	switch {
	case a == 0:
		s = "0"
	case a < 10:
		s = trimZeros(strconv.FormatFloat(a, 'f', 2, 64))
	case a < 100:
		s = trimZeros(strconv.FormatFloat(a, 'f', 1, 64))
	default:
		s = strconv.FormatFloat(a, 'f', 0, 64)
	}
	s += suffixes[i]
	if neg {
		s = "-" + s
	}
	return s
}

// usd formats dollars for humans: $0, $12.5, $1.2k, $450k, $1.23M, $38B.
func usd(v float64) string {
	s := si(v)
	if strings.HasPrefix(s, "-") {
		return "-$" + s[1:]
	}
	return "$" + s
}

// gpuHours formats GPU-hours: 950 GPU-h, 3.4k GPU-h.
func gpuHours(v float64) string { return si(v) + " GPU-h" }

// pct formats a fraction as a percentage: 0.583 -> "58.3%".
func pct(f float64) string {
	p := math.Round(finite(f)*1000) / 10
	if p == math.Trunc(p) || math.Abs(p) >= 100 {
		return strconv.FormatFloat(p, 'f', 0, 64) + "%"
	}
	return strconv.FormatFloat(p, 'f', 1, 64) + "%"
}

// duration formats seconds the way people say them: 45s, 12m, 3.4h, 2.1d.
func duration(s float64) string {
	s = finite(s)
	switch {
	case s < 60:
		return trimZeros(strconv.FormatFloat(s, 'f', 0, 64)) + "s"
	case s < 3600:
		return trimZeros(strconv.FormatFloat(s/60, 'f', 1, 64)) + "m"
	case s < 86400:
		return trimZeros(strconv.FormatFloat(s/3600, 'f', 1, 64)) + "h"
	default:
		return trimZeros(strconv.FormatFloat(s/86400, 'f', 1, 64)) + "d"
	}
}

// count formats an integer with thousands separators: 82,247.
func count[T int | int64](n T) string {
	s := strconv.FormatInt(int64(n), 10)
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

// day formats a time as a UTC date, 2017-10-03.
func day(t time.Time) string { return t.UTC().Format("2006-01-02") }

// num formats an SVG coordinate with one decimal.
func num(v float64) string {
	return strconv.FormatFloat(math.Round(finite(v)*10)/10, 'f', -1, 64)
}

func strconvF(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }
