package dp

import (
	"fmt"
	"math"

	"github.com/google/differential-privacy/go/v3/noise"
)

// Laplace releases a single sum under pure ε-DP: each unit changes at most L0
// partitions by at most LInf, so the L1 sensitivity is L0·LInf and the noise
// scale is b = L0·LInf/ε. Pure ε-DP implies ε²/2-zCDP (Bun and Steinke 2016,
// Prop. 1.4), which is what it costs in Veil's ledger. For many releases the
// Gaussian is cheaper in zCDP; Laplace suits a lone count with no δ at all.
type Laplace struct {
	L0      int64
	LInf    float64
	Epsilon float64
}

// Scale is the Laplace scale b; the noise standard deviation is √2·b.
func (l Laplace) Scale() float64 { return float64(l.L0) * l.LInf / l.Epsilon }

// Cost is what one AddNoise call spends: ρ = ε²/2.
func (l Laplace) Cost() Cost { return Cost{Rho: l.Epsilon * l.Epsilon / 2} }

// Validate reports why l cannot release a value.
func (l Laplace) Validate() error {
	if l.L0 < 1 {
		return fmt.Errorf("L0 is %d, must be at least 1", l.L0)
	}
	if math.IsNaN(l.LInf) || math.IsInf(l.LInf, 0) || l.LInf <= 0 {
		return fmt.Errorf("LInf is %v, must be positive and finite", l.LInf)
	}
	if err := ValidateEpsilon(l.Epsilon); err != nil {
		return err
	}
	if l.Epsilon < math.Exp2(-50) {
		return fmt.Errorf("epsilon is %v, the noise library needs at least 2^-50", l.Epsilon)
	}
	return nil
}

// AddNoise returns x plus Laplace noise of scale Scale(), drawn by the
// library's granular geometric sampler. It panics if Validate fails.
func (l Laplace) AddNoise(x float64) float64 {
	if err := l.Validate(); err != nil {
		panic("dp: Laplace.AddNoise: " + err.Error())
	}
	y, err := noise.Laplace().AddNoiseFloat64(x, l.L0, l.LInf, l.Epsilon, 0)
	if err != nil {
		panic("dp: Laplace.AddNoise: " + err.Error())
	}
	return y
}

// CI returns the library's interval around noisy that contains the true value
// with probability 1−alpha, or NaN bounds for invalid l or alpha.
func (l Laplace) CI(noisy, alpha float64) (lo, hi float64) {
	ci, err := noise.Laplace().ComputeConfidenceIntervalFloat64(noisy, l.L0, l.LInf, l.Epsilon, 0, alpha)
	if err != nil {
		return math.NaN(), math.NaN()
	}
	return ci.LowerBound, ci.UpperBound
}
