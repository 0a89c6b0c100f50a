#include "common/sched/rng.hpp"

#include <cmath>
#include <numbers>
#include <sstream>
#include <utility>

#include "common/sched/policy.hpp"

namespace ee::sched {

double uniform01(Rng& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

std::size_t uniform_below(Rng& rng, std::size_t n) {
  if (n == 0) throw SchedError("uniform_below: empty range");
  const std::uint64_t bound = n;
  // Reject the top partial block so every residue is equally likely.
  const std::uint64_t limit = UINT64_MAX - (UINT64_MAX % bound);
  std::uint64_t x;
  do x = rng();
  while (x >= limit);
  return static_cast<std::size_t>(x % bound);
}

double standard_normal(Rng& rng) {
  const double u1 = 1.0 - uniform01(rng);  // (0, 1]: log is finite
  const double u2 = uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

double gamma_draw(Rng& rng, double shape) {
  if (!(shape > 0)) throw SchedError("gamma_draw: shape " + std::to_string(shape) + " <= 0");
  if (shape < 1) {  // boost: Gamma(a) = Gamma(a + 1) * U^(1/a)
    const double u = 1.0 - uniform01(rng);
    return gamma_draw(rng, shape + 1) * std::pow(u, 1.0 / shape);
  }
  const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (int tries = 0; tries < 1000; ++tries) {  // acceptance rate > 95 %; the bound only guards the loop
    double x, v;
    do {
      x = standard_normal(rng);
      v = 1.0 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const double u = 1.0 - uniform01(rng);
    if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
  }
  return d;  // the mode-ish value; unreachable in practice
}

double beta_draw(Rng& rng, double a, double b) {
  const double x = gamma_draw(rng, a), y = gamma_draw(rng, b);
  return x / (x + y);
}

void shuffle(std::vector<std::size_t>& v, Rng& rng) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[uniform_below(rng, i)]);
}

std::string rng_state(const Rng& rng) {
  std::ostringstream os;
  os << rng;
  return os.str();
}

void set_rng_state(Rng& rng, const std::string& text) {
  std::istringstream is(text);
  Rng r;
  is >> r;
  if (!is) throw SchedError("random engine state is malformed (" + std::to_string(text.size()) + " chars)");
  rng = r;
}

}  // namespace ee::sched
