// The fast engine (EncoderLayer::forward: OpenBLAS or Eigen GEMM, fused epilogues, copy-free attention, 1
// or 2 threads) against the op-by-op reference layer and against PyTorch, on the Fashion-MNIST ViT and on
// random BERT-shaped models (post-LN, padding masks, head sizes that are not a multiple of the SIMD width).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <utility>
#include <vector>

#include "common/model/encoder_layer.hpp"
#include "common/model/multi_exit_model.hpp"
#include "common/model/ops.hpp"
#include "common/model/safetensors.hpp"
#include "common/model/workspace.hpp"
#include "tests/unit/random_model.hpp"

namespace ee::model {
namespace {

namespace fs = std::filesystem;

fs::path vit_dir() {
  const char* dir = std::getenv("EE_TEST_VIT_DIR");
  return dir ? fs::path(dir) : fs::path(EE_SOURCE_DIR) / "models/fmnist-vit";
}

double relative_error(const Matrix& ours, const Matrix& want) {
  return (ours - want).cwiseAbs().maxCoeff() / std::max(1e-12f, want.cwiseAbs().maxCoeff());
}

// Two threads split a batch of two or more across samples, and with split_samples false inside the layer.
const ExecOptions kSettings[] = {{1, Gemm::packed}, {2, Gemm::packed}, {2, Gemm::packed, false},
                                 {1, Gemm::blas},   {2, Gemm::blas},   {1, Gemm::eigen},
                                 {2, Gemm::eigen}};

std::string name(const ExecOptions& o) {
  const char* gemm[] = {"packed", "OpenBLAS", "Eigen", "bf16"};
  return std::to_string(o.threads) + " thread(s), " + gemm[static_cast<int>(o.gemm)] +
         (o.split_samples ? "" : ", inside the layer");
}

TEST(FastKernels, ErfMatchesStdErf) {
  double worst = 0;
  for (float x = -6.0f; x <= 6.0f; x += 1e-3f)
    worst = std::max(worst, std::abs(double(erf_fast(x)) - std::erf(x)));
  EXPECT_LE(worst, 5e-7);  // a few float ulp of 1
}

TEST(FastKernels, ExpMatchesStdExp) {
  double worst = 0;
  for (float x = -87.0f; x <= 10.0f; x += 1e-3f) {
    worst = std::max(worst, std::abs(double(exp_fast(x)) - std::exp(double(x))) / std::exp(double(x)));
  }
  EXPECT_LE(worst, 3e-7);
}

TEST(FastKernels, SoftmaxMatchesReference) {
  for (Eigen::Index cols : {1, 17, 40, 128}) {
    Matrix start = Matrix::Random(9, cols) * 20.0f;
    start(0, cols - 1) = 60.0f;  // the row's maximum in the scalar tail
    start(1, 0) = 60.0f;         // and in the first packet
    Matrix want = start * 0.25f, got = start;
    softmax_rows(want);
    softmax_scaled(got.data(), cols, got.rows(), cols, 0.25f);
    EXPECT_LE((got - want).cwiseAbs().maxCoeff(), 1e-6) << cols;
  }
}

TEST(FastKernels, GeluColumnsMatchesReference) {
  Matrix y = Matrix::Random(5, 40) * 6.0f;
  Matrix want = y;
  gelu(want);
  want.leftCols(3) = y.leftCols(3);  // columns outside [3, 40) are left alone
  gelu_columns(y.data(), y.cols(), y.rows(), 3, y.cols());
  EXPECT_LE((y - want).cwiseAbs().maxCoeff(), 1e-6);
}

TEST(FastKernels, PackedGemmMatchesEigenOnEveryTail) {
  if (!packed_gemm_supported()) GTEST_SKIP() << "no AVX-512F on this CPU";
  for (Eigen::Index m : {1, 5, 12, 13, 30}) {
    for (Eigen::Index n : {7, 32, 40, 96}) {
      const Eigen::Index k = 37;
      const Matrix a = Matrix::Random(m, k), w = Matrix::Random(n, k), start = Matrix::Random(m, n);
      const Vector bias = Vector::Random(n);
      const PackedWeights p = pack_weights(w.data(), n, k);
      for (bool accumulate : {false, true}) {
        Matrix c = start;
        gemm_packed(m, 0, n, a.data(), k, p.panels(), bias.data(), accumulate, c.data(), n);
        Matrix want = (a * w.transpose()).rowwise() + bias;
        if (accumulate) want += start;
        EXPECT_LE((c - want).cwiseAbs().maxCoeff(), 1e-4) << m << " x " << n << (accumulate ? " +=" : "");
      }
      if (n > kPanel) {  // a column range starting on the second panel leaves the first untouched
        Matrix c = start;
        gemm_packed(m, kPanel, n, a.data(), k, p.panels(), bias.data(), false, c.data(), n);
        EXPECT_EQ(c.leftCols(kPanel), start.leftCols(kPanel));
        const Matrix want = (a * w.bottomRows(n - kPanel).transpose()).rowwise() + bias.tail(n - kPanel);
        EXPECT_LE((c.rightCols(n - kPanel) - want).cwiseAbs().maxCoeff(), 1e-4);
      }
    }
  }
}

// The AMX kernel against the same product in double precision on the bf16-rounded operands: what is left
// is fp32 accumulation only. Shapes cover row counts off the 16-row tile (1, 17, 40), more rows than one
// chunk, k off the 32-value tile (37), column ranges starting or ending on an inner panel, A with a row
// stride wider than k, bias, residual.
float round_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  std::memcpy(&x, &u, 4);
  return x;
}

TEST(FastKernels, Bf16GemmMatchesRoundedOperandsInDouble) {
  if (!bf16_gemm_supported()) GTEST_SKIP() << "no AMX-BF16 on this CPU (or Linux refused it)";
  for (Eigen::Index m : {1, 16, 17, 40, 128, 700}) {  // 700 x 768: two row chunks (672 + 28)
    for (Eigen::Index n : {7, 32, 40, 96}) {
      for (Eigen::Index k : {37, 64, 768}) {
        const Matrix a = Matrix::Random(m, k), w = Matrix::Random(n, k), start = Matrix::Random(m, n);
        const Vector bias = Vector::Random(n);
        const PackedBf16 p = pack_weights_bf16(w.data(), n, k);
        const Eigen::MatrixXd exact =
            a.unaryExpr(&round_bf16).cast<double>() * w.unaryExpr(&round_bf16).cast<double>().transpose();
        for (bool accumulate : {false, true}) {
          Matrix c = start;
          gemm_bf16(m, 0, n, a.data(), k, p, bias.data(), accumulate, c.data(), n);
          Eigen::MatrixXd want = exact.rowwise() + bias.cast<double>();
          if (accumulate) want += start.cast<double>();
          EXPECT_LE((c.cast<double>() - want).cwiseAbs().maxCoeff(), 2e-7 * k)
              << m << " x " << n << " x " << k << (accumulate ? " +=" : "");
        }
        if (n > kPanel) {  // a column range starting on the second panel leaves the first untouched
          Matrix c = start;
          gemm_bf16(m, kPanel, n, a.data(), k, p, nullptr, false, c.data(), n);
          EXPECT_EQ(c.leftCols(kPanel), start.leftCols(kPanel));
          EXPECT_LE(
              (c.rightCols(n - kPanel).cast<double>() - exact.rightCols(n - kPanel)).cwiseAbs().maxCoeff(),
              2e-7 * k);
          // ... and one ending on the first panel leaves the rest untouched; A read with a wider row stride.
          Matrix wide = Matrix::Zero(m, k + 3);
          wide.leftCols(k) = a;
          c = start;
          gemm_bf16(m, 0, kPanel, wide.data(), k + 3, p, nullptr, false, c.data(), n);
          EXPECT_EQ(c.rightCols(n - kPanel), start.rightCols(n - kPanel));
          EXPECT_LE((c.leftCols(kPanel).cast<double>() - exact.leftCols(kPanel)).cwiseAbs().maxCoeff(),
                    2e-7 * k);
        }
      }
    }
  }
}

// The attention's two products on the packed kernel, as attention_heads runs them: Q K^T with the keys
// packed per call (pack_rows) and P V with the values packed per call (pack_columns), both read from a
// strided QKV-like buffer, no bias; key counts and head sizes off the panel width included.
TEST(FastKernels, PackedAttentionProductsMatchEigen) {
  if (!packed_gemm_supported()) GTEST_SKIP() << "no AVX-512F on this CPU";
  for (Eigen::Index keys : {1, 17, 32, 33, 128}) {
    for (Eigen::Index d : {16, 24, 32, 40}) {
      const Eigen::Index t = keys + 3, ld = 3 * d + 5;  // queries past the keys, as padding rows
      const Matrix qkv = Matrix::Random(t, ld);
      const auto q = qkv.leftCols(d), k = qkv.block(0, d, keys, d), v = qkv.block(0, 2 * d, keys, d);
      // Exactly the size the packers are documented to need, so an over-read shows under ASan.
      std::vector<float> packed_k(static_cast<size_t>(packed_size(keys, d)), -7.0f);
      std::vector<float> packed_v(static_cast<size_t>(packed_size(d, keys)), -7.0f);
      Matrix scores(t, keys);
      gemm_packed(t, 0, keys, qkv.data(), ld, pack_rows(qkv.data() + d, keys, d, ld, packed_k.data()),
                  nullptr, false, scores.data(), keys);
      EXPECT_LE((scores - q * k.transpose()).cwiseAbs().maxCoeff(), 1e-4) << keys << " keys, head " << d;
      Matrix out = Matrix::Zero(t, d + 3);  // columns past d belong to the next head: left alone
      gemm_packed(t, 0, d, scores.data(), keys,
                  pack_columns(qkv.data() + 2 * d, keys, d, ld, packed_v.data()), nullptr, false, out.data(),
                  d + 3);
      EXPECT_LE((out.leftCols(d) - scores * v).cwiseAbs().maxCoeff(), 1e-3) << keys << " keys, head " << d;
      EXPECT_TRUE(out.rightCols(3).isZero());
    }
  }
}

// Every setting of the fast layer against forward_reference, on real images at batch 1 (one thread by the
// size rule) and 32 (split across threads).
TEST(FastLayer, MatchesReferenceOnTheVit) {
  const auto model = MultiExitModel::load(vit_dir());
  const auto weights = SafeTensors::open(vit_dir() / "model.safetensors");
  const auto golden = SafeTensors::open(vit_dir() / "golden.safetensors");
  std::vector<uint8_t> pixels = golden->copy<uint8_t>("input.pixels", "U8");
  const size_t per_image = pixels.size() / static_cast<size_t>(golden->at("input.pixels").shape[0]);
  while (pixels.size() < 32 * per_image)
    pixels.insert(pixels.end(), pixels.begin(), pixels.begin() + per_image);
  pixels.resize(32 * per_image);
  WeightLoader loader(*weights);
  for (int index = 0; index < model->num_layers(); ++index) {
    const EncoderLayer layer(model->config(), loader, index);
    for (int batch : {1, 32}) {
      const Hidden input = model->embed_images(std::span(pixels).first(batch * per_image), batch);
      Hidden want = input;
      Workspace ref_ws;
      layer.forward_reference(want, ref_ws);
      for (const ExecOptions& o : kSettings) {
        Hidden got = input;
        Workspace ws(o);
        layer.forward(got, ws);
        EXPECT_LE(relative_error(got.x, want.x), 1e-5)
            << "layer " << index << ", batch " << batch << ", " << name(o);
      }
    }
  }
}

// An edge and a cloud with different thread counts agree bit for bit, with either kernel: at batch 1 (one
// thread by the size rule), and at 32 both across samples and inside the layer.
TEST(FastLayer, OneAndTwoThreadsGiveIdenticalHiddenStates) {
  const auto model = MultiExitModel::load(vit_dir());
  const auto golden = SafeTensors::open(vit_dir() / "golden.safetensors");
  std::vector<uint8_t> pixels = golden->copy<uint8_t>("input.pixels", "U8");
  const size_t per_image = pixels.size() / static_cast<size_t>(golden->at("input.pixels").shape[0]);
  while (pixels.size() < 32 * per_image)
    pixels.insert(pixels.end(), pixels.begin(), pixels.begin() + per_image);
  std::vector<Gemm> kernels = {Gemm::packed};
  if (bf16_gemm_supported()) kernels.push_back(Gemm::bf16);
  for (Gemm g : kernels) {
    for (int batch : {1, 32}) {
      const Hidden input = model->embed_images(std::span(pixels).first(batch * per_image), batch);
      Hidden one = input;
      Workspace ws1(ExecOptions{1, g});
      model->run_layers(one, model->num_layers(), ws1);
      for (bool split_samples : {true, false}) {
        Hidden two = input;
        Workspace ws2(ExecOptions{2, g, split_samples});
        model->run_layers(two, model->num_layers(), ws2);
        EXPECT_EQ(one.x, two.x) << name(ExecOptions{2, g, split_samples}) << ", batch " << batch;
      }
    }
  }
}

// A random post-LN BERT against PyTorch (models/train/random_model.py), every layer and exit, in every
// setting. Shapes chosen so two threads split the layer, and (second case) the hidden size and head size
// are not multiples of 16.
void check_random_bert(const fs::path& dir) {
  if (dir.empty()) GTEST_SKIP() << ee::testing::kNoTorch;
  const auto model = MultiExitModel::load(dir);
  const auto golden = SafeTensors::open(dir / "golden.safetensors");
  TokenBatch batch;
  const auto& shape = golden->at("input.input_ids").shape;
  batch.tokens = static_cast<int>(shape[1]);
  batch.input_ids = golden->copy<int32_t>("input.input_ids", "I32");
  batch.token_type_ids = golden->copy<int32_t>("input.token_type_ids", "I32");
  for (int32_t len : golden->copy<int32_t>("input.lengths", "I32")) batch.lengths.push_back(len);
  auto hidden = [&](int depth) {
    const auto& t = golden->at("hidden." + std::to_string(depth));
    return Matrix(golden->f32("hidden." + std::to_string(depth), t.shape)
                      .reshaped<Eigen::RowMajor>(t.shape[0] * t.shape[1], t.shape[2]));
  };
  // fp32 settings to 1e-4; bf16 (8 significant bits in the weight products' operands) to 1e-2.
  std::vector<std::pair<ExecOptions, double>> settings;
  for (const ExecOptions& o : kSettings) settings.emplace_back(o, 1e-4);
  if (bf16_gemm_supported()) {
    for (int threads : {1, 2}) settings.emplace_back(ExecOptions{threads, Gemm::bf16}, 1e-2);
  }
  for (const auto& [o, tolerance] : settings) {
    Workspace ws(o);
    Hidden h = model->embed_tokens(batch);
    for (int layer = 1; layer <= model->num_layers(); ++layer) {
      model->run_layers(h, layer, ws);
      EXPECT_LE(relative_error(h.x, hidden(layer)), tolerance)
          << dir << ": layer " << layer << ", " << name(o);
      const auto& t = golden->at("logits." + std::to_string(layer));
      EXPECT_LE(relative_error(model->exit_logits(h, layer, ws),
                               golden->f32("logits." + std::to_string(layer), t.shape)),
                tolerance)
          << dir << ": exit " << layer << ", " << name(o);
    }
  }
}

TEST(RandomBert, EveryLayerAndExitMatchesPyTorch) {
  check_random_bert(ee::testing::random_bert(128, 4, 512, 2, 48, 100));
}

// Weights over 1 MB after the attention: two threads inside the layer split them by columns, phase by phase
// (smaller models split their rows instead).
TEST(RandomBert, WideLayersSplitByColumnsMatchPyTorch) {
  check_random_bert(ee::testing::random_bert(384, 6, 1536, 1, 32, 50));
}

TEST(RandomBert, OddSizesMatchPyTorch) {
  check_random_bert(ee::testing::random_bert(72, 3, 200, 1, 64, 50));
}

}  // namespace
}  // namespace ee::model
