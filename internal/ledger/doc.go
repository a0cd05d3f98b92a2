// Package ledger accounts for GPU usage and money: what ran where, what it
// cost, how commitments burn down against their plan, and how concentrated
// usage is on one provider.
//
// A Ledger is fed allocation intervals (Record) and committed take-or-pay
// pools (AddCommittedPool), then queried. It is pure: it imports only model
// and the standard library, reads no clock, and every output is ordered by
// sorted keys (never by map iteration), with floating-point sums taken in
// that order so the same inputs give the same numbers bit for bit.
//
// # Money
//
//   - An interval on on-demand, reserved or spot capacity costs
//     GPUs x hours x BilledPerGPUHour.
//   - A committed take-or-pay pool costs its price for every installed
//     GPU-hour of the accounted span, used or not. Intervals on it carry the
//     same price (TakeOrPay set) so their cost can be attributed to a team;
//     the pool's idle GPU-hours x price is the wasted take-or-pay, which
//     belongs to no team.
//   - Spend counted toward a contract is the cost of its intervals plus the
//     take-or-pay payments of its committed pools. A spend commitment's plan
//     is its yearly minimums (each spread evenly over its year) when given,
//     else a straight line over the term; the shortfall at t is
//     max(0, plan(t) - spent(t)).
//
// # Concentration
//
// Provider share is a provider's fraction of the GPU-hours run in a window
// (both run and lost work count: they held the capacity). HHI is the sum of
// squared shares on the 0..1 scale (1 = everything on one provider;
// multiply by 10,000 for the antitrust convention).
package ledger
