package server

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"gpubroker/internal/api"
	"gpubroker/internal/engine"
	"gpubroker/internal/ledger"
	"gpubroker/internal/model"
	"gpubroker/internal/spec"
	"gpubroker/internal/store"
)

// TestPricingAgrees runs one job per price class x contract kind on a
// one-pool fleet (list $4/GPU-h) and wants the four places that price a
// GPU-hour to agree: the ledger's rule (ledger.PoolRate), the engine's
// ranking (engine.Plan: billed + committed credit = rate, list - discount
// = rate), the server's usage (cost / GPU-hours of the job that ran =
// what one more used GPU-hour costs: 0 on take-or-pay capacity, else the
// rate) and the dashboard's fleet page (the pool's price = rate).
func TestPricingAgrees(t *testing.T) {
	t.Parallel()
	contracts := []struct {
		name string
		yaml string // contracts: block; the pool names contract c when it has one
		pool string // the pool's contract: line
		rate float64
	}{
		{"none", "", "", 4},
		{"spend commitment 25% off", `contracts:
  - {name: c, provider: onprem, kind: spend, spend_usd: 1e6, start: 2026-01-01, years: 7, discount: 0.25, take_or_pay: true}
`, "", 3},
		{"capacity contract at $2", `contracts:
  - {name: c, provider: onprem, kind: capacity, gpu: H100, gpus: 4, price_per_gpu_hour: 2, start: 2026-01-01, years: 7, discount: 0.25, take_or_pay: true}
`, ", contract: c", 2},
		{"capacity contract 25% off, no price", `contracts:
  - {name: c, provider: onprem, kind: capacity, gpu: H100, gpus: 4, start: 2026-01-01, years: 7, discount: 0.25, take_or_pay: true}
`, ", contract: c", 3},
	}
	for _, class := range []model.PriceClass{model.Committed, model.Reserved, model.OnDemand, model.Spot} {
		for _, c := range contracts {
			t.Run(string(class)+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				spot := ""
				if class == model.Spot {
					spot = "\n  use_spot: true"
					if c.pool == "" && c.yaml != "" {
						// A provider-wide spend commitment never covers spot.
						c.rate = 4
					}
				}
				fleet := c.yaml + fmt.Sprintf(`clusters:
  - name: local
    provider: onprem
    region: local
    backend: local
    pools: [{name: gpu, gpu: H100, gpus_per_node: 4, nodes: 1, price_class: %s, price_per_gpu_hour: 4%s}]
`, class, c.pool)
				task := "resources:\n  accelerators: H100:1" + spot + "\nrun: sleep 0.3\n"
				takeOrPay := class == model.Committed || class == model.Reserved
				marginal := c.rate
				if takeOrPay {
					marginal = 0
				}

				// The ledger.
				fl, _, err := spec.ParseFleet([]byte(fleet), "fleet.yaml", nil)
				if err != nil {
					t.Fatal(err)
				}
				now := time.Now()
				cl := &fl.Clusters[0]
				rate := ledger.PoolRate(fl, cl, &cl.Pools[0], now)
				if !near(rate.PerGPUHour, c.rate) || rate.TakeOrPay != takeOrPay {
					t.Errorf("ledger: %+v; want $%.2f/GPU-h, take-or-pay %v", rate, c.rate, takeOrPay)
				}

				// The engine.
				tk, err := spec.ParseTask([]byte(task), "task.yaml")
				if err != nil {
					t.Fatal(err)
				}
				w := tk.Workloads[0]
				w.ID = "w"
				cands := engine.Plan(&engine.Snapshot{Fleet: fl}, fl.Policy, w, now)
				if len(cands) != 1 || !cands[0].Feasible {
					t.Fatalf("engine: candidates %+v; want one feasible", cands)
				}
				cost := cands[0].Cost
				if !near(cost.BilledPerGPUHour+cost.CommittedCredit, c.rate) || !near(cost.ListPerGPUHour-cost.Discount, c.rate) || !near(cost.BilledPerGPUHour, marginal) {
					t.Errorf("engine: %+v; want billed + credit = list - discount = $%.2f, billed $%.2f", cost, c.rate, marginal)
				}

				// The server: a job runs, its usage is booked.
				e := newTestEnv(t)
				e.mustDo(http.StatusOK, "PUT", "/v1/fleet", e.admin, api.FleetRequest{Fleet: fleet}, nil)
				id := e.submit(e.admin, task)[0].ID
				e.waitState(id, 20*time.Second, store.Succeeded)
				var j api.Job
				e.mustDo(http.StatusOK, "GET", fmt.Sprintf("/v1/jobs/%d", id), e.admin, nil, &j)
				if j.Placement == nil || !near(j.Placement.BilledPerGPUHour, marginal) {
					t.Errorf("server placement: %+v; want billed $%.2f/GPU-h", j.Placement, marginal)
				}
				var u api.Usage
				e.mustDo(http.StatusOK, "GET", "/v1/usage?since=1d", e.admin, nil, &u)
				hours, usd := 0.0, 0.0
				for _, r := range u.Rows {
					hours += r.GPUHours()
					usd += r.CostUSD()
				}
				if hours <= 0 || !near(usd/hours, marginal) {
					t.Errorf("server usage: $%g for %g GPU-h; want $%.2f/GPU-h", usd, hours, marginal)
				}

				// The dashboard's fleet page.
				body := e.page("/fleet")
				m := poolPriceRE.FindStringSubmatch(body)
				if m == nil {
					t.Fatalf("dashboard: no pool price on the fleet page:\n%s", body)
				}
				if shown, _ := strconv.ParseFloat(m[1], 64); !near(shown, c.rate) {
					t.Errorf("dashboard: pool priced $%s/GPU-h; want $%.2f", m[1], c.rate)
				}
			})
		}
	}
}

// poolPriceRE finds the price cell of the fleet page's pool row.
var poolPriceRE = regexp.MustCompile(`<td>H100</td>.*<td class="n">\$([0-9.]+)</td></tr>`)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// page GETs a dashboard page logged in as admin.
func (e *testEnv) page(path string) string {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.url+path, nil)
	req.AddCookie(&http.Cookie{Name: "gpubroker_token", Value: e.admin})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET %s: %d %v\n%s", path, resp.StatusCode, err, b)
	}
	return string(b)
}
