package dp

import (
	"fmt"
	"math"
)

// Selector decides which partitions of an open-ended dimension (pages,
// referrers, custom properties) may be published at all, by Gaussian
// thresholding — the "Gaussian sparse histogram" mechanism.
//
// For each partition present in the data, the number of distinct privacy units
// in it gets Gaussian noise with σ = √L0/√(2ρ) (each unit adds 1 to at most L0
// partitions, so the L2 sensitivity is √L0), and the partition is released
// only if the noisy count exceeds Threshold().
//
// Why this is (Rho, Delta)-approximate zCDP. Take two datasets that differ in
// one unit u. Partitions u shares with other units exist in both, and their
// counts differ by at most 1 in at most L0 places: that part is the Gaussian
// mechanism with L2 sensitivity √L0, ρ-zCDP, and thresholding its output is
// post-processing. What the Gaussian cannot hide is a partition that exists
// only because of u — it holds exactly one unit, and mere publication would
// reveal u. Threshold is set so that such a partition is published with
// probability at most Delta/L0; u creates at most L0 of them, so by the union
// bound all stay hidden except with probability at most Delta. Outside that
// event the output is ρ-zCDP, which is the definition of δ-approximate ρ-zCDP
// (Bun and Steinke 2016, Def. 8.1). Approximate zCDP composes by adding both
// ρ and δ (Cost.Add), and (ρ, δ′)-approximate zCDP is
// (EpsilonFromRho(ρ, δ), δ + δ′)-DP (Cost.Epsilon).
//
// The noisy count of a kept partition is the Gaussian release itself, so
// publishing it as the partition's visitor count costs nothing more.
type Selector struct {
	L0    int64   // partitions of this dimension one unit may appear in
	Rho   float64 // zCDP cost of the noisy counts
	Delta float64 // total probability that a unit's own partitions leak
}

// Gaussian is the noisy distinct-unit count Keep uses; its CI method gives the
// uncertainty of a kept partition's count.
func (s Selector) Gaussian() Gaussian { return Gaussian{L0: s.L0, LInf: 1, Rho: s.Rho} }

// Cost is what one selection over a dimension spends.
func (s Selector) Cost() Cost { return Cost{Rho: s.Rho, Delta: s.Delta} }

// Validate reports why s cannot be used: an invalid Gaussian, or Delta not in
// (0, 1).
func (s Selector) Validate() error {
	if err := s.Gaussian().Validate(); err != nil {
		return err
	}
	if !(s.Delta > 0 && s.Delta < 1) {
		return fmt.Errorf("delta is %v, must be in (0, 1)", s.Delta)
	}
	return nil
}

// Threshold is the noisy count a partition must exceed to be released. A
// partition holding one unit has noisy count 1 + Z with Z ~ N(0, σ²), so
//
//	P(1 + Z > T) = Delta/L0  ⇔  T = 1 + σ·Φ⁻¹(1 − Delta/L0) = 1 + σ·√2·erfcinv(2·Delta/L0).
//
// (The complementary form via Erfcinv keeps its precision for tiny Delta.)
// The union bound's Delta/L0 is at most the per-partition 1 − (1 − Delta)^(1/L0)
// that the library's Threshold uses (it assumes independent partitions), so
// for the same σ this threshold is never lower than the library's.
func (s Selector) Threshold() float64 {
	return 1 + s.Gaussian().Sigma()*math.Sqrt2*math.Erfcinv(2*s.Delta/float64(s.L0))
}

// Keep adds Gaussian noise to the number of distinct units in a partition and
// reports whether the partition may be released, with the noisy count (which
// may be published as its visitor count at no extra cost). It panics if s is
// invalid, like Gaussian.AddNoise.
func (s Selector) Keep(units int64) (noisy float64, keep bool) {
	if err := s.Validate(); err != nil {
		panic("dp: Selector.Keep: " + err.Error())
	}
	noisy = s.Gaussian().addNoise(float64(units))
	return noisy, noisy > s.Threshold()
}
