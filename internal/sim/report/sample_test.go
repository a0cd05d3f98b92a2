package report

import (
	"flag"
	"math"
	"os"
	"testing"
	"time"
)

var (
	sampleOut  = flag.String("sample", "", "write the HTML of a realistic sample report to this path, to look at in a browser")
	sampleDays = flag.Int("sample-days", 75, "simulated days in the -sample report")
)

// TestWriteSample renders realisticReport to the -sample path, so the page
// can be checked by eye (and screenshotted) after a change to the renderer.
func TestWriteSample(t *testing.T) {
	if *sampleOut == "" {
		t.Skip("no -sample path given")
	}
	f, err := os.Create(*sampleOut)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := WriteHTML(f, realisticReport()); err != nil {
		t.Fatal(err)
	}
}

// lcg is a tiny deterministic generator for sample data.
type lcg uint64

func (l *lcg) float() float64 {
	*l = *l*6364136223846793005 + 1442695040888963407
	return float64(uint64(*l)>>11) / (1 << 53)
}

// realisticReport looks like a Philly replay through the seed scenario: an
// Azure incumbent, an AWS take-or-pay commitment, GCP spot and on-prem, a 60%
// cap, four policies.
func realisticReport() *Report {
	start := time.Date(2017, 10, 3, 0, 0, 0, 0, time.UTC)
	days := *sampleDays
	end := start.AddDate(0, 0, days)
	rng := lcg(7)
	type pol struct {
		name  string
		mix   map[string]float64 // share of daily spend
		daily float64
		cap   float64
		jct   float64 // median JCT scale, seconds
		lost  float64
	}
	pols := []pol{
		{"gpubroker", map[string]float64{"aws": 0.55, "azure": 0.2, "gcp": 0.15, "onprem": 0.1}, 410e3, 0.6, 2.2 * 3600, 310},
		{"single:azure", map[string]float64{"azure": 1}, 690e3, 0, 3.5 * 3600, 0},
		{"cheapest", map[string]float64{"aws": 0.1, "azure": 0.05, "gcp": 0.7, "onprem": 0.15}, 380e3, 0, 2.9 * 3600, 4200},
		{"fifo", map[string]float64{"aws": 0.5, "azure": 0.25, "gcp": 0.15, "onprem": 0.1}, 425e3, 0.6, 4.1 * 3600, 350},
	}
	r := &Report{
		Trace: "philly:../shared/data/traces/philly", Fleet: "examples/aws-commit-38b.yaml",
		Seed: 1, Scale: 40, Start: start, End: end, Jobs: 82247 * 40,
	}
	for _, p := range pols {
		run := PolicyRun{
			Name:             p.name,
			CostByProvider:   map[string]float64{},
			CostByPriceClass: map[string]float64{},
			CostByContract:   map[string]float64{},
			CostByTeam:       map[string]float64{},
			ProviderShareCap: p.cap,
			JCTBySize:        map[string]Dist{},
			QueueingBySize:   map[string]Dist{},
			Utilisation:      map[string]float64{},
			NeverRunnable:    map[string]int{"gang larger than any pool": 37, "no pool offers GPU model MI300X": 12},
		}
		cum := map[string]float64{}
		planned, actual := 0.0, 0.0
		aws := Commitment{Contract: "aws-h100-7y", Provider: "aws", TakeOrPay: true}
		for d := 0; d <= days; d++ {
			tm := start.AddDate(0, 0, d)
			if d > 0 {
				load := 0.7 + 0.6*rng.float() + 0.3*math.Sin(float64(d)/7)
				for _, k := range sortedKeys(p.mix) {
					cum[k] += p.daily * p.mix[k] * load
				}
				planned += 250e3
				actual += p.daily * p.mix["aws"] * load
			}
			pt := CostPoint{Time: tm, ByProvider: map[string]float64{}}
			for k, v := range cum {
				pt.ByProvider[k] = v
			}
			run.CostOverTime = append(run.CostOverTime, pt)
			aws.Series = append(aws.Series, BurnPoint{Time: tm, PlannedUSD: planned, ActualUSD: actual})
			sp := SharePoint{Time: tm, Share: map[string]float64{}}
			tot := 0.0
			for _, k := range sortedKeys(p.mix) {
				v := p.mix[k] * (0.85 + 0.3*rng.float())
				sp.Share[k] = v
				tot += v
			}
			for _, k := range sortedKeys(sp.Share) {
				sp.Share[k] /= tot
				if p.cap > 0 {
					sp.Share[k] = math.Min(sp.Share[k], p.cap)
				}
				sp.HHI += sp.Share[k] * sp.Share[k]
			}
			run.ProviderShare = append(run.ProviderShare, sp)
		}
		aws.CommittedUSD = planned
		aws.UsedUSD = math.Min(actual, planned)
		aws.ShortfallUSD = math.Max(planned-actual, 0)
		aws.WastedUSD = aws.ShortfallUSD
		run.Commitments = []Commitment{aws}
		for _, k := range sortedKeys(cum) {
			run.CostByProvider[k] = cum[k]
			run.CostUSD += cum[k]
		}
		run.CostUSD += aws.WastedUSD
		run.CostOverTime[len(run.CostOverTime)-1].ByProvider["aws"] += aws.WastedUSD // due at the end
		run.CostByProvider["aws"] += aws.WastedUSD
		run.CostByContract["aws-h100-7y"] = aws.UsedUSD + aws.WastedUSD
		run.CostByPriceClass["committed"] = aws.UsedUSD + aws.WastedUSD
		run.CostByPriceClass["spot"] = cum["gcp"]
		run.CostByPriceClass["ondemand"] = cum["azure"] + cum["aws"] - aws.UsedUSD
		run.CostByPriceClass["reserved"] = cum["onprem"]
		for i, team := range []string{"vc-6214e9", "vc-7f04ca", "vc-11cb8b", "vc-b436b2", "vc-ee9e8c", "vc-e7e4f0", "vc-2d7437", "vc-103959", "vc-0e4a51", "vc-ed69ec", "vc-795b3c", "vc-51b7ef", "vc-925e2a", "vc-23dbf3"} {
			run.CostByTeam[team] = (run.CostUSD - aws.WastedUSD) / float64(i+2) / 3.2
		}
		var jct, queue []float64
		bySizeJ := map[string][]float64{}
		bySizeQ := map[string][]float64{}
		for i := 0; i < 4000; i++ {
			gpus := []int{1, 1, 1, 2, 4, 8, 16, 32, 64, 128}[int(rng.float()*10)]
			q := 0.0
			if rng.float() < 0.6 {
				q = math.Exp(math.Log(p.jct/8) + 2*(rng.float()-0.5)*3)
			}
			run1 := math.Exp(math.Log(p.jct) + 2.2*(rng.float()+rng.float()-1)*2)
			jct = append(jct, q+run1)
			queue = append(queue, q)
			b := SizeBucket(gpus)
			bySizeJ[b] = append(bySizeJ[b], q+run1)
			bySizeQ[b] = append(bySizeQ[b], q)
		}
		run.JCT, run.Queueing = Summarize(jct), Summarize(queue)
		for b, xs := range bySizeJ { // Summarize draws nothing random: order is free
			run.JCTBySize[b] = Summarize(xs)
			run.QueueingBySize[b] = Summarize(bySizeQ[b])
		}
		for _, c := range []string{"aws-us-east-1-p5", "aws-us-west-2-p5", "azure-eastus-nd96", "azure-westeu-nd96", "gcp-us-central1-a3-spot", "onprem-redmond"} {
			run.Utilisation[c] = 0.4 + 0.55*rng.float()
		}
		run.GPUHoursRun = (run.CostUSD - aws.WastedUSD) / (p.daily / 160e3)
		run.GPUHoursLost = p.lost * 40
		run.GPUHoursBilled = run.GPUHoursRun + run.GPUHoursLost
		run.WithDeadline = 1200
		run.DeadlinesMissed = int(p.jct / 3600 * 20)
		run.JobsCompleted = r.Jobs - 49
		run.Events = int64(r.Jobs) * 4
		r.Policies = append(r.Policies, run)
	}
	return r
}
