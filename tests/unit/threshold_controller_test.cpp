// common/sched/threshold_controller: the label-free drop estimate, the threshold it sets on synthetic
// streams whose drop curve is known in closed form, its reaction when agreement changes, its decision log
// and its state.
#include "common/sched/threshold_controller.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "common/sched/rng.hpp"

namespace ee::sched {
namespace {

// A split-1 exit whose confidence is uniform in [0, 1) and which disagrees with the final layer with
// probability rate(c). The final layer's confidence on a disagreement is `final_confidence`.
struct Stream {
  explicit Stream(std::function<double(double)> r) : rate(std::move(r)) {}
  std::function<double(double)> rate;
  Rng rng{17};
  double final_confidence = 1.0;
  std::vector<std::pair<double, bool>> seen;  // (confidence, disagrees) of every request

  // One request through the controller; returns whether the answer differs from the final layer's.
  bool step(ThresholdController& ctl) {
    const double c = uniform01(rng);
    const bool disagree = uniform01(rng) < rate(c);
    seen.emplace_back(c, disagree);
    Outcome o;
    o.threshold = ctl.threshold();
    o.exits = {{1, disagree ? 1 : 0, c}};
    const bool exits = c >= ctl.threshold();
    o.answered_by = exits ? AnsweredBy::edge_exit : AnsweredBy::cloud;
    o.audited = exits && ctl.draw_audit();
    if (!exits || o.audited) {
      o.final_prediction = 0;
      o.final_confidence = final_confidence;
    }
    ctl.observe({1, std::nullopt}, o);
    return exits && disagree;
  }
};

// rate(c) = 0.2 (1 - c): the share of all answers that disagree at threshold a is
//   D(a) = integral from a to 1 of 0.2 (1 - c) dc = 0.1 (1 - a)^2,
// so a one-point budget is met from a* = 1 - sqrt(0.1) = 0.684 up.
double linear_rate(double c) {
  return 0.2 * (1 - c);
}
double linear_drop(double a) {
  return 0.1 * (1 - a) * (1 - a);
}

TEST(ThresholdController, EstimateFollowsTheHandComputedDropCurve) {
  ThresholdControllerParams p;
  p.initial = 0.6;
  p.update_every = 1'000'000;  // the threshold stays at 0.6: below it offloads, above it 10 % audits
  p.audit_rate = 0.1;
  ThresholdController ctl(p);
  Stream s{linear_rate};
  for (int t = 0; t < 40000; ++t) s.step(ctl);
  for (double a : {0.3, 0.5, 0.6, 0.8, 0.9}) {
    double realised = 0;  // what a threshold of a would have cost on these very requests
    for (const auto& [c, d] : s.seen) realised += c >= a && d;
    realised /= static_cast<double>(s.seen.size());
    EXPECT_NEAR(realised, linear_drop(a), 3 * std::sqrt(linear_drop(a) / 40000)) << "the stream, at " << a;
    const auto e = ctl.estimate(a);
    EXPECT_NEAR(e.point, realised, e.upper - e.point) << "at " << a;
    EXPECT_LE(realised, e.upper) << "at " << a;
    EXPECT_LT(e.upper, linear_drop(a) + 0.004) << "a bound that says something, at " << a;
    EXPECT_EQ(e.samples, 40000u);
  }
  // Below the threshold in force every sample was checked: D there is counted, not estimated.
  EXPECT_NEAR(ctl.estimate(0.3).checked - ctl.estimate(0.6).checked, linear_drop(0.3) - linear_drop(0.6),
              0.002);
  EXPECT_EQ(ctl.estimate(0.6).unchecked, ctl.estimate(0.3).unchecked);

  // Weighted by a final-layer confidence of 0.5 on every disagreement, the estimate halves.
  p.weight = DropWeight::final_confidence;
  ThresholdController weighted(p);
  Stream half{linear_rate};
  half.final_confidence = 0.5;
  for (int t = 0; t < 40000; ++t) half.step(weighted);
  EXPECT_NEAR(weighted.estimate(0.5).point, 0.5 * linear_drop(0.5), 0.05 * linear_drop(0.5) + 0.0005);
}

TEST(ThresholdController, FromABadStartHoldsTheBudgetNearTheBestThreshold) {
  ThresholdControllerParams p;
  p.initial = 0.3;  // D(0.3) = 4.9 %: five times the budget
  p.window = 20000;
  ThresholdController ctl(p);
  Stream s{linear_rate};
  const std::size_t block = 5000;
  std::size_t disagree = 0;
  double worst = 0, alpha_sum = 0;
  for (std::size_t t = 1; t <= 60000; ++t) {
    disagree += s.step(ctl);
    if (t > 10000) alpha_sum += ctl.threshold();
    if (t % block == 0) {
      if (t > block)
        worst = std::max(worst, static_cast<double>(disagree) / block);  // the first pays the start
      disagree = 0;
    }
  }
  EXPECT_LE(worst, p.budget) << "realised drop per 5000 requests after the first 5000";
  const double mean_alpha = alpha_sum / 50000;
  EXPECT_GE(mean_alpha, 0.684) << "below a*, the budget is broken on average";
  // Efficient as well as safe: D(0.85) = 0.23 %, a quarter of the budget.
  EXPECT_LE(mean_alpha, 0.85);
}

TEST(ThresholdController, ThresholdRisesWhenAgreementFallsAndFallsWhenItRises) {
  ThresholdControllerParams p;
  p.window = 20000;
  ThresholdController ctl(p);
  Stream s{linear_rate};
  for (int t = 0; t < 30000; ++t) s.step(ctl);
  const double settled = ctl.threshold();
  ASSERT_GE(settled, 0.684);

  // Three times the disagreement: D(a) = 0.3 (1 - a)^2, a* = 1 - sqrt(1/30) = 0.817.
  s.rate = [](double c) { return 0.6 * (1 - c); };
  std::size_t disagree = 0;
  for (int t = 1; t <= 2000; ++t) s.step(ctl);
  EXPECT_GE(ctl.threshold(), 0.817) << "2000 requests after agreement fell";
  for (int t = 1; t <= 20000; ++t) disagree += s.step(ctl);
  EXPECT_LE(static_cast<double>(disagree) / 20000, p.budget);
  const double raised = ctl.threshold();
  EXPECT_GT(raised, settled);

  // A quarter of the first disagreement: D(a) = 0.025 (1 - a)^2, a* = 1 - sqrt(0.4) = 0.368; once the
  // window has forgotten the bad period the threshold must come down below where it first settled.
  s.rate = [](double c) { return 0.05 * (1 - c); };
  for (int t = 0; t < 40000; ++t) s.step(ctl);
  EXPECT_LT(ctl.threshold(), settled);
  EXPECT_GE(ctl.threshold(), 0.368);
}

TEST(ThresholdController, ShiftTestDropsStaleEvidence) {
  // 40,000 requests at D(a) = 0.1 (1 - a)^2, then 0.05 more disagreement at every confidence:
  //   D(a) = 0.1 (1 - a)^2 + 0.05 (1 - a), within budget from a* = 0.847 up.
  auto run = [](std::size_t shift_window) {
    ThresholdControllerParams p;
    p.shift_window = shift_window;
    ThresholdController ctl(p);
    Stream s{linear_rate};
    for (int t = 0; t < 40000; ++t) s.step(ctl);
    s.rate = [](double c) { return 0.2 * (1 - c) + 0.05; };
    for (int t = 0; t < 3000; ++t) s.step(ctl);
    return ctl.threshold();
  };
  EXPECT_GE(run(2000), 0.847) << "with the shift test, 3000 requests after the change";
  EXPECT_LT(run(0), 0.847) << "without it the 40,000 old requests still dominate the estimate";
}

TEST(ThresholdController, OffloadsLabelTheExitsTheyPassed) {
  ThresholdControllerParams p;
  p.initial = 0.7;
  p.update_every = 1'000'000;
  p.audit_rate = 0;
  p.min_band_evidence = 10;
  ThresholdController ctl(p);
  // 100 split-1 exits at confidence 0.8, never checked.
  for (int i = 0; i < 100; ++i) {
    Outcome o;
    o.exits = {{1, 0, 0.8}};
    o.answered_by = AnsweredBy::edge_exit;
    ctl.observe({1, std::nullopt}, o);
  }
  // 100 split-3 offloads: their layer-1 exit said 0.8 too, and half of those disagree with the final layer.
  for (int i = 0; i < 100; ++i) {
    Outcome o;
    o.exits = {{1, i % 2, 0.8}, {2, 0, 0.5}, {3, 0, 0.5}};
    o.answered_by = AnsweredBy::cloud;
    o.final_prediction = 0;
    ctl.observe({3, std::nullopt}, o);
  }
  const auto e = ctl.estimate(0.75);
  EXPECT_EQ(e.unchecked, 100u);
  EXPECT_NEAR(e.point, 100 * 0.5 / 200, 1e-12);  // the split-3 offloads vouch for the split-1 exits
  EXPECT_NEAR(ctl.estimate(0.4).point, 100 * 0.5 / 200, 1e-12) << "the split-3 exits agreed";
}

TEST(ThresholdController, LogsEveryDecisionWithItsEvidence) {
  ThresholdControllerParams p;
  p.initial = 0.3;
  ThresholdController ctl(p);
  std::vector<ThresholdController::Decision> log;
  ctl.set_decision_log([&log](const ThresholdController::Decision& d) { log.push_back(d); });
  Stream s{linear_rate};
  for (int t = 0; t < 5000; ++t) s.step(ctl);
  ASSERT_EQ(log.size(), (5000 - p.min_samples) / p.update_every + 1);
  EXPECT_EQ(log.front().sample, p.min_samples);
  EXPECT_EQ(log.front().from, 0.3);
  EXPECT_GT(log.front().to, 0.684) << "the bad start is corrected at the first decision";
  for (std::size_t i = 1; i < log.size(); ++i) {
    EXPECT_EQ(log[i].from, log[i - 1].to);
    EXPECT_GE(log[i].to, log[i].from - p.max_lower_step - 1e-12);
    if (log[i].target < p.max_threshold) {
      EXPECT_LE(log[i].at_target.upper, p.budget);
    }
  }
  EXPECT_EQ(log.back().to, ctl.threshold());
}

TEST(ThresholdController, StateRoundTrip) {
  ThresholdControllerParams p;
  p.initial = 0.5;
  ThresholdController a(p), b(p);
  Stream s{linear_rate};
  for (int t = 0; t < 3000; ++t) s.step(a);
  b.restore(a.state());
  EXPECT_EQ(b.threshold(), a.threshold());
  EXPECT_EQ(b.estimate(0.7).upper, a.estimate(0.7).upper);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.draw_audit(), b.draw_audit());
  Stream s2 = s;
  for (int t = 0; t < 1000; ++t) {
    s.step(a);
    s2.step(b);
  }
  EXPECT_EQ(b.threshold(), a.threshold()) << "a restored controller continues exactly";

  const double before = b.threshold();
  EXPECT_THROW(b.restore(nlohmann::json::parse(R"({"threshold": 2})")), SchedError);
  auto bad = a.state();
  bad["records"].push_back({0, 1, 5000, 1, 0.0});  // a bin past the grid
  EXPECT_THROW(b.restore(bad), SchedError);
  bad = a.state();
  bad["step"] = 0.02;
  EXPECT_THROW(b.restore(bad), SchedError);
  EXPECT_EQ(b.threshold(), before) << "unchanged after a refused state";
}

TEST(ThresholdController, RefusesBadParameters) {
  ThresholdControllerParams p;
  p.budget = 1.5;
  EXPECT_THROW(ThresholdController{p}, SchedError);
  p = {};
  p.shift_window = p.window;
  EXPECT_THROW(ThresholdController{p}, SchedError);
  EXPECT_EQ(parse_drop_weight("final-confidence"), DropWeight::final_confidence);
  EXPECT_THROW(parse_drop_weight("labels"), SchedError);
}

}  // namespace
}  // namespace ee::sched
