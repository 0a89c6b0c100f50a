// Split or not, a sample gets the same answer: for every exit rule and every split layer, every sample of
// the Fashion-MNIST test set (and of the SpamAssassin test split when it has been made) runs on the "edge"
// up to the split, the undecided ones cross the wire in f32 with their exit state, are re-batched on the
// "cloud" with whatever else was undecided, and must exit at the same layer with the same probabilities,
// bit for bit, as in one unsplit run.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "common/runtime/early_exit.hpp"
#include "common/wire/codec.hpp"
#include "sim/dataset.hpp"
#include "sim/evaluation.hpp"
#include "sim/text_dataset.hpp"

namespace ee {
namespace {

namespace fs = std::filesystem;
const fs::path kSource = EE_SOURCE_DIR;

std::map<uint64_t, runtime::Answer> by_id(std::vector<runtime::Answer> answers) {
  std::map<uint64_t, runtime::Answer> out;
  for (auto& a : answers) out.emplace(a.sample.request_id, std::move(a));
  return out;
}

// The cloud's half: encode each undecided sample as the edge would, decode, one batch, run to the end.
std::vector<runtime::Answer> across_the_wire(const model::MultiExitModel& model, const runtime::Batch& edge,
                                             model::Workspace& ws) {
  const wire::Limits limits = wire::Limits::for_model(model.config(), model.hash());
  std::vector<wire::Activation> received;
  std::vector<runtime::Sample> samples;
  for (int b = 0; b < edge.size(); ++b) {
    wire::ActivationMeta meta;
    meta.request_id = edge.sample(b).request_id + 1;
    meta.model_hash = limits.model_hash;
    meta.split_layer = edge.depth();
    meta.exit = edge.sample(b).exit;
    const wire::Encoded e = wire::encode_activation(meta, edge.rows(b), {wire::DType::f32});
    received.push_back(std::get<wire::Activation>(wire::decode(e.span(), limits)));
  }
  std::vector<const wire::Activation*> requests;
  for (const auto& a : received) {
    requests.push_back(&a);
    samples.push_back(runtime::Sample::from(a, runtime::Clock::now()));
    samples.back().request_id -= 1;
  }
  runtime::Batch cloud = runtime::Batch::decode(requests, samples);
  return runtime::run_with_exits(model, cloud, model.num_layers(), ws);
}

void expect_split_equals_unsplit(const model::MultiExitModel& model, const sim::EvalDataset& data) {
  model::Workspace ws;
  const int chunk = 256;
  for (const char* spec : {"max_prob:0.9", "entropy:0.2", "margin:0.5", "patience:2"}) {
    const exits::ExitRule rule = exits::ExitRule::parse(spec);
    int checked = 0, offloaded = 0;
    for (int first = 0; first < data.size(); first += chunk) {
      const int n = std::min(chunk, data.size() - first);
      runtime::Batch whole_batch(data.embed(first, n), rule, static_cast<uint64_t>(first));
      const auto whole = by_id(runtime::run_with_exits(model, whole_batch, model.num_layers(), ws));
      for (int split = 0; split < model.num_layers(); ++split) {
        runtime::Batch edge(data.embed(first, n), rule, static_cast<uint64_t>(first));
        auto answers = runtime::run_with_exits(model, edge, split, ws);
        offloaded += edge.size();
        auto cloud = across_the_wire(model, edge, ws);
        answers.insert(answers.end(), std::make_move_iterator(cloud.begin()),
                       std::make_move_iterator(cloud.end()));
        const auto split_run = by_id(std::move(answers));
        ASSERT_EQ(split_run.size(), static_cast<size_t>(n));
        for (const auto& [id, a] : whole) {
          const runtime::Answer& s = split_run.at(id);
          ASSERT_EQ(s.exit.layer, a.exit.layer) << spec << " split " << split << " sample " << id;
          ASSERT_EQ(s.exit.probabilities, a.exit.probabilities)
              << spec << " split " << split << " sample " << id;
          ++checked;
        }
      }
    }
    EXPECT_EQ(checked, data.size() * model.num_layers()) << spec;
    EXPECT_GT(offloaded, data.size()) << spec << ": almost nothing crossed the split";
  }
}

TEST(SplitEqualsUnsplit, EveryFashionMnistTestImageUnderEveryRuleAndSplit) {
  const auto model = model::MultiExitModel::load(kSource / "models/fmnist-vit");
  const auto data =
      sim::image_eval_dataset(*model, (sim::kFashionMnistDir / "t10k-images-idx3-ubyte.gz").string(),
                              (sim::kFashionMnistDir / "t10k-labels-idx1-ubyte.gz").string());
  ASSERT_EQ(data.size(), 10000);
  expect_split_equals_unsplit(*model, data);
}

TEST(SplitEqualsUnsplit, EverySpamAssassinTestMailUnderEveryRuleAndSplit) {
  const fs::path dir = fs::temp_directory_path() / ("ee_split_test_" + std::to_string(::getpid()));
  const std::string cmd = "/usr/bin/python3 " + (kSource / "models/train/spam_data.py").string() + " --out " +
                          dir.string() + " > /dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0)
    GTEST_SKIP() << "models/train/spam_data.py could not make the test split";
  const fs::path model_dir = kSource / "models/spam-bert";
  const auto model = model::MultiExitModel::load(model_dir);
  const auto data = sim::text_eval_dataset(*model, model_dir, dir / "test.jsonl");
  fs::remove_all(dir);
  ASSERT_GT(data.size(), 1000);
  expect_split_equals_unsplit(*model, data);
}

}  // namespace
}  // namespace ee
