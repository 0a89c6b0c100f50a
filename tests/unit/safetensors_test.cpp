// The loader must refuse broken or lying files with a message that names the problem, and never read
// outside the file.
#include "common/model/safetensors.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/model/config.hpp"
#include "common/model/multi_exit_model.hpp"

namespace ee::model {
namespace {

namespace fs = std::filesystem;

class SafeTensorsFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("ee_safetensors_test_" + std::to_string(::getpid()));
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }

  // Writes a file with the given header length field, header text and data bytes.
  fs::path write(uint64_t header_len, const std::string& header, size_t data_bytes) {
    const fs::path p = dir / "t.safetensors";
    std::ofstream out(p, std::ios::binary);
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((header_len >> (8 * i)) & 0xff));
    out << header << std::string(data_bytes, '\x01');
    return p;
  }
  fs::path write(const nlohmann::json& header, size_t data_bytes) {
    const std::string text = header.dump();
    return write(text.size(), text, data_bytes);
  }
  // Expects open() (and then `use`, if given) to throw a ModelError whose message contains `needle`.
  void expect_error(const fs::path& p, const std::string& needle) {
    try {
      auto st = SafeTensors::open(p);
      (void)st->f32("w", {2, 2});
      FAIL() << "no error; expected one mentioning '" << needle << "'";
    } catch (const ModelError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }

  fs::path dir;
};

const nlohmann::json kGood = {{"w", {{"dtype", "F32"}, {"shape", {2, 2}}, {"data_offsets", {0, 16}}}}};

TEST_F(SafeTensorsFile, ReadsAWellFormedFile) {
  auto st = SafeTensors::open(write(kGood, 16));
  const auto w = st->f32("w", {2, 2});
  EXPECT_EQ(w.rows(), 2);
  EXPECT_EQ(w.cols(), 2);
  float expected;
  std::memset(&expected, 1, sizeof expected);
  EXPECT_EQ(w(1, 1), expected);
}

TEST_F(SafeTensorsFile, RejectsMissingTensor) {
  auto st = SafeTensors::open(write(kGood, 16));
  EXPECT_THROW(
      {
        try {
          st->f32("bias", {2});
        } catch (const ModelError& e) {
          EXPECT_NE(std::string(e.what()).find("missing tensor 'bias'"), std::string::npos) << e.what();
          throw;
        }
      },
      ModelError);
}

TEST_F(SafeTensorsFile, RejectsWrongShape) {
  auto st = SafeTensors::open(write(kGood, 16));
  try {
    st->f32("w", {4});
    FAIL();
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("has shape [2, 2], expected [4]"), std::string::npos) << e.what();
  }
}

TEST_F(SafeTensorsFile, RejectsWrongDtype) {
  nlohmann::json h = kGood;
  h["w"]["dtype"] = "I32";
  expect_error(write(h, 16), "has dtype I32, expected F32");
}

TEST_F(SafeTensorsFile, RejectsHeaderLengthBeyondTheFile) {
  expect_error(write(1'000'000, kGood.dump(), 16), "runs past the end");
  expect_error(write(~uint64_t{0}, kGood.dump(), 16), "runs past the end");
}

TEST_F(SafeTensorsFile, RejectsTooShortFile) {
  const fs::path p = dir / "short.safetensors";
  std::ofstream(p) << "abc";
  expect_error(p, "too short");
}

TEST_F(SafeTensorsFile, RejectsOffsetsOutOfRange) {
  nlohmann::json h = kGood;
  h["w"]["data_offsets"] = {0, 16};
  expect_error(write(h, 8), "out of range");
  h["w"]["data_offsets"] = {16, 0};
  expect_error(write(h, 16), "out of range");
}

TEST_F(SafeTensorsFile, RejectsOverlappingTensors) {
  nlohmann::json h = kGood;
  h["v"] = {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {8, 16}}};
  expect_error(write(h, 16), "overlap");
}

TEST_F(SafeTensorsFile, RejectsShapeThatDisagreesWithByteCount) {
  nlohmann::json h = kGood;
  h["w"]["shape"] = {3, 2};
  expect_error(write(h, 16), "needs 24 bytes");
}

TEST_F(SafeTensorsFile, RejectsNonJsonHeader) {
  expect_error(write(9, "{not json", 16), "not valid JSON");
  expect_error(write(2, "[]", 16), "not a JSON object");
}

TEST_F(SafeTensorsFile, RejectsUnknownDtypeAndMalformedEntries) {
  nlohmann::json h = kGood;
  h["w"]["dtype"] = "F128";
  expect_error(write(h, 16), "unknown dtype");
  h = kGood;
  h["w"].erase("shape");
  expect_error(write(h, 16), "malformed entry");
}

TEST_F(SafeTensorsFile, CopiesMisalignedFloatTensorsInsteadOfReadingThemUnaligned) {
  nlohmann::json h = {{"b", {{"dtype", "U8"}, {"shape", {1}}, {"data_offsets", {0, 1}}}},
                      {"w", {{"dtype", "F32"}, {"shape", {2, 2}}, {"data_offsets", {1, 17}}}}};
  std::string text = h.dump();
  text += std::string((8 - text.size() % 8) % 8, ' ');
  auto st = SafeTensors::open(write(text.size(), text, 17));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(st->f32("w", {2, 2}).data()) % alignof(float), 0u);
}

TEST_F(SafeTensorsFile, ModelRejectsExtraTensorsAndNamesThem) {
  // The reference model's weights plus one stray tensor: a checkpoint for a different config.
  const fs::path ref = fs::path(EE_SOURCE_DIR) / "models/fmnist-vit";
  fs::copy_file(ref / "config.json", dir / "config.json");
  auto st = SafeTensors::open(ref / "model.safetensors");
  nlohmann::json h;
  uint64_t offset = 0;
  std::string data;
  for (const auto& [name, t] : st->tensors()) {
    h[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.data.size()}}};
    data.append(reinterpret_cast<const char*>(t.data.data()), t.data.size());
    offset += t.data.size();
  }
  h["vit.encoder.layer.99.output.dense.bias"] = {
      {"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {offset, offset + 4}}};
  data.append(4, '\0');
  const std::string text = h.dump();
  {
    std::ofstream out(dir / "model.safetensors", std::ios::binary);
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((text.size() >> (8 * i)) & 0xff));
    out << text << data;
  }
  try {
    MultiExitModel::load(dir);
    FAIL() << "extra tensor accepted";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("layer.99.output.dense.bias"), std::string::npos) << e.what();
  }
}

TEST_F(SafeTensorsFile, ModelRejectsConfigThatDisagreesWithTheWeights) {
  const fs::path ref = fs::path(EE_SOURCE_DIR) / "models/fmnist-vit";
  fs::copy_file(ref / "model.safetensors", dir / "model.safetensors");
  std::ifstream in(ref / "config.json");
  nlohmann::json config = nlohmann::json::parse(in);
  config["intermediate_size"] = 128;
  std::ofstream(dir / "config.json") << config.dump();
  try {
    MultiExitModel::load(dir);
    FAIL() << "mismatched config accepted";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("intermediate.dense.weight' has shape"), std::string::npos)
        << e.what();
  }
}

TEST(Config, RejectsBadFieldsWithTheirNames) {
  const nlohmann::json good = {
      {"model_type", "vit"},
      {"hidden_size", 64},
      {"num_hidden_layers", 2},
      {"num_attention_heads", 4},
      {"intermediate_size", 256},
      {"layer_norm_eps", 1e-6},
      {"image_size", 28},
      {"patch_size", 7},
      {"num_channels", 1},
      {"image_mean", {0.5}},
      {"image_std", {0.5}},
      {"early_exit", {{"exit_layers", {1, 2}}, {"head", "layernorm"}, {"labels", {"a", "b"}}}}};
  EXPECT_NO_THROW(Config::parse(good));
  auto with = [&](const std::string& key, const nlohmann::json& value) {
    nlohmann::json j = good;
    j[key] = value;
    return j;
  };
  const std::pair<nlohmann::json, std::string> cases[] = {
      {with("model_type", "gpt2"), "model_type 'gpt2'"},
      {with("hidden_size", 65), "not divisible"},
      {with("hidden_size", "big"), "'hidden_size' has the wrong type"},
      {with("image_std", {0.0}), "image_std"},
      {with("hidden_act", "relu"), "hidden_act 'relu'"},
      {with("early_exit", {{"exit_layers", {1}}, {"head", "layernorm"}, {"labels", {"a", "b"}}}),
       "must end with the last layer"},
      {with("early_exit", {{"exit_layers", {2, 1, 2}}, {"head", "layernorm"}, {"labels", {"a", "b"}}}),
       "ascending"},
      {with("early_exit", {{"exit_layers", {1, 2}}, {"head", "mlp"}, {"labels", {"a", "b"}}}), "head 'mlp'"},
  };
  for (const auto& [j, needle] : cases) {
    try {
      Config::parse(j);
      ADD_FAILURE() << "accepted; expected " << needle;
    } catch (const ModelError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
  nlohmann::json missing = good;
  missing.erase("num_attention_heads");
  EXPECT_THROW(Config::parse(missing), ModelError);
}

}  // namespace
}  // namespace ee::model
