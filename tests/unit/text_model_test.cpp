// The text models (models/spam-bert, models/spam3-bert) in the C++ runtime against PyTorch: golden vectors
// exported by models/train/export.py hold a few test mails (their UTF-8 text and PyTorch's token ids), the
// hidden state after the embeddings and after every layer, and every exit's logits. Also: the committed
// 200-mail sample gives PyTorch's predictions, and a model directory with a broken vocabulary or config is
// refused.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "common/model/multi_exit_model.hpp"
#include "common/model/safetensors.hpp"
#include "common/model/workspace.hpp"
#include "common/text/bert_tokenizer.hpp"

namespace ee {
namespace {

namespace fs = std::filesystem;
using model::Matrix;

fs::path model_dir() {
  return fs::path(EE_SOURCE_DIR) / "models/spam-bert";
}

// Every shipped text model; EE_TEST_BERT_DIR names another one, to check a freshly trained model before
// commit.
std::vector<std::string> golden_dirs() {
  if (const char* dir = std::getenv("EE_TEST_BERT_DIR")) return {dir};
  return {std::string(EE_SOURCE_DIR) + "/models/spam-bert",
          std::string(EE_SOURCE_DIR) + "/models/spam3-bert"};
}

// max |a - b| / max |b| over the rows that hold real tokens (padding rows are unspecified on both sides).
double relative_error(const Matrix& ours, const Matrix& torch) {
  return (ours - torch).cwiseAbs().maxCoeff() / std::max(1e-12f, torch.cwiseAbs().maxCoeff());
}

// The JSON header's __metadata__ of a safetensors file (the C++ reader does not expose it).
nlohmann::json safetensors_metadata(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  return nlohmann::json::parse(header).value("__metadata__", nlohmann::json::object());
}

class BertGolden : public ::testing::TestWithParam<std::string> {
 protected:
  fs::path model_dir() const { return GetParam(); }
  void SetUp() override {
    model = model::MultiExitModel::load(model_dir());
    golden = model::SafeTensors::open(model_dir() / "golden.safetensors");
    const auto& shape = golden->at("input.input_ids").shape;
    batch.tokens = static_cast<int>(shape[1]);
    batch.input_ids = golden->copy<int32_t>("input.input_ids", "I32");
    batch.token_type_ids = golden->copy<int32_t>("input.token_type_ids", "I32");
    const auto lengths = golden->copy<int32_t>("input.lengths", "I32");
    batch.lengths.assign(lengths.begin(), lengths.end());
  }
  // Rows of real tokens only, stacked: (sum of lengths) x hidden.
  Matrix real_rows(const Matrix& x) const {
    Matrix out(std::accumulate(batch.lengths.begin(), batch.lengths.end(), 0), x.cols());
    int r = 0;
    for (int b = 0; b < batch.batch(); ++b) {
      out.middleRows(r, batch.lengths[b]) =
          x.middleRows(static_cast<Eigen::Index>(b) * batch.tokens, batch.lengths[b]);
      r += batch.lengths[b];
    }
    return out;
  }
  Matrix golden_hidden(int depth) const {
    const std::string name = "hidden." + std::to_string(depth);
    const auto& t = golden->at(name);
    return real_rows(
        golden->f32(name, t.shape).reshaped<Eigen::RowMajor>(t.shape[0] * t.shape[1], t.shape[2]));
  }
  Matrix golden_logits(int layer) const {
    const std::string name = "logits." + std::to_string(layer);
    return golden->f32(name, golden->at(name).shape);
  }

  std::shared_ptr<const model::MultiExitModel> model;
  std::shared_ptr<const model::SafeTensors> golden;
  model::TokenBatch batch;
  model::Workspace ws;
};

TEST_P(BertGolden, EveryLayerAndExitMatchesPyTorch) {
  ASSERT_GE(batch.batch(), 4);
  ASSERT_LT(*std::min_element(batch.lengths.begin(), batch.lengths.end()), batch.tokens)
      << "no padding exercised";
  model::Hidden h = model->embed_tokens(batch);
  EXPECT_LE(relative_error(real_rows(h.x), golden_hidden(0)), 1e-4) << "embeddings";
  for (int layer = 1; layer <= model->num_layers(); ++layer) {
    model->run_layers(h, layer, ws);
    EXPECT_LE(relative_error(real_rows(h.x), golden_hidden(layer)), 1e-4)
        << "hidden state after layer " << layer;
    if (model->has_exit(layer)) {
      EXPECT_LE(relative_error(model->exit_logits(h, layer, ws), golden_logits(layer)), 1e-4)
          << "exit " << layer;
    }
  }
}

TEST_P(BertGolden, TokenizerGivesPyTorchsIds) {
  const auto tokenizer = text::BertTokenizer::for_model(model_dir(), model->config());
  std::vector<std::string> texts;
  for (int b = 0; b < batch.batch(); ++b) {
    const auto bytes = golden->copy<uint8_t>("input.text." + std::to_string(b), "U8");
    texts.emplace_back(bytes.begin(), bytes.end());
  }
  const model::TokenBatch ours = tokenizer.encode_batch(texts);
  EXPECT_EQ(ours.tokens, batch.tokens);
  EXPECT_EQ(ours.lengths, batch.lengths);
  EXPECT_EQ(ours.input_ids, batch.input_ids);
  EXPECT_EQ(ours.token_type_ids, batch.token_type_ids);
}

TEST_P(BertGolden, PaddingDoesNotChangeAnAnswer) {
  model::Hidden all = model->embed_tokens(batch);
  model->run_layers(all, model->num_layers(), ws);
  const Matrix logits = model->exit_logits(all, model->num_layers(), ws);
  for (int b = 0; b < batch.batch(); ++b) {
    model::TokenBatch one;
    one.tokens = batch.lengths[b];
    const auto first = batch.input_ids.begin() + static_cast<std::ptrdiff_t>(b) * batch.tokens;
    one.input_ids.assign(first, first + one.tokens);
    one.token_type_ids.assign(static_cast<size_t>(one.tokens), 0);
    one.lengths = {one.tokens};
    model::Hidden h = model->embed_tokens(one);
    model->run_layers(h, model->num_layers(), ws);
    EXPECT_LE((model->exit_logits(h, model->num_layers(), ws) - logits.row(b)).cwiseAbs().maxCoeff(), 1e-5)
        << "sample " << b;
  }
}

// The committed sample (200 test mails) through tokenizer and model: every exit's prediction and
// probability must be PyTorch's (test_predictions.safetensors covers the whole test split).
TEST_P(BertGolden, SamplePredictionsMatchPyTorch) {
  const auto tokenizer = text::BertTokenizer::for_model(model_dir(), model->config());
  const auto preds_path = model_dir() / "test_predictions.safetensors";
  const auto preds = model::SafeTensors::open(preds_path);
  const auto ids = nlohmann::json::parse(safetensors_metadata(preds_path).at("ids").get<std::string>());
  std::map<std::string, int> row_of;
  for (size_t i = 0; i < ids.size(); ++i) row_of[ids[i].get<std::string>()] = static_cast<int>(i);
  const auto& pshape = preds->at("probabilities").shape;  // [mails, exits, labels]
  const auto probs = preds->copy<float>("probabilities", "F32");

  std::ifstream in(model_dir() / "sample/test_sample.jsonl");
  ASSERT_TRUE(in);
  std::vector<std::string> texts;
  std::vector<int> rows;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    texts.push_back(j.at("text").get<std::string>());
    ASSERT_TRUE(row_of.count(j.at("id").get<std::string>())) << j.at("id");
    rows.push_back(row_of[j.at("id").get<std::string>()]);
  }
  ASSERT_GE(texts.size(), 100u);
  const auto& exit_layers = model->config().early_exit.exit_layers;
  int checked = 0;
  for (size_t first = 0; first < texts.size(); first += 32) {
    const size_t n = std::min<size_t>(32, texts.size() - first);
    model::Hidden h = model->embed_tokens(tokenizer.encode_batch(std::span(texts).subspan(first, n)));
    for (size_t k = 0; k < exit_layers.size(); ++k) {
      model->run_layers(h, exit_layers[k], ws);
      const Matrix logits = model->exit_logits(h, exit_layers[k], ws);
      for (size_t s = 0; s < n; ++s) {
        const Eigen::RowVectorXf p =
            (logits.row(static_cast<Eigen::Index>(s)).array() - logits.row(s).maxCoeff()).exp();
        const size_t base = (static_cast<size_t>(rows[first + s]) * pshape[1] + k) * pshape[2];
        for (Eigen::Index c = 0; c < p.size(); ++c) {
          EXPECT_NEAR(p[c] / p.sum(), probs[base + c], 1e-4)
              << "mail " << first + s << " exit " << exit_layers[k];
        }
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, static_cast<int>(texts.size() * exit_layers.size()));
}

INSTANTIATE_TEST_SUITE_P(Models, BertGolden, ::testing::ValuesIn(golden_dirs()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = fs::path(info.param).filename().string();
                           std::replace_if(
                               name.begin(), name.end(), [](char c) { return !std::isalnum(c); }, '_');
                           return name;
                         });

// --- a broken model directory is refused with a message naming what is wrong -----------------------------

class BrokenModelDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("ee_text_model_test_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    for (const char* f : {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"})
      fs::copy_file(model_dir() / f, dir / f, fs::copy_options::overwrite_existing);
  }
  void TearDown() override { fs::remove_all(dir); }
  void rewrite(const char* file, const std::function<std::string(std::string)>& edit) {
    std::ifstream in(dir / file);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(dir / file, std::ios::trunc) << edit(text);
  }
  std::string tokenizer_error() {
    try {
      text::BertTokenizer::for_model(dir, model::Config::load(dir / "config.json"));
    } catch (const text::TokenizerError& e) {
      return e.what();
    }
    return "";
  }
  std::string model_error() {
    try {
      model::MultiExitModel::load(dir);
    } catch (const model::ModelError& e) {
      return e.what();
    }
    return "";
  }
  fs::path dir;
};

TEST_F(BrokenModelDir, IntactCopyLoads) {
  EXPECT_EQ(model_error(), "");
  EXPECT_EQ(tokenizer_error(), "");
}

TEST_F(BrokenModelDir, DuplicateVocabEntryNamesTheLine) {
  rewrite("vocab.txt", [](std::string v) {  // line 11 becomes a copy of line 10
    std::vector<std::string> lines;
    for (size_t p = 0, q; (q = v.find('\n', p)) != std::string::npos; p = q + 1)
      lines.push_back(v.substr(p, q - p));
    lines[10] = lines[9];
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
  });
  EXPECT_NE(tokenizer_error().find("vocab.txt:11: duplicate token"), std::string::npos) << tokenizer_error();
}

TEST_F(BrokenModelDir, MissingSpecialTokenIsNamed) {
  rewrite("vocab.txt", [](std::string v) { return v.replace(v.find("[SEP]"), 5, "[SEQ]"); });
  EXPECT_NE(tokenizer_error().find("no [SEP] token"), std::string::npos) << tokenizer_error();
}

TEST_F(BrokenModelDir, VocabularyOfAnotherSizeIsRefused) {
  rewrite("vocab.txt", [](std::string v) { return v + "qqzz-not-a-token\n"; });
  EXPECT_NE(tokenizer_error().find("tokens but config.json says vocab_size"), std::string::npos)
      << tokenizer_error();
}

TEST_F(BrokenModelDir, NegativeModelMaxLengthIsRefused) {
  rewrite("tokenizer_config.json", [](std::string c) {
    auto j = nlohmann::json::parse(c);
    j["model_max_length"] = -1e30;  // out of int range: casting it would be undefined
    return j.dump();
  });
  EXPECT_NE(tokenizer_error().find("tokenizer_config.json: model_max_length -1e+30 is negative"),
            std::string::npos)
      << tokenizer_error();
}

TEST_F(BrokenModelDir, ConfigWithWrongVocabSizeNamesTheTensor) {
  rewrite("config.json", [](std::string c) {
    auto j = nlohmann::json::parse(c);
    j["vocab_size"] = j["vocab_size"].get<int>() + 1;
    return j.dump();
  });
  EXPECT_NE(model_error().find("bert.embeddings.word_embeddings.weight"), std::string::npos) << model_error();
}

TEST_F(BrokenModelDir, ConfigWithoutPositionsIsRefused) {
  rewrite("config.json", [](std::string c) {
    auto j = nlohmann::json::parse(c);
    j.erase("max_position_embeddings");
    return j.dump();
  });
  EXPECT_NE(model_error().find("max_position_embeddings"), std::string::npos) << model_error();
}

}  // namespace
}  // namespace ee
