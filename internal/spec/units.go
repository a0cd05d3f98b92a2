package spec

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// parseDuration accepts Go durations ("90m", "1h30m") plus days and weeks
// ("1d", "2w", "1d12h").
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	neg := false
	if s[0] == '-' || s[0] == '+' {
		neg = s[0] == '-'
		s = s[1:]
	}
	var total float64
	for s != "" {
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("expected a number at %q", s)
		}
		v, err := strconv.ParseFloat(s[:i], 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", s[:i])
		}
		s = s[i:]
		j := 0
		for j < len(s) && !(s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
			j++
		}
		unit := s[:j]
		s = s[j:]
		var mult float64
		switch unit {
		case "ns":
			mult = float64(time.Nanosecond)
		case "us", "µs":
			mult = float64(time.Microsecond)
		case "ms":
			mult = float64(time.Millisecond)
		case "s":
			mult = float64(time.Second)
		case "m":
			mult = float64(time.Minute)
		case "h":
			mult = float64(time.Hour)
		case "d":
			mult = float64(24 * time.Hour)
		case "w":
			mult = float64(7 * 24 * time.Hour)
		case "":
			return 0, fmt.Errorf("missing unit after %v", v)
		default:
			return 0, fmt.Errorf("unknown unit %q", unit)
		}
		total += v * mult
	}
	if total > math.MaxInt64/2 {
		return 0, fmt.Errorf("too long")
	}
	if neg {
		total = -total
	}
	return time.Duration(total), nil
}

// parseDate accepts "2026-01-01" (midnight UTC) and RFC 3339.
func parseDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02 15:04:05", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a date", s)
}

// parseAtLeast reads SkyPilot's "4", "4+", "32GB+" forms: a number, an
// optional unit (memory only, converted to GiB) and an optional "+" meaning
// "this or more".
func parseAtLeast(s string, memory bool) (v float64, atLeast bool, err error) {
	s = strings.TrimSpace(s)
	if strings.HasSuffix(s, "+") {
		atLeast = true
		s = strings.TrimSpace(strings.TrimSuffix(s, "+"))
	}
	scale := 1.0
	if memory {
		s, scale = cutSizeUnit(s)
	}
	v, err = strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false, fmt.Errorf("not a number")
	}
	return v * scale, atLeast, nil
}

// cutSizeUnit strips a byte-size unit and returns the factor to GiB.
func cutSizeUnit(s string) (string, float64) {
	// SkyPilot reads memory in GiB whatever the spelling, so GB is GiB here.
	units := []struct {
		suffix string
		scale  float64
	}{
		{"tib", 1024}, {"tb", 1024}, {"t", 1024},
		{"gib", 1}, {"gb", 1}, {"g", 1},
		{"mib", 1.0 / 1024}, {"mb", 1.0 / 1024}, {"m", 1.0 / 1024},
	}
	ls := strings.ToLower(s)
	for _, u := range units {
		if strings.HasSuffix(ls, u.suffix) {
			return strings.TrimSpace(s[:len(s)-len(u.suffix)]), u.scale
		}
	}
	return s, 1
}
