#pragma once
// What a choice costs and what the bandit is rewarded with. Two models behind one interface:
//  - SplitEECost: SplitEE's abstract cost (Bajpai et al. 2023): lambda per layer run on the edge, o per
//    offload; reward C_i - lambda*i on an edge exit, C_L - lambda*i - o when offloaded.
//  - LatencyCost: milliseconds (edge per-layer time + payload / bandwidth + RTT + cloud time), with an
//    optional SLO that removes arms predicted to miss it.
#include <cstdint>
#include <optional>
#include <string>

#include "common/sched/policy.hpp"

namespace ee::sched {

class CostModel {
 public:
  virtual ~CostModel() = default;
  virtual std::string name() const = 0;
  // Resources one answered sample used (lower is better): audits included, since they were really spent.
  virtual double cost(const Arm& arm, const Outcome& outcome) const = 0;
  // The bandit's reward for the arm's decision (higher is better), within [reward_min(), reward_max()].
  virtual double reward(const Arm& arm, const Outcome& outcome) const = 0;
  virtual double reward_min() const = 0;
  virtual double reward_max() const = 0;
  // The reward `other` would have earned on the same sample, when the outcome of `played` tells it
  // (SplitEE-S's side observations); empty when it cannot be known without guessing.
  virtual std::optional<double> counterfactual_reward(const Arm& other, const Arm& played,
                                                      const Outcome& outcome) const;
  // Predicted end-to-end latency of a split in this context, if the model knows time at all.
  virtual std::optional<double> predicted_latency_ms(int split, const Context& ctx) const;
  // Whether the arm may be chosen here (SLO / deadline). Policies fall back to the fastest arms when no arm
  // is.
  virtual bool feasible(int split, const Context& ctx) const;
};

struct SplitEEParams {
  int num_layers = 0;
  double lambda = 0.1;  // cost of one encoder layer on the edge (SplitEE's lambda)
  // Cost of one offload, in the same unit. Default 5 * lambda: sending the state costs as much as five edge
  // layers, so cloud-only (0.5) is cheaper than running all six reference layers on the edge (0.6) but an
  // early exit after one or two layers is cheaper still. SplitEE sweeps o as a multiple of lambda.
  double offload = 0.5;
};

class SplitEECost final : public CostModel {
 public:
  explicit SplitEECost(SplitEEParams p);
  std::string name() const override { return "splitee"; }
  double cost(const Arm& arm, const Outcome& outcome) const override;
  double reward(const Arm& arm, const Outcome& outcome) const override;
  double reward_min() const override;
  double reward_max() const override { return 1.0; }
  std::optional<double> counterfactual_reward(const Arm& other, const Arm& played,
                                              const Outcome& outcome) const override;
  const SplitEEParams& params() const { return p_; }
  // Cost of answering every sample at the final layer on the edge: the baseline "cost reduction" is against.
  double final_layer_cost() const { return p_.lambda * p_.num_layers; }
  // The reward formula itself: confidence at the split (or of the final layer when offloaded).
  double reward_of(int split, bool offloaded, double confidence) const;

 private:
  SplitEEParams p_;
};

struct LatencyParams {
  int num_layers = 0;
  double edge_ms_per_layer = 0.05;     // one encoder layer + exit head on the edge CPU
  double cloud_ms_per_layer = 0.02;    // one layer on the cloud worker (batched)
  std::uint64_t payload_bytes = 4352;  // hidden state after a layer (17 x 64 fp32 for the reference ViT)
  std::uint64_t input_bytes = 4352;    // what split 0 sends (the embeddings)
  double default_bandwidth_mbps = 0;   // used until the estimator has a sample; 0 = unknown (no prediction)
  double ms_price = 0.01;              // reward lost per millisecond: 100 ms costs one unit of confidence
  double max_ms = 1000;                // latencies are clipped here so rewards stay bounded
  std::optional<double> slo_ms;  // arms predicted slower than this are not chosen when others are feasible
};

class LatencyCost final : public CostModel {
 public:
  explicit LatencyCost(LatencyParams p);
  std::string name() const override { return "latency"; }
  double cost(const Arm& arm, const Outcome& outcome) const override;  // measured total ms
  double reward(const Arm& arm, const Outcome& outcome) const override;
  double reward_min() const override { return -p_.ms_price * p_.max_ms; }
  double reward_max() const override { return 1.0; }
  // Worst case for the arm: the sample does not exit and is offloaded (an exit only makes it faster).
  std::optional<double> predicted_latency_ms(int split, const Context& ctx) const override;
  bool feasible(int split, const Context& ctx) const override;
  const LatencyParams& params() const { return p_; }

 private:
  LatencyParams p_;
};

}  // namespace ee::sched
