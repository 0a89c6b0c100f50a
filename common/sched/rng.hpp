#pragma once
// Random draws written out by hand: the standard distributions are implementation-defined, and a policy must
// make the same choices for a seed with any standard library (replays are compared across machines).
#include <cstddef>
#include <random>
#include <string>
#include <vector>

namespace ee::sched {

using Rng = std::mt19937_64;

double uniform01(Rng& rng);                          // [0, 1) with 53 random bits
std::size_t uniform_below(Rng& rng, std::size_t n);  // [0, n), unbiased; n > 0
double standard_normal(Rng& rng);                    // Box-Muller
double gamma_draw(Rng& rng, double shape);           // Marsaglia-Tsang, scale 1; shape > 0
double beta_draw(Rng& rng, double a, double b);
void shuffle(std::vector<std::size_t>& v, Rng& rng);  // Fisher-Yates

// The engine's state as text (the standard fixes this representation) and back.
std::string rng_state(const Rng& rng);
void set_rng_state(Rng& rng, const std::string& text);  // throws SchedError

}  // namespace ee::sched
