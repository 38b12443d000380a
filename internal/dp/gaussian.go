package dp

import (
	"fmt"
	"math"

	"github.com/google/differential-privacy/go/v3/noise"
)

// Gaussian releases a sum to which each privacy unit contributes to at most
// L0 partitions, changing each by at most LInf. Its L2 sensitivity is
// Δ₂ = √L0·LInf and it costs Rho in ρ-zCDP, which fixes the noise:
// σ = Δ₂/√(2ρ) (Bun and Steinke 2016, Prop. 1.6).
type Gaussian struct {
	L0   int64
	LInf float64
	Rho  float64
}

// Sigma is the standard deviation of the noise AddNoise adds: √L0·LInf/√(2ρ).
func (g Gaussian) Sigma() float64 {
	return math.Sqrt(float64(g.L0)) * g.LInf / math.Sqrt(2*g.Rho)
}

// Cost is what one AddNoise call spends.
func (g Gaussian) Cost() Cost { return Cost{Rho: g.Rho} }

// Validate reports why g cannot release a value: L0 < 1, LInf or Rho not
// positive and finite, or a σ the library cannot be made to sample exactly.
func (g Gaussian) Validate() error {
	if g.L0 < 1 {
		return fmt.Errorf("L0 is %d, must be at least 1", g.L0)
	}
	if math.IsNaN(g.LInf) || math.IsInf(g.LInf, 0) || g.LInf <= 0 {
		return fmt.Errorf("LInf is %v, must be positive and finite", g.LInf)
	}
	if err := validRho(g.Rho); err != nil {
		return err
	}
	return checkLibrarySigma(g.Sigma())
}

// AddNoise returns x plus Gaussian noise of standard deviation exactly
// Sigma(), drawn by the library's secure binomial sampler (crypto/rand).
//
// The library takes (ε, δ) rather than σ, but its Gaussian depends on σ alone:
// AddNoiseFloat64 computes σ = SigmaForGaussian(l0, lInf, ε, δ) and samples
// with that σ, nothing else. So any arguments for which SigmaForGaussian
// returns our σ draw exactly the noise our zCDP analysis needs; the (ε, δ)
// passed are only a way to name σ, not a privacy claim. See libEpsilon for the
// arguments used and why they hit σ exactly rather than within the library's
// 0.1% search tolerance. (The sampler is a binomial whose distance from the
// exact Gaussian the library's design bounds; like the library, Veil accounts
// it as the Gaussian of that σ.)
//
// AddNoise panics if Validate fails: a release must never go out without its
// noise, and parameters come from configuration that is validated at start.
func (g Gaussian) AddNoise(x float64) float64 {
	if err := g.Validate(); err != nil {
		panic("dp: Gaussian.AddNoise: " + err.Error())
	}
	return g.addNoise(x)
}

// addNoise is AddNoise for a g that passed Validate.
func (g Gaussian) addNoise(x float64) float64 {
	// l0 = 1 and lInf = σ: see libEpsilon.
	y, err := noise.Gaussian().AddNoiseFloat64(x, 1, g.Sigma(), libEpsilon, libDelta)
	if err != nil {
		panic("dp: Gaussian.AddNoise: " + err.Error())
	}
	return y
}

// CI returns the interval noisy ± z·σ that contains the true value with
// probability 1−alpha (alpha = 0.05 for 95%), z being the standard normal
// quantile at 1−alpha/2. It is post-processing of a released value and costs
// nothing. The computation mirrors the library's
// ComputeConfidenceIntervalFloat64 (z = √2·erfcinv(alpha)). alpha = 0 gives an
// infinite interval; alpha outside [0, 1] or an invalid g gives NaN.
func (g Gaussian) CI(noisy, alpha float64) (lo, hi float64) {
	if !(alpha >= 0 && alpha <= 1) || g.Validate() != nil {
		return math.NaN(), math.NaN()
	}
	half := g.Sigma() * math.Sqrt2 * math.Erfcinv(alpha)
	return noisy - half, noisy + half
}

// The library's SigmaForGaussian(l0, lInf, ε, δ) finds the smallest σ making
// the Gaussian mechanism (ε, δ)-DP for L2 sensitivity Δ = √l0·lInf: it starts
// with the upper bound u = Δ, doubles u while δ(u) > δ, then bisects [lower, u]
// until the width is at most 0.1% of lower, returning u. Here
// δ(σ) = Φ(Δ/2σ − εσ/Δ) − e^ε·Φ(−Δ/2σ − εσ/Δ) (Balle and Wang 2018, Thm. 8)
// is decreasing in σ.
//
// Passing l0 = 1 and lInf = σ makes the first upper bound σ itself. With
// (ε, δ) = (libEpsilon, libDelta) chosen so that δ(σ) ≤ libDelta < δ(σ·(1−2⁻¹¹))
// — a property of the ratio σ/Δ = 1 only, hence the same for every σ — the
// doubling loop never runs and every bisection midpoint (at most σ·(1−2⁻¹⁰))
// is rejected, so the function returns its initial upper bound: σ, bit for bit.
// checkLibrarySigma verifies this for each σ before any noise is drawn.
const libEpsilon = 1.0

var libDelta = func() float64 {
	// δ at σ/Δ = 1 and at σ/Δ = 1−2⁻¹¹; libDelta sits halfway, far (~1e-5
	// relative) from both ends compared with rounding errors (~1e-16).
	return (balleWangDelta(1, libEpsilon) + balleWangDelta(1-math.Exp2(-11), libEpsilon)) / 2
}()

// balleWangDelta is δ(σ) above for Δ = 1.
func balleWangDelta(sigma, eps float64) float64 {
	a, b := 1/(2*sigma), eps*sigma
	return stdNormalCDF(a-b) - math.Exp(eps)*stdNormalCDF(-a-b)
}

func stdNormalCDF(x float64) float64 { return 0.5 * math.Erfc(-x/math.Sqrt2) }

// checkLibrarySigma confirms the library will sample with exactly sigma.
func checkLibrarySigma(sigma float64) error {
	if math.IsNaN(sigma) || math.IsInf(sigma, 0) || sigma <= 0 {
		return fmt.Errorf("noise standard deviation is %v, must be positive and finite", sigma)
	}
	if got := noise.SigmaForGaussian(1, sigma, libEpsilon, libDelta); got != sigma {
		return fmt.Errorf("the noise library cannot be set to standard deviation %v (it would use %v)", sigma, got)
	}
	return nil
}
