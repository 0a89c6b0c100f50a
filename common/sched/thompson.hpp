#pragma once
// Thompson sampling with Beta posteriors. Rewards on any scale are mapped to [0, 1] and binarised by a
// Bernoulli draw (Agrawal & Goyal 2012), which keeps the Beta-Bernoulli update exact for continuous rewards.
#include <memory>
#include <vector>

#include "common/sched/bandit.hpp"
#include "common/sched/rng.hpp"

namespace ee::sched {

class ThompsonSampling final : public Bandit {
 public:
  ThompsonSampling(std::vector<Arm> arms, std::shared_ptr<const CostModel> cost, std::uint64_t seed = 0);
  std::string name() const override;
  nlohmann::json state() const override;
  void restore(const nlohmann::json& state) override;
  void reset() override;

 protected:
  std::size_t pick(const std::vector<std::size_t>& candidates, const Context& ctx) override;
  void update(std::size_t arm, double reward, const Context& ctx) override;

 private:
  std::uint64_t seed_;
  Rng rng_;
  std::vector<double> successes_, failures_;
};

}  // namespace ee::sched
