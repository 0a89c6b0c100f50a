#include "common/sched/thompson.hpp"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

namespace ee::sched {

ThompsonSampling::ThompsonSampling(std::vector<Arm> arms, std::shared_ptr<const CostModel> cost,
                                   std::uint64_t seed)
    : Bandit("thompson", std::move(arms), std::move(cost)), seed_(seed) {
  reset();
}

std::string ThompsonSampling::name() const {
  return "thompson:seed=" + std::to_string(seed_);
}

void ThompsonSampling::reset() {
  rng_.seed(seed_);
  successes_.assign(arms().size(), 0.0);
  failures_.assign(arms().size(), 0.0);
}

std::size_t ThompsonSampling::pick(const std::vector<std::size_t>& candidates, const Context&) {
  std::vector<double> score(arms().size(), -std::numeric_limits<double>::infinity());
  // Beta(1, 1) prior: every arm starts uniform, so untried arms are sampled optimistically often.
  for (std::size_t i : candidates) score[i] = beta_draw(rng_, successes_[i] + 1.0, failures_[i] + 1.0);
  return argmax(candidates, score);
}

void ThompsonSampling::update(std::size_t arm, double reward, const Context&) {
  if (uniform01(rng_) < unit(reward))
    successes_[arm] += 1;
  else
    failures_[arm] += 1;
}

nlohmann::json ThompsonSampling::state() const {
  return {{"successes", successes_}, {"failures", failures_}, {"rng", rng_state(rng_)}};
}

void ThompsonSampling::restore(const nlohmann::json& j) {
  const std::size_t k = arms().size();
  auto counts = [&](const char* key) {
    if (!j.is_object() || !j.contains(key) || !j[key].is_array() || j[key].size() != k)
      throw SchedError(name() + " state: '" + key + "' must be an array of " + std::to_string(k) + " counts");
    std::vector<double> v;
    for (const auto& x : j[key]) {
      if (!x.is_number() || !(x.get<double>() >= 0) || !std::isfinite(x.get<double>()))
        throw SchedError(name() + " state: bad count " + x.dump() + " in '" + key + "'");
      v.push_back(x.get<double>());
    }
    return v;
  };
  auto s = counts("successes"), f = counts("failures");
  if (!j.contains("rng") || !j["rng"].is_string())
    throw SchedError(name() + " state: 'rng' must be a string");
  Rng r;
  set_rng_state(r, j["rng"].get<std::string>());
  successes_ = std::move(s);
  failures_ = std::move(f);
  rng_ = r;
}

}  // namespace ee::sched
