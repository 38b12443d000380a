package dp

import (
	"math"
	"testing"
)

func TestLaplaceNoiseDistribution(t *testing.T) {
	l := Laplace{L0: 2, LInf: 1, Epsilon: 0.5}
	b := l.Scale() // 4
	if b != 4 {
		t.Fatalf("Scale = %v, want 4", b)
	}
	const x = 50.0
	mean, _, xs := moments(trials, func() float64 { return l.AddNoise(x) - x })
	// E|X| = b for Laplace(b); its standard error is b/√n.
	var mad float64
	covered := 0
	for _, e := range xs {
		mad += math.Abs(e)
		if lo, hi := l.CI(x+e, 0.05); lo <= x && x <= hi {
			covered++
		}
	}
	mad /= trials
	if math.Abs(mad/b-1) > 0.03 {
		t.Errorf("mean |noise| = %.4f, want %.4f within 3%%", mad, b)
	}
	if sd := math.Sqrt2 * b; math.Abs(mean) > 4*sd/math.Sqrt(trials) {
		t.Errorf("noise mean = %.4f, want about 0", mean)
	}
	if c := float64(covered) / trials; c < 0.93 || c > 0.97 {
		t.Errorf("95%% CI covered the true value %.4f of the time, want 0.93–0.97", c)
	}
	// The Laplace interval is noisy ± b·ln(1/alpha).
	if lo, hi := l.CI(10, 0.05); !near(hi-10, b*math.Log(20), 1e-12) || !near(10-lo, b*math.Log(20), 1e-12) {
		t.Errorf("CI(10, 0.05) = [%v, %v], want 10 ± %v", lo, hi, b*math.Log(20))
	}
}

func TestLaplaceCostAndValidate(t *testing.T) {
	if c := (Laplace{L0: 1, LInf: 1, Epsilon: 0.2}).Cost(); math.Abs(c.Rho-0.02) > 1e-15 || c.Delta != 0 {
		t.Errorf("Cost = %+v, want rho ε²/2 = 0.02", c)
	}
	for _, l := range []Laplace{
		{L0: 0, LInf: 1, Epsilon: 1},
		{L0: 1, LInf: -1, Epsilon: 1},
		{L0: 1, LInf: 1, Epsilon: 0},
		{L0: 1, LInf: 1, Epsilon: math.Inf(1)},
		{L0: 1, LInf: 1, Epsilon: 1e-20},
	} {
		if err := l.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", l)
		}
		if lo, hi := l.CI(1, 0.05); !math.IsNaN(lo) || !math.IsNaN(hi) {
			t.Errorf("CI of invalid %+v = [%v, %v], want NaN", l, lo, hi)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("AddNoise with epsilon 0 returned instead of panicking")
		}
	}()
	Laplace{L0: 1, LInf: 1, Epsilon: 0}.AddNoise(1)
}
