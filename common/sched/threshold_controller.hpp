#pragma once
// Label-free exit-threshold control under an accuracy budget (after Apparate, SOSP 2024): keep what the
// edge's exits cost in accuracy against the final layer within `budget`, with as low a threshold (as many
// edge exits) as the evidence allows, and without labels.
//
// What the edge learns for free: an offloaded sample comes back with the final layer's answer, a label for
// every exit the edge ran on it (the split layer's and the ones before it). Exits the cloud never sees are
// checked by audits: a random `audit_rate` of them is sent on anyway.
//
// The drop. A checked exit that agrees with the final layer cost nothing; one that disagrees cost at most
// one answer (the edge may have been the one that was right). Its weight is 1 (DropWeight::disagreement,
// a bound whatever the final layer's calibration) or the final layer's confidence in its own answer
// (DropWeight::final_confidence: its probability that it, not the edge, was right, an upper bound of the
// expected loss when the final layer is calibrated or over-confident).
//
// Estimate over the last `window` samples (N of them), for a candidate threshold a, per split layer:
//   D(a) = [ weights of the checked samples with C >= a
//          + sum over confidence bands >= a: (unchecked exits in the band) x (the band's mean evidence
//          weight) ] / N
// Evidence is pooled per confidence band: offloads from the times the band lay below the threshold in
// force, audits from when it lay above, exits passed by deeper offloads. Bands grow from the top down until
// they hold `min_band_evidence` checked samples; the lowest borrows evidence from below a (less confident,
// more disagreement: conservative). The controller holds D's stratified upper bound D + z * sd within
// budget: the lowest grid threshold that is within it is the target; raising is immediate, lowering at most
// `max_lower_step` per update.
//
// Inputs that change: every update compares the checked samples of the last `shift_window` samples with the
// older evidence, confidence bin by bin; when they disagree more than the older rates predict (by `shift_z`
// standard deviations), the older evidence is dropped and the estimate starts again from the recent samples.
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "common/sched/policy.hpp"
#include "common/sched/rng.hpp"

namespace ee::sched {

enum class DropWeight { disagreement, final_confidence };
DropWeight parse_drop_weight(const std::string& name);  // "disagreement" | "final-confidence"; SchedError
std::string to_string(DropWeight w);

struct ThresholdControllerParams {
  double budget = 0.01;      // accuracy drop against the final layer, as a fraction of all answers (1 point)
  double audit_rate = 0.02;  // share of edge exits sent on for checking
  double z = 1.645;          // one-sided 95 % bound
  double initial = 0.9;
  double min_threshold = 0.0;
  double max_threshold = 1.0;
  double step = 0.01;          // threshold grid and confidence bins
  std::size_t window = 50000;  // samples the estimate looks back over
  std::size_t update_every = 100;
  std::size_t min_samples = 200;  // no decision on less evidence
  double max_lower_step = 0.02;
  DropWeight weight = DropWeight::disagreement;
  std::size_t min_band_evidence = 100;  // checked samples a pooled confidence band needs
  std::size_t shift_window = 2000;      // recent samples the shift test compares; 0: no test
  double shift_z = 4;
  std::uint64_t seed = 0;
};

class ThresholdController {
 public:
  struct Estimate {
    double point = 0, upper = 0;  // D(a) and its bound, fractions of all answers
    double checked = 0;           // the part of `point` counted exactly (checked samples' weights / N)
    std::size_t samples = 0;      // N
    std::size_t exits = 0;        // samples at or above a that exited on the edge (audited or not)
    std::size_t audits = 0;       // of them audited
    std::size_t unchecked = 0;    // exits at or above a whose agreement is estimated, not seen
  };
  // One per update: the threshold it set and the evidence behind it.
  struct Decision {
    std::uint64_t sample = 0;  // samples observed so far
    double from = 0, to = 0;   // threshold before and after
    double target = 0;         // the lowest grid threshold within budget (to = target unless lowering slowly)
    Estimate at_target;
    bool shift = false;  // the shift test dropped the older evidence at this update
  };

  explicit ThresholdController(ThresholdControllerParams p = {});

  double threshold() const { return threshold_; }
  // Call once for every sample that exited on the edge: true means send it on as an audit.
  bool draw_audit();
  // Every answered sample, exited or not. Samples whose agreement is unknown still count toward N.
  void observe(const Arm& arm, const Outcome& outcome);
  Estimate estimate(double threshold) const;
  const ThresholdControllerParams& params() const { return p_; }
  // Called after every update (ee-replay writes them out: alpha over time with its evidence).
  void set_decision_log(std::function<void(const Decision&)> log) { log_ = std::move(log); }

  nlohmann::json state() const;
  void restore(const nlohmann::json& state);  // throws SchedError; unchanged on failure
  void reset();

 private:
  enum Kind : int {
    kNoExit = 0,   // answered by the last layer: counts toward N only
    kOffload = 1,  // checked: the cloud answered
    kAudit = 2,    // checked: exited and audited
    kExit = 3,     // exited unchecked
    kPassed = 4,   // evidence only: an exit before the split of a checked sample
  };
  struct Record {
    std::uint64_t sample;
    int layer, bin;
    Kind kind;
    double weight;  // the drop weight when checked (0: agreed)
  };
  // Per confidence bin of one exit layer, over the window.
  struct Bins {
    std::vector<double> checked_weight, evidence_weight;
    std::vector<std::uint64_t> evidence, unchecked, exits, audits;
  };
  int bin_of(double confidence) const;
  std::size_t bins() const { return bins_; }
  Bins& layer_bins(int layer);
  void add(const Record& r, int sign);
  void push(const Record& r);
  void drop_front();
  void estimate_layer(const Bins& b, int first_bin, Estimate& est, double& var) const;
  bool shift_detected() const;
  void maybe_update();

  ThresholdControllerParams p_;
  std::size_t bins_ = 0;
  double threshold_;
  Rng rng_;
  std::deque<Record> window_;
  std::size_t window_samples_ = 0;  // records in window_ that are samples (not kPassed)
  std::uint64_t observed_ = 0;      // samples observed since reset
  std::map<int, Bins> layers_;
  std::uint64_t since_update_ = 0;
  std::function<void(const Decision&)> log_;
};

}  // namespace ee::sched
