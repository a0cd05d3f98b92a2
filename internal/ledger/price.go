package ledger

import (
	"time"

	"gpubroker/internal/model"
)

// Rate is how one pool's capacity is paid for.
type Rate struct {
	// PerGPUHour is the USD price of one GPU-hour: list less any contract
	// discount, or a capacity contract's own price.
	PerGPUHour float64
	// Contract is the contract the spend counts toward; "" for none.
	Contract string
	// TakeOrPay is set for committed and reserved pools: every installed
	// GPU-hour is paid, used or not.
	TakeOrPay bool
}

// PoolRate prices a pool at time at, by the same rule the engine ranks
// with: the pool's own contract when active, else (for non-spot pools) an
// active spend commitment with the pool's provider; a spend commitment
// takes its discount off list. A pool tied to a capacity contract with a
// price pays that price.
func PoolRate(f *model.Fleet, cl *model.Cluster, p *model.Pool, at time.Time) Rate {
	r := Rate{PerGPUHour: p.PricePerGPUHour, TakeOrPay: p.PriceClass == model.Committed || p.PriceClass == model.Reserved}
	var c *model.Contract
	if p.Contract != "" {
		for i := range f.Contracts {
			if f.Contracts[i].Name == p.Contract && active(&f.Contracts[i], at) {
				c = &f.Contracts[i]
			}
		}
	}
	if c == nil && p.PriceClass != model.Spot {
		for i := range f.Contracts {
			k := &f.Contracts[i]
			if k.Provider == cl.Provider && k.Kind == model.SpendCommitment && active(k, at) {
				c = k
				break
			}
		}
	}
	if c == nil {
		return r
	}
	r.Contract = c.Name
	switch {
	case c.Kind == model.SpendCommitment:
		r.PerGPUHour = p.PricePerGPUHour * (1 - c.Discount)
	case c.PricePerGPUHour > 0:
		r.PerGPUHour = c.PricePerGPUHour
	default:
		r.PerGPUHour = p.PricePerGPUHour * (1 - c.Discount)
	}
	return r
}

func active(c *model.Contract, at time.Time) bool {
	return !at.Before(c.Start) && at.Before(c.End)
}
