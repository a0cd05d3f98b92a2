package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden files in testdata/ from the current output")

var day0 = time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)

// smallReport is a hand-built two-policy report over three days.
func smallReport() *Report {
	at := func(d int) time.Time { return day0.AddDate(0, 0, d) }
	return &Report{
		Trace: "philly:testdata/philly-10.csv", Fleet: "examples/fleet.yaml",
		Seed: 42, Scale: 1.5, Start: at(0), End: at(2), Jobs: 10,
		Policies: []PolicyRun{
			{
				Name:             "gpubroker",
				CostUSD:          1700,
				CostByProvider:   map[string]float64{"aws": 1200, "gcp": 500},
				CostByPriceClass: map[string]float64{"committed": 1200, "spot": 500},
				CostByContract:   map[string]float64{"aws-commit": 1200},
				CostByTeam:       map[string]float64{"vision": 900, "nlp": 600},
				GPUHoursRun:      500, GPUHoursBilled: 520, GPUHoursLost: 20,
				Commitments: []Commitment{{
					Contract: "aws-commit", Provider: "aws", TakeOrPay: true, CommittedUSD: 1200,
					Series: []BurnPoint{
						{at(0), 0, 0}, {at(1), 600, 500}, {at(2), 1200, 1000},
					},
					UsedUSD: 1000, WastedUSD: 200, ShortfallUSD: 200,
				}},
				ProviderShare: []SharePoint{
					{at(1), map[string]float64{"aws": 0.6, "gcp": 0.4}, 0.52},
					{at(2), map[string]float64{"aws": 0.5, "gcp": 0.5}, 0.5},
				},
				ProviderShareCap: 0.6,
				CostOverTime: []CostPoint{
					{at(0), map[string]float64{"aws": 0, "gcp": 0}},
					{at(1), map[string]float64{"aws": 600, "gcp": 200}},
					{at(2), map[string]float64{"aws": 1200, "gcp": 500}},
				},
				JCT:            Summarize([]float64{30, 600, 3600, 7200, 86400}),
				JCTBySize:      map[string]Dist{Size1: Summarize([]float64{30, 600}), Size9to64: Summarize([]float64{3600, 7200, 86400})},
				Queueing:       Summarize([]float64{0, 0, 10, 60, 900}),
				QueueingBySize: map[string]Dist{Size1: Summarize([]float64{0, 0}), Size9to64: Summarize([]float64{10, 60, 900})},
				Utilisation:    map[string]float64{"aws-east": 0.8, "gcp-central": 0.55},
				WithDeadline:   2, DeadlinesMissed: 0,
				JobsCompleted: 9, NeverRunnable: map[string]int{"no pool offers GPU model MI300X": 1},
				Events: 57,
			},
			{
				Name:             "single:azure",
				CostUSD:          2600,
				CostByProvider:   map[string]float64{"azure": 1400, "aws": 1200},
				CostByPriceClass: map[string]float64{"ondemand": 1400, "committed": 1200},
				CostByContract:   map[string]float64{"aws-commit": 1200},
				CostByTeam:       map[string]float64{"vision": 800, "nlp": 600},
				GPUHoursRun:      500, GPUHoursBilled: 500,
				Commitments: []Commitment{{
					Contract: "aws-commit", Provider: "aws", TakeOrPay: true, CommittedUSD: 1200,
					Series:    []BurnPoint{{at(0), 0, 0}, {at(1), 600, 0}, {at(2), 1200, 0}},
					WastedUSD: 1200, ShortfallUSD: 1200,
				}},
				ProviderShare: []SharePoint{
					{at(1), map[string]float64{"azure": 1}, 1},
					{at(2), map[string]float64{"azure": 1}, 1},
				},
				CostOverTime: []CostPoint{
					{at(0), map[string]float64{"azure": 0, "aws": 0}},
					{at(1), map[string]float64{"azure": 700, "aws": 600}},
					{at(2), map[string]float64{"azure": 1400, "aws": 1200}},
				},
				JCT:          Summarize([]float64{40, 900, 5400, 9000, 172800}),
				JCTBySize:    map[string]Dist{Size1: Summarize([]float64{40, 900}), Size9to64: Summarize([]float64{5400, 9000, 172800})},
				Queueing:     Summarize([]float64{0, 5, 30, 600, 3600}),
				Utilisation:  map[string]float64{"azure-eastus": 0.7},
				WithDeadline: 2, DeadlinesMissed: 1,
				JobsCompleted: 9, NeverRunnable: map[string]int{"no pool offers GPU model MI300X": 1},
				Events: 61,
			},
		},
	}
}

func render(t *testing.T, write func(io.Writer, *Report) error, r *Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := write(&b, r); err != nil {
		t.Fatalf("render: %v", err)
	}
	return b.String()
}

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		file  string
		write func(io.Writer, *Report) error
	}{
		{"small.json", WriteJSON},
		{"small.html", WriteHTML},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got := render(t, tc.write, smallReport())
			path := filepath.Join("testdata", tc.file)
			if *rewrite {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -rewrite to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s differs (-want +got); if the change is intended, run go test -rewrite:\n%s", path, diff)
			}
		})
	}
}

func TestJSONRoundTrip(t *testing.T) {
	t.Parallel()
	r := smallReport()
	var back Report
	if err := json.Unmarshal([]byte(render(t, WriteJSON, r)), &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(*r, back); diff != "" {
		t.Errorf("JSON round trip (-want +got):\n%s", diff)
	}
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	for _, r := range []*Report{smallReport(), realisticReport()} {
		for name, w := range map[string]func(io.Writer, *Report) error{"json": WriteJSON, "html": WriteHTML} {
			a, b := render(t, w, r), render(t, w, r)
			if a != b {
				t.Errorf("%s: two renders of the same report differ", name)
			}
		}
	}
}

func TestHTMLSelfContained(t *testing.T) {
	t.Parallel()
	for _, r := range []*Report{smallReport(), realisticReport(), {}} {
		h := strings.ToLower(render(t, WriteHTML, r))
		for _, bad := range []string{"http://", "https://", "<script", "<link", "<img", "@import", "url(", "src="} {
			if strings.Contains(h, bad) {
				t.Errorf("HTML contains %q; the page must reference nothing outside itself", bad)
			}
		}
	}
}

var svgRE = regexp.MustCompile(`(?s)<svg .*?</svg>`)

// checkSVGs parses every inline SVG with encoding/xml and returns how many
// there were.
func checkSVGs(t *testing.T, h string) int {
	t.Helper()
	svgs := svgRE.FindAllString(h, -1)
	for i, s := range svgs {
		d := xml.NewDecoder(strings.NewReader(s))
		d.Strict = true
		for {
			_, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("SVG %d is not well-formed XML: %v\n%.400s", i, err, s)
			}
		}
		for _, bad := range []string{"NaN", "Inf"} {
			if strings.Contains(s, bad) {
				t.Errorf("SVG %d contains %q", i, bad)
			}
		}
	}
	return len(svgs)
}

func TestSVGWellFormed(t *testing.T) {
	t.Parallel()
	// small: 2 cost, 1 price, 2 burn-down, 2 share, 2 CDF.
	if n := checkSVGs(t, render(t, WriteHTML, smallReport())); n != 9 {
		t.Errorf("small report has %d SVG charts, want 9", n)
	}
	if n := checkSVGs(t, render(t, WriteHTML, realisticReport())); n != 4+1+4+4+2 {
		t.Errorf("realistic report has %d SVG charts, want 15", n)
	}
}

func TestEscapesText(t *testing.T) {
	t.Parallel()
	r := smallReport()
	evil := `<script>alert("x")</script>&'`
	r.Trace = evil
	r.Policies[0].Name = evil
	r.Policies[0].CostByProvider[evil] = 1
	r.Policies[0].CostOverTime[1].ByProvider[evil] = 5
	r.Policies[0].Commitments[0].Contract = evil
	r.Policies[0].NeverRunnable[evil] = 2
	r.Policies[0].Utilisation[evil] = 0.5
	h := render(t, WriteHTML, r)
	if strings.Contains(h, "<script") {
		t.Error("unescaped <script> from report text reached the page")
	}
	checkSVGs(t, h)
}

func TestDegenerateInputs(t *testing.T) {
	t.Parallel()
	one := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	nan := math.NaN()
	cases := map[string]*Report{
		"empty":       {},
		"no policies": {Trace: "t", Fleet: "f", Start: one, End: one.AddDate(0, 1, 0)},
		"zero policy": {Policies: []PolicyRun{{}}},
		"zero cost": {Start: one, End: one, Policies: []PolicyRun{{
			Name:          "p",
			CostOverTime:  []CostPoint{{one, map[string]float64{"aws": 0}}},
			ProviderShare: []SharePoint{{one, map[string]float64{}, 0}},
			Commitments:   []Commitment{{Contract: "c", Provider: "aws"}},
		}}},
		"one point": {Start: one, End: one, Jobs: 1, Policies: []PolicyRun{{
			Name: "p", CostUSD: 10, CostByProvider: map[string]float64{"aws": 10},
			CostByPriceClass: map[string]float64{"ondemand": 10},
			CostOverTime:     []CostPoint{{one, map[string]float64{"aws": 10}}},
			ProviderShare:    []SharePoint{{one, map[string]float64{"aws": 1}, 1}},
			ProviderShareCap: 0.6,
			Commitments:      []Commitment{{Contract: "c", Provider: "aws", Series: []BurnPoint{{one, 5, 10}}}},
			JCT:              Summarize([]float64{0}),
			Queueing:         Summarize([]float64{0}),
			JCTBySize:        map[string]Dist{"1": Summarize([]float64{0})},
			Utilisation:      map[string]float64{"x": 0},
		}}},
		"NaN and Inf": {Start: one, End: one.AddDate(0, 0, 1), Policies: []PolicyRun{{
			Name: "p", CostUSD: nan, GPUHoursRun: math.Inf(1),
			CostByProvider:   map[string]float64{"aws": nan},
			CostByPriceClass: map[string]float64{"spot": math.Inf(1)},
			CostOverTime:     []CostPoint{{one, map[string]float64{"aws": nan}}, {one.AddDate(0, 0, 1), map[string]float64{"aws": math.Inf(1)}}},
			ProviderShare:    []SharePoint{{one, map[string]float64{"aws": nan}, nan}},
			Commitments:      []Commitment{{Contract: "c", Series: []BurnPoint{{one, nan, math.Inf(-1)}}}},
		}}},
		"times out of order and far apart": {Start: one.AddDate(7, 0, 0), End: one, Policies: []PolicyRun{{
			Name:         "p",
			CostOverTime: []CostPoint{{one.AddDate(7, 0, 0), map[string]float64{"x": 1}}, {one, map[string]float64{"x": 2}}},
		}}},
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			h := render(t, WriteHTML, r)
			checkSVGs(t, h)
			if name != "NaN and Inf" {
				render(t, WriteJSON, r)
			}
		})
	}
	if err := WriteJSON(io.Discard, cases["NaN and Inf"]); err == nil {
		t.Error("WriteJSON accepted NaN")
	}
	if WriteJSON(io.Discard, nil) == nil || WriteHTML(io.Discard, nil) == nil {
		t.Error("nil Report accepted")
	}
}

func TestManyClustersAndTeamsSummarised(t *testing.T) {
	t.Parallel()
	r := smallReport()
	for i := range 1000 {
		r.Policies[0].Utilisation["c"+itoa(i)] = float64(i) / 1000
		r.Policies[0].CostByTeam["t"+itoa(i)] = float64(i)
	}
	h := render(t, WriteHTML, r)
	if !strings.Contains(h, "1003 clusters: too many to list") {
		t.Error("utilisation of 1003 clusters is not summarised")
	}
	if !strings.Contains(h, "other teams") {
		t.Error("1002 teams are not cut to the top ones")
	}
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	xs := []float64{}
	for i := 1; i <= 100; i++ {
		xs = append(xs, float64(i))
	}
	xs = append(xs, math.NaN(), -1, math.Inf(1))
	d := Summarize(xs)
	if d.Count != 100 || d.Mean != 50.5 || d.P50 != 50 || d.P90 != 90 || d.P99 != 99 || d.Max != 100 {
		t.Errorf("Summarize(1..100) = %+v", d)
	}
	total := 0
	for i, b := range d.Hist {
		total += b.Count
		if i > 0 && b.Lower != d.Hist[i-1].Upper {
			t.Errorf("bin %d does not start where bin %d ends", i, i-1)
		}
	}
	if total != 100 {
		t.Errorf("histogram holds %d samples, want 100", total)
	}
	if last := d.Hist[len(d.Hist)-1]; !(last.Lower <= 100 && 100 < last.Upper) {
		t.Errorf("last bin %+v does not hold the max", last)
	}
	// Exact edges land in the bin they open.
	for _, s := range []float64{1, 10, 100, 1000, math.Pow(10, 0.25)} {
		b := Summarize([]float64{s}).Hist
		if got := b[len(b)-1]; got.Count != 1 || got.Lower > s {
			t.Errorf("Summarize(%v): last bin %+v", s, got)
		}
	}
	if z := Summarize(nil); z.Count != 0 || z.Hist != nil {
		t.Errorf("Summarize(nil) = %+v", z)
	}
	if got := Summarize([]float64{0.5}).Hist; len(got) != 1 || got[0].Count != 1 {
		t.Errorf("Summarize(0.5).Hist = %+v", got)
	}
}

func TestSizeBucket(t *testing.T) {
	t.Parallel()
	for gpus, want := range map[int]string{0: "1", 1: "1", 2: "2-8", 8: "2-8", 9: "9-64", 64: "9-64", 65: "65+", 4096: "65+"} {
		if got := SizeBucket(gpus); got != want {
			t.Errorf("SizeBucket(%d) = %q, want %q", gpus, got, want)
		}
	}
}

func TestFormats(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ got, want string }{
		{usd(0), "$0"}, {usd(12.5), "$12.5"}, {usd(950), "$950"}, {usd(1234), "$1.23k"},
		{usd(45e3), "$45k"}, {usd(1.2e6), "$1.2M"}, {usd(38e9), "$38B"}, {usd(-2500), "-$2.5k"},
		{usd(999.7), "$1k"}, {usd(math.NaN()), "$0"},
		{gpuHours(3400), "3.4k GPU-h"},
		{pct(0.6), "60%"}, {pct(0.6000000001), "60%"}, {pct(0.583), "58.3%"}, {pct(1), "100%"},
		{duration(45), "45s"}, {duration(720), "12m"}, {duration(3.4 * 3600), "3.4h"}, {duration(2.1 * 86400), "2.1d"},
		{count(82247), "82,247"}, {count(-1000), "-1,000"}, {count(7), "7"},
		{itoa(2017), "2017"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestTimeTicks(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		span      time.Duration
		wantFirst string
	}{
		{12 * time.Hour, "Mar 1"},
		{75 * 24 * time.Hour, "Mar 11"},     // fortnightly, Mondays
		{365 * 24 * time.Hour, "Mar 2024"},  // months
		{7 * 365 * 24 * time.Hour, "2025"},  // years
		{60 * 365 * 24 * time.Hour, "2030"}, // decades
		{0, "Mar 1"},                        // a single instant
		{-24 * time.Hour, ""},               // reversed: nothing
		{3 * 24 * time.Hour, "Mar 1"},       // half days
		{20 * 24 * time.Hour, "Mar 4"},      // weekly
		{10 * 24 * time.Hour, "Mar 1"},      // two days
		{40 * 24 * time.Hour, "Mar 4"},      // weeks
		{3 * 365 * 24 * time.Hour, "2025"},  // years
	} {
		ts := timeTicks(day0, day0.Add(c.span), chartW-marginL-marginR)
		if len(ts) > 12 {
			t.Errorf("span %v: %d ticks, want at most 12", c.span, len(ts))
		}
		first := ""
		if len(ts) > 0 {
			first = ts[0].label
		}
		if first != c.wantFirst {
			t.Errorf("span %v: first tick %q, want %q (all: %v)", c.span, first, c.wantFirst, ts)
		}
	}
}

func TestBestOfComparesShownText(t *testing.T) {
	t.Parallel()
	show := func(vals []float64) func(int) string { return func(i int) string { return duration(vals[i]) } }
	for name, c := range map[string]struct {
		vals []float64
		ok   []bool
		want []int
	}{
		"lowest wins":              {[]float64{30, 20, 40}, []bool{true, true, true}, []int{1}},
		"ties as shown":            {[]float64{1146, 1149, 3000}, []bool{true, true, true}, []int{0, 1}}, // both read 19.1m
		"all read the same":        {[]float64{1146, 1147}, []bool{true, true}, nil},
		"invalid ones ignored":     {[]float64{0, 50, 60}, []bool{false, true, true}, []int{1}},
		"one valid value: nothing": {[]float64{0, 50}, []bool{false, true}, nil},
	} {
		if got := bestOf(c.vals, c.ok, show(c.vals)); !cmp.Equal(got, c.want) {
			t.Errorf("%s: bestOf = %v, want %v", name, got, c.want)
		}
	}
}
