// ee::net framing: the prefix format, limits enforced before allocation, and sync/async frames over a real
// loopback TCP connection (127.0.0.1 only; every wait is bounded).
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <functional>
#include <future>
#include <numeric>
#include <optional>

#include "common/net/framing.hpp"

namespace ee::net {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr auto kBound = std::chrono::seconds(10);

std::vector<uint8_t> pattern(std::size_t n, uint8_t seed = 1) {
  std::vector<uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 31);
  return v;
}

// A connected pair of loopback TCP sockets.
struct Loopback {
  asio::io_context io;
  tcp::socket client{io}, server{io};

  Loopback() {
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    client.connect(acceptor.local_endpoint());
    acceptor.accept(server);
  }
  void run() {
    io.restart();
    io.run_for(kBound);
  }
};

// ---- prefix ------------------------------------------------------------------------------------------

TEST(Prefix, IsFourBytesLittleEndian) {
  LengthPrefix p;
  ASSERT_FALSE(make_prefix(0x01020304, 1u << 30, p));
  EXPECT_EQ(p, (LengthPrefix{0x04, 0x03, 0x02, 0x01}));
  std::size_t size = 0;
  ASSERT_FALSE(parse_prefix(p, 1u << 30, size));
  EXPECT_EQ(size, 0x01020304u);
}

TEST(Prefix, RejectsEmptyAndOversizeFrames) {
  LengthPrefix p;
  EXPECT_EQ(make_prefix(0, 100, p), frame_errc::empty);
  EXPECT_EQ(make_prefix(101, 100, p), frame_errc::too_large);
  EXPECT_EQ(make_prefix(std::size_t{1} << 32, std::size_t{1} << 40, p), frame_errc::too_large);
  std::size_t size = 0;
  EXPECT_EQ(parse_prefix(LengthPrefix{0, 0, 0, 0}, 100, size), frame_errc::empty);
  EXPECT_EQ(parse_prefix(LengthPrefix{101, 0, 0, 0}, 100, size), frame_errc::too_large);
  EXPECT_EQ(parse_prefix(LengthPrefix{0xFF, 0xFF, 0xFF, 0xFF}, kDefaultMaxFrameBytes, size),
            frame_errc::too_large);
  EXPECT_FALSE(parse_prefix(LengthPrefix{100, 0, 0, 0}, 100, size));
  EXPECT_EQ(make_error_code(frame_errc::too_large).message(), "frame exceeds the size limit");
}

// ---- sync over TCP -----------------------------------------------------------------------------------

TEST(SyncFrames, RoundTripOverLoopbackTcp) {
  Loopback net;
  const std::vector<std::vector<uint8_t>> frames{pattern(1), pattern(4352, 7), pattern(300'000, 9)};
  // The writer runs on its own thread: a frame larger than the socket buffers blocks until it is read.
  auto writer = std::async(std::launch::async, [&] {
    for (const auto& f : frames) write_frame(net.client, f);
  });
  std::vector<uint8_t> got;
  for (const auto& f : frames) {
    read_frame(net.server, got);
    EXPECT_EQ(got, f);
  }
  ASSERT_EQ(writer.wait_for(kBound), std::future_status::ready);
  writer.get();
}

TEST(SyncFrames, OversizePrefixIsRejectedBeforeAllocating) {
  Loopback net;
  const LengthPrefix huge{0x00, 0x00, 0x00, 0x40};  // 1 GiB
  asio::write(net.client, asio::buffer(huge));
  std::vector<uint8_t> got;
  try {
    read_frame(net.server, got, 1 << 20);
    FAIL() << "oversize frame accepted";
  } catch (const boost::system::system_error& e) {
    EXPECT_EQ(e.code(), frame_errc::too_large);
  }
  EXPECT_LT(got.capacity(), std::size_t{1} << 20);
}

TEST(SyncFrames, WriterRefusesAFrameThePeerWouldRefuse) {
  Loopback net;
  const auto big = pattern(1001);
  try {
    write_frame(net.client, big, 1000);
    FAIL() << "oversize frame sent";
  } catch (const boost::system::system_error& e) {
    EXPECT_EQ(e.code(), frame_errc::too_large);
  }
  EXPECT_THROW(write_frame(net.client, std::span<const uint8_t>{}), boost::system::system_error);
}

TEST(SyncFrames, TruncatedFrameEndsInEof) {
  Loopback net;
  const LengthPrefix hundred{100, 0, 0, 0};
  asio::write(net.client, asio::buffer(hundred));
  asio::write(net.client, asio::buffer(pattern(50)));
  net.client.shutdown(tcp::socket::shutdown_send);
  std::vector<uint8_t> got;
  try {
    read_frame(net.server, got);
    FAIL() << "truncated frame accepted";
  } catch (const boost::system::system_error& e) {
    EXPECT_EQ(e.code(), asio::error::eof);
  }
}

TEST(SyncFrames, TruncatedPrefixEndsInEof) {
  Loopback net;
  const uint8_t two[2] = {5, 0};
  asio::write(net.client, asio::buffer(two));
  net.client.shutdown(tcp::socket::shutdown_send);
  std::vector<uint8_t> got;
  try {
    read_frame(net.server, got);
    FAIL() << "truncated prefix accepted";
  } catch (const boost::system::system_error& e) {
    EXPECT_EQ(e.code(), asio::error::eof);
  }
}

// ---- async over TCP ----------------------------------------------------------------------------------

TEST(AsyncFrames, PipelinedFramesArriveInOrder) {
  Loopback net;
  const std::vector<std::vector<uint8_t>> frames{pattern(10, 1), pattern(200'000, 2), pattern(3, 3)};
  std::size_t written = 0;
  std::function<void()> write_next = [&] {
    if (written == frames.size()) return;
    async_write_frame(net.client, frames[written], kDefaultMaxFrameBytes, [&](error_code ec, std::size_t n) {
      ASSERT_FALSE(ec) << ec.message();
      EXPECT_EQ(n, frames[written].size());
      ++written;
      write_next();
    });
  };
  std::vector<std::vector<uint8_t>> got;
  std::vector<uint8_t> buffer;
  std::function<void()> read_next = [&] {
    async_read_frame(net.server, buffer, kDefaultMaxFrameBytes, [&](error_code ec, std::size_t n) {
      ASSERT_FALSE(ec) << ec.message();
      EXPECT_EQ(n, buffer.size());
      got.push_back(buffer);
      if (got.size() < frames.size()) read_next();
    });
  };
  write_next();
  read_next();
  net.run();
  EXPECT_EQ(written, frames.size());
  EXPECT_EQ(got, frames);
}

TEST(AsyncFrames, OversizeWriteFailsThroughTheExecutorAndSendsNothing) {
  Loopback net;
  const auto big = pattern(101);
  std::optional<error_code> result;
  async_write_frame(net.client, big, 100, [&](error_code ec, std::size_t) { result = ec; });
  EXPECT_FALSE(result) << "completion ran inside the initiating call";
  net.run();
  ASSERT_TRUE(result);
  EXPECT_EQ(*result, frame_errc::too_large);
  net.client.shutdown(tcp::socket::shutdown_send);
  std::vector<uint8_t> got;
  EXPECT_THROW(read_frame(net.server, got), boost::system::system_error);  // eof: no bytes were sent
}

TEST(AsyncFrames, OversizePrefixIsRejectedBeforeAllocating) {
  Loopback net;
  const LengthPrefix huge{0x01, 0x00, 0x10, 0x00};  // 1 MiB + 1
  asio::write(net.client, asio::buffer(huge));
  std::vector<uint8_t> buffer;
  std::optional<error_code> result;
  async_read_frame(net.server, buffer, 1 << 20, [&](error_code ec, std::size_t n) {
    result = ec;
    EXPECT_EQ(n, 0u);
  });
  net.run();
  ASSERT_TRUE(result);
  EXPECT_EQ(*result, frame_errc::too_large);
  EXPECT_LT(buffer.capacity(), std::size_t{1} << 20);
}

TEST(AsyncFrames, PeerClosingMidFrameIsEof) {
  Loopback net;
  const LengthPrefix ten{10, 0, 0, 0};
  asio::write(net.client, asio::buffer(ten));
  asio::write(net.client, asio::buffer(pattern(4)));
  net.client.close();
  std::vector<uint8_t> buffer;
  std::optional<error_code> result;
  async_read_frame(net.server, buffer, 1 << 20, [&](error_code ec, std::size_t) { result = ec; });
  net.run();
  ASSERT_TRUE(result);
  EXPECT_EQ(*result, asio::error::eof);
}

TEST(AsyncFrames, CancelledReadReportsOperationAborted) {
  Loopback net;
  std::vector<uint8_t> buffer;
  std::optional<error_code> result;
  async_read_frame(net.server, buffer, 1 << 20, [&](error_code ec, std::size_t) { result = ec; });
  asio::post(net.io, [&] { net.server.cancel(); });
  net.run();
  ASSERT_TRUE(result);
  EXPECT_EQ(*result, asio::error::operation_aborted);
}

}  // namespace
}  // namespace ee::net
