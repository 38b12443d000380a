package dp

import (
	"math"
	"testing"

	"github.com/google/differential-privacy/go/v3/noise"
)

// A partition that only one unit created must leak with probability at most
// Delta/L0 — and not far less, or the threshold wastes utility.
func TestSelectorSingletonLeakRate(t *testing.T) {
	s := Selector{L0: 4, Rho: 0.05, Delta: 0.04} // per-partition 0.01
	kept := 0
	for i := 0; i < trials; i++ {
		if _, keep := s.Keep(1); keep {
			kept++
		}
	}
	p := s.Delta / float64(s.L0)
	slack := 4 * math.Sqrt(p*(1-p)/trials) // four standard errors
	if f := float64(kept) / trials; f > p+slack || f < p-slack {
		t.Errorf("singleton kept with frequency %.5f, want %.3f ± %.5f", f, p, slack)
	}
}

func TestSelectorKeepsLargePartitions(t *testing.T) {
	s := Selector{L0: 4, Rho: 0.05, Delta: 1e-6}
	sigma := s.Gaussian().Sigma()
	units := int64(math.Ceil(s.Threshold() + 6*sigma)) // missed with prob 1e-9
	var sum float64
	const n = 2000
	for i := 0; i < n; i++ {
		noisy, keep := s.Keep(units)
		if !keep {
			t.Fatalf("partition of %d units (threshold %.1f, sigma %.1f) dropped: noisy %.1f",
				units, s.Threshold(), sigma, noisy)
		}
		sum += noisy
	}
	// The returned noisy count is an unbiased release of the unit count.
	if mean := sum / n; math.Abs(mean-float64(units)) > 4*sigma/math.Sqrt(n) {
		t.Errorf("mean noisy count %.2f, want %d", mean, units)
	}
}

func TestSelectorThreshold(t *testing.T) {
	base := Selector{L0: 4, Rho: 0.05, Delta: 1e-6}
	// σ = √4/√0.1; z at 1 − 2.5e-7 is 5.0264.
	want := 1 + math.Sqrt(40)*5.0264
	if got := base.Threshold(); math.Abs(got-want) > 1e-3 {
		t.Errorf("Threshold = %v, want %v", got, want)
	}
	prev := math.Inf(-1)
	for delta := 0.5; delta > 1e-15; delta /= 10 {
		s := base
		s.Delta = delta
		if got := s.Threshold(); got <= prev {
			t.Fatalf("threshold %v at delta %g is not above %v at a larger delta", got, delta, prev)
		} else {
			prev = got
		}
	}
	more := base
	more.Rho *= 2
	if more.Threshold() >= base.Threshold() {
		t.Error("threshold did not fall when rho rose (less noise)")
	}
	more = base
	more.L0 *= 2
	if more.Threshold() <= base.Threshold() {
		t.Error("threshold did not rise when L0 rose")
	}
}

// With L0 = 1 the union bound is exact, so the threshold must agree with the
// library's Gaussian Threshold up to the library's 0.1% σ search tolerance
// (whose σ is never below ours).
func TestSelectorThresholdMatchesLibrary(t *testing.T) {
	for _, l0 := range []int64{1, 5} {
		s := Selector{L0: l0, Rho: 0.03, Delta: 1e-5}
		eps := epsilonForSigma(l0, 1, 1e-10, s.Gaussian().Sigma())
		lib, err := noise.Gaussian().Threshold(l0, 1, eps, 1e-10, s.Delta)
		if err != nil {
			t.Fatal(err)
		}
		got := s.Threshold()
		margin := 2e-3 * (got - 1)
		switch {
		case l0 == 1 && math.Abs(lib-got) > margin:
			t.Errorf("L0=1: threshold %v, library %v", got, lib)
		case l0 > 1 && lib > got+margin: // ours uses Delta/L0, the library slightly more
			t.Errorf("L0=%d: threshold %v is below the library's %v", l0, got, lib)
		}
	}
}

func TestSelectorValidate(t *testing.T) {
	if err := (Selector{L0: 10, Rho: 0.01, Delta: 1e-8}).Validate(); err != nil {
		t.Fatalf("valid selector rejected: %v", err)
	}
	for _, s := range []Selector{
		{L0: 0, Rho: 0.01, Delta: 1e-8},
		{L0: 1, Rho: 0, Delta: 1e-8},
		{L0: 1, Rho: 0.01, Delta: 0},
		{L0: 1, Rho: 0.01, Delta: 1},
		{L0: 1, Rho: 0.01, Delta: math.NaN()},
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", s)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Keep with Delta 0 returned instead of panicking")
		}
	}()
	Selector{L0: 1, Rho: 0.01, Delta: 0}.Keep(100)
}
