// Writes the fuzzer's seed corpus: one valid stream per message kind, dtype and compression, plus a stream
// of several frames, so mutation starts from inputs that pass the verifier.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "common/net/framing.hpp"
#include "tests/fuzz/fuzz_common.hpp"

namespace {

using namespace ee;

void append_frame(std::vector<uint8_t>& stream, const wire::Encoded& e) {
  net::LengthPrefix prefix;
  if (net::make_prefix(e.size(), fuzz::kMaxFrame, prefix)) throw std::runtime_error("seed frame too large");
  stream.insert(stream.end(), prefix.begin(), prefix.end());
  stream.insert(stream.end(), e.span().begin(), e.span().end());
}

template <typename... Frames>
void write(const std::filesystem::path& dir, const std::string& name, const Frames&... frames) {
  std::vector<uint8_t> stream{17};  // read granularity byte (see wire_fuzzer.cpp)
  (append_frame(stream, frames), ...);
  std::ofstream(dir / name, std::ios::binary)
      .write(reinterpret_cast<const char*>(stream.data()), static_cast<std::streamsize>(stream.size()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: wire_fuzz_seeds <output dir>\n";
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);

  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  model::Matrix x(5, fuzz::kHidden);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = normal(rng);

  // Every field away from its default, so mutations start from frames that carry all of them.
  wire::ActivationMeta meta{42,
                            fuzz::model_hash(),
                            2,
                            std::chrono::microseconds(5000),
                            exits::ExitDecider{{exits::Measure::patience, 2}, {1, 1}},
                            true};
  for (wire::DType d : {wire::DType::f32, wire::DType::f16, wire::DType::i8})
    for (wire::Compression c : {wire::Compression::none, wire::Compression::zstd})
      write(dir, "activation_" + std::string(wire::to_string(d)) + "_" + std::string(wire::to_string(c)),
            wire::encode_activation(meta, x, {d, c}));

  wire::Hello hello{wire::kProtocolVersion,
                    "fuzz",
                    wire::to_hex(fuzz::model_hash()),
                    {wire::DType::f32, wire::DType::i8},
                    {wire::Compression::zstd},
                    1 << 16,
                    wire::Precision::bf16,
                    wire::Kernel::amx};
  wire::Result result{7, wire::Status::ok, "", 1, {0.2f, 0.7f, 0.1f}, 4, std::chrono::microseconds(900), 2};
  wire::Result failure{8, wire::Status::overloaded, "queue full", -1, {}, 0, {}, -1};
  write(dir, "hello", wire::encode(hello));
  write(dir, "result", wire::encode(result));
  write(dir, "result_failure", wire::encode(failure));
  write(dir, "close", wire::encode(wire::Close{wire::Status::precision_mismatch, "edge runs bf16 on amx"}));
  write(dir, "session", wire::encode(hello),
        wire::encode_activation(meta, x.topRows(3), {wire::DType::i8, wire::Compression::zstd}),
        wire::encode(result), wire::encode(wire::Close{}));
  std::cout << "wrote " << std::distance(std::filesystem::directory_iterator(dir), {}) << " seeds to " << dir
            << "\n";
  return 0;
}
