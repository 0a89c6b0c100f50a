// common/sched: bandit policies, cost models and state files on synthetic problems (the threshold
// controller: threshold_controller_test.cpp).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "common/sched/cost_model.hpp"
#include "common/sched/factory.hpp"
#include "common/sched/fixed.hpp"
#include "common/sched/linucb.hpp"
#include "common/sched/network_estimator.hpp"
#include "common/sched/rng.hpp"
#include "common/sched/state.hpp"
#include "common/sched/thompson.hpp"
#include "common/sched/ucb.hpp"

namespace ee::sched {
namespace {

// Pseudo-regret of a bandit fed Bernoulli rewards with the given means for T rounds.
double bernoulli_regret(Bandit& bandit, const std::vector<double>& means, std::size_t rounds,
                        std::uint64_t seed) {
  Rng rng(seed);
  const double best = *std::max_element(means.begin(), means.end());
  double regret = 0;
  for (std::size_t t = 0; t < rounds; ++t) {
    const std::size_t a = bandit.index_of(bandit.choose({}));
    regret += best - means[a];
    bandit.observe_reward(a, uniform01(rng) < means[a] ? 1.0 : 0.0);
  }
  return regret;
}

// 12 arms; the best is 0.1 above the second, the rest spread below it.
std::vector<double> twelve_arm_means() {
  std::vector<double> m = {0.9, 0.8};
  for (int k = 1; k <= 10; ++k) m.push_back(0.8 - 0.07 * k);
  return m;
}

TEST(Ucb1, CumulativeRegretIsSublinearOnTwelveArmBernoulli) {
  const auto means = twelve_arm_means();
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    Ucb1 early(split_arms(11), nullptr), late(split_arms(11), nullptr);
    const double r2k = bernoulli_regret(early, means, 2000, seed) / 2000;
    const double r20k = bernoulli_regret(late, means, 20000, seed) / 20000;
    EXPECT_LT(r20k, 0.02) << "seed " << seed;
    EXPECT_LT(r20k, 0.5 * r2k) << "seed " << seed << ": average regret must shrink as T grows";
  }
}

TEST(UcbTuned, VarianceAwareBonusBeatsUcb1WhenEveryArmIsOnePointOneBehind) {
  // The hardest 12-arm problem with gap 0.1: every other arm at 0.5. Textbook UCB1 spends ~4 % of rounds
  // exploring here at T = 20k; the variance-aware indices do much better.
  std::vector<double> means(12, 0.5);
  means[0] = 0.6;
  UcbTuned tuned(split_arms(11), nullptr);
  Ucb1 ucb1(split_arms(11), nullptr, std::sqrt(2.0));
  const double r_tuned = bernoulli_regret(tuned, means, 20000, 5) / 20000;
  const double r_ucb1 = bernoulli_regret(ucb1, means, 20000, 5) / 20000;
  EXPECT_LT(r_tuned, 0.02);
  EXPECT_LT(r_tuned, r_ucb1);
}

TEST(ThompsonSampling, RegretIsSmallOnTwelveArmBernoulli) {
  ThompsonSampling ts(split_arms(11), nullptr, 3);
  EXPECT_LT(bernoulli_regret(ts, twelve_arm_means(), 20000, 4) / 20000, 0.02);
}

TEST(UcbV, RegretIsSmallOnTwelveArmBernoulli) {
  UcbV v(split_arms(11), nullptr);
  EXPECT_LT(bernoulli_regret(v, twelve_arm_means(), 20000, 6) / 20000, 0.05);
}

// Share of pulls of `arm` in rounds [from, to) of a problem whose means switch at `change`.
double share_after_change(Bandit& bandit, std::size_t arm, std::size_t change, std::size_t from,
                          std::size_t to) {
  const std::vector<double> before = {0.9, 0.5, 0.3}, after = {0.4, 0.6, 0.3};
  Rng rng(11);
  std::size_t hits = 0;
  for (std::size_t t = 0; t < to; ++t) {
    const auto& means = t < change ? before : after;
    const std::size_t a = bandit.index_of(bandit.choose({}));
    if (t >= from) hits += a == arm;
    bandit.observe_reward(a, uniform01(rng) < means[a] ? 1.0 : 0.0);
  }
  return static_cast<double>(hits) / static_cast<double>(to - from);
}

TEST(NonStationaryUcb, DiscountedAndSlidingWindowFindTheNewBestArmWhereUcb1DoesNot) {
  const std::size_t change = 10000, from = change + 1000, to = change + 3000;
  DiscountedUcb discounted(split_arms(2), nullptr);
  SlidingWindowUcb window(split_arms(2), nullptr, 500);
  Ucb1 ucb1(split_arms(2), nullptr);
  // Within 1000-3000 rounds of the change the adaptive ones play the new best arm most of the time; UCB1's
  // 10000 rounds of history at 0.9 keep it on the old arm for thousands more.
  EXPECT_GT(share_after_change(discounted, 1, change, from, to), 0.6);
  EXPECT_GT(share_after_change(window, 1, change, from, to), 0.6);
  EXPECT_LT(share_after_change(ucb1, 1, change, from, to), 0.2);
}

TEST(LinUcb, PicksTheRightArmPerContext) {
  // Fast network: offloading at once (arm 0) pays; slow network: stay on the edge (arm 1).
  LinUcb lin(split_arms(1), nullptr);
  Context fast, slow;
  fast.bandwidth_mbps = 100;
  fast.rtt_ms = 5;
  slow.bandwidth_mbps = 2;
  slow.rtt_ms = 150;
  const double mean[2][2] = {{0.8, 0.3}, {0.2, 0.7}};  // [context][arm]
  Rng rng(21);
  std::size_t right[2] = {0, 0}, seen[2] = {0, 0};
  for (int t = 0; t < 3000; ++t) {
    const int c = static_cast<int>(uniform_below(rng, 2));
    const Context& ctx = c == 0 ? fast : slow;
    const std::size_t a = lin.index_of(lin.choose(ctx));
    if (t >= 2000) {
      ++seen[c];
      right[c] += a == static_cast<std::size_t>(c);
    }
    lin.observe_reward(a, uniform01(rng) < mean[c][a] ? 1.0 : 0.0, ctx);
  }
  EXPECT_GT(static_cast<double>(right[0]) / static_cast<double>(seen[0]), 0.9);
  EXPECT_GT(static_cast<double>(right[1]) / static_cast<double>(seen[1]), 0.9);
}

// A restored A must be positive definite: -I and an indefinite matrix both factor under LDLT, and would
// make the exploration width x' A^-1 x negative.
TEST(LinUcb, RestoreRefusesMatricesThatAreNotPositiveDefinite) {
  LinUcb lin(split_arms(1), nullptr);
  lin.observe_reward(0, 1.0, Context{});
  const nlohmann::json good = lin.state();
  LinUcb copy(split_arms(1), nullptr);
  EXPECT_NO_THROW(copy.restore(good));
  const LinUcb::Mat indefinite = LinUcb::Vec(1, -1, 1, 1).asDiagonal();
  for (const LinUcb::Mat& bad : {LinUcb::Mat(-LinUcb::Mat::Identity()), indefinite}) {
    nlohmann::json state = good;
    state["arms"][1]["A"] = std::vector<double>(bad.data(), bad.data() + bad.size());
    try {
      copy.restore(state);
      ADD_FAILURE() << "accepted A =\n" << bad;
    } catch (const SchedError& e) {
      EXPECT_NE(std::string(e.what()).find("arm 1 matrix A is not symmetric positive definite"),
                std::string::npos)
          << e.what();
    }
  }
  nlohmann::json features = good;
  features["features"] = 4294967300ull;  // 4 after a wrap to int
  EXPECT_THROW(copy.restore(features), SchedError);
}

TEST(LatencyCost, PredictsEdgePlusTransferPlusRttPlusCloud) {
  LatencyParams p;
  p.num_layers = 6;
  p.edge_ms_per_layer = 1;
  p.cloud_ms_per_layer = 0.5;
  p.payload_bytes = 12500;  // 0.1 Mbit
  LatencyCost cost(p);
  Context ctx;
  ctx.bandwidth_mbps = 10;  // 10 ms for 0.1 Mbit
  ctx.rtt_ms = 20;
  EXPECT_DOUBLE_EQ(*cost.predicted_latency_ms(2, ctx), 2 + 10 + 20 + 0.5 * 4);
  EXPECT_DOUBLE_EQ(*cost.predicted_latency_ms(6, ctx), 6);
  EXPECT_FALSE(cost.predicted_latency_ms(2, Context{}).has_value()) << "no bandwidth measured yet";
}

TEST(SloFilter, ArmsPredictedToMissTheSloAreNeverChosen) {
  LatencyParams p;
  p.num_layers = 6;
  p.slo_ms = 20;
  auto cost = std::make_shared<LatencyCost>(p);
  Context slow;
  slow.bandwidth_mbps = 1;  // 4352 B -> ~35 ms: every offloading arm misses 20 ms
  slow.rtt_ms = 10;
  for (const std::string spec :
       {"ucb1", "splitee-s", "ucb-v", "ucb-tuned", "d-ucb", "sw-ucb", "linucb", "thompson"}) {
    auto policy = make_policy(spec, {6, cost, 1, {}, nullptr});
    auto& bandit = dynamic_cast<Bandit&>(*policy);
    for (int t = 0; t < 300; ++t) {
      const Arm arm = policy->choose(slow);
      ASSERT_EQ(arm.split, 6) << spec << " chose split " << arm.split << " at round " << t;
      // Tell it offloading would be wonderful: it still must not pick an infeasible arm.
      bandit.observe_reward(0, 1.0, slow);
      bandit.observe_reward(bandit.index_of(arm), cost->reward_min(), slow);
    }
  }
}

TEST(SloFilter, WithNoFeasibleArmTheFastestIsChosen) {
  LatencyParams p;
  p.num_layers = 6;
  p.slo_ms = 0.01;  // nothing can make it
  p.edge_ms_per_layer = 5;
  auto cost = std::make_shared<LatencyCost>(p);
  Context fast;
  fast.bandwidth_mbps = 1000;
  fast.rtt_ms = 1;
  Ucb1 ucb(split_arms(6), cost);
  EXPECT_EQ(ucb.candidates(fast), std::vector<std::size_t>{0}) << "offloading at once is fastest here";
  Context deadline = fast;
  deadline.deadline_ms = 40;  // a request deadline tightens the SLO the same way
  p.slo_ms.reset();
  Ucb1 ucb2(split_arms(6), std::make_shared<LatencyCost>(p));
  for (std::size_t i : ucb2.candidates(deadline))
    EXPECT_LE(*ucb2.cost_model()->predicted_latency_ms(static_cast<int>(i), deadline), 40);
}

TEST(SplitEECost, RewardsFollowThePaper) {
  SplitEECost cost({6, 0.1, 0.5});
  Outcome exit;
  exit.answered_by = AnsweredBy::edge_exit;
  exit.answer_confidence = 0.95;
  exit.threshold = 0.9;
  exit.exits = {{1, 3, 0.5}, {2, 3, 0.95}};
  EXPECT_NEAR(cost.reward({2, {}}, exit), 0.95 - 0.2, 1e-12);
  EXPECT_NEAR(cost.cost({2, {}}, exit), 0.2, 1e-12);
  Outcome off = exit;
  off.answered_by = AnsweredBy::cloud;
  off.answer_confidence = 0.99;
  off.final_confidence = 0.99;
  off.sent = true;
  EXPECT_NEAR(cost.reward({2, {}}, off), 0.99 - 0.2 - 0.5, 1e-12);
  EXPECT_NEAR(cost.cost({2, {}}, off), 0.7, 1e-12);
  // SplitEE-S side observations: arm 1 would have offloaded (0.5 < 0.9), arm 0 always offloads.
  EXPECT_NEAR(*cost.counterfactual_reward({1, {}}, {2, {}}, off), 0.99 - 0.1 - 0.5, 1e-12);
  EXPECT_NEAR(*cost.counterfactual_reward({0, {}}, {2, {}}, off), 0.99 - 0.5, 1e-12);
  EXPECT_FALSE(cost.counterfactual_reward({3, {}}, {2, {}}, off).has_value()) << "deeper exits never ran";
  EXPECT_NEAR(cost.final_layer_cost(), 0.6, 1e-12);
}

TEST(SplitEESide, ShallowerArmsLearnFromEverySample) {
  auto cost = std::make_shared<SplitEECost>(SplitEEParams{6, 0.1, 0.5});
  SplitEESide side(split_arms(6), cost);
  Outcome o;
  o.answered_by = AnsweredBy::cloud;
  o.answer_confidence = 0.9;
  o.final_confidence = 0.9;
  o.threshold = 0.8;
  for (int l = 1; l <= 4; ++l) o.exits.push_back({l, 0, 0.5});
  side.observe({4, {}}, o);
  for (std::size_t a = 0; a <= 4; ++a) EXPECT_EQ(side.pulls(a), 1) << "arm " << a;
  for (std::size_t a = 5; a <= 6; ++a) EXPECT_EQ(side.pulls(a), 0) << "arm " << a;
  EXPECT_EQ(side.rounds(), 1u);
}

std::vector<std::string> learning_specs() {
  return {"ucb1",
          "splitee-s",
          "ucb-v",
          "ucb-tuned",
          "d-ucb:gamma=0.99",
          "sw-ucb:window=50",
          "linucb:alpha=0.5",
          "thompson:seed=9"};
}

// Drives a policy with synthetic outcomes; returns its choices.
std::vector<int> drive(Policy& policy, std::size_t rounds, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<int> choices;
  for (std::size_t t = 0; t < rounds; ++t) {
    Context ctx;
    ctx.bandwidth_mbps = 10 + 90 * uniform01(rng);
    ctx.rtt_ms = 50 * uniform01(rng);
    const Arm arm = policy.choose(ctx);
    choices.push_back(arm.split);
    Outcome o;
    o.context = ctx;
    o.threshold = 0.9;
    for (int l = 1; l <= arm.split; ++l) o.exits.push_back({l, 0, 0.5 + 0.08 * l * uniform01(rng)});
    const bool exits = arm.split > 0 && arm.split < 6 && o.exits.back().confidence >= 0.9;
    o.answered_by = arm.split == 6 ? AnsweredBy::edge_final
                    : exits        ? AnsweredBy::edge_exit
                                   : AnsweredBy::cloud;
    o.answer_confidence = exits ? o.exits.back().confidence : 0.97;
    if (!exits) o.final_confidence = 0.97;
    policy.observe(arm, o);
  }
  return choices;
}

std::shared_ptr<const CostModel> splitee6() {
  return std::make_shared<SplitEECost>(SplitEEParams{6, 0.1, 0.5});
}

TEST(Policies, SameSeedSameChoices) {
  for (const auto& spec : learning_specs()) {
    auto a = make_policy(spec, {6, splitee6(), 42, {}, nullptr});
    auto b = make_policy(spec, {6, splitee6(), 42, {}, nullptr});
    EXPECT_EQ(drive(*a, 500, 3), drive(*b, 500, 3)) << spec;
  }
  auto t1 = make_policy("thompson", {6, splitee6(), 1, {}, nullptr});
  auto t2 = make_policy("thompson", {6, splitee6(), 2, {}, nullptr});
  EXPECT_NE(drive(*t1, 500, 3), drive(*t2, 500, 3)) << "the seed must matter";
}

std::filesystem::path temp_file(const std::string& name) {
  return std::filesystem::temp_directory_path() /
         ("ee_sched_test_" + std::to_string(::getpid()) + "_" + name);
}

TEST(State, SaveRestoreRoundTripContinuesIdentically) {
  for (const auto& spec : learning_specs()) {
    auto original = make_policy(spec, {6, splitee6(), 42, {0.8, 0.9}, nullptr});
    drive(*original, 300, 5);
    const auto path = temp_file("roundtrip.json");
    save_state(*original, path);
    auto restored = make_policy(spec, {6, splitee6(), 42, {0.8, 0.9}, nullptr});
    load_state(*restored, path);
    EXPECT_EQ(drive(*original, 300, 6), drive(*restored, 300, 6)) << spec;
    std::filesystem::remove(path);
  }
}

TEST(State, CorruptOrMismatchedFilesAreRejectedAndThePolicyStartsFresh) {
  auto policy = make_policy("ucb1", {6, splitee6(), 0, {}, nullptr});
  drive(*policy, 200, 1);
  const auto path = temp_file("state.json");
  save_state(*policy, path);

  auto other = make_policy("sw-ucb", {6, splitee6(), 0, {}, nullptr});
  try {
    load_state(*other, path);
    FAIL() << "a ucb1 state loaded into sw-ucb";
  } catch (const SchedError& e) {
    EXPECT_NE(std::string(e.what()).find("ucb1"), std::string::npos) << e.what();
  }
  auto fewer_arms = make_policy("ucb1", {4, splitee6(), 0, {}, nullptr});
  EXPECT_THROW(load_state(*fewer_arms, path), SchedError);

  // Damage the file: truncated JSON, then a wrong version, then a wrong-shaped state.
  std::string text;
  {
    std::ifstream in(path);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto write = [&](const std::string& s) { std::ofstream(path, std::ios::trunc) << s; };
  auto fresh = make_policy("ucb1", {6, splitee6(), 0, {}, nullptr});
  const auto fresh_choices = drive(*fresh, 50, 9);
  // Version 4294967297 is 1 once narrowed to int; it must not pass for version 1.
  auto wrapped_version = nlohmann::json::parse(text);
  wrapped_version["version"] = 4294967297ull;
  for (const std::string& bad :
       {text.substr(0, text.size() / 2), std::string("{\"format\":\"eesplit-sched-state\",\"version\":99}"),
        wrapped_version.dump(), std::string("not json at all")}) {
    write(bad);
    auto p = make_policy("ucb1", {6, splitee6(), 0, {}, nullptr});
    drive(*p, 100, 1);
    std::string why;
    EXPECT_FALSE(restore_or_reset(*p, path, &why));
    EXPECT_NE(why.find(path.string()), std::string::npos) << "the message names the file: " << why;
    EXPECT_EQ(drive(*p, 50, 9), fresh_choices) << "after a rejected file the policy starts fresh";
  }
  auto doc = nlohmann::json::parse(text);
  doc["state"]["n"] = "seven";
  write(doc.dump());
  EXPECT_THROW(load_state(*policy, path), SchedError);
  std::filesystem::remove(path);
}

TEST(Factory, BuildsEveryPolicyAndRejectsTypos) {
  auto cost = splitee6();
  auto table = std::make_shared<RewardTable>(split_arms(6), 3);
  for (const auto& name : policy_names()) {
    auto p = make_policy(name, {6, cost, 0, {}, table});
    EXPECT_FALSE(p->name().empty());
    auto again = make_policy(p->name(), {6, cost, 0, {}, table});  // name() is a spec that rebuilds it
    EXPECT_EQ(again->name(), p->name());
  }
  EXPECT_EQ(make_policy("sw-ucb:window=500", {6, cost, 0, {}, nullptr})->name(), "sw-ucb:window=500,xi=0.5");
  EXPECT_EQ(make_policy("fixed:split=2", {6, cost, 0, {}, nullptr})->choose({}).split, 2);
  EXPECT_EQ(make_policy("edge-only", {6, cost, 0, {}, nullptr})->choose({}).split, 6);
  EXPECT_EQ(make_policy("cloud-only", {6, cost, 0, {}, nullptr})->choose({}).split, 0);
  EXPECT_EQ(make_policy("ucb1:thresholds=0.8/0.9", {6, cost, 0, {}, nullptr})->arms().size(), 2u + 5 * 2);
  EXPECT_THROW(make_policy("ucb2", {6, cost, 0, {}, nullptr}), SchedError);
  EXPECT_THROW(make_policy("ucb1:betta=1", {6, cost, 0, {}, nullptr}), SchedError);
  EXPECT_THROW(make_policy("sw-ucb:window=abc", {6, cost, 0, {}, nullptr}), SchedError);
  EXPECT_THROW(make_policy("sw-ucb:window=0", {6, cost, 0, {}, nullptr}), SchedError);
  EXPECT_THROW(make_policy("fixed:split=7", {6, cost, 0, {}, nullptr}), SchedError);
  EXPECT_THROW(make_policy("oracle-fixed", {6, cost, 0, {}, nullptr}), SchedError)
      << "an oracle needs a table";
  EXPECT_THROW(make_policy("ucb1", {6, cost, 0, {}, nullptr})->observe({9, {}}, Outcome{}), SchedError);
}

TEST(Arm, TextRoundTrip) {
  EXPECT_EQ(to_string(Arm{3, 0.85}), "3@0.85");
  EXPECT_EQ(parse_arm("3@0.85"), (Arm{3, 0.85}));
  EXPECT_EQ(parse_arm("0"), (Arm{0, std::nullopt}));
  EXPECT_THROW(parse_arm("x"), SchedError);
  EXPECT_THROW(parse_arm("2@1.5"), SchedError);
}

TEST(NetworkEstimator, EwmaSeedsWithTheFirstSampleAndTracksChanges) {
  NetworkEstimator est(0.5);
  EXPECT_FALSE(est.has_bandwidth());
  est.observe_transfer(125000, 10);  // 1 Mbit in 10 ms = 100 Mbit/s
  EXPECT_DOUBLE_EQ(est.bandwidth_mbps(), 100);
  est.observe_transfer(125000, 100);  // 10 Mbit/s
  EXPECT_DOUBLE_EQ(est.bandwidth_mbps(), 55);
  est.observe_rtt(20);
  est.observe_rtt(40);
  EXPECT_DOUBLE_EQ(est.rtt_ms(), 30);
  Context ctx;
  est.fill(ctx);
  EXPECT_DOUBLE_EQ(ctx.bandwidth_mbps, 55);
  EXPECT_THROW(est.observe_rtt(-1), SchedError);
  EXPECT_THROW(NetworkEstimator(0), SchedError);
}

}  // namespace
}  // namespace ee::sched
