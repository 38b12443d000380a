package dp

import (
	"math"
	"strings"
	"testing"
)

func simpleEpsilon(rho, delta float64) float64 {
	return rho + 2*math.Sqrt(rho*math.Log(1/delta))
}

// bruteEpsilon evaluates the CKS20 bound directly in α on a dense grid: an
// independent, slower estimate of the infimum (never below it).
func bruteEpsilon(rho, delta float64) float64 {
	best := math.Inf(1)
	for lg := -12.0; lg <= 14; lg += 1e-4 {
		a := 1 + math.Pow(10, lg)
		v := a*rho + math.Log(1/delta)/(a-1) + math.Log(1-1/a) - math.Log(a)/(a-1)
		best = math.Min(best, v)
	}
	return best
}

func TestEpsilonFromRhoReference(t *testing.T) {
	if got := EpsilonFromRho(1.0/32, 1e-3); math.Abs(got-0.6880) > 5e-4 {
		t.Errorf("EpsilonFromRho(1/32, 1e-3) = %.6f, want 0.6880", got)
	}
	if got := simpleEpsilon(1.0/32, 1e-3); math.Abs(got-0.9605) > 5e-4 {
		t.Errorf("simple bound = %.6f, want 0.9605", got)
	}
}

func TestEpsilonFromRhoMatchesBruteForce(t *testing.T) {
	for _, c := range []struct{ rho, delta float64 }{
		{1.0 / 32, 1e-3}, {0.5, 1e-6}, {1e-4, 1e-6}, {5, 1e-9}, {0.01, 0.1}, {100, 1e-6},
	} {
		// A negative bound means (0, δ)-DP, reported as ε = 0.
		got, brute := EpsilonFromRho(c.rho, c.delta), math.Max(bruteEpsilon(c.rho, c.delta), 0)
		// got is a true infimum, so it may not exceed any grid point, and the
		// grid is fine enough to land within 1e-6 of the infimum.
		if got > brute+1e-12 || got < brute-1e-6 {
			t.Errorf("EpsilonFromRho(%v, %v) = %.9f, brute force %.9f", c.rho, c.delta, got, brute)
		}
	}
}

func TestEpsilonFromRhoBelowSimpleBound(t *testing.T) {
	for _, delta := range []float64{0.5, 1e-3, DefaultDelta, 1e-12} {
		for rho := 1e-14; rho < 1e6; rho *= 1.7 {
			got, simple := EpsilonFromRho(rho, delta), simpleEpsilon(rho, delta)
			if !(got >= 0) || got > simple*(1+1e-12) {
				t.Fatalf("EpsilonFromRho(%g, %g) = %g, simple bound %g", rho, delta, got, simple)
			}
		}
	}
}

func TestEpsilonFromRhoMonotone(t *testing.T) {
	prev := 0.0
	for rho := 1e-10; rho < 1e4; rho *= 1.05 {
		got := EpsilonFromRho(rho, DefaultDelta)
		if got <= prev {
			t.Fatalf("EpsilonFromRho(%g) = %g is not above %g at a smaller rho", rho, got, prev)
		}
		prev = got
	}
	prev = math.Inf(1)
	for delta := 1e-15; delta < 0.9; delta *= 3 {
		got := EpsilonFromRho(0.1, delta)
		if got >= prev {
			t.Fatalf("EpsilonFromRho(0.1, %g) = %g does not decrease with delta", delta, got)
		}
		prev = got
	}
}

func TestEpsilonFromRhoEdges(t *testing.T) {
	if got := EpsilonFromRho(0, DefaultDelta); got != 0 {
		t.Errorf("rho=0: got %v, want 0", got)
	}
	// σ = 7071 for sensitivity 1: N(0,σ²) and N(1,σ²) are 5.6e-5 apart in total
	// variation, so this is (0, 1e-3)-DP and the bound goes negative.
	if got := EpsilonFromRho(1e-8, 1e-3); got != 0 {
		t.Errorf("rho=1e-8, delta=1e-3: got %v, want 0", got)
	}
	if got := EpsilonFromRho(math.Inf(1), DefaultDelta); !math.IsInf(got, 1) {
		t.Errorf("rho=+Inf: got %v, want +Inf", got)
	}
	for _, c := range []struct{ rho, delta float64 }{
		{-1, DefaultDelta}, {math.NaN(), DefaultDelta}, {1, 0}, {1, 1}, {1, -0.5}, {1, math.NaN()},
	} {
		if got := EpsilonFromRho(c.rho, c.delta); !math.IsNaN(got) {
			t.Errorf("EpsilonFromRho(%v, %v) = %v, want NaN", c.rho, c.delta, got)
		}
	}
}

func TestRhoFromEpsilonRoundTrip(t *testing.T) {
	for _, delta := range []float64{1e-3, DefaultDelta, 1e-10} {
		for _, rho := range []float64{1e-5, 1e-4, 0.01, 1.0 / 32, 0.5, 3, 50} {
			eps := EpsilonFromRho(rho, delta)
			back, err := RhoFromEpsilon(eps, delta)
			if err != nil {
				t.Fatalf("RhoFromEpsilon(%v, %v): %v", eps, delta, err)
			}
			if math.Abs(back-rho) > 1e-6*rho {
				t.Errorf("rho %v -> eps %v -> rho %v (delta %v)", rho, eps, back, delta)
			}
			if EpsilonFromRho(back, delta) > eps {
				t.Errorf("RhoFromEpsilon(%v, %v) = %v overstates the budget", eps, delta, back)
			}
		}
	}
	// A known point: ε = 1 at δ = 1e-6 is worth about ρ = 0.02436.
	if rho, _ := RhoFromEpsilon(1, DefaultDelta); math.Abs(rho-0.02436) > 1e-4 {
		t.Errorf("RhoFromEpsilon(1, 1e-6) = %v, want about 0.02436", rho)
	}
}

func TestRhoFromEpsilonRejects(t *testing.T) {
	for _, c := range []struct {
		eps, delta float64
		want       string
	}{
		{0, DefaultDelta, "positive"},
		{-1, DefaultDelta, "positive"},
		{math.NaN(), DefaultDelta, "NaN"},
		{math.Inf(1), DefaultDelta, "finite"},
		{math.Inf(-1), DefaultDelta, "finite"},
		{1, 0, "delta"},
		{1, 1, "delta"},
		{1, math.NaN(), "delta"},
	} {
		_, err := RhoFromEpsilon(c.eps, c.delta)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("RhoFromEpsilon(%v, %v) error = %v, want one mentioning %q", c.eps, c.delta, err, c.want)
		}
	}
}

func TestValidateEpsilon(t *testing.T) {
	if err := ValidateEpsilon(0.5); err != nil {
		t.Errorf("ValidateEpsilon(0.5) = %v", err)
	}
	for _, eps := range []float64{0, -0.1, math.NaN(), math.Inf(1), math.Inf(-1)} {
		if err := ValidateEpsilon(eps); err == nil || !strings.Contains(err.Error(), "epsilon") {
			t.Errorf("ValidateEpsilon(%v) = %v, want an error naming epsilon", eps, err)
		}
	}
}

func TestCost(t *testing.T) {
	day := Gaussian{L0: 1, LInf: 1, Rho: 0.01}.Cost().
		Add(Selector{L0: 10, Rho: 0.02, Delta: 1e-8}.Cost()).
		Add(Laplace{L0: 1, LInf: 1, Epsilon: 0.1}.Cost())
	if math.Abs(day.Rho-0.035) > 1e-15 || day.Delta != 1e-8 {
		t.Fatalf("composed cost = %+v, want rho 0.035 (0.01+0.02+0.1²/2), delta 1e-8", day)
	}
	eps, delta := day.Epsilon(DefaultDelta)
	if eps != EpsilonFromRho(day.Rho, DefaultDelta) || !near(delta, DefaultDelta+1e-8, 1e-15) {
		t.Errorf("Epsilon = (%v, %v)", eps, delta)
	}
}

func FuzzEpsilonFromRho(f *testing.F) {
	f.Add(1.0/32, 1e-3)
	f.Add(1e-9, 1e-6)
	f.Add(1e3, 0.5)
	f.Fuzz(func(t *testing.T, rho, delta float64) {
		if !(rho > 0 && rho < 1e8) || !validDelta(delta) {
			return
		}
		got := EpsilonFromRho(rho, delta)
		if !(got >= 0) || got > simpleEpsilon(rho, delta)*(1+1e-12) {
			t.Fatalf("EpsilonFromRho(%g, %g) = %g, simple bound %g", rho, delta, got, simpleEpsilon(rho, delta))
		}
		if bigger := EpsilonFromRho(rho*1.001, delta); bigger < got {
			t.Fatalf("not monotone: eps(%g)=%g > eps(%g)=%g", rho, got, rho*1.001, bigger)
		}
		if got > 1e-9 {
			back, err := RhoFromEpsilon(got, delta)
			if err != nil || EpsilonFromRho(back, delta) > got {
				t.Fatalf("RhoFromEpsilon(%g, %g) = %g, %v", got, delta, back, err)
			}
		}
	})
}
