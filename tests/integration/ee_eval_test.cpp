// The whole Fashion-MNIST test set through the C++ runtime agrees with PyTorch (per sample and per exit),
// and ee-eval, run as a process, reports those numbers.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/model/multi_exit_model.hpp"
#include "common/model/safetensors.hpp"
#include "sim/dataset.hpp"
#include "sim/evaluation.hpp"

namespace ee {
namespace {

namespace fs = std::filesystem;
const fs::path kModel = fs::path(EE_SOURCE_DIR) / "models/fmnist-vit";

struct TorchPredictions {
  std::vector<uint8_t> labels;  // [samples, exits], PyTorch's argmax per exit
  int exits = 0;
  int samples() const { return static_cast<int>(labels.size()) / exits; }
};

TorchPredictions torch_predictions() {
  auto st = model::SafeTensors::open(kModel / "test_predictions.safetensors");
  TorchPredictions p;
  p.exits = static_cast<int>(st->at("predictions").shape[1]);
  p.labels = st->copy<uint8_t>("predictions", "U8");
  return p;
}

sim::ImageDataset fashion_mnist_test() {
  return sim::load_idx(sim::kFashionMnistDir / "t10k-images-idx3-ubyte.gz",
                       sim::kFashionMnistDir / "t10k-labels-idx1-ubyte.gz");
}

TEST(ReferenceModel, EveryExitAgreesWithPyTorchOnTheFullTestSet) {
  const auto model = model::MultiExitModel::load(kModel);
  const auto ds = fashion_mnist_test();
  const TorchPredictions torch = torch_predictions();
  ASSERT_EQ(torch.samples(), ds.count);
  const sim::EvalDataset data =
      sim::image_eval_dataset(*model, (sim::kFashionMnistDir / "t10k-images-idx3-ubyte.gz").string(),
                              (sim::kFashionMnistDir / "t10k-labels-idx1-ubyte.gz").string());
  const sim::AllExits all = sim::evaluate_all_exits(*model, data, 500);
  for (int k = 0; k < torch.exits; ++k) {
    int differ = 0;
    for (int s = 0; s < ds.count; ++s)
      differ += all.confidences[s][k].label != torch.labels[s * torch.exits + k];
    // float32 in two runtimes: a sample whose top two logits tie to ~1e-6 may flip; more than that is a bug.
    EXPECT_LE(differ, 2) << "exit " << k + 1 << ": " << differ << " of " << ds.count << " predictions differ";
  }
}

TEST(EeEval, ReportsPyTorchsPerExitAccuracyAndAConsistentEarlyExitTable) {
  const fs::path json = fs::temp_directory_path() / ("ee_eval_test_" + std::to_string(::getpid()) + ".json");
  const std::string cmd = std::string(EE_EVAL_BIN) + " --model " + kModel.string() +
                          " --rule max_prob:0.9 --rule patience:2 --batch 16 --json " + json.string() +
                          " > /dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in(json);
  const nlohmann::json j = nlohmann::json::parse(in);
  fs::remove(json);

  const auto ds = fashion_mnist_test();
  const TorchPredictions torch = torch_predictions();
  EXPECT_EQ(j["samples"], ds.count);
  for (int k = 0; k < torch.exits; ++k) {
    int correct = 0;
    for (int s = 0; s < ds.count; ++s) correct += torch.labels[s * torch.exits + k] == ds.labels[s];
    EXPECT_NEAR(j["per_exit_accuracy"][std::to_string(k + 1)].get<double>(), 100.0 * correct / ds.count,
                0.021)
        << "exit " << k + 1;
  }
  EXPECT_EQ(j["model_hash"], model::MultiExitModel::load(kModel)->hash());
  const int num_layers = j["layers"].get<int>();
  EXPECT_EQ(num_layers, torch.exits);
  ASSERT_EQ(j["rules"].size(), 2u);
  EXPECT_EQ(j["rules"][0]["rule"], "max_prob:0.9");
  EXPECT_EQ(j["rules"][1]["rule"], "patience:2");
  for (const auto& rule : j["rules"]) {
    EXPECT_EQ(rule["batch"], 16) << rule["rule"];
    int samples = 0;
    double layers = 0, correct = 0;
    for (const auto& [layer, e] : rule["exits"].items()) {
      samples += e["samples"].get<int>();
      layers += std::stoi(layer) * e["samples"].get<double>();
      correct += e["samples"].get<double>() * e["accuracy"].get<double>() / 100;
    }
    EXPECT_EQ(samples, ds.count) << rule["rule"];
    EXPECT_NEAR(rule["mean_layers"].get<double>(), layers / ds.count, 1e-9);
    EXPECT_NEAR(rule["accuracy"].get<double>(), 100 * correct / ds.count, 1e-9) << rule["rule"];
    EXPECT_NEAR(rule["layers_saved"].get<double>(), 100 * (1 - layers / ds.count / num_layers), 1e-9);
    EXPECT_LT(rule["mean_layers"].get<double>(), num_layers) << "early exit saved nothing";
  }

  // Patience needs only the per-exit predictions, so PyTorch's give the whole distribution: a sample exits
  // once `patience` exits in a row agreed with the one before (streak as in common/exits).
  std::vector<int> exits(num_layers + 1, 0), right(num_layers + 1, 0);
  for (int s = 0; s < ds.count; ++s) {
    int layer = 1, streak = 0;
    for (; layer < num_layers; ++layer) {
      if (layer > 1 && torch.labels[s * torch.exits + layer - 1] == torch.labels[s * torch.exits + layer - 2])
        ++streak;
      else
        streak = 0;
      if (streak >= 2) break;
    }
    ++exits[layer];
    right[layer] += torch.labels[s * torch.exits + layer - 1] == ds.labels[s];
  }
  // At most 2 predictions per exit differ between the runtimes (the test above), so at most 2 * exits
  // samples can take another path.
  const int slack = 2 * torch.exits;
  for (int layer = 1; layer <= num_layers; ++layer) {
    const auto& e = j["rules"][1]["exits"][std::to_string(layer)];
    EXPECT_NEAR(e["samples"].get<int>(), exits[layer], slack) << "patience:2, exit " << layer;
    EXPECT_NEAR(e["samples"].get<double>() * e["accuracy"].get<double>() / 100, right[layer], slack)
        << "patience:2, correct at exit " << layer;
  }
  EXPECT_EQ(j["rules"][1]["exits"]["1"]["samples"], 0) << "patience 2 cannot exit at layer 1";
  EXPECT_EQ(j["rules"][1]["exits"]["2"]["samples"], 0) << "patience 2 needs three agreeing exits";
}

TEST(EeEval, FailsCleanlyOnBadInput) {
  const std::string bin = EE_EVAL_BIN;
  EXPECT_NE(std::system((bin + " --model /nonexistent 2> /dev/null").c_str()), 0);
  EXPECT_NE(std::system((bin + " --model " + kModel.string() + " --rule bogus:1 2> /dev/null").c_str()), 0);
  EXPECT_NE(
      std::system((bin + " --model " + kModel.string() + " --images /etc/hostname 2> /dev/null").c_str()), 0);
  EXPECT_EQ(std::system((bin + " --help > /dev/null").c_str()), 0);
}

}  // namespace
}  // namespace ee
