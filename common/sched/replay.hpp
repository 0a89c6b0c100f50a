#pragma once
// SplitEE's setting replayed from an exit trace: samples arrive one at a time (shuffled passes over the
// trace), the policy picks a split, the sample exits at the split if its confidence clears the threshold,
// otherwise it is offloaded and answered by the last layer. Pure computation: used by ee-replay and tests.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "common/sched/cost_model.hpp"
#include "common/sched/oracle.hpp"
#include "common/sched/policy.hpp"
#include "common/sched/threshold_controller.hpp"
#include "common/sched/trace.hpp"

namespace ee::sched {

struct ReplayConfig {
  double threshold = 0.9;  // SplitEE's fixed alpha; ignored for arms with their own and under a controller
  std::size_t passes = 5;
  std::uint64_t seed = 0;  // order of the samples in each pass
  bool shuffle = true;     // false: every pass in trace order (a stream whose inputs change part-way)
  Confidence confidence = Confidence::max_prob;
  bool keep_steps = false;  // fill ReplayResult::steps
};

// One request of a replay, in arrival order.
struct ReplayStep {
  std::size_t row = 0;  // trace sample
  int answer = -1;      // the prediction returned
  double threshold = 0;
  double cost = 0;
};

struct ReplayResult {
  std::string policy;
  std::size_t samples = 0;
  double accuracy = 0;        // answers equal to the label (labelled samples)
  double final_accuracy = 0;  // the last layer's accuracy on the same samples
  double agreement = 0;       // answers equal to the last layer's prediction
  double mean_cost = 0;       // SplitEE cost per sample, audits included
  double cost_reduction = 0;  // 1 - mean_cost / (lambda * L): against running every sample to layer L
  double mean_reward = 0;
  // Cumulative, against the best fixed arm in hindsight and the per-sample oracle of the reward table (NaN
  // under a threshold controller: the table's rewards assume the fixed threshold).
  double regret = std::numeric_limits<double>::quiet_NaN();
  double oracle_gap = std::numeric_limits<double>::quiet_NaN();
  double offload_share = 0;
  double audit_share = 0;
  double mean_threshold = 0;
  double final_threshold = 0;
  std::vector<std::size_t> pulls;            // per policy arm, all passes
  std::vector<std::size_t> last_pass_pulls;  // per policy arm, last pass only
  std::vector<ReplayStep> steps;             // with ReplayConfig::keep_steps
};

// Every arm's SplitEE reward on every trace sample at a fixed threshold.
RewardTable splitee_reward_table(const ExitTrace& trace, const std::vector<Arm>& arms,
                                 const SplitEECost& cost, const ReplayConfig& config);

// What the edge would observe for trace sample `row` under `arm`. `audit` sends an edge exit on as well.
Outcome simulate_outcome(const ExitTrace& trace, std::size_t row, const Arm& arm, double threshold,
                         Confidence confidence, bool audit, const Context& ctx = {});

// Replays `config.passes` shuffled passes. With a controller, its threshold replaces config.threshold for
// arms without their own, it draws the audits and it observes every outcome.
ReplayResult replay(const ExitTrace& trace, Policy& policy, const SplitEECost& cost,
                    const ReplayConfig& config, const RewardTable& table,
                    ThresholdController* controller = nullptr);

}  // namespace ee::sched
