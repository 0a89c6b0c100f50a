#pragma once
// Static policies: one arm for every request. The baselines a bandit must beat (Neurosurgeon-style
// profiled splits, all-edge, all-cloud).
#include "common/sched/policy.hpp"

namespace ee::sched {

class FixedSplit : public Policy {
 public:
  explicit FixedSplit(Arm arm);
  std::string name() const override;
  const std::vector<Arm>& arms() const override { return arms_; }
  Arm choose(const Context&) override { return arms_.front(); }
  void observe(const Arm&, const Outcome&) override {}  // nothing to learn
  nlohmann::json state() const override;
  void restore(const nlohmann::json& state) override;
  void reset() override {}

 private:
  std::vector<Arm> arms_;
};

// Runs the whole model on the edge (split L): never touches the network.
class EdgeOnly final : public FixedSplit {
 public:
  explicit EdgeOnly(int num_layers);
  std::string name() const override { return "edge-only"; }
};

// Sends every input to the cloud (split 0).
class CloudOnly final : public FixedSplit {
 public:
  CloudOnly();
  std::string name() const override { return "cloud-only"; }
};

}  // namespace ee::sched
