package dp

import (
	"math"
	"testing"

	"github.com/google/differential-privacy/go/v3/noise"
)

const trials = 20000

// moments returns the mean and standard deviation of n draws of f.
func moments(n int, f func() float64) (mean, sd float64, xs []float64) {
	xs = make([]float64, n)
	for i := range xs {
		xs[i] = f()
		mean += xs[i]
	}
	mean /= float64(n)
	for _, x := range xs {
		sd += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(sd / float64(n-1)), xs
}

func TestGaussianSigma(t *testing.T) {
	g := Gaussian{L0: 4, LInf: 3, Rho: 0.5}
	if got := g.Sigma(); math.Abs(got-6) > 1e-12 { // √4·3/√1
		t.Errorf("Sigma = %v, want 6", got)
	}
	// The defining identity: ρ = Δ₂²/(2σ²).
	if rho := 4 * 9 / (2 * g.Sigma() * g.Sigma()); math.Abs(rho-g.Rho) > 1e-12 {
		t.Errorf("rho from sigma = %v, want %v", rho, g.Rho)
	}
	if g.Cost() != (Cost{Rho: 0.5}) {
		t.Errorf("Cost = %+v", g.Cost())
	}
}

func TestGaussianValidate(t *testing.T) {
	if err := (Gaussian{L0: 1, LInf: 1, Rho: 0.1}).Validate(); err != nil {
		t.Fatalf("valid Gaussian rejected: %v", err)
	}
	for _, g := range []Gaussian{
		{L0: 0, LInf: 1, Rho: 0.1},
		{L0: 1, LInf: 0, Rho: 0.1},
		{L0: 1, LInf: math.NaN(), Rho: 0.1},
		{L0: 1, LInf: math.Inf(1), Rho: 0.1},
		{L0: 1, LInf: 1, Rho: 0},
		{L0: 1, LInf: 1, Rho: -1},
		{L0: 1, LInf: 1, Rho: math.NaN()},
		{L0: 1, LInf: 1, Rho: math.Inf(1)},
		{L0: 1, LInf: 1e308, Rho: 1e-10}, // σ overflows
	} {
		if err := g.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", g)
		}
	}
}

func TestGaussianAddNoisePanicsWhenInvalid(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("AddNoise with Rho 0 returned instead of panicking")
		}
	}()
	Gaussian{L0: 1, LInf: 1, Rho: 0}.AddNoise(5)
}

// The library must be driven to exactly our σ, across every scale a
// configuration could produce.
func TestLibrarySigmaIsExact(t *testing.T) {
	for e := -12; e <= 12; e++ {
		for _, m := range []float64{1, 1.37, 2.5, 7.77} {
			sigma := m * math.Pow(10, float64(e))
			if got := noise.SigmaForGaussian(1, sigma, libEpsilon, libDelta); got != sigma {
				t.Fatalf("library sigma for %v = %v", sigma, got)
			}
		}
	}
}

// epsilonForSigma finds the largest ε whose library σ at (l0, lInf, delta) is
// still at least sigma, the way a caller without exact control would.
func epsilonForSigma(l0 int64, lInf, delta, sigma float64) float64 {
	lo, hi := 1e-6, 100.0
	for i := 0; i < 200; i++ {
		mid := math.Sqrt(lo * hi)
		if noise.SigmaForGaussian(l0, lInf, mid, delta) >= sigma {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

func TestGaussianNoiseDistribution(t *testing.T) {
	g := Gaussian{L0: 3, LInf: 2, Rho: 0.1}
	sigma := g.Sigma() // ≈ 7.75
	const x = 1000.0
	mean, sd, xs := moments(trials, func() float64 { return g.AddNoise(x) - x })

	if math.Abs(sd/sigma-1) > 0.03 {
		t.Errorf("noise sd = %.4f, want %.4f within 3%%", sd, sigma)
	}
	if math.Abs(mean) > 4*sigma/math.Sqrt(trials) {
		t.Errorf("noise mean = %.4f, want |mean| < %.4f", mean, 4*sigma/math.Sqrt(trials))
	}
	// Shape: a Gaussian puts 68.3% within one σ (a Laplace of the same sd 75.7%).
	within, covered := 0, 0
	for _, e := range xs {
		if math.Abs(e) < sigma {
			within++
		}
		if lo, hi := g.CI(x+e, 0.05); lo <= x && x <= hi {
			covered++
		}
	}
	if f := float64(within) / trials; math.Abs(f-0.6827) > 0.015 {
		t.Errorf("%.4f of noise within one sigma, want 0.6827", f)
	}
	if c := float64(covered) / trials; c < 0.93 || c > 0.97 {
		t.Errorf("95%% CI covered the true value %.4f of the time, want 0.93–0.97", c)
	}
}

func TestGaussianCIMatchesLibrary(t *testing.T) {
	g := Gaussian{L0: 5, LInf: 2, Rho: 0.02}
	for _, alpha := range []float64{0.05, 0.01, 0.5, 1e-6} {
		for _, noisy := range []float64{0, 123.4, -7, 1e6} {
			lo, hi := g.CI(noisy, alpha)
			ci, err := noise.Gaussian().ComputeConfidenceIntervalFloat64(noisy, 1, g.Sigma(), libEpsilon, libDelta, alpha)
			if err != nil {
				t.Fatal(err)
			}
			if !near(lo, ci.LowerBound, 1e-12) || !near(hi, ci.UpperBound, 1e-12) {
				t.Errorf("CI(%v, %v) = [%v, %v], library [%v, %v]", noisy, alpha, lo, hi, ci.LowerBound, ci.UpperBound)
			}
			// Against the library with the real sensitivities, whose σ is
			// within its 0.1% search tolerance of ours.
			eps := epsilonForSigma(g.L0, g.LInf, 1e-10, g.Sigma())
			ci, err = noise.Gaussian().ComputeConfidenceIntervalFloat64(noisy, g.L0, g.LInf, eps, 1e-10, alpha)
			if err != nil {
				t.Fatal(err)
			}
			if half := (hi - lo) / 2; math.Abs(ci.UpperBound-hi) > 2e-3*half || math.Abs(ci.LowerBound-lo) > 2e-3*half {
				t.Errorf("CI(%v, %v) = [%v, %v], library with real sensitivities [%v, %v]", noisy, alpha, lo, hi, ci.LowerBound, ci.UpperBound)
			}
		}
	}
	// The familiar 95% half-width: 1.96σ.
	if lo, hi := g.CI(0, 0.05); math.Abs(hi-1.959964*g.Sigma()) > 1e-5 || lo != -hi {
		t.Errorf("95%% CI = [%v, %v], want ±1.96σ = ±%v", lo, hi, 1.959964*g.Sigma())
	}
	if lo, hi := g.CI(3, 0); !math.IsInf(lo, -1) || !math.IsInf(hi, 1) {
		t.Errorf("CI at alpha 0 = [%v, %v], want infinite", lo, hi)
	}
	if lo, hi := (Gaussian{L0: 1, LInf: 1}).CI(3, 0.05); !math.IsNaN(lo) || !math.IsNaN(hi) {
		t.Errorf("CI of a Gaussian without rho = [%v, %v], want NaN", lo, hi)
	}
	for _, alpha := range []float64{-0.1, 1.5, math.NaN()} {
		if lo, hi := g.CI(3, alpha); !math.IsNaN(lo) || !math.IsNaN(hi) {
			t.Errorf("CI at alpha %v = [%v, %v], want NaN", alpha, lo, hi)
		}
	}
}

func near(a, b, rel float64) bool {
	return math.Abs(a-b) <= rel*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func BenchmarkGaussianAddNoise(b *testing.B) {
	g := Gaussian{L0: 3, LInf: 1, Rho: 0.05}
	x := 0.0
	for b.Loop() {
		x = g.AddNoise(1000)
	}
	_ = x
}

// BenchmarkLibraryGaussian is the baseline: the library's sampler alone, with
// the same σ as BenchmarkGaussianAddNoise.
func BenchmarkLibraryGaussian(b *testing.B) {
	sigma := Gaussian{L0: 3, LInf: 1, Rho: 0.05}.Sigma()
	x := 0.0
	for b.Loop() {
		x, _ = noise.Gaussian().AddNoiseFloat64(1000, 1, sigma, libEpsilon, libDelta)
	}
	_ = x
}

func BenchmarkSigmaForGaussian(b *testing.B) {
	sigma := Gaussian{L0: 3, LInf: 1, Rho: 0.05}.Sigma()
	for b.Loop() {
		noise.SigmaForGaussian(1, sigma, libEpsilon, libDelta)
	}
}
