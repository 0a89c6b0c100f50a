// Exit measures against hand-computed values, and the exit rules.
#include <gtest/gtest.h>

#include <cmath>

#include "common/exits/confidence.hpp"

namespace ee::exits {
namespace {

TEST(Confidence, TwoClassesMatchHandComputedValues) {
  // softmax(0, ln 3) = (1/4, 3/4)
  const float logits[] = {0.0f, std::log(3.0f)};
  const Confidence c = confidence(logits);
  EXPECT_EQ(c.label, 1);
  EXPECT_NEAR(c.max_prob, 0.75, 1e-6);
  EXPECT_NEAR(c.margin, 0.5, 1e-6);
  EXPECT_NEAR(c.entropy, -(0.25 * std::log(0.25) + 0.75 * std::log(0.75)), 1e-6);  // 0.562335
}

TEST(Confidence, UniformLogitsHaveMaximalEntropyAndZeroMargin) {
  const float logits[] = {2.0f, 2.0f, 2.0f, 2.0f};
  const Confidence c = confidence(logits);
  EXPECT_NEAR(c.max_prob, 0.25, 1e-6);
  EXPECT_NEAR(c.margin, 0.0, 1e-6);
  EXPECT_NEAR(c.entropy, std::log(4.0), 1e-6);
  EXPECT_EQ(c.label, 0);  // ties go to the first class, as torch.argmax
}

TEST(Confidence, HugeLogitsDoNotOverflow) {
  const float logits[] = {1000.0f, 0.0f, -1000.0f};
  const Confidence c = confidence(logits);
  EXPECT_EQ(c.label, 0);
  EXPECT_NEAR(c.max_prob, 1.0, 1e-6);
  EXPECT_NEAR(c.entropy, 0.0, 1e-6);
  EXPECT_NEAR(c.margin, 1.0, 1e-6);
}

TEST(Confidence, RejectsTooFewOrNonFiniteLogits) {
  const float one[] = {1.0f};
  const float nan[] = {1.0f, NAN};
  EXPECT_THROW(confidence(one), std::invalid_argument);
  EXPECT_THROW(confidence(nan), std::invalid_argument);
}

TEST(ExitRule, ParsesEveryMeasureAndRoundTrips) {
  EXPECT_EQ(ExitRule::parse("max_prob:0.9").measure, Measure::max_prob);
  EXPECT_DOUBLE_EQ(ExitRule::parse("entropy:0.25").threshold, 0.25);
  EXPECT_EQ(ExitRule::parse("margin:0.5").measure, Measure::margin);
  EXPECT_EQ(ExitRule::parse("patience:3").measure, Measure::patience);
  EXPECT_EQ(ExitRule::parse("entropy:0.25").str(), "entropy:0.25");
}

TEST(ExitRule, RejectsMalformedSpecs) {
  for (const char* bad : {"", "max_prob", "maxprob:0.9", "max_prob:", "max_prob:abc", "max_prob:0.9x",
                          "entropy:-1", "patience:0", "patience:1.5", "max_prob:nan"}) {
    EXPECT_THROW(ExitRule::parse(bad), std::invalid_argument) << bad;
  }
}

TEST(ExitDecider, ThresholdMeasuresCompareInTheRightDirection) {
  const Confidence sure{3, 0.95f, 0.1f, 0.9f}, unsure{3, 0.5f, 1.2f, 0.1f};
  ExitDecider max_prob{ExitRule::parse("max_prob:0.9"), {}}, entropy{ExitRule::parse("entropy:0.3"), {}},
      margin{ExitRule::parse("margin:0.5"), {}};
  EXPECT_TRUE(max_prob.should_exit(sure));
  EXPECT_FALSE(max_prob.should_exit(unsure));
  EXPECT_TRUE(entropy.should_exit(sure));
  EXPECT_FALSE(entropy.should_exit(unsure));
  EXPECT_TRUE(margin.should_exit(sure));
  EXPECT_FALSE(margin.should_exit(unsure));
}

TEST(ExitDecider, PatienceExitsAfterKAgreeingExitsAndResetsOnChange) {
  // PABEE with patience 2: predictions 1, 1, 2, 2, 2 -> exit at the fifth exit (two agreements after a
  // change).
  ExitDecider d{ExitRule::parse("patience:2"), {}};
  const int labels[] = {1, 1, 2, 2, 2};
  std::vector<bool> fired;
  for (int l : labels) fired.push_back(d.should_exit(Confidence{l, 0.1f, 2.0f, 0.0f}));
  EXPECT_EQ(fired, (std::vector<bool>{false, false, false, false, true}));
}

}  // namespace
}  // namespace ee::exits
