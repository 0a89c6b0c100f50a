#pragma once
// What the fuzzer and its seed generator share: the receiver's limits and an in-memory byte stream.
#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>
#include <cstdint>
#include <cstring>
#include <span>

#include "common/wire/codec.hpp"

namespace ee::fuzz {

// A small model keeps messages short, so the fuzzer spends its time on structure rather than payload bytes.
constexpr int kHidden = 16;
constexpr int kMaxTokens = 8;
constexpr int kLayers = 4;
constexpr int kLabels = 3;
constexpr std::size_t kMaxFrame = 1 << 16;

inline wire::Sha256 model_hash() {
  wire::Sha256 h;
  for (std::size_t i = 0; i < h.size(); ++i) h[i] = static_cast<uint8_t>(i * 7 + 1);
  return h;
}

inline wire::Limits limits() {
  wire::Limits l{kHidden, kMaxTokens, kLayers, kLabels, model_hash()};
  l.max_frame_bytes = kMaxFrame;
  return l;
}

// SyncReadStream over a byte span: what a socket would deliver, at most `chunk` bytes per read_some so
// the framing code's partial-read paths run too.
class MemoryStream {
 public:
  MemoryStream(std::span<const uint8_t> bytes, std::size_t chunk) : rest_(bytes), chunk_(chunk) {}

  template <typename MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers, boost::system::error_code& ec) {
    ec = {};
    if (rest_.empty()) {
      ec = boost::asio::error::eof;
      return 0;
    }
    const std::size_t n =
        boost::asio::buffer_copy(buffers, boost::asio::buffer(rest_.data(), std::min(rest_.size(), chunk_)));
    rest_ = rest_.subspan(n);
    return n;
  }
  template <typename MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers) {
    boost::system::error_code ec;
    const std::size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  std::span<const uint8_t> rest_;
  std::size_t chunk_;
};

}  // namespace ee::fuzz
