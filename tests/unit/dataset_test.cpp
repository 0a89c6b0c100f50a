// IDX reading on the committed Fashion-MNIST sample, refusal of files that lie about their contents, and the
// distortions that make a shifted stream (ee-eval --distort).
#include "sim/dataset.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "common/model/multi_exit_model.hpp"
#include "common/sched/trace.hpp"
#include "sim/evaluation.hpp"

namespace ee::sim {
namespace {

namespace fs = std::filesystem;
const fs::path kSample = fs::path(EE_SOURCE_DIR) / "models/fmnist-vit/sample";

TEST(Idx, ReadsTheCommittedGzippedSample) {
  const ImageDataset ds =
      load_idx(kSample / "t1k-images-idx3-ubyte.gz", kSample / "t1k-labels-idx1-ubyte.gz");
  EXPECT_EQ(ds.count, 1000);
  EXPECT_EQ(ds.rows, 28);
  EXPECT_EQ(ds.cols, 28);
  EXPECT_EQ(ds.pixels.size(), 1000u * 28 * 28);
  ASSERT_EQ(ds.labels.size(), 1000u);
  // The first Fashion-MNIST test images are an ankle boot (9), a pullover (2) and a trouser (1).
  EXPECT_EQ(ds.labels[0], 9);
  EXPECT_EQ(ds.labels[1], 2);
  EXPECT_EQ(ds.labels[2], 1);
  for (int label : ds.labels) EXPECT_TRUE(label >= 0 && label <= 9);
}

class BadIdx : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("ee_idx_test_" + std::to_string(::getpid()));
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  fs::path file(const std::string& name, const std::string& bytes) {
    std::ofstream(dir / name, std::ios::binary) << bytes;
    return dir / name;
  }
  static std::string header(int dims, std::initializer_list<uint32_t> sizes) {
    std::string h = {0, 0, 8, static_cast<char>(dims)};
    for (uint32_t s : sizes) {
      for (int i = 3; i >= 0; --i) h += static_cast<char>((s >> (8 * i)) & 0xff);
    }
    return h;
  }
  void expect_error(const fs::path& images, const fs::path& labels, const std::string& needle) {
    try {
      load_idx(images, labels);
      FAIL() << "accepted; expected an error mentioning " << needle;
    } catch (const DatasetError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
  fs::path dir;
};

TEST_F(BadIdx, RejectsMissingFilesWrongMagicTruncationAndCountMismatch) {
  const auto labels = file("labels", header(1, {2}) + std::string(2, '\1'));
  expect_error(dir / "nope", labels, "cannot open");
  expect_error(file("magic", "\x01\x02\x03\x04rest"), labels, "not an unsigned-byte IDX file");
  expect_error(file("short", header(3, {2, 2, 2}) + std::string(5, '\0')), labels, "promises 8 bytes");
  expect_error(file("three", header(3, {3, 1, 1}) + std::string(3, '\0')), labels, "has 3 images but");
  expect_error(file("hdr", std::string("\0\0\x08\x03\0\0", 6)), labels, "truncated header");
}

ImageDataset sample() {
  return load_idx(kSample / "t1k-images-idx3-ubyte.gz", kSample / "t1k-labels-idx1-ubyte.gz");
}

double mean_abs_difference(const ImageDataset& a, const ImageDataset& b, int first, int count) {
  double sum = 0;
  const std::size_t from = static_cast<std::size_t>(first) * a.image_size(),
                    to = static_cast<std::size_t>(first + count) * a.image_size();
  for (std::size_t i = from; i < to; ++i) sum += std::abs(a.pixels[i] - b.pixels[i]);
  return sum / static_cast<double>(to - from);
}

TEST(Distortion, ParsesSpecsAndRefusesBadOnes) {
  const auto d = Distortion::parse("noise:0.3@5000");
  EXPECT_EQ(d.kind, Distortion::Kind::noise);
  EXPECT_DOUBLE_EQ(d.amount, 0.3);
  EXPECT_EQ(d.first, 5000);
  EXPECT_EQ(d.str(), "noise:0.3@5000");
  EXPECT_EQ(d.name(), "noise:0.3");
  EXPECT_EQ(Distortion::parse("blur:1.5").first, 0);
  EXPECT_EQ(Distortion::parse("contrast:0.25").kind, Distortion::Kind::contrast);
  for (const char* bad : {"noise", "fog:1", "noise:-1", "noise:x", "noise:0.3@", "noise:0.3@-2", "blur:11"}) {
    try {
      Distortion::parse(bad);
      ADD_FAILURE() << bad << " accepted";
    } catch (const DatasetError& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

TEST(Distortion, ChangesOnlyTheImagesFromItsStartAndIsReproducibleForASeed) {
  const ImageDataset clean = sample();
  for (const char* spec : {"noise:0.3@500", "blur:1.5@500", "contrast:0.3@500"}) {
    ImageDataset a = clean, b = clean;
    distort(a, Distortion::parse(spec), 1);
    distort(b, Distortion::parse(spec), 1);
    EXPECT_EQ(a.pixels, b.pixels) << spec << ": same seed, same pixels";
    EXPECT_EQ(mean_abs_difference(a, clean, 0, 500), 0.0) << spec << ": images before the start untouched";
    EXPECT_GT(mean_abs_difference(a, clean, 500, 500), 5.0) << spec;
    EXPECT_EQ(a.labels, clean.labels);
  }
  ImageDataset one = clean, two = clean;
  distort(one, Distortion::parse("noise:0.3@500"), 1);
  distort(two, Distortion::parse("noise:0.3@500"), 2);
  EXPECT_NE(one.pixels, two.pixels) << "another seed, other noise";
  ImageDataset same = clean;
  distort(same, Distortion::parse("contrast:1"), 1);
  EXPECT_EQ(same.pixels, clean.pixels) << "full contrast is the image itself";
  distort(same, Distortion::parse("blur:0"), 1);
  EXPECT_EQ(same.pixels, clean.pixels);
}

TEST(Distortion, BlurKeepsTheMeanAndContrastTheMeanGrey) {
  const ImageDataset clean = sample();
  ImageDataset blurred = clean, flat = clean;
  distort(blurred, Distortion::parse("blur:1"), 0);
  distort(flat, Distortion::parse("contrast:0"), 0);
  for (int n : {0, 1, 2}) {
    double before = 0, after = 0;
    for (std::size_t i = 0; i < clean.image_size(); ++i) {
      before += clean.pixels[n * clean.image_size() + i];
      after += blurred.pixels[n * clean.image_size() + i];
      EXPECT_EQ(flat.pixels[n * clean.image_size() + i], flat.pixels[n * clean.image_size()])
          << "image " << n;
    }
    // Edge clamping moves a little mass where the object touches the border; rounding the rest.
    EXPECT_NEAR(after / before, 1.0, 0.03) << "image " << n;
  }
}

// The shift trace ee-eval writes: the reference model over distorted images gives the same exit trace for
// the same seed, and a different one for another seed.
TEST(Distortion, ShiftTraceIsReproducibleForASeed) {
  const auto model = model::MultiExitModel::load(fs::path(EE_SOURCE_DIR) / "models/fmnist-vit");
  auto trace_for = [&](std::uint64_t seed) {
    auto ds = std::make_shared<ImageDataset>(sample());
    distort(*ds, Distortion::parse("noise:0.3@100"), seed);
    const EvalDataset data = image_eval_dataset(*model, ds, "sample", 200);
    const AllExits all = evaluate_all_exits(*model, data, 64);
    sched::ExitTrace trace(model->config().early_exit.exit_layers);
    for (int s = 0; s < data.size(); ++s) {
      sched::TraceSample t{data.labels[s], s < 100 ? "clean" : "noise:0.3", {}};
      for (const auto& c : all.confidences[s]) t.exits.push_back({c.label, c.max_prob, c.entropy, c.margin});
      trace.add(std::move(t));
    }
    std::ostringstream out;
    trace.write(out);
    return out.str();
  };
  const std::string a = trace_for(1), b = trace_for(1), c = trace_for(2);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // The clean part is the same whatever the seed.
  EXPECT_EQ(a.substr(0, a.find("\n100,")), c.substr(0, c.find("\n100,")));
}

}  // namespace
}  // namespace ee::sim
