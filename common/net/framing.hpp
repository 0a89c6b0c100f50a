#pragma once
// Length-prefixed frames over any Boost.Asio byte stream (TCP socket, TLS stream, test pipe): a 4-byte
// little-endian length, then that many bytes. The receiver refuses a length above its limit before it
// allocates anything, and grows its buffer only as the payload's bytes arrive (at most 64 KiB per read),
// so a peer can make it hold no more memory than it has actually sent.
//
// Every call takes the frame limit explicitly: the daemons pass the value negotiated in the handshake
// (ee::wire::kDefaultMaxFrameBytes is the protocol's default).
//
// Sync calls throw boost::system::system_error; async calls complete with (error_code, payload bytes).
// Framing errors use ee::net::frame_errc; stream errors (eof, reset, cancelled) pass through unchanged.
#include <algorithm>
#include <array>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <system_error>
#include <vector>

namespace ee::net {

inline constexpr std::size_t kLengthPrefixBytes = 4;

enum class frame_errc {
  too_large = 1,   // the length prefix (or a payload to send) exceeds the frame limit
  empty = 2,       // length 0: no message of the protocol is empty
  timeout = 3,     // a FrameChannel deadline passed; the channel closed the connection
  queue_full = 4,  // a FrameChannel's send queue is at its bound; nothing was queued
};

const boost::system::error_category& frame_category();
boost::system::error_code make_error_code(frame_errc e);

}  // namespace ee::net

template <>
struct boost::system::is_error_code_enum<ee::net::frame_errc> : std::true_type {};

namespace ee::net {

using LengthPrefix = std::array<uint8_t, kLengthPrefixBytes>;

// The prefix for a payload of `size` bytes, or the error that forbids sending it.
boost::system::error_code make_prefix(std::size_t size, std::size_t max_frame, LengthPrefix& out);
// Reads the payload length from a received prefix; an error if it is 0 or above max_frame.
boost::system::error_code parse_prefix(const LengthPrefix& prefix, std::size_t max_frame, std::size_t& size);

// ---- sync ---------------------------------------------------------------------------------------------

template <typename SyncWriteStream>
void write_frame(SyncWriteStream& stream, std::span<const uint8_t> payload, std::size_t max_frame) {
  LengthPrefix prefix;
  if (auto ec = make_prefix(payload.size(), max_frame, prefix))
    throw boost::system::system_error(ec, "write_frame");
  const std::array<boost::asio::const_buffer, 2> buffers{boost::asio::buffer(prefix),
                                                         boost::asio::buffer(payload.data(), payload.size())};
  boost::asio::write(stream, buffers);
}

// Replaces `out` with the next frame's payload (reusing its capacity).
template <typename SyncReadStream>
void read_frame(SyncReadStream& stream, std::vector<uint8_t>& out, std::size_t max_frame) {
  LengthPrefix prefix;
  boost::asio::read(stream, boost::asio::buffer(prefix));
  std::size_t size = 0;
  if (auto ec = parse_prefix(prefix, max_frame, size)) throw boost::system::system_error(ec, "read_frame");
  out.clear();
  // A dynamic buffer limited to the frame's size: Asio grows it by at most 64 KiB per read, as bytes come.
  boost::asio::read(stream, boost::asio::dynamic_buffer(out, size));
}

// ---- async --------------------------------------------------------------------------------------------

namespace detail {

template <typename Stream>
struct WriteFrameOp {
  Stream& stream;
  std::span<const uint8_t> payload;
  std::size_t max_frame;
  // On the heap: the operation object moves between steps, the buffer handed to async_write must not.
  std::unique_ptr<LengthPrefix> prefix = std::make_unique<LengthPrefix>();
  enum { starting, writing, failing } state = starting;
  boost::system::error_code failure{};

  template <typename Self>
  void operator()(Self& self, boost::system::error_code ec = {}, std::size_t = 0) {
    switch (state) {
      case starting:
        if ((failure = make_prefix(payload.size(), max_frame, *prefix))) {
          // Completing inside the initiating call would break Asio's guarantee; go through the executor.
          state = failing;
          boost::asio::post(stream.get_executor(), std::move(self));
          return;
        }
        state = writing;
        boost::asio::async_write(
            stream,
            std::array<boost::asio::const_buffer, 2>{boost::asio::buffer(*prefix),
                                                     boost::asio::buffer(payload.data(), payload.size())},
            std::move(self));
        return;
      case writing:
        self.complete(ec, ec ? 0 : payload.size());
        return;
      case failing:
        self.complete(failure, 0);
        return;
    }
  }
};

template <typename Stream>
struct ReadFrameOp {
  Stream& stream;
  std::vector<uint8_t>& out;
  std::size_t max_frame;
  enum { starting, reading_prefix, reading_payload } state = starting;

  template <typename Self>
  void operator()(Self& self, boost::system::error_code ec = {}, std::size_t = 0) {
    switch (state) {
      case starting:
        // The prefix lands in `out` itself: caller-owned storage that stays put while the op moves.
        state = reading_prefix;
        out.resize(kLengthPrefixBytes);
        boost::asio::async_read(stream, boost::asio::buffer(out), std::move(self));
        return;
      case reading_prefix: {
        if (ec) return self.complete(ec, 0);
        LengthPrefix prefix;
        std::copy(out.begin(), out.end(), prefix.begin());
        std::size_t size = 0;
        if ((ec = parse_prefix(prefix, max_frame, size))) {
          out.clear();
          return self.complete(ec, 0);
        }
        state = reading_payload;
        out.clear();  // as in read_frame: grows with the bytes that arrive, never to `size` up front
        boost::asio::async_read(stream, boost::asio::dynamic_buffer(out, size), std::move(self));
        return;
      }
      case reading_payload:
        self.complete(ec, ec ? 0 : out.size());
        return;
    }
  }
};

}  // namespace detail

// `payload` must stay alive and unchanged until completion. Signature: void(error_code, std::size_t).
template <typename AsyncWriteStream, typename CompletionToken>
auto async_write_frame(AsyncWriteStream& stream, std::span<const uint8_t> payload, std::size_t max_frame,
                       CompletionToken&& token) {
  return boost::asio::async_compose<CompletionToken, void(boost::system::error_code, std::size_t)>(
      detail::WriteFrameOp<AsyncWriteStream>{stream, payload, max_frame}, token, stream);
}

// Fills `out` (which must outlive the operation) with the next frame's payload.
// Signature: void(error_code, std::size_t payload_bytes).
template <typename AsyncReadStream, typename CompletionToken>
auto async_read_frame(AsyncReadStream& stream, std::vector<uint8_t>& out, std::size_t max_frame,
                      CompletionToken&& token) {
  return boost::asio::async_compose<CompletionToken, void(boost::system::error_code, std::size_t)>(
      detail::ReadFrameOp<AsyncReadStream>{stream, out, max_frame}, token, stream);
}

}  // namespace ee::net
