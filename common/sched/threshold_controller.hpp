#pragma once
// Label-free exit-threshold control under an accuracy budget (after Apparate, SOSP 2024): keep the share of
// answers on which the edge disagrees with the final layer at or below `budget`, with as low a threshold
// (as many edge exits) as the evidence allows.
//
// Feedback, no labels: an offloaded sample returns with the final layer's prediction, so the edge learns
// whether its exit at the split layer agreed — and, since its confidence was below the threshold in force,
// what a lower threshold would have done. Samples that exited are unseen by the cloud, so a random
// `audit_rate` of them is sent on anyway; they stand in for all exits.
//
// Estimate over the last `window` samples, for a candidate threshold a:
//   D(a) = [ #offloaded with C >= a that disagree  +  E(a) * (#audited with C >= a that disagree) / A(a) ] /
//   N
// (E(a) exits with C >= a, A(a) of them audited, N samples). The first part is counted exactly; the second is
// a subsample, so the controller uses its one-sided Wilson upper bound (z) rather than the point estimate. D
// is monotone in a; the target is the lowest grid threshold whose bound is within budget. Raising is
// immediate (safety), lowering at most `max_lower_step` per update (the evidence for a lower threshold
// arrives slowly).
#include <cstdint>
#include <deque>
#include <nlohmann/json_fwd.hpp>
#include <vector>

#include "common/sched/policy.hpp"
#include "common/sched/rng.hpp"

namespace ee::sched {

struct ThresholdControllerParams {
  double budget = 0.01;      // disagreement with the final layer, as a fraction of all answers (1 point)
  double audit_rate = 0.02;  // share of edge exits sent on for checking
  double z = 1.645;          // one-sided 95 % Wilson bound
  double initial = 0.9;
  double min_threshold = 0.0;
  double max_threshold = 1.0;
  double step = 0.01;          // threshold grid
  std::size_t window = 50000;  // samples the estimate looks back over
  std::size_t update_every = 100;
  std::size_t min_samples = 200;  // no decision on less evidence
  double max_lower_step = 0.02;
  std::uint64_t seed = 0;
};

class ThresholdController {
 public:
  struct Estimate {
    double point = 0, upper = 0;
    std::size_t samples = 0, exits = 0, audits = 0;
  };

  explicit ThresholdController(ThresholdControllerParams p = {});

  double threshold() const { return threshold_; }
  // Call once for every sample that exited on the edge: true means send it on as an audit.
  bool draw_audit();
  // Every answered sample, exited or not. Samples whose agreement is unknown still count toward N.
  void observe(const Arm& arm, const Outcome& outcome);
  Estimate estimate(double threshold) const;
  const ThresholdControllerParams& params() const { return p_; }

  nlohmann::json state() const;
  void restore(const nlohmann::json& state);  // throws SchedError; unchanged on failure
  void reset();

 private:
  enum Kind : int { kNoExit = 0, kExact = 1, kAudited = 2, kUnaudited = 3 };
  struct Record {
    Kind kind;
    int bin;
    bool disagree;
  };
  int bin_of(double confidence) const;
  std::size_t bins() const { return exits_.size(); }
  void add(const Record& r, int sign);
  void push(const Record& r);
  void maybe_update();

  ThresholdControllerParams p_;
  double threshold_;
  Rng rng_;
  std::deque<Record> window_;
  // Per confidence bin over the window: disagreements seen exactly (offloaded) and by audit, exits, audits.
  std::vector<std::uint64_t> disagree_exact_, disagree_audited_, exits_, audits_;
  std::uint64_t since_update_ = 0;
};

// One-sided Wilson score upper bound of a binomial proportion (k successes in n trials); 1 when n == 0.
double wilson_upper(double k, double n, double z);

}  // namespace ee::sched
