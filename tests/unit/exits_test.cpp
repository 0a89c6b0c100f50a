// Exit measures against hand-computed values, exit rules, and batched early exit against batch size 1.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "common/exits/confidence.hpp"
#include "common/exits/early_exit.hpp"
#include "common/model/safetensors.hpp"

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
  ExitDecider max_prob{ExitRule::parse("max_prob:0.9")}, entropy{ExitRule::parse("entropy:0.3")},
      margin{ExitRule::parse("margin:0.5")};
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
  ExitDecider d{ExitRule::parse("patience:2")};
  const int labels[] = {1, 1, 2, 2, 2};
  std::vector<bool> fired;
  for (int l : labels) fired.push_back(d.should_exit(Confidence{l, 0.1f, 2.0f, 0.0f}));
  EXPECT_EQ(fired, (std::vector<bool>{false, false, false, false, true}));
}

class EarlyExitOnReferenceModel : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto dir = std::filesystem::path(EE_SOURCE_DIR) / "models/fmnist-vit";
    model = model::MultiExitModel::load(dir);
    pixels = model::SafeTensors::open(dir / "golden.safetensors")->copy<uint8_t>("input.pixels", "U8");
    batch = static_cast<int>(pixels.size() / (28 * 28));
  }
  std::shared_ptr<const model::MultiExitModel> model;
  std::vector<uint8_t> pixels;
  int batch = 0;
  model::Workspace ws;
};

TEST_F(EarlyExitOnReferenceModel, BatchedRunAnswersEverySampleExactlyAsBatchOne) {
  for (const char* spec : {"max_prob:0.9", "entropy:0.1", "patience:1", "max_prob:1.1"}) {
    const ExitRule rule = ExitRule::parse(spec);
    const EarlyExitRun all =
        run_with_exits(*model, model->embed_images(pixels, batch), model->num_layers(), rule, ws);
    EXPECT_EQ(all.remaining.batch(), 0);
    for (int b = 0; b < batch; ++b) {
      const auto one_px = std::span(pixels).subspan(b * 784, 784);
      const EarlyExitRun one =
          run_with_exits(*model, model->embed_images(one_px, 1), model->num_layers(), rule, ws);
      ASSERT_TRUE(all.results[b] && one.results[0]) << spec;
      EXPECT_EQ(all.results[b]->layer, one.results[0]->layer) << spec << " sample " << b;
      EXPECT_EQ(all.results[b]->confidence.label, one.results[0]->confidence.label)
          << spec << " sample " << b;
      EXPECT_NEAR(all.results[b]->confidence.max_prob, one.results[0]->confidence.max_prob, 1e-5);
    }
  }
}

TEST_F(EarlyExitOnReferenceModel, ImpossibleThresholdRunsEverySampleToTheLastLayer) {
  const EarlyExitRun run = run_with_exits(*model, model->embed_images(pixels, batch), model->num_layers(),
                                          ExitRule::parse("max_prob:1.1"), ws);
  for (const auto& r : run.results) EXPECT_EQ(r->layer, model->num_layers());
}

TEST_F(EarlyExitOnReferenceModel, StoppingAtTheSplitHandsOverTheUndecidedSamples) {
  const int split = 2;
  const ExitRule rule = ExitRule::parse("max_prob:0.99");
  EarlyExitRun edge = run_with_exits(*model, model->embed_images(pixels, batch), split, rule, ws);
  EXPECT_EQ(edge.remaining.depth, split);
  int exited = 0;
  for (const auto& r : edge.results) exited += r.has_value();
  EXPECT_EQ(exited + edge.remaining.batch(), batch);
  ASSERT_GT(edge.remaining.batch(), 0) << "a 0.99 threshold should leave some samples undecided at layer 2";
  // The cloud continues the offloaded samples and answers them all.
  const EarlyExitRun cloud = run_with_exits(*model, edge.remaining, model->num_layers(), rule, ws);
  for (const auto& r : cloud.results) ASSERT_TRUE(r.has_value());
  // Same answers as running on one machine.
  const EarlyExitRun whole =
      run_with_exits(*model, model->embed_images(pixels, batch), model->num_layers(), rule, ws);
  for (int i = 0; i < edge.remaining.batch(); ++i) {
    const int input = edge.remaining_index[i];
    EXPECT_EQ(cloud.results[i]->layer, whole.results[input]->layer);
    EXPECT_EQ(cloud.results[i]->confidence.label, whole.results[input]->confidence.label);
  }
}

}  // namespace
}  // namespace ee::exits
