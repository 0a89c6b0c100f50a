#pragma once
// Oracles for regret: they are handed every arm's reward on every sample in advance, which no online policy
// can know. BestFixedArmOracle is the comparator of bandit regret; PerSampleOracle bounds what any
// per-request scheduler could reach.
#include <cstddef>
#include <memory>
#include <vector>

#include "common/sched/policy.hpp"

namespace ee::sched {

// Reward of every arm on every sample (row-major, samples x arms).
class RewardTable {
 public:
  RewardTable(std::vector<Arm> arms, std::size_t samples);
  const std::vector<Arm>& arms() const { return arms_; }
  std::size_t samples() const { return samples_; }
  double& at(std::size_t sample, std::size_t arm) { return reward_[sample * arms_.size() + arm]; }
  double at(std::size_t sample, std::size_t arm) const { return reward_[sample * arms_.size() + arm]; }
  double mean(std::size_t arm) const;
  std::size_t best_fixed_arm() const;  // largest mean; lowest index on ties
  std::size_t best_arm(std::size_t sample) const;

 private:
  std::vector<Arm> arms_;
  std::size_t samples_;
  std::vector<double> reward_;
};

class BestFixedArmOracle final : public Policy {
 public:
  explicit BestFixedArmOracle(std::shared_ptr<const RewardTable> table);
  std::string name() const override { return "oracle-fixed"; }
  const std::vector<Arm>& arms() const override { return table_->arms(); }
  Arm choose(const Context&) override { return table_->arms()[best_]; }
  void observe(const Arm&, const Outcome&) override {}
  nlohmann::json state() const override;
  void restore(const nlohmann::json& state) override;
  void reset() override {}

 private:
  std::shared_ptr<const RewardTable> table_;
  std::size_t best_;
};

class PerSampleOracle final : public Policy {
 public:
  explicit PerSampleOracle(std::shared_ptr<const RewardTable> table);
  std::string name() const override { return "oracle-sample"; }
  const std::vector<Arm>& arms() const override { return table_->arms(); }
  Arm choose(const Context& ctx) override;  // needs ctx.sample; throws SchedError without it
  void observe(const Arm&, const Outcome&) override {}
  nlohmann::json state() const override;
  void restore(const nlohmann::json& state) override;
  void reset() override {}

 private:
  std::shared_ptr<const RewardTable> table_;
};

}  // namespace ee::sched
