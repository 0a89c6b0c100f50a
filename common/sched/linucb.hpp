#pragma once
// Contextual bandit (disjoint LinUCB, Li et al. 2010): each arm's reward is linear in the context
// x = [1, bandwidth, RTT, queue depth] (each divided by a scale so the features are O(1)); the arm with the
// largest upper bound theta'x + alpha * sqrt(x' A^-1 x) wins. The right split moves with the network, so a
// policy that sees the network can switch instantly where a context-free bandit has to relearn.
#include <Eigen/Core>
#include <array>
#include <memory>
#include <vector>

#include "common/sched/bandit.hpp"

namespace ee::sched {

struct LinUcbParams {
  double alpha = 1.0;            // width of the confidence ellipsoid
  double ridge = 1.0;            // A starts as ridge * I
  double bandwidth_scale = 100;  // Mbit/s
  double rtt_scale = 100;        // ms
  double queue_scale = 16;       // requests
};

class LinUcb final : public Bandit {
 public:
  static constexpr int kFeatures = 4;
  using Vec = Eigen::Matrix<double, kFeatures, 1>;
  using Mat = Eigen::Matrix<double, kFeatures, kFeatures>;

  LinUcb(std::vector<Arm> arms, std::shared_ptr<const CostModel> cost, LinUcbParams p = {});
  std::string name() const override;
  nlohmann::json state() const override;
  void restore(const nlohmann::json& state) override;
  void reset() override;

  Vec features(const Context& ctx) const;
  // The arm's current reward estimate in a context (no exploration bonus).
  double predict(std::size_t arm, const Context& ctx) const;

 protected:
  std::size_t pick(const std::vector<std::size_t>& candidates, const Context& ctx) override;
  void update(std::size_t arm, double reward, const Context& ctx) override;

 private:
  LinUcbParams p_;
  std::vector<Mat> a_;  // ridge * I + sum x x'
  std::vector<Vec> b_;  // sum r x
};

}  // namespace ee::sched
