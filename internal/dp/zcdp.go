package dp

import (
	"errors"
	"fmt"
	"math"
)

// DefaultDelta is the δ at which Veil reports ε for a ρ budget.
const DefaultDelta = 1e-6

// EpsilonFromRho converts a ρ-zCDP guarantee into the smallest ε such that the
// mechanism is (ε, delta)-DP, by the tight conversion of Canonne, Kamath and
// Steinke ("The Discrete Gaussian for Differential Privacy", 2020, Prop. 12 /
// Cor. 13):
//
//	ε(ρ, δ) = inf over α > 1 of  αρ + ln(1/δ)/(α−1) + ln(1−1/α) − ln(α)/(α−1).
//
// Every α > 1 gives a valid (ε, δ) pair, so an imperfect minimisation errs on
// the safe side (a slightly larger ε). The last two terms are negative, so the
// result never exceeds the simple bound ρ + 2√(ρ ln(1/δ)), which is the same
// expression without them minimised at α = 1 + √(ln(1/δ)/ρ); that α is always
// among the candidates. Example: ρ = 1/32, δ = 1e-3 gives 0.6880 (simple: 0.9605).
//
// When the bound is negative (tiny ρ, large δ) the mechanism is (0, δ)-DP and
// the result is 0. It returns 0 for ρ = 0, +Inf for ρ = +Inf, and NaN for a
// negative or NaN ρ or a delta outside (0, 1).
func EpsilonFromRho(rho, delta float64) float64 {
	switch {
	case math.IsNaN(rho) || rho < 0 || !validDelta(delta):
		return math.NaN()
	case rho == 0:
		return 0
	case math.IsInf(rho, 1):
		return math.Inf(1)
	}
	lnInvDelta := -math.Log(delta)

	// Minimise over t = ln(α−1), which spreads the useful range of α evenly:
	// a coarse grid to find the basin, then golden-section search inside it.
	f := func(t float64) float64 { return cksEpsilon(t, rho, lnInvDelta) }
	const (
		tMin, tMax = -30.0, 45.0
		step       = 0.1
	)
	bestT, best := 0.0, math.Inf(1)
	for t := tMin; t <= tMax; t += step {
		if v := f(t); v < best {
			bestT, best = t, v
		}
	}
	if lnInvDelta > 0 {
		// The simple bound's optimum, so the result can never exceed it even
		// when that α lies outside the grid (tiny ρ).
		if t := 0.5 * math.Log(lnInvDelta/rho); f(t) < best {
			bestT, best = t, f(t)
		}
	}
	if v := goldenMin(f, bestT-step, bestT+step); v < best {
		best = v
	}
	// A profile that holds at a negative ε holds at ε = 0 too.
	return math.Max(best, 0)
}

// cksEpsilon is the CKS20 bound at α = 1 + e^t, written to stay accurate for α
// close to 1: ln(1−1/α) = t − ln α and ln α = log1p(e^t).
func cksEpsilon(t, rho, lnInvDelta float64) float64 {
	am1 := math.Exp(t) // α − 1
	lnA := math.Log1p(am1)
	return (1+am1)*rho + (lnInvDelta-lnA)/am1 + t - lnA
}

// goldenMin minimises f on [a, b] by golden-section search and returns the
// smallest value it saw.
func goldenMin(f func(float64) float64, a, b float64) float64 {
	invPhi := (math.Sqrt(5) - 1) / 2
	c, d := b-invPhi*(b-a), a+invPhi*(b-a)
	fc, fd := f(c), f(d)
	for i := 0; i < 80 && b-a > 1e-12; i++ {
		if fc < fd {
			b, d, fd = d, c, fc
			c = b - invPhi*(b-a)
			fc = f(c)
		} else {
			a, c, fc = c, d, fd
			d = a + invPhi*(b-a)
			fd = f(d)
		}
	}
	return math.Min(fc, fd)
}

// RhoFromEpsilon inverts EpsilonFromRho: it returns the largest ρ whose tight
// ε at delta is at most eps, found by bisection (ε is increasing in ρ, since
// every term of the bound is). The result always satisfies
// EpsilonFromRho(ρ, delta) ≤ eps, so a budget converted this way is never
// overstated.
func RhoFromEpsilon(eps, delta float64) (float64, error) {
	if err := ValidateEpsilon(eps); err != nil {
		return 0, err
	}
	if !validDelta(delta) {
		return 0, fmt.Errorf("delta is %v, must be in (0, 1)", delta)
	}
	lo, hi := 0.0, eps
	for EpsilonFromRho(hi, delta) <= eps {
		lo, hi = hi, 2*hi
		if math.IsInf(hi, 1) {
			return 0, fmt.Errorf("no finite rho for epsilon %v at delta %v", eps, delta)
		}
	}
	for i := 0; i < 200 && hi-lo > 1e-15*hi; i++ {
		mid := lo + (hi-lo)/2
		if EpsilonFromRho(mid, delta) <= eps {
			lo = mid
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return 0, fmt.Errorf("epsilon %v is too small to convert at delta %v", eps, delta)
	}
	return lo, nil
}

// ValidateEpsilon returns an error naming the problem when eps cannot be a
// privacy parameter: not positive, NaN or infinite.
func ValidateEpsilon(eps float64) error {
	switch {
	case math.IsNaN(eps):
		return errors.New("epsilon is NaN")
	case math.IsInf(eps, 0):
		return fmt.Errorf("epsilon is %v, must be finite", eps)
	case eps <= 0:
		return fmt.Errorf("epsilon is %v, must be positive", eps)
	}
	return nil
}

func validDelta(delta float64) bool { return delta > 0 && delta < 1 }

// validRho reports the problem with a per-release ρ, or nil.
func validRho(rho float64) error {
	switch {
	case math.IsNaN(rho):
		return errors.New("rho is NaN")
	case math.IsInf(rho, 0):
		return fmt.Errorf("rho is %v, must be finite", rho)
	case rho <= 0:
		return fmt.Errorf("rho is %v, must be positive", rho)
	}
	return nil
}

// Cost is a privacy cost in approximate zCDP: Rho from noise, Delta from the
// small chance that partition selection reveals a unit. Both add up under
// composition.
type Cost struct {
	Rho, Delta float64
}

// Add composes two costs: ρ adds (zCDP composition) and so do the δs of
// threshold mechanisms (union bound over their failure events).
func (c Cost) Add(o Cost) Cost {
	return Cost{Rho: c.Rho + o.Rho, Delta: c.Delta + o.Delta}
}

// Epsilon reports the (ε, δ_total)-DP guarantee of the cost at reporting
// delta (normally DefaultDelta): ε = EpsilonFromRho(c.Rho, delta) and
// δ_total = delta + c.Delta.
func (c Cost) Epsilon(delta float64) (eps, deltaTotal float64) {
	return EpsilonFromRho(c.Rho, delta), delta + c.Delta
}
