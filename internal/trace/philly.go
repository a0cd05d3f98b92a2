package trace

import (
	"time"
)

// phillyTimeLayout is the Philly table's timestamp: cluster local time with
// no zone, read as UTC.
const phillyTimeLayout = "2006-01-02 15:04:05"

// The Philly table's timestamps must fall in these years; anything else is a
// corrupt row (and would overflow the offsets).
const phillyMinYear, phillyMaxYear = 1970, 2200

var phillyFormat = format{
	required: []string{"timestamp", "duration", "num_gpus", "cluster"},
	absolute: true,
	parse:    parsePhilly,
}

// parsePhilly maps timestamp,duration,num_gpus,gpu_time,cluster. gpu_time is
// duration x num_gpus and is not read. The table has no job id: the row
// number (1-based, header excluded) stands in for one.
func parsePhilly(c *cols, rec []string, _ *tally) (row, *rowError) {
	var r row
	ts := c.get(rec, "timestamp")
	at, err := time.Parse(phillyTimeLayout, ts)
	if err != nil {
		return r, reject(ReasonSubmitTime, "timestamp %q is not YYYY-MM-DD HH:MM:SS", ts)
	}
	if y := at.Year(); y < phillyMinYear || y > phillyMaxYear {
		return r, reject(ReasonSubmitTime, "timestamp %q is outside %d..%d", ts, phillyMinYear, phillyMaxYear)
	}
	r.at = at.Sub(time.Unix(0, 0))
	if r.dur, err = seconds(c.get(rec, "duration")); err != nil {
		return r, reject(ReasonDuration, "duration: %v", err)
	}
	var rerr *rowError
	if r.gpus, rerr = gpuCount(c.get(rec, "num_gpus")); rerr != nil {
		return r, rerr
	}
	vc := c.get(rec, "cluster")
	if vc == "" {
		return r, reject(ReasonMissingTeam, "empty cluster (virtual cluster) field")
	}
	r.team = cleanName("philly-" + vc)
	return r, nil
}
