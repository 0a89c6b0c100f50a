// The loader must refuse broken or lying files with a message that names the problem, and never read
// outside the file.
#include "common/model/safetensors.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
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

TEST_F(SafeTensorsFile, RejectsShapeWhoseElementCountOverflows) {
  // Every dimension is under the per-dimension cap, but 4 * 2147549185 * 2147418113 = 2^64 + 4: wrapped, it
  // would be a 4-element F32 tensor matching the 16 data bytes.
  nlohmann::json h = kGood;
  h["w"]["shape"] = {4, 2147549185ll, 2147418113ll};
  expect_error(write(h, 16), "tensor 'w': shape [4, 2147549185, 2147418113] of F32 has more bytes than");
}

TEST_F(SafeTensorsFile, RejectsFractionalOrNegativeSizes) {
  nlohmann::json h = kGood;
  h["w"]["shape"] = {2.5, 2};  // would be read as [2, 2]
  expect_error(write(h, 16), "tensor 'w': shape [2.5,2] is not a list of integers");
  h = kGood;
  h["w"]["data_offsets"] = {0, 16.5};
  expect_error(write(h, 16), "tensor 'w': data_offsets [0,16.5] are not non-negative integers");
  h["w"]["data_offsets"] = {-16, 16};
  expect_error(write(h, 32), "data_offsets [-16,16] are not non-negative integers");
}

TEST_F(SafeTensorsFile, AcceptsStringMetadataAndRejectsAnyOther) {
  nlohmann::json h = kGood;
  h["__metadata__"] = {{"format", "pt"}, {"note", ""}};
  EXPECT_EQ(SafeTensors::open(write(h, 16))->tensors().size(), 1u);
  h["__metadata__"] = {{"format", "pt"}, {"epoch", 3}};
  expect_error(write(h, 16), "__metadata__ 'epoch' must be a string, got number");
  h["__metadata__"] = "pt";
  expect_error(write(h, 16), "__metadata__ must be an object of strings, got string");
  h["__metadata__"] = nlohmann::json::array({"pt"});
  expect_error(write(h, 16), "__metadata__ must be an object of strings, got array");
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

TEST_F(SafeTensorsFile, ModelRejectsNonFiniteWeightsAndNamesTheTensor) {
  // The reference model with one weight overwritten: a NaN or Inf must fail the load, not a later logit.
  const fs::path ref = fs::path(EE_SOURCE_DIR) / "models/fmnist-vit";
  fs::copy_file(ref / "config.json", dir / "config.json");
  const std::string name = "vit.encoder.layer.2.output.dense.weight";
  const auto st = SafeTensors::open(ref / "model.safetensors");
  const auto offset = st->at(name).data.data() - st->bytes().data();
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
    std::string bytes(reinterpret_cast<const char*>(st->bytes().data()), st->bytes().size());
    std::memcpy(bytes.data() + offset + 5 * sizeof(float), &bad, sizeof bad);
    std::ofstream(dir / "model.safetensors", std::ios::binary | std::ios::trunc) << bytes;
    try {
      MultiExitModel::load(dir);
      ADD_FAILURE() << bad << " weight accepted";
    } catch (const ModelError& e) {
      EXPECT_NE(
          std::string(e.what()).find("tensor '" + name + "' holds " + std::to_string(bad) + " at element 5"),
          std::string::npos)
          << e.what();
    }
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
      {with("hidden_act", 5), "'hidden_act' has the wrong type"},
      {with("early_exit", {{"exit_layers", {1}}, {"head", "layernorm"}, {"labels", {"a", "b"}}}),
       "must end with the last layer"},
      {with("early_exit", {{"exit_layers", {2, 1, 2}}, {"head", "layernorm"}, {"labels", {"a", "b"}}}),
       "ascending"},
      {with("early_exit", {{"exit_layers", {1, 2}}, {"head", "mlp"}, {"labels", {"a", "b"}}}), "head 'mlp'"},
      // Values that a plain get<int>() / get<float>() would silently change.
      {with("hidden_size", 4294967360ull), "'hidden_size' is out of range: expected an int, got 4294967360"},
      {with("num_channels", 1.5), "'num_channels' has the wrong type: expected an int, got 1.5"},
      {with("layer_norm_eps", 1e300), "'layer_norm_eps' is out of range"},
      {with("image_mean", {1e300}), "'image_mean[0]' is out of range"},
      {with("early_exit",
            {{"exit_layers", {1, 4294967298ull}}, {"head", "layernorm"}, {"labels", {"a", "b"}}}),
       "'exit_layers[1]' is out of range"},
      // (2^30 / 1)^2 + 1 tokens overflows the int the runtime counts tokens in.
      {[&] {
         nlohmann::json j = with("image_size", 1 << 30);
         j["patch_size"] = 1;
         return j;
       }(),
       "more patches or pixels than an int holds"},
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

TEST(Config, ParsesTextAndNamesTheSource) {
  const std::string text = R"({"model_type": "vit", "hidden_size": 64, "num_hidden_layers": 1,
      "num_attention_heads": 4, "intermediate_size": 256, "layer_norm_eps": 1e-6, "image_size": 28,
      "patch_size": 7, "num_channels": 1, "image_mean": [0.5], "image_std": [0.5],
      "early_exit": {"exit_layers": [1], "head": "layernorm", "labels": ["a", "b"]}})";
  const Config c = Config::parse(text, "m/config.json");
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.max_tokens(), 17);
  auto error = [](std::string_view t) {
    try {
      Config::parse(t, "m/config.json");
    } catch (const ModelError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(error("{not json").rfind("m/config.json: not valid JSON", 0), 0u) << error("{not json");
  EXPECT_EQ(error("[]"), "m/config.json: config.json: top level is not a JSON object");
}

}  // namespace
}  // namespace ee::model
