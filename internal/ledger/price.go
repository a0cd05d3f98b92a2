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

// Price is the one pricing rule of a pool at a time, in full: what the
// engine ranks by, the server bills, the dashboard shows and the
// simulator books. Every figure is USD per GPU-hour.
type Price struct {
	// List is the pool's list price.
	List float64
	// Discount is what the contract takes off list (negative when a
	// capacity contract's price is above list).
	Discount float64
	Rate
	// Commitment is the contract the pool is priced under (nil: none); the
	// engine's shadow discount reads its burn.
	Commitment *model.Contract
}

// Marginal is what one more used GPU-hour costs: nothing on take-or-pay
// capacity (paid for whether used or not), else the rate.
func (p Price) Marginal() float64 {
	if p.TakeOrPay {
		return 0
	}
	return p.PerGPUHour
}

// PoolPrice prices a pool at time at: the pool's own contract when active,
// else (for non-spot pools) an active spend commitment with the pool's
// provider. A spend commitment takes its discount off list; a capacity
// contract with a price charges that price, one without takes its
// discount off list. Committed and reserved pools are take-or-pay.
func PoolPrice(f *model.Fleet, cl *model.Cluster, p *model.Pool, at time.Time) Price {
	pr := Price{List: p.PricePerGPUHour, Rate: Rate{PerGPUHour: p.PricePerGPUHour,
		TakeOrPay: p.PriceClass == model.Committed || p.PriceClass == model.Reserved}}
	var c *model.Contract
	if p.Contract != "" {
		for i := range f.Contracts {
			if f.Contracts[i].Name == p.Contract && active(&f.Contracts[i], at) {
				c = &f.Contracts[i]
			}
		}
	}
	if c == nil && p.PriceClass != model.Spot {
		// A provider-wide spend commitment (an enterprise discount
		// programme) covers every non-spot pool of the provider.
		for i := range f.Contracts {
			k := &f.Contracts[i]
			if k.Provider == cl.Provider && k.Kind == model.SpendCommitment && active(k, at) {
				c = k
				break
			}
		}
	}
	if c == nil {
		return pr
	}
	pr.Contract, pr.Commitment = c.Name, c
	if c.Kind != model.SpendCommitment && c.PricePerGPUHour > 0 {
		pr.Discount = p.PricePerGPUHour - c.PricePerGPUHour
		pr.PerGPUHour = c.PricePerGPUHour
	} else {
		pr.Discount = p.PricePerGPUHour * c.Discount
		pr.PerGPUHour = p.PricePerGPUHour - pr.Discount
	}
	return pr
}

// PoolRate is PoolPrice's Rate: how the pool's used GPU-hours are paid.
func PoolRate(f *model.Fleet, cl *model.Cluster, p *model.Pool, at time.Time) Rate {
	return PoolPrice(f, cl, p, at).Rate
}

func active(c *model.Contract, at time.Time) bool {
	return !at.Before(c.Start) && at.Before(c.End)
}
