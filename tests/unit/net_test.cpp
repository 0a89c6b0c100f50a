// ee::net framing: the prefix format, limits enforced before allocation, sync/async frames and FrameChannel
// (deadlines, the bounded send queue, TLS) over real loopback TCP connections (127.0.0.1 only; every wait
// is bounded).
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <numeric>
#include <optional>
#include <thread>
#include <utility>

#include "common/net/frame_channel.hpp"
#include "common/net/framing.hpp"

namespace ee::net {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr auto kBound = std::chrono::seconds(10);
constexpr std::size_t kLimit = 4u << 20;   // the protocol's default frame limit
constexpr std::size_t kChunk = 64u << 10;  // Asio's largest single read into a dynamic buffer

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
  EXPECT_EQ(parse_prefix(LengthPrefix{0xFF, 0xFF, 0xFF, 0xFF}, kLimit, size), frame_errc::too_large);
  EXPECT_FALSE(parse_prefix(LengthPrefix{100, 0, 0, 0}, 100, size));
  EXPECT_EQ(make_error_code(frame_errc::too_large).message(), "frame exceeds the size limit");
}

// ---- sync over TCP -----------------------------------------------------------------------------------

TEST(SyncFrames, RoundTripOverLoopbackTcp) {
  Loopback net;
  const std::vector<std::vector<uint8_t>> frames{pattern(1), pattern(4352, 7), pattern(300'000, 9)};
  // The writer runs on its own thread: a frame larger than the socket buffers blocks until it is read.
  auto writer = std::async(std::launch::async, [&] {
    for (const auto& f : frames) write_frame(net.client, f, kLimit);
  });
  std::vector<uint8_t> got;
  for (const auto& f : frames) {
    read_frame(net.server, got, kLimit);
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
  EXPECT_THROW(write_frame(net.client, std::span<const uint8_t>{}, kLimit), boost::system::system_error);
}

// The peer declares 4 MiB and sends 1000 bytes: the reader holds about what arrived, not what was declared.
TEST(SyncFrames, TruncatedFrameEndsInEofHoldingOnlyWhatArrived) {
  Loopback net;
  const LengthPrefix four_mib{0x00, 0x00, 0x40, 0x00};
  asio::write(net.client, asio::buffer(four_mib));
  asio::write(net.client, asio::buffer(pattern(1000)));
  net.client.shutdown(tcp::socket::shutdown_send);
  std::vector<uint8_t> got;
  try {
    read_frame(net.server, got, kLimit);
    FAIL() << "truncated frame accepted";
  } catch (const boost::system::system_error& e) {
    EXPECT_EQ(e.code(), asio::error::eof);
  }
  EXPECT_EQ(got.size(), 1000u);
  EXPECT_LE(got.capacity(), kChunk) << "the reader sized its buffer to the declared length";
}

TEST(SyncFrames, TruncatedPrefixEndsInEof) {
  Loopback net;
  const uint8_t two[2] = {5, 0};
  asio::write(net.client, asio::buffer(two));
  net.client.shutdown(tcp::socket::shutdown_send);
  std::vector<uint8_t> got;
  try {
    read_frame(net.server, got, kLimit);
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
    async_write_frame(net.client, frames[written], kLimit, [&](error_code ec, std::size_t n) {
      ASSERT_FALSE(ec) << ec.message();
      EXPECT_EQ(n, frames[written].size());
      ++written;
      write_next();
    });
  };
  std::vector<std::vector<uint8_t>> got;
  std::vector<uint8_t> buffer;
  std::function<void()> read_next = [&] {
    async_read_frame(net.server, buffer, kLimit, [&](error_code ec, std::size_t n) {
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
  EXPECT_THROW(read_frame(net.server, got, kLimit), boost::system::system_error);  // eof: no bytes were sent
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

// As for sync reads: a peer that declares 4 MiB and sends 1000 bytes pins no more than about that.
TEST(AsyncFrames, PeerClosingMidFrameIsEofHoldingOnlyWhatArrived) {
  Loopback net;
  const LengthPrefix four_mib{0x00, 0x00, 0x40, 0x00};
  asio::write(net.client, asio::buffer(four_mib));
  asio::write(net.client, asio::buffer(pattern(1000)));
  net.client.close();
  std::vector<uint8_t> buffer;
  std::optional<error_code> result;
  async_read_frame(net.server, buffer, kLimit, [&](error_code ec, std::size_t) { result = ec; });
  net.run();
  ASSERT_TRUE(result);
  EXPECT_EQ(*result, asio::error::eof);
  EXPECT_EQ(buffer.size(), 1000u);
  EXPECT_LE(buffer.capacity(), kChunk) << "the reader sized its buffer to the declared length";
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

// ---- FrameChannel ------------------------------------------------------------------------------------
// Deadlines here are short (200-300 ms) and the bounds they are checked against generous (5 s), so that a
// loaded machine cannot make a test fail; a deadline that does not work leaves the test to kBound, and
// fails it.

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
constexpr auto kCutOff = std::chrono::seconds(5);  // a deadline's connection is closed within this
constexpr auto kNever = std::chrono::seconds(60);  // a deadline that must not be the one that fires

ChannelOptions channel_options(Clock::duration read_timeout, Clock::duration write_timeout,
                               std::size_t max_queued) {
  return {kLimit, read_timeout, write_timeout, max_queued};
}

FrameChannel<tcp::socket>::Frame shared(std::vector<uint8_t> bytes) {
  return std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
}

// Two connected loopback TCP sockets, each on its own strand of `io`, as a daemon's sessions are.
std::pair<tcp::socket, tcp::socket> connected_pair(asio::io_context& io) {
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  tcp::socket a(asio::make_strand(io)), b(asio::make_strand(io));
  a.connect(acceptor.local_endpoint());
  acceptor.accept(b);
  return {std::move(a), std::move(b)};
}

// Runs `io` on `threads` threads until it runs out of work (or kBound passes).
void run_on(asio::io_context& io, int threads) {
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) pool.emplace_back([&] { io.run_for(kBound); });
  for (auto& t : pool) t.join();
}

TEST(FrameChannel, RejectsZeroOptions) {
  asio::io_context io;
  auto make = [&](ChannelOptions o) { FrameChannel<tcp::socket> c(o, io); };
  EXPECT_NO_THROW(make(channel_options(milliseconds(1), milliseconds(1), 1)));
  EXPECT_THROW(make({0, milliseconds(1), milliseconds(1), 1}), std::invalid_argument);
  EXPECT_THROW(make(channel_options(milliseconds(0), milliseconds(1), 1)), std::invalid_argument);
  EXPECT_THROW(make(channel_options(milliseconds(1), milliseconds(0), 1)), std::invalid_argument);
  EXPECT_THROW(make(channel_options(milliseconds(1), milliseconds(1), 0)), std::invalid_argument);
}

TEST(FrameChannel, PeerStallingMidFrameIsCutOffAfterTheReadDeadline) {
  asio::io_context io;
  auto [peer, socket] = connected_pair(io);
  FrameChannel<tcp::socket> channel(channel_options(milliseconds(200), kNever, 4), std::move(socket));
  const LengthPrefix hundred{100, 0, 0, 0};
  asio::write(peer, asio::buffer(hundred));
  asio::write(peer, asio::buffer(pattern(10)));  // ... and never the other 90

  std::optional<error_code> result;
  const auto start = Clock::now();
  asio::dispatch(channel.get_executor(), [&] {
    channel.async_read([&](error_code ec, std::span<const uint8_t> frame) {
      result = ec;
      EXPECT_TRUE(frame.empty());
    });
  });
  io.run_for(kBound);
  ASSERT_TRUE(result) << "the read never completed";
  EXPECT_EQ(*result, frame_errc::timeout);
  EXPECT_LT(Clock::now() - start, kCutOff);
  EXPECT_FALSE(channel.is_open());
  EXPECT_EQ(channel.close_reason(), frame_errc::timeout);
  // The connection is closed, not only the read given up: the peer sees it end.
  uint8_t byte = 0;
  error_code peer_ec;
  peer.read_some(asio::buffer(&byte, 1), peer_ec);
  EXPECT_TRUE(peer_ec);
  // Later operations report why the channel closed.
  EXPECT_EQ(channel.send(shared(pattern(3)), nullptr), frame_errc::timeout);
}

TEST(FrameChannel, PeerThatStopsReadingIsCutOffAfterTheWriteDeadline) {
  asio::io_context io;
  auto [peer, socket] = connected_pair(io);
  // Small kernel buffers: a 1 MiB frame cannot be written until the peer reads, and it never does.
  socket.set_option(asio::socket_base::send_buffer_size(16 << 10));
  peer.set_option(asio::socket_base::receive_buffer_size(16 << 10));
  FrameChannel<tcp::socket> channel(channel_options(kNever, milliseconds(300), 4), std::move(socket));
  std::vector<error_code> sent;
  std::optional<error_code> read_result;
  const auto start = Clock::now();
  asio::dispatch(channel.get_executor(), [&] {
    for (int i = 0; i < 3; ++i) {
      ASSERT_FALSE(channel.send(shared(pattern(1 << 20, static_cast<uint8_t>(i))),
                                [&](error_code ec) { sent.push_back(ec); }));
    }
    // A read pending meanwhile (the peer sends nothing) ends with the connection.
    channel.async_read([&](error_code ec, std::span<const uint8_t>) { read_result = ec; });
  });
  io.run_for(kBound);
  EXPECT_LT(Clock::now() - start, kCutOff);
  // Every queued frame learns that it was not sent, and why.
  EXPECT_EQ(sent, std::vector<error_code>(3, make_error_code(frame_errc::timeout)));
  ASSERT_TRUE(read_result);
  EXPECT_EQ(*read_result, frame_errc::timeout);
  EXPECT_EQ(channel.close_reason(), frame_errc::timeout);
  EXPECT_EQ(channel.queued(), 0u);
}

// A socket that counts the writes in flight on it: the channel must never start a second.
struct WatchedSocket {
  using executor_type = tcp::socket::executor_type;
  using lowest_layer_type = tcp::socket::lowest_layer_type;
  explicit WatchedSocket(tcp::socket s) : socket(std::move(s)) {}
  executor_type get_executor() { return socket.get_executor(); }
  lowest_layer_type& lowest_layer() { return socket.lowest_layer(); }
  template <class Buffers, class Handler>
  void async_read_some(const Buffers& buffers, Handler&& handler) {
    socket.async_read_some(buffers, std::forward<Handler>(handler));
  }
  template <class Buffers, class Handler>
  void async_write_some(const Buffers& buffers, Handler&& handler) {
    max_in_flight = std::max(max_in_flight, ++in_flight);
    socket.async_write_some(buffers,
                            [this, h = std::forward<Handler>(handler)](error_code ec, std::size_t n) mutable {
                              --in_flight;
                              h(ec, n);
                            });
  }

  tcp::socket socket;
  int in_flight = 0, max_in_flight = 0;
};

TEST(FrameChannel, WritesFramesInOrderOneAtATime) {
  asio::io_context io;
  auto [peer, socket] = connected_pair(io);
  // Small send buffer: the large frames take many writes each, so a second frame started early would show.
  socket.set_option(asio::socket_base::send_buffer_size(64 << 10));
  FrameChannel<WatchedSocket> channel(channel_options(kNever, std::chrono::seconds(5), 64),
                                      std::move(socket));
  std::vector<std::vector<uint8_t>> frames;
  for (int i = 0; i < 40; ++i)
    frames.push_back(pattern(i % 4 == 0 ? 300'000 : 1 + 97 * i, static_cast<uint8_t>(i)));
  std::vector<int> done_order;
  asio::dispatch(channel.get_executor(), [&] {
    for (int i = 0; i < static_cast<int>(frames.size()); ++i) {
      ASSERT_FALSE(channel.send(shared(frames[i]), [&, i](error_code ec) {
        EXPECT_FALSE(ec) << ec.message();
        done_order.push_back(i);
      }));
    }
    EXPECT_EQ(channel.queued(), frames.size());
  });
  std::vector<std::vector<uint8_t>> got;
  std::vector<uint8_t> buffer;
  std::function<void()> read_next = [&] {
    async_read_frame(peer, buffer, kLimit, [&](error_code ec, std::size_t) {
      ASSERT_FALSE(ec) << ec.message();
      got.push_back(buffer);
      if (got.size() < frames.size()) read_next();
    });
  };
  read_next();
  io.run_for(kBound);
  EXPECT_EQ(got, frames);
  std::vector<int> in_order(frames.size());
  std::iota(in_order.begin(), in_order.end(), 0);
  EXPECT_EQ(done_order, in_order);
  EXPECT_EQ(channel.stream().max_in_flight, 1);
  EXPECT_EQ(channel.queued(), 0u);
}

TEST(FrameChannel, RefusesFramesBeyondTheQueueBoundAndTheFrameLimit) {
  asio::io_context io;
  auto [peer, socket] = connected_pair(io);
  FrameChannel<tcp::socket> channel(channel_options(kNever, std::chrono::seconds(5), 3), std::move(socket));
  int done = 0;
  auto count = [&](error_code ec) {
    EXPECT_FALSE(ec) << ec.message();
    ++done;
  };
  asio::dispatch(channel.get_executor(), [&] {
    for (int i = 0; i < 3; ++i) EXPECT_FALSE(channel.send(shared(pattern(100)), count));
    EXPECT_TRUE(channel.full());
    EXPECT_EQ(channel.send(shared(pattern(100)), count), frame_errc::queue_full);
    EXPECT_EQ(channel.queued(), 3u);
  });
  io.run_for(kBound);
  EXPECT_EQ(done, 3);
  EXPECT_FALSE(channel.full());
  // With room again, a frame is taken; empty or oversize ones never are.
  asio::dispatch(channel.get_executor(), [&] {
    EXPECT_FALSE(channel.send(shared(pattern(100)), count));
    EXPECT_EQ(channel.send(shared({}), count), frame_errc::empty);
    EXPECT_EQ(channel.send(nullptr, count), frame_errc::empty);
    EXPECT_EQ(channel.send(shared(pattern(kLimit + 1)), count), frame_errc::too_large);
  });
  io.restart();
  io.run_for(kBound);
  EXPECT_EQ(done, 4);
  std::vector<uint8_t> got;
  for (int i = 0; i < 4; ++i) {
    read_frame(peer, got, kLimit);
    EXPECT_EQ(got, pattern(100));
  }
}

TEST(FrameChannel, CloseEndsPendingAndLaterOperations) {
  asio::io_context io;
  auto [peer, socket] = connected_pair(io);
  FrameChannel<tcp::socket> channel(channel_options(kNever, kNever, 4), std::move(socket));
  std::vector<error_code> reads;
  asio::dispatch(channel.get_executor(), [&] {
    channel.async_read([&](error_code ec, std::span<const uint8_t>) {
      reads.push_back(ec);
      // A read after close completes through the executor, not inside this call.
      channel.async_read([&](error_code ec2, std::span<const uint8_t>) { reads.push_back(ec2); });
      EXPECT_EQ(reads.size(), 1u);
    });
    channel.close();
    channel.close();
  });
  io.run_for(kBound);
  EXPECT_EQ(reads, std::vector<error_code>(2, make_error_code(asio::error::operation_aborted)));
  EXPECT_EQ(channel.send(shared(pattern(3)), nullptr), asio::error::operation_aborted);
}

// Echoes every frame, in Beast's session idiom: handlers hold shared_from_this(), reads pause while the
// send queue is full and resume as it drains.
class EchoSession : public std::enable_shared_from_this<EchoSession> {
 public:
  EchoSession(tcp::socket socket, std::size_t max_queued, std::optional<error_code>& ended)
      : channel_(channel_options(kBound, kBound, max_queued), std::move(socket)), ended_(ended) {}
  void start() {
    asio::dispatch(channel_.get_executor(), [self = shared_from_this()] { self->do_read(); });
  }

 private:
  void do_read() {
    reading_ = true;
    channel_.async_read([self = shared_from_this()](error_code ec, std::span<const uint8_t> frame) {
      self->on_read(ec, frame);
    });
  }
  void on_read(error_code ec, std::span<const uint8_t> frame) {
    reading_ = false;
    if (ec) {
      ended_ = ec;
      return;
    }
    const auto sent = channel_.send(std::make_shared<const std::vector<uint8_t>>(frame.begin(), frame.end()),
                                    [self = shared_from_this()](error_code ec) { self->on_sent(ec); });
    EXPECT_FALSE(sent) << sent.message();  // never full here: a full queue pauses the reads
    if (!channel_.full()) do_read();
  }
  void on_sent(error_code ec) {
    if (!ec && !reading_ && channel_.is_open()) do_read();
  }

  FrameChannel<tcp::socket> channel_;
  std::optional<error_code>& ended_;
  bool reading_ = false;
};

// Sends `frames` as fast as its queue takes them while reading their echoes, then closes.
class EchoClient : public std::enable_shared_from_this<EchoClient> {
 public:
  EchoClient(tcp::socket socket, std::vector<FrameChannel<tcp::socket>::Frame> frames)
      : channel_(channel_options(kBound, kBound, 4), std::move(socket)), frames_(std::move(frames)) {}
  void start() {
    asio::dispatch(channel_.get_executor(), [self = shared_from_this()] {
      self->send_more();
      self->do_read();
    });
  }
  std::size_t echoed = 0, mismatches = 0;

 private:
  void send_more() {
    while (sent_ < frames_.size()) {
      const auto ec = channel_.send(frames_[sent_], [self = shared_from_this()](error_code ec) {
        if (!ec) self->send_more();
      });
      if (ec == frame_errc::queue_full) return;  // the next completion sends more
      ASSERT_FALSE(ec) << ec.message();
      ++sent_;
    }
  }
  void do_read() {
    channel_.async_read([self = shared_from_this()](error_code ec, std::span<const uint8_t> frame) {
      ASSERT_FALSE(ec) << ec.message();
      const auto& want = *self->frames_[self->echoed];
      if (!std::equal(frame.begin(), frame.end(), want.begin(), want.end())) ++self->mismatches;
      if (++self->echoed < self->frames_.size()) {
        self->do_read();
      } else {
        self->channel_.close();
      }
    });
  }

  FrameChannel<tcp::socket> channel_;
  std::vector<FrameChannel<tcp::socket>::Frame> frames_;
  std::size_t sent_ = 0;
};

TEST(FrameChannel, ManyFramesBothWaysThroughAnEchoSession) {
  asio::io_context io;
  auto [client_socket, server_socket] = connected_pair(io);
  std::vector<FrameChannel<tcp::socket>::Frame> frames;
  for (int i = 0; i < 400; ++i) {
    frames.push_back(shared(pattern(1 + (i * 7919) % 70'000, static_cast<uint8_t>(i))));
  }
  std::optional<error_code> ended;
  auto client = std::make_shared<EchoClient>(std::move(client_socket), frames);
  std::make_shared<EchoSession>(std::move(server_socket), 2, ended)->start();
  client->start();
  run_on(io, 2);
  EXPECT_EQ(client->echoed, frames.size());
  EXPECT_EQ(client->mismatches, 0u);
  ASSERT_TRUE(ended) << "the session outlived its client";
  EXPECT_TRUE(*ended == asio::error::eof || *ended == asio::error::connection_reset) << ended->message();
}

// ---- FrameChannel over mutual TLS ------------------------------------------------------------------------

// A self-signed certificate, made for the test: each side presents it and trusts it.
struct TestIdentity {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key{EVP_EC_gen("P-256"), EVP_PKEY_free};
  std::unique_ptr<X509, decltype(&X509_free)> cert{X509_new(), X509_free};

  TestIdentity() {
    X509* x = cert.get();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key.get());
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("ee-test"),
                               -1, -1, 0);
    X509_set_issuer_name(x, name);
    if (!X509_sign(x, key.get(), EVP_sha256())) throw std::runtime_error("cannot sign the test certificate");
  }
  asio::ssl::context context(asio::ssl::context::method method) const {
    asio::ssl::context ctx(method);
    SSL_CTX_use_certificate(ctx.native_handle(), cert.get());
    SSL_CTX_use_PrivateKey(ctx.native_handle(), key.get());
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.native_handle()), cert.get());
    ctx.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
    return ctx;
  }
};

using TlsChannel = FrameChannel<asio::ssl::stream<tcp::socket>>;

TEST(FrameChannel, WorksOverMutualTls) {
  const TestIdentity identity;
  auto server_ctx = identity.context(asio::ssl::context::tls_server);
  auto client_ctx = identity.context(asio::ssl::context::tls_client);
  asio::io_context io;
  auto [client_socket, server_socket] = connected_pair(io);
  TlsChannel server(channel_options(kNever, std::chrono::seconds(5), 4), std::move(server_socket),
                    server_ctx);
  TlsChannel client(channel_options(milliseconds(300), std::chrono::seconds(5), 4), std::move(client_socket),
                    client_ctx);
  int handshakes = 0;
  server.stream().async_handshake(asio::ssl::stream_base::server, [&](error_code ec) {
    ASSERT_FALSE(ec) << ec.message();
    ++handshakes;
  });
  client.stream().async_handshake(asio::ssl::stream_base::client, [&](error_code ec) {
    ASSERT_FALSE(ec) << ec.message();
    ++handshakes;
  });
  io.run_for(kBound);
  ASSERT_EQ(handshakes, 2);

  // A frame each way, then the server stalls and the client's read deadline cuts it off.
  const auto request = pattern(200'000, 3), reply = pattern(5, 4);
  std::vector<std::vector<uint8_t>> got;
  std::optional<error_code> stalled;
  const auto start = Clock::now();
  asio::dispatch(client.get_executor(), [&] {
    ASSERT_FALSE(client.send(shared(request), nullptr));
    client.async_read([&](error_code ec, std::span<const uint8_t> frame) {
      ASSERT_FALSE(ec) << ec.message();
      got.emplace_back(frame.begin(), frame.end());
      client.async_read([&](error_code ec2, std::span<const uint8_t>) { stalled = ec2; });
    });
  });
  asio::dispatch(server.get_executor(), [&] {
    server.async_read([&](error_code ec, std::span<const uint8_t> frame) {
      ASSERT_FALSE(ec) << ec.message();
      got.emplace_back(frame.begin(), frame.end());
      ASSERT_FALSE(server.send(shared(reply), nullptr));
      server.async_read([](error_code, std::span<const uint8_t>) {});  // ends when the client closes
    });
  });
  io.restart();
  io.run_for(kBound);
  EXPECT_EQ(got, (std::vector<std::vector<uint8_t>>{request, reply}));
  ASSERT_TRUE(stalled);
  EXPECT_EQ(*stalled, frame_errc::timeout);
  EXPECT_LT(Clock::now() - start, kCutOff);
}

}  // namespace
}  // namespace ee::net
