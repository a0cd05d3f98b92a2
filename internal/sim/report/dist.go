package report

import (
	"math"
	"slices"
)

// binsPerDecade is the histogram resolution: bin edges are 10^(k/4) seconds,
// so every run's histogram shares the same edges and compares bin for bin.
const binsPerDecade = 4

// Summarize computes a Dist from durations in seconds. Percentiles are
// nearest-rank. The histogram's first bin is [0, 1) s; after it, edges are
// log-spaced at four bins per decade (1, 1.78, 3.16, 5.62, 10, ... s) up to
// the bin holding the largest sample. Negative, NaN and infinite samples are
// ignored. The input is not modified. No samples give the zero Dist.
func Summarize(seconds []float64) Dist {
	xs := make([]float64, 0, len(seconds))
	for _, s := range seconds {
		if s >= 0 && !math.IsInf(s, 0) {
			xs = append(xs, s)
		}
	}
	if len(xs) == 0 {
		return Dist{}
	}
	slices.Sort(xs)
	sum := 0.0
	for _, s := range xs {
		sum += s
	}
	d := Dist{
		Count: len(xs),
		Mean:  sum / float64(len(xs)),
		P50:   nearestRank(xs, 0.50),
		P90:   nearestRank(xs, 0.90),
		P99:   nearestRank(xs, 0.99),
		Max:   xs[len(xs)-1],
	}
	d.Hist = append(d.Hist, Bin{Lower: 0, Upper: 1})
	for k := 0; d.Hist[len(d.Hist)-1].Upper <= d.Max; k++ {
		d.Hist = append(d.Hist, Bin{Lower: binEdge(k), Upper: binEdge(k + 1)})
	}
	for _, s := range xs {
		d.Hist[binIndex(s)].Count++
	}
	return d
}

// binEdge returns the k-th log-spaced edge, 10^(k/binsPerDecade) seconds.
func binEdge(k int) float64 {
	if k%binsPerDecade == 0 {
		return math.Pow(10, float64(k/binsPerDecade)) // exact powers of ten
	}
	return math.Pow(10, float64(k)/binsPerDecade)
}

// binIndex returns the histogram bin of a sample s >= 0.
func binIndex(s float64) int {
	if s < 1 {
		return 0
	}
	k := int(math.Floor(math.Log10(s) * binsPerDecade))
	// Correct floating-point error at the edges.
	for k > 0 && s < binEdge(k) {
		k--
	}
	for s >= binEdge(k+1) {
		k++
	}
	return k + 1
}

// nearestRank returns the p-quantile of sorted xs by the nearest-rank method.
func nearestRank(xs []float64, p float64) float64 {
	i := int(math.Ceil(p*float64(len(xs)))) - 1
	return xs[max(0, min(i, len(xs)-1))]
}
