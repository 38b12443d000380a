// Package dp is Veil's differential-privacy layer: the noise mechanisms every
// published number passes through, partition selection for open-ended
// dimensions, and the arithmetic the budget ledger uses to account for them.
//
// # What is protected
//
// The privacy unit is whatever one row of contribution bounding stands for: a
// visitor-day for cookieless web traffic, a user for logged-in apps. Callers
// bound each unit's contribution before anything reaches this package — at
// most L0 partitions per unit, at most LInf per partition — and the mechanisms
// here derive their sensitivity from those caps, never from the data.
//
// # How privacy is accounted
//
// Veil accounts in zero-concentrated differential privacy (ρ-zCDP). A Gaussian
// release with L2 sensitivity Δ₂ and noise standard deviation σ costs
// ρ = Δ₂²/(2σ²); a day of releases is many such releases, and zCDP composes by
// plain addition: the ρ of the day is the sum of the ρ of its releases. A
// pure ε-DP (Laplace) release costs ε²/2 in the same currency.
//
// Partition selection (Selector) also has a small probability δ of revealing
// that a single unit is present; those δs add up as well, so a cost is the
// pair (ρ, δ) and costs compose by adding both components (Cost.Add).
//
// People think in ε, so a total cost is reported as (ε, δ)-DP at the
// reporting δ DefaultDelta = 1e-6 using the tight conversion of Canonne,
// Kamath and Steinke (EpsilonFromRho); the δ of any selections is added on top
// (Cost.Epsilon).
//
// # Where the randomness comes from
//
// All noise is drawn by github.com/google/differential-privacy/go/v3: its
// Gaussian (a binomial sampler) and Laplace (a granular two-sided geometric
// sampler), both driven by crypto/rand and immune to the floating-point
// attack on textbook samplers. This package only computes parameters (σ,
// thresholds, conversions); it contains no sampler of its own and must never
// import a non-cryptographic random package (a test enforces it).
package dp
