// The C++ runtime against PyTorch: golden vectors exported by models/train/export_vit.py hold a few test
// inputs with PyTorch's hidden state after the embeddings and after every layer, and every exit's logits.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/model/multi_exit_model.hpp"
#include "common/model/ops.hpp"
#include "common/model/safetensors.hpp"
#include "common/model/workspace.hpp"

namespace ee::model {
namespace {

std::filesystem::path model_dir() {
  const char* dir = std::getenv("EE_TEST_VIT_DIR");  // lets a freshly trained model be checked before commit
  return dir ? std::filesystem::path(dir) : std::filesystem::path(EE_SOURCE_DIR) / "models/fmnist-vit";
}

// max |a - b| / max |b|: elementwise relative error is meaningless where PyTorch's value is ~0.
double relative_error(const Matrix& ours, const Matrix& torch) {
  return (ours - torch).cwiseAbs().maxCoeff() / std::max(1e-12f, torch.cwiseAbs().maxCoeff());
}

class VitGolden : public ::testing::Test {
 protected:
  void SetUp() override {
    model = MultiExitModel::load(model_dir());
    golden = SafeTensors::open(model_dir() / "golden.safetensors");
    pixels = golden->copy<uint8_t>("input.pixels", "U8");
    batch = static_cast<int>(golden->at("input.pixels").shape[0]);
  }
  Matrix golden_hidden(int depth) const {
    const auto& t = golden->at("hidden." + std::to_string(depth));
    return golden->f32("hidden." + std::to_string(depth), t.shape)
        .reshaped<Eigen::RowMajor>(t.shape[0] * t.shape[1], t.shape[2]);
  }
  Matrix golden_logits(int layer) const {
    const auto& t = golden->at("logits." + std::to_string(layer));
    return golden->f32("logits." + std::to_string(layer), t.shape);
  }

  std::shared_ptr<const MultiExitModel> model;
  std::shared_ptr<const SafeTensors> golden;
  std::vector<uint8_t> pixels;
  int batch = 0;
  Workspace ws;
};

TEST_F(VitGolden, EveryLayerAndExitMatchesPyTorch) {
  ASSERT_GE(batch, 2);
  Hidden h = model->embed_images(pixels, batch);
  EXPECT_LE(relative_error(h.x, golden_hidden(0)), 1e-4) << "embeddings";
  for (int layer = 1; layer <= model->num_layers(); ++layer) {
    model->run_layers(h, layer, ws);
    EXPECT_LE(relative_error(h.x, golden_hidden(layer)), 1e-4) << "hidden state after layer " << layer;
    EXPECT_LE(relative_error(model->exit_logits(h, layer, ws), golden_logits(layer)), 1e-4)
        << "exit " << layer;
  }
}

// Reduced precision (Gemm::bf16: the weight products' operands rounded to bfloat16, 8 significant bits)
// against PyTorch's fp32: close to it at every layer (0.2-0.5 % here), and the same answer from every exit
// for every sample; and measurably not fp32 (a silent fallback to fp32 would pass the rest).
TEST_F(VitGolden, Bf16StaysCloseToPyTorchAndGivesItsAnswers) {
  if (!bf16_gemm_supported()) GTEST_SKIP() << "no AMX-BF16 on this CPU (or Linux refused it)";
  Workspace bf16(ExecOptions{1, Gemm::bf16});
  Hidden h = model->embed_images(pixels, batch), fp32 = h;
  for (int layer = 1; layer <= model->num_layers(); ++layer) {
    model->run_layers(h, layer, bf16);
    model->run_layers(fp32, layer, ws);
    EXPECT_GE(relative_error(h.x, fp32.x), 1e-4) << "bf16 ran as fp32 at layer " << layer;
    const Matrix logits = model->exit_logits(h, layer, bf16), want = golden_logits(layer);
    EXPECT_LE(relative_error(h.x, golden_hidden(layer)), 1e-2) << "hidden state after layer " << layer;
    EXPECT_LE(relative_error(logits, want), 1e-2) << "exit " << layer;
    for (int i = 0; i < batch; ++i) {
      Eigen::Index ours = 0, torch = 0;
      logits.row(i).maxCoeff(&ours);
      want.row(i).maxCoeff(&torch);
      EXPECT_EQ(ours, torch) << "sample " << i << ", exit " << layer;
    }
  }
}

TEST_F(VitGolden, SplitAtAnyLayerGivesTheSameAnswerAsOneRun) {
  Hidden whole = model->embed_images(pixels, batch);
  model->run_layers(whole, model->num_layers(), ws);
  for (int split = 0; split <= model->num_layers(); ++split) {
    Hidden edge = model->embed_images(pixels, batch);
    model->run_layers(edge, split, ws);
    Hidden cloud = edge;  // what crosses the wire
    Workspace cloud_ws;
    model->run_layers(cloud, model->num_layers(), cloud_ws);
    EXPECT_EQ(cloud.x, whole.x) << "split " << split;
  }
}

TEST_F(VitGolden, BatchOfManyEqualsOneAtATime) {
  Hidden all = model->embed_images(pixels, batch);
  model->run_layers(all, model->num_layers(), ws);
  const Matrix logits = model->exit_logits(all, model->num_layers(), ws);
  const size_t per_image = pixels.size() / batch;
  for (int b = 0; b < batch; ++b) {
    Hidden one = model->embed_images(std::span(pixels).subspan(b * per_image, per_image), 1);
    model->run_layers(one, model->num_layers(), ws);
    EXPECT_LE((one.x - all.sample(b)).cwiseAbs().maxCoeff(), 1e-5) << "sample " << b;
    EXPECT_LE((model->exit_logits(one, model->num_layers(), ws) - logits.row(b)).cwiseAbs().maxCoeff(), 1e-5);
  }
}

TEST_F(VitGolden, RejectsImpossibleRequests) {
  Hidden h = model->embed_images(pixels, batch);
  EXPECT_THROW(model->run_layers(h, model->num_layers() + 1, ws), ModelError);
  EXPECT_THROW(model->exit_logits(h, 1, ws), ModelError);  // depth 0, exit 1 needs depth 1
  model->run_layers(h, 2, ws);
  EXPECT_THROW(model->run_layers(h, 1, ws), ModelError);  // layers never run backwards
  EXPECT_THROW(model->embed_images(std::span(pixels).first(100), 1), ModelError);
  EXPECT_THROW(model->embed_tokens(TokenBatch{}), ModelError);  // an image model takes no text
}

// SHA-256 of config.json followed by model.safetensors, as `cat config.json model.safetensors | sha256sum`
// gives it for the committed reference model.
constexpr const char* kReferenceHash = "605ef44e28297914c093a60b1ac1f7bab2ecbf32a54749aaf2a5e2b71c0b9464";

TEST_F(VitGolden, HashIsStableAndNamesTheContent) {
  if (std::getenv("EE_TEST_VIT_DIR") == nullptr) {
    EXPECT_EQ(model->hash(), kReferenceHash);
  }
  namespace fs = std::filesystem;
  const fs::path copy = fs::temp_directory_path() / ("ee_model_hash_test_" + std::to_string(::getpid()));
  fs::create_directories(copy);
  for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(model_dir() / f, copy / f);
  EXPECT_EQ(MultiExitModel::load(copy)->hash(), model->hash()) << "the hash names the content, not the path";

  // One bit of one weight (the lowest mantissa bit of the first value, which stays finite).
  std::string bytes;
  {
    const auto st = SafeTensors::open(copy / "model.safetensors");  // unmapped before the file is rewritten
    const auto& tensors = st->tensors();
    const auto first = std::min_element(tensors.begin(), tensors.end(), [](const auto& a, const auto& b) {
      return a.second.data.data() < b.second.data.data();
    });
    ASSERT_EQ(first->second.dtype, "F32");
    bytes.assign(reinterpret_cast<const char*>(st->bytes().data()), st->bytes().size());
    bytes[first->second.data.data() - st->bytes().data()] ^= 1;
  }
  std::ofstream(copy / "model.safetensors", std::ios::binary | std::ios::trunc) << bytes;
  const std::string weights_changed = MultiExitModel::load(copy)->hash();
  EXPECT_NE(weights_changed, model->hash());

  // A config that parses to the same values but is not the same bytes.
  std::ofstream(copy / "config.json", std::ios::app) << "\n";
  const std::string config_changed = MultiExitModel::load(copy)->hash();
  EXPECT_NE(config_changed, weights_changed);
  EXPECT_EQ(config_changed.size(), 64u);
  fs::remove_all(copy);
}

}  // namespace
}  // namespace ee::model
