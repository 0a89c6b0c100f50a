// common/sched trace + replay: the exit-trace file format, SplitEE's setting simulated from a trace, and the
// scheduler on the real exit predictions of the Fashion-MNIST reference model (sim/traces/).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>

#include "common/sched/factory.hpp"
#include "common/sched/replay.hpp"
#include "common/sched/rng.hpp"
#include "common/sched/threshold_controller.hpp"
#include "common/sched/trace.hpp"

namespace ee::sched {
namespace {

ExitTrace small_trace() {
  ExitTrace t({1, 2, 3});
  // Sample 0 is easy (confident from layer 1), sample 1 hard (confident only at the end, wrong early).
  t.add({4, "easy", {{4, 0.95, 0.2, 0.9}, {4, 0.97, 0.1, 0.95}, {4, 0.99, 0.05, 0.98}}});
  t.add({7, "", {{2, 0.40, 1.5, 0.1}, {7, 0.60, 1.0, 0.3}, {7, 0.92, 0.3, 0.85}}});
  return t;
}

TEST(ExitTrace, CsvRoundTrip) {
  const ExitTrace t = small_trace();
  std::stringstream buf;
  t.write(buf);
  EXPECT_EQ(
      buf.str().substr(0, buf.str().find('\n')),
      "sample,label,group,pred_1,maxprob_1,entropy_1,margin_1,pred_2,maxprob_2,entropy_2,margin_2,pred_3,"
      "maxprob_3,entropy_3,margin_3");
  const ExitTrace r = ExitTrace::read(buf, "mem");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r.exit_layers(), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(r[0].group, "easy");
  EXPECT_EQ(r[1].label, 7);
  EXPECT_EQ(r[1].exits[0].prediction, 2);
  EXPECT_DOUBLE_EQ(r[1].exits[2].max_prob, 0.92);
  EXPECT_DOUBLE_EQ(r.accuracy(1), 0.5);
  EXPECT_DOUBLE_EQ(r.accuracy(3), 1.0);
}

TEST(ExitTrace, MalformedFilesAreRejectedWithTheLine) {
  auto read = [](const std::string& text) {
    std::stringstream s(text);
    return ExitTrace::read(s, "t.csv");
  };
  const std::string header = "sample,label,group,pred_1,maxprob_1,entropy_1,margin_1\n";
  EXPECT_THROW(read(""), SchedError);
  EXPECT_THROW(read("sample,label\n"), SchedError);
  EXPECT_THROW(read("sample,label,group,pred_1,maxprob_1,entropy_1,margin_2\n"), SchedError);
  try {
    read(header + "0,1,,1,0.5,0.1,0.2\n1,1,,1,1.5,0.1,0.2\n");
    FAIL() << "max prob 1.5 accepted";
  } catch (const SchedError& e) {
    EXPECT_NE(std::string(e.what()).find("t.csv:3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read(header + "0,1,,1,0.5,0.1\n"), SchedError) << "missing field";
  EXPECT_THROW(read(header + "5,1,,1,0.5,0.1,0.2\n"), SchedError) << "sample out of sequence";
  EXPECT_THROW(read(header + "0,1,,x,0.5,0.1,0.2\n"), SchedError);
  EXPECT_THROW(read(header + "0,1,,1,nan,0.1,0.2\n"), SchedError);
  ExitTrace t({1});
  EXPECT_THROW(t.add({0, "a,b", {{0, 0.5, 0.1, 0.1}}}), SchedError) << "a comma would break the CSV";
  EXPECT_THROW(t.add({0, "", {}}), SchedError);
}

TEST(ExitTrace, MeasuresMatchTheSoftmax) {
  const float logits[] = {1.0f, 3.0f, 2.0f};
  const ExitRecord r = ExitTrace::measure(logits);
  const double z = std::exp(1.0) + std::exp(3.0) + std::exp(2.0);
  const double p[] = {std::exp(1.0) / z, std::exp(3.0) / z, std::exp(2.0) / z};
  EXPECT_EQ(r.prediction, 1);
  EXPECT_NEAR(r.max_prob, p[1], 1e-12);
  EXPECT_NEAR(r.margin, p[1] - p[2], 1e-12);
  EXPECT_NEAR(r.entropy, -(p[0] * std::log(p[0]) + p[1] * std::log(p[1]) + p[2] * std::log(p[2])), 1e-12);
  const float huge[] = {1000.0f, -1000.0f};
  EXPECT_NEAR(ExitTrace::measure(huge).max_prob, 1.0, 1e-12) << "no overflow on large logits";
}

TEST(Replay, OutcomeFollowsSplitEE) {
  const ExitTrace t = small_trace();
  // Easy sample at split 1: exits there.
  auto o = simulate_outcome(t, 0, {1, {}}, 0.9, Confidence::max_prob, false);
  EXPECT_TRUE(o.exited());
  EXPECT_EQ(o.answer_layer, 1);
  EXPECT_FALSE(o.final_prediction.has_value()) << "the last layer never ran";
  // Hard sample at split 2: offloaded, answered by layer 3, both exits seen.
  o = simulate_outcome(t, 1, {2, {}}, 0.9, Confidence::max_prob, false);
  EXPECT_EQ(o.answered_by, AnsweredBy::cloud);
  EXPECT_EQ(o.answer_prediction, 7);
  EXPECT_EQ(o.exits.size(), 2u);
  EXPECT_EQ(*o.final_prediction, 7);
  // The arm's own threshold wins over the global one; audits reveal the final answer.
  o = simulate_outcome(t, 1, {2, 0.5}, 0.9, Confidence::max_prob, true);
  EXPECT_TRUE(o.exited() && o.audited && o.sent);
  EXPECT_EQ(*o.final_prediction, 7);
  EXPECT_EQ(simulate_outcome(t, 1, {0, {}}, 0.9, Confidence::max_prob, false).answered_by, AnsweredBy::cloud);
  EXPECT_EQ(simulate_outcome(t, 1, {3, {}}, 0.9, Confidence::max_prob, false).answered_by,
            AnsweredBy::edge_final);
  EXPECT_THROW(simulate_outcome(t, 1, {4, {}}, 0.9, Confidence::max_prob, false), SchedError);
}

// ---- the reference model's real exits ----

// Made by: ee-eval --trace sim/traces/fmnist-vit-test.csv (see docs/SCHEDULER.md).
const std::filesystem::path kTrace = std::filesystem::path(EE_SOURCE_DIR) / "sim/traces/fmnist-vit-test.csv";

const ExitTrace& reference_trace() {
  static const ExitTrace trace = ExitTrace::load(kTrace);
  return trace;
}

struct Setting {
  std::shared_ptr<SplitEECost> cost;
  ReplayConfig config;
  std::shared_ptr<RewardTable> table;
};

Setting splitee_setting(std::size_t passes) {
  const ExitTrace& t = reference_trace();
  Setting s;
  s.cost = std::make_shared<SplitEECost>(SplitEEParams{t.num_layers(), 0.1, 0.5});
  s.config.passes = passes;
  s.config.seed = 1;
  s.table =
      std::make_shared<RewardTable>(splitee_reward_table(t, split_arms(t.num_layers()), *s.cost, s.config));
  return s;
}

TEST(ReferenceTrace, IsTheFullFashionMnistTestSet) {
  const ExitTrace& t = reference_trace();
  EXPECT_EQ(t.size(), 10000u);
  EXPECT_EQ(t.exit_layers(), (std::vector<int>{1, 2, 3, 4, 5, 6}));
  EXPECT_GT(t.accuracy(6), 0.85);
}

TEST(ReferenceTrace, Ucb1AndSplitEESConvergeToTheBestFixedArm) {
  const Setting s = splitee_setting(4);
  const Arm best = s.table->arms()[s.table->best_fixed_arm()];
  for (const std::string spec : {"ucb1", "splitee-s"}) {
    auto policy = make_policy(spec, {reference_trace().num_layers(), s.cost, 0, {}, nullptr});
    const auto r = replay(reference_trace(), *policy, *s.cost, s.config, *s.table);
    std::size_t top = 0;
    for (std::size_t i = 1; i < r.last_pass_pulls.size(); ++i)
      if (r.last_pass_pulls[i] > r.last_pass_pulls[top]) top = i;
    EXPECT_EQ(policy->arms()[top], best) << spec << " settled on split " << to_string(policy->arms()[top]);
    const double share =
        static_cast<double>(r.last_pass_pulls[top]) / static_cast<double>(reference_trace().size());
    EXPECT_GT(share, 0.8) << spec << ": best arm's share of the last pass";
    EXPECT_LT(r.regret / static_cast<double>(r.samples), 0.01) << spec;
  }
}

TEST(ReferenceTrace, InOrderReplayKeepsTheTraceOrderAndRecordsEveryStep) {
  Setting s = splitee_setting(2);
  s.config.shuffle = false;
  s.config.keep_steps = true;
  auto policy = make_policy("fixed:split=1", {reference_trace().num_layers(), s.cost, 0, {}, nullptr});
  const auto r = replay(reference_trace(), *policy, *s.cost, s.config, *s.table);
  ASSERT_EQ(r.steps.size(), 2 * reference_trace().size());
  double cost = 0;
  for (std::size_t t = 0; t < r.steps.size(); ++t) {
    ASSERT_EQ(r.steps[t].row, t % reference_trace().size());
    const auto o =
        simulate_outcome(reference_trace(), r.steps[t].row, {1, {}}, 0.9, Confidence::max_prob, false);
    EXPECT_EQ(r.steps[t].answer, o.answer_prediction);
    cost += r.steps[t].cost;
  }
  EXPECT_NEAR(cost / static_cast<double>(r.steps.size()), r.mean_cost, 1e-9);
}

TEST(ReferenceTrace, ThresholdControllerFromABadAlphaReachesTheBudgetAndStays) {
  const ExitTrace& t = reference_trace();
  ThresholdControllerParams p;
  p.initial = 0.4;  // far too low for a one-point budget: ~10 % of answers disagree with the final layer
  ThresholdController controller(p);
  const Arm arm{1, std::nullopt};
  // Driven sample by sample to see the realised disagreement over time (the trace knows the final answers).
  Rng rng(5);
  std::vector<std::size_t> order(t.size());
  const std::size_t passes = 6;
  std::size_t disagree = 0, seen = 0;
  std::vector<double> pass_rates;
  for (std::size_t pass = 0; pass < passes; ++pass) {
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    shuffle(order, rng);
    for (std::size_t row : order) {
      Outcome o = simulate_outcome(t, row, arm, controller.threshold(), Confidence::max_prob, false);
      if (o.exited() && controller.draw_audit())
        o = simulate_outcome(t, row, arm, controller.threshold(), Confidence::max_prob, true);
      controller.observe(arm, o);
      disagree += o.answer_prediction != t[row].exits.back().prediction;
      if (++seen == 300) {
        EXPECT_GE(controller.threshold(), 0.85) << "the bad start must be corrected at once";
      }
    }
    pass_rates.push_back(static_cast<double>(disagree) / static_cast<double>(t.size()));
    disagree = 0;
  }
  // Every pass of 10,000 samples, the first (with its bad start) included, is within budget.
  for (std::size_t b = 0; b < pass_rates.size(); ++b) EXPECT_LE(pass_rates[b], p.budget) << "pass " << b;
  EXPECT_GT(pass_rates.back(), 0.0);
  EXPECT_LT(controller.threshold(), 0.95) << "it must come back down and let samples exit on the edge";
}

}  // namespace
}  // namespace ee::sched
