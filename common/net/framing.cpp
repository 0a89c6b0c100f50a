#include "common/net/framing.hpp"

#include <boost/endian/conversion.hpp>
#include <limits>
#include <string>

namespace ee::net {
namespace {

class FrameCategory : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "ee.frame"; }
  std::string message(int ev) const override {
    switch (static_cast<frame_errc>(ev)) {
      case frame_errc::too_large:
        return "frame exceeds the size limit";
      case frame_errc::empty:
        return "empty frame";
      case frame_errc::timeout:
        return "deadline passed, connection closed";
      case frame_errc::queue_full:
        return "send queue full";
    }
    return "unknown frame error";
  }
};

}  // namespace

const boost::system::error_category& frame_category() {
  static const FrameCategory category;
  return category;
}

boost::system::error_code make_error_code(frame_errc e) {
  return {static_cast<int>(e), frame_category()};
}

boost::system::error_code make_prefix(std::size_t size, std::size_t max_frame, LengthPrefix& out) {
  if (size == 0) return frame_errc::empty;
  if (size > max_frame || size > std::numeric_limits<uint32_t>::max()) return frame_errc::too_large;
  boost::endian::store_little_u32(out.data(), static_cast<uint32_t>(size));
  return {};
}

boost::system::error_code parse_prefix(const LengthPrefix& prefix, std::size_t max_frame, std::size_t& size) {
  size = boost::endian::load_little_u32(prefix.data());
  if (size == 0) return frame_errc::empty;
  if (size > max_frame) return frame_errc::too_large;
  return {};
}

}  // namespace ee::net
