// The batch layer: rows move with their samples through take and append (re-padded, text included), a
// padded sample computes exactly what it computes alone, per-sample rules and streaks in one batch, audits,
// and batched early exit against batch size 1 and against a run split in two.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <numeric>
#include <set>
#include <vector>

#include "common/model/safetensors.hpp"
#include "common/runtime/batch.hpp"
#include "common/runtime/early_exit.hpp"

namespace ee::runtime {
namespace {

namespace fs = std::filesystem;
using exits::ExitRule;

fs::path models() {
  return fs::path(EE_SOURCE_DIR) / "models";
}

// Rows of sample b that hold real tokens.
model::Matrix real(const Batch& batch, int b) {
  return batch.rows(b);
}

class ImageModel : public ::testing::Test {
 protected:
  void SetUp() override {
    model = model::MultiExitModel::load(models() / "fmnist-vit");
    pixels = model::SafeTensors::open(models() / "fmnist-vit/golden.safetensors")
                 ->copy<uint8_t>("input.pixels", "U8");
    count = static_cast<int>(pixels.size() / 784);
  }
  Batch images(const ExitRule& rule, int first = 0, int n = -1) const {
    if (n < 0) n = count - first;
    return Batch(model->embed_images(std::span(pixels).subspan(first * 784, n * 784), n), rule,
                 static_cast<uint64_t>(first));
  }
  std::map<uint64_t, Answer> by_id(std::vector<Answer> answers) const {
    std::map<uint64_t, Answer> out;
    for (Answer& a : answers) out.emplace(a.sample.request_id, std::move(a));
    return out;
  }
  std::shared_ptr<const model::MultiExitModel> model;
  std::vector<uint8_t> pixels;
  int count = 0;
  model::Workspace ws;
};

class TextModel : public ::testing::Test {
 protected:
  void SetUp() override {
    model = model::MultiExitModel::load(models() / "spam-bert");
    auto golden = model::SafeTensors::open(models() / "spam-bert/golden.safetensors");
    tokens.tokens = static_cast<int>(golden->at("input.input_ids").shape[1]);
    tokens.input_ids = golden->copy<int32_t>("input.input_ids", "I32");
    tokens.token_type_ids = golden->copy<int32_t>("input.token_type_ids", "I32");
    const auto lengths = golden->copy<int32_t>("input.lengths", "I32");
    tokens.lengths.assign(lengths.begin(), lengths.end());
  }
  // Sample b alone, unpadded (tokens = its length).
  model::TokenBatch alone(int b) const {
    model::TokenBatch one;
    one.tokens = tokens.lengths[b];
    const auto first = tokens.input_ids.begin() + static_cast<std::ptrdiff_t>(b) * tokens.tokens;
    one.input_ids.assign(first, first + one.tokens);
    one.token_type_ids.assign(one.tokens, 0);
    one.lengths = {one.tokens};
    return one;
  }
  std::shared_ptr<const model::MultiExitModel> model;
  model::TokenBatch tokens;
  model::Workspace ws;
};

TEST_F(ImageModel, TakeMovesRowsWithTheirSamples) {
  Batch batch = images(ExitRule::parse("max_prob:0.9"));
  const Batch copy = batch;
  const std::vector<int> picked = {1, 4, 5};
  const Batch out = batch.take(picked);
  ASSERT_EQ(out.size(), 3);
  ASSERT_EQ(batch.size(), count - 3);
  for (int i = 0; i < out.size(); ++i) {
    EXPECT_EQ(out.sample(i).request_id, static_cast<uint64_t>(picked[i]));
    EXPECT_EQ(real(out, i), real(copy, picked[i]));
  }
  for (int i = 0; i < batch.size(); ++i)
    EXPECT_EQ(real(batch, i), real(copy, static_cast<int>(batch.sample(i).request_id)));
}

TEST_F(ImageModel, TakeRefusesIndicesThatDoNotAscend) {
  Batch batch = images(ExitRule::parse("max_prob:0.9"));
  EXPECT_THROW(batch.take(std::vector<int>{2, 1}), std::invalid_argument);
  EXPECT_THROW(batch.take(std::vector<int>{count}), std::invalid_argument);
  EXPECT_EQ(batch.size(), count) << "a refused take leaves the batch as it was";
}

TEST_F(ImageModel, AppendRefusesAnotherDepth) {
  Batch a = images(ExitRule::parse("max_prob:0.9"), 0, 2), b = images(ExitRule::parse("max_prob:0.9"), 2, 2);
  model->run_layers(b.hidden(), 1, ws);
  EXPECT_THROW(a.append(std::move(b)), std::invalid_argument);
}

TEST_F(ImageModel, SamplesWithDifferentRulesShareABatch) {
  const std::vector<ExitRule> rules = {ExitRule::parse("max_prob:0.5"), ExitRule::parse("entropy:0.05"),
                                       ExitRule::parse("margin:0.99"), ExitRule::parse("patience:2"),
                                       ExitRule::parse("max_prob:1.1")};
  Batch mixed = images(rules[0]);
  for (int b = 0; b < count; ++b) mixed.sample(b).exit.rule = rules[b % rules.size()];
  const auto together = by_id(run_with_exits(*model, mixed, model->num_layers(), ws));
  ASSERT_EQ(together.size(), static_cast<size_t>(count));
  std::set<int> layers;
  for (int b = 0; b < count; ++b) {
    Batch one = images(rules[b % rules.size()], b, 1);
    const auto alone = run_with_exits(*model, one, model->num_layers(), ws);
    ASSERT_EQ(alone.size(), 1u);
    const Answer& t = together.at(static_cast<uint64_t>(b));
    EXPECT_EQ(t.exit.layer, alone[0].exit.layer) << "sample " << b;
    EXPECT_EQ(t.exit.probabilities, alone[0].exit.probabilities) << "sample " << b;
    layers.insert(t.exit.layer);
  }
  EXPECT_GT(layers.size(), 1u) << "the rules should make samples leave at different exits";
}

TEST_F(ImageModel, ImpossibleThresholdRunsEverySampleToTheLastLayer) {
  Batch batch = images(ExitRule::parse("max_prob:1.1"));
  for (const Answer& a : run_with_exits(*model, batch, model->num_layers(), ws))
    EXPECT_EQ(a.exit.layer, model->num_layers());
  EXPECT_TRUE(batch.empty());
}

// Edge to the split, then the cloud from there: the streak and the rule travel with each sample, so every
// rule answers exactly as one unsplit run does.
TEST_F(ImageModel, SplitRunAnswersAsTheWholeRun) {
  for (const char* spec : {"max_prob:0.99", "entropy:0.02", "margin:0.95", "patience:1", "patience:2"}) {
    const ExitRule rule = ExitRule::parse(spec);
    Batch whole_batch = images(rule);
    const auto whole = by_id(run_with_exits(*model, whole_batch, model->num_layers(), ws));
    for (int split = 0; split < model->num_layers(); ++split) {
      Batch edge = images(rule);
      auto answers = run_with_exits(*model, edge, split, ws);
      EXPECT_EQ(edge.depth(), split);
      EXPECT_EQ(static_cast<int>(answers.size()) + edge.size(), count);
      auto cloud = run_with_exits(*model, edge, model->num_layers(), ws);
      answers.insert(answers.end(), std::make_move_iterator(cloud.begin()),
                     std::make_move_iterator(cloud.end()));
      const auto split_run = by_id(std::move(answers));
      ASSERT_EQ(split_run.size(), static_cast<size_t>(count)) << spec << " split " << split;
      for (const auto& [id, a] : whole) {
        EXPECT_EQ(split_run.at(id).exit.layer, a.exit.layer)
            << spec << " split " << split << " sample " << id;
        EXPECT_EQ(split_run.at(id).exit.probabilities, a.exit.probabilities) << spec << " split " << split;
      }
    }
  }
}

TEST_F(ImageModel, BatchedRunAnswersEverySampleExactlyAsBatchOne) {
  for (const char* spec : {"max_prob:0.9", "entropy:0.1", "patience:1", "max_prob:1.1"}) {
    const ExitRule rule = ExitRule::parse(spec);
    Batch all_batch = images(rule);
    const auto all = by_id(run_with_exits(*model, all_batch, model->num_layers(), ws));
    for (int b = 0; b < count; ++b) {
      Batch one = images(rule, b, 1);
      const auto alone = run_with_exits(*model, one, model->num_layers(), ws);
      ASSERT_EQ(alone.size(), 1u);
      EXPECT_EQ(all.at(static_cast<uint64_t>(b)).exit.layer, alone[0].exit.layer) << spec << " sample " << b;
      EXPECT_EQ(all.at(static_cast<uint64_t>(b)).exit.probabilities, alone[0].exit.probabilities) << spec;
    }
  }
}

TEST_F(ImageModel, AnAuditedSampleReportsItsExitAndTheLastLayersLabel) {
  const ExitRule rule = ExitRule::parse("max_prob:0.5");
  Batch plain = images(rule);
  const auto exits = by_id(run_with_exits(*model, plain, model->num_layers(), ws));
  Batch last = images(ExitRule::parse("max_prob:1.1"));
  const auto finals = by_id(run_with_exits(*model, last, model->num_layers(), ws));

  Batch audited = images(rule);
  for (Sample& s : audited.samples()) s.audit = s.request_id % 2 == 0;
  const auto got = by_id(run_with_exits(*model, audited, model->num_layers(), ws));
  ASSERT_EQ(got.size(), static_cast<size_t>(count));
  int early = 0;
  for (const auto& [id, a] : got) {
    EXPECT_EQ(a.exit.layer, exits.at(id).exit.layer) << "an audit does not change the answer";
    EXPECT_EQ(a.exit.probabilities, exits.at(id).exit.probabilities);
    EXPECT_EQ(a.final_label, id % 2 == 0 ? finals.at(id).exit.confidence.label : -1) << "sample " << id;
    early += id % 2 == 0 && a.exit.layer < model->num_layers();
  }
  EXPECT_GT(early, 0) << "no audited sample exited early: the test exercised nothing";
}

TEST_F(ImageModel, RunLayersRefusesABatchItCannotIndex) {
  Batch batch = images(ExitRule::parse("max_prob:0.9"), 0, 2);
  model::Hidden h = batch.hidden();
  h.lengths[1] = 0;
  EXPECT_THROW(model->run_layers(h, 1, ws), model::ModelError);
  h.lengths[1] = h.tokens + 1;
  EXPECT_THROW(model->run_layers(h, 1, ws), model::ModelError);
  h = batch.hidden();
  h.lengths.push_back(1);
  EXPECT_THROW(model->run_layers(h, 1, ws), model::ModelError);
  h = batch.hidden();
  h.depth = -1;
  EXPECT_THROW(model->run_layers(h, 1, ws), model::ModelError);
  h = batch.hidden();
  EXPECT_THROW(model->run_layers(h, model->num_layers() + 1, ws), model::ModelError);
}

// A sample padded inside a batch of longer ones computes, bit for bit, what it computes alone: padding
// keys are masked and every other product is row by row.
TEST_F(TextModel, APaddedSampleEqualsItselfUnpaddedBitForBit) {
  ASSERT_LT(*std::min_element(tokens.lengths.begin(), tokens.lengths.end()), tokens.tokens);
  model::Hidden padded = model->embed_tokens(tokens);
  std::vector<model::Hidden> alone;
  for (int b = 0; b < tokens.batch(); ++b) alone.push_back(model->embed_tokens(this->alone(b)));
  for (int layer = 1; layer <= model->num_layers(); ++layer) {
    model->run_layers(padded, layer, ws);
    for (int b = 0; b < tokens.batch(); ++b) {
      model->run_layers(alone[b], layer, ws);
      const model::Matrix mine = padded.sample(b).topRows(tokens.lengths[b]);
      EXPECT_EQ(mine, alone[b].x) << "sample " << b << " after layer " << layer;
    }
  }
}

TEST_F(TextModel, AppendRepadsToTheLongerSampleAndAnswersAsAlone) {
  const ExitRule rule = ExitRule::parse("max_prob:1.1");
  // Two batches of one short mail each, then the longest: appended, the short ones are re-padded.
  std::vector<int> order(tokens.batch());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return tokens.lengths[a] < tokens.lengths[b]; });
  Batch merged(model->embed_tokens(alone(order[0])), rule, static_cast<uint64_t>(order[0]));
  std::vector<Batch> rest;
  for (size_t i = 1; i < order.size(); ++i)
    rest.emplace_back(model->embed_tokens(alone(order[i])), rule, static_cast<uint64_t>(order[i]));
  const model::Matrix first_rows = merged.rows(0);
  merged.append(rest);
  ASSERT_EQ(merged.size(), tokens.batch());
  EXPECT_EQ(merged.tokens(), tokens.lengths[order.back()]);
  EXPECT_EQ(merged.rows(0), first_rows);
  EXPECT_TRUE(merged.hidden().sample(0).bottomRows(merged.tokens() - tokens.lengths[order[0]]).isZero(0))
      << "padding rows are zero";
  for (const Batch& b : rest) EXPECT_TRUE(b.empty());

  const auto answers = run_with_exits(*model, merged, model->num_layers(), ws);
  for (const Answer& a : answers) {
    Batch one(model->embed_tokens(alone(static_cast<int>(a.sample.request_id))), rule, a.sample.request_id);
    const auto solo = run_with_exits(*model, one, model->num_layers(), ws);
    EXPECT_EQ(a.exit.probabilities, solo[0].exit.probabilities) << "mail " << a.sample.request_id;
  }
}

wire::Activation received(const wire::Encoded& e, const wire::Limits& limits) {
  return std::get<wire::Activation>(wire::decode(e.span(), limits));
}

TEST_F(TextModel, DecodeStacksRequestsIntoOnePaddedBatchAtTheirSplitLayer) {
  const wire::Limits limits = wire::Limits::for_model(model->config(), model->hash());
  wire::ActivationMeta meta;
  meta.model_hash = limits.model_hash;
  meta.split_layer = 3;
  const model::Matrix x0 = model::Matrix::Random(17, 128), x1 = model::Matrix::Random(6, 128);
  const wire::Activation a0 = received(wire::encode_activation(meta, x0, {wire::DType::f32}), limits);
  const wire::Activation a1 =
      received(wire::encode_activation(meta, x1, {wire::DType::f32, wire::Compression::zstd}), limits);
  const wire::Activation* requests[] = {&a0, &a1};
  std::vector<Sample> samples(2);
  samples[1].request_id = 9;
  const Batch b = Batch::decode(requests, samples);
  EXPECT_EQ(b.depth(), 3);
  EXPECT_EQ(b.tokens(), 17);
  EXPECT_EQ(b.hidden().lengths, (std::vector<int>{17, 6}));
  EXPECT_EQ(b.rows(0), x0);
  EXPECT_EQ(b.rows(1), x1);
  EXPECT_EQ(b.sample(1).request_id, 9u);
  EXPECT_TRUE(b.hidden().sample(1).bottomRows(11).isZero(0));

  meta.split_layer = 2;
  const wire::Activation other = received(wire::encode_activation(meta, x1, {wire::DType::f32}), limits);
  const wire::Activation* mixed[] = {&a0, &other};
  EXPECT_THROW(Batch::decode(mixed, samples), wire::WireError);
}

}  // namespace
}  // namespace ee::runtime
