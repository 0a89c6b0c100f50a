// IDX reading on the committed Fashion-MNIST sample, and refusal of files that lie about their contents.
#include "sim/dataset.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

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

}  // namespace
}  // namespace ee::sim
