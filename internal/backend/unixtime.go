package backend

import (
	"strconv"
	"strings"
	"time"
)

// UnixTime reads Unix seconds with a fraction, as the drivers' job scripts
// write them from bash's EPOCHREALTIME or `date +%s.%N`
// ("1733300000.123456", or with a comma where the locale has one); the
// zero time when it cannot.
func UnixTime(s string) time.Time {
	sec, frac, _ := strings.Cut(strings.Replace(s, ",", ".", 1), ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	var ns int64
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		v, err := strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		if err != nil {
			return time.Time{}
		}
		ns = v
	}
	return time.Unix(n, ns)
}
