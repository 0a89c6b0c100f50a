// libFuzzer entry point: the input is what a peer sends down a connection. Frames are read with the real
// framing code and every frame goes through the full decoder; an accepted Activation is also dequantized
// into a batch block. Any crash, sanitizer report or exception other than the documented ones is a bug.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/net/framing.hpp"
#include "tests/fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace ee;
  static const wire::Limits limits = fuzz::limits();
  // The first byte picks the read granularity; the rest is the stream.
  if (size == 0) return 0;
  fuzz::MemoryStream stream({data + 1, size - 1}, 1 + data[0] % 64);
  std::vector<uint8_t> frame;
  for (int i = 0; i < 16; ++i) {
    try {
      net::read_frame(stream, frame, fuzz::kMaxFrame);
    } catch (const boost::system::system_error&) {
      break;  // eof, oversize or empty frame: the connection would be closed
    }
    try {
      const wire::Message m = wire::decode(frame, limits);
      if (const auto* a = std::get_if<wire::Activation>(&m)) {
        model::Matrix block(fuzz::kMaxTokens, fuzz::kHidden);
        a->decode_into(block);
        // Accepted values must be finite and bounded: that is what the decoder promises the model.
        if (!block.allFinite() || block.cwiseAbs().maxCoeff() > wire::kMaxActivation) __builtin_trap();
      }
    } catch (const wire::WireError&) {
    }
  }
  return 0;
}
