#include "common/net/cloud_connection.hpp"

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <type_traits>
#include <unordered_map>

#include "common/net/frame_channel.hpp"
#include "common/net/tls.hpp"
#include "common/wire/handshake.hpp"

namespace ee::net {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

template <class Stream>
class Connection final : public CloudConnection, public std::enable_shared_from_this<Connection<Stream>> {
 public:
  Connection(asio::any_io_executor ex, asio::ssl::context* tls, ConnectionOptions options, wire::Hello ours,
             wire::Limits limits)
      : strand_(asio::make_strand(ex)),
        tls_(tls),
        options_(options),
        ours_(std::move(ours)),
        limits_(limits),
        resolver_(strand_),
        channel_(channel_options(options, ours_.max_frame_bytes), make_stream()),
        connect_timer_(strand_) {}

  void connect(std::string host, std::string port, ConnectHandler done, CloseHandler on_close) override {
    asio::dispatch(strand_, [self = this->shared_from_this(), host = std::move(host), port = std::move(port),
                             done = std::move(done), on_close = std::move(on_close)]() mutable {
      self->host_ = std::move(host);
      self->connected_ = std::move(done);
      self->on_close_ = std::move(on_close);
      self->connect_timer_.expires_after(self->options_.connect_timeout);
      self->connect_timer_.async_wait([self](error_code ec) {
        if (!ec)
          self->fail_connect("timed out after " + std::to_string(self->options_.connect_timeout.count()) +
                             " ms");
      });
      self->resolver_.async_resolve(self->host_, port, [self](error_code ec, tcp::resolver::results_type r) {
        self->on_resolve(ec, std::move(r));
      });
    });
  }

  void send(uint64_t request_id, Frame activation, std::chrono::microseconds deadline,
            ResultHandler done) override {
    asio::dispatch(strand_, [self = this->shared_from_this(), request_id, activation = std::move(activation),
                             deadline, done = std::move(done)]() mutable {
      self->start_request(request_id, std::move(activation), deadline, std::move(done));
    });
  }

  void close() override {
    asio::dispatch(strand_, [self = this->shared_from_this()] {
      self->closing_ = true;
      if (self->pending_.empty()) self->say_goodbye();
    });
  }

  int in_flight() const override { return in_flight_.load(std::memory_order_relaxed); }
  bool ready() const override { return ready_.load(std::memory_order_relaxed); }
  std::size_t max_frame() const override { return max_frame_.load(std::memory_order_relaxed); }

 private:
  struct Pending {
    std::unique_ptr<asio::steady_timer> deadline;
    ResultHandler done;
  };

  static ChannelOptions channel_options(const ConnectionOptions& o, std::size_t max_frame) {
    ChannelOptions c;
    c.max_frame = max_frame;
    c.read_timeout = o.read_timeout;
    c.write_timeout = o.write_timeout;
    c.max_queued = static_cast<std::size_t>(o.max_in_flight) + 2;  // requests, our Hello, a Close
    return c;
  }
  Stream make_stream() {
    if constexpr (kIsTls<Stream>) {
      return Stream(strand_, *tls_);
    } else {
      return Stream(strand_);
    }
  }

  void on_resolve(error_code ec, tcp::resolver::results_type endpoints) {
    if (ec) return fail_connect("cannot resolve " + host_ + ": " + ec.message());
    asio::async_connect(
        channel_.stream().lowest_layer(), endpoints,
        [self = this->shared_from_this()](error_code e, const tcp::endpoint&) { self->on_tcp(e); });
  }

  void on_tcp(error_code ec) {
    if (ec) return fail_connect("cannot connect to " + host_ + ": " + ec.message());
    error_code ignored;
    channel_.stream().lowest_layer().set_option(tcp::no_delay(true), ignored);
    if constexpr (kIsTls<Stream>) {
      set_server_name(channel_.stream(), host_);
      channel_.stream().async_handshake(asio::ssl::stream_base::client,
                                        [self = this->shared_from_this()](error_code e) { self->on_tls(e); });
    } else {
      on_tls({});
    }
  }

  void on_tls(error_code ec) {
    if (ec) {
      std::string why = ec.message();
      if constexpr (kIsTls<Stream>)
        why = std::string(to_string(classify_handshake_failure(channel_.stream(), ec))) + ": " + why;
      return fail_connect("TLS handshake with " + host_ + " failed (" + why + ")");
    }
    if (auto e = channel_.send(wire::encode(ours_).shared(), {})) return fail_connect(e.message());
    channel_.async_read([self = this->shared_from_this()](error_code e, std::span<const uint8_t> frame) {
      self->on_hello(e, frame);
    });
  }

  void on_hello(error_code ec, std::span<const uint8_t> frame) {
    if (ec) return fail_connect("no Hello from " + host_ + ": " + ec.message());
    try {
      const wire::Message m = wire::decode(frame, limits_);
      if (const auto* c = std::get_if<wire::Close>(&m))
        return fail_connect("refused by " + host_ + " (" + std::string(wire::to_string(c->status)) +
                            "): " + c->reason);
      const auto* theirs = std::get_if<wire::Hello>(&m);
      if (!theirs) return fail_connect(host_ + " answered the Hello with another message");
      if (auto refusal = wire::check_hello(ours_, *theirs))
        return fail_connect("cannot use " + host_ + ": " + refusal->reason);
      limits_.max_frame_bytes = wire::negotiated_max_frame(ours_, *theirs, limits_);
    } catch (const wire::WireError& e) {
      return fail_connect("bad Hello from " + host_ + ": " + e.what());
    }
    channel_.set_max_frame(limits_.max_frame_bytes);
    max_frame_ = limits_.max_frame_bytes;
    connect_timer_.cancel();
    ready_ = true;
    auto done = std::move(connected_);
    if (done) done("");
    read();
  }

  void fail_connect(const std::string& why) {
    if (!connected_) return;  // already reported
    connect_timer_.cancel();
    resolver_.cancel();
    channel_.close();
    auto done = std::move(connected_);
    done(why);
  }

  void read() {
    channel_.async_read([self = this->shared_from_this()](error_code ec, std::span<const uint8_t> frame) {
      self->on_frame(ec, frame);
    });
  }

  void on_frame(error_code ec, std::span<const uint8_t> frame) {
    if (ec)
      return end(!close_reason_.empty()   ? close_reason_
                 : ec == asio::error::eof ? "the cloud hung up"
                                          : ec.message());
    try {
      wire::Message m = wire::decode(frame, limits_);
      if (auto* r = std::get_if<wire::Result>(&m)) {
        finish(r->request_id, {}, std::move(*r));
      } else if (auto* c = std::get_if<wire::Close>(&m)) {
        // The cloud has answered or will answer everything it took in; take no more, wait for those.
        ready_ = false;
        closing_ = true;
        close_reason_ = "the cloud closed (" + std::string(wire::to_string(c->status)) + "): " + c->reason;
        if (pending_.empty()) return end(close_reason_);
      } else {
        return end("the cloud sent an unexpected message");
      }
    } catch (const wire::WireError& e) {
      return end(std::string("bad frame from the cloud: ") + e.what());
    }
    if (closing_ && pending_.empty()) return say_goodbye();
    read();
  }

  void start_request(uint64_t id, Frame activation, std::chrono::microseconds deadline, ResultHandler done) {
    auto refuse = [&](error_code e) { asio::post(strand_, [done = std::move(done), e] { done(e, {}); }); };
    if (!ready_ || closing_) return refuse(asio::error::not_connected);
    if (static_cast<int>(pending_.size()) >= options_.max_in_flight) return refuse(frame_errc::queue_full);
    if (pending_.count(id)) return refuse(asio::error::already_started);
    if (auto e = channel_.send(std::move(activation), {})) return refuse(e);
    Pending& p = pending_[id];
    p.done = std::move(done);
    if (deadline.count() > 0) {
      p.deadline = std::make_unique<asio::steady_timer>(strand_, deadline);
      p.deadline->async_wait([self = this->shared_from_this(), id](error_code e) {
        if (!e) self->finish(id, frame_errc::timeout, {});
      });
    }
    in_flight_ = static_cast<int>(pending_.size());
  }

  // Completes request `id` once; a Result for a request already timed out is dropped.
  void finish(uint64_t id, error_code ec, wire::Result r) {
    auto node = pending_.extract(id);
    if (node.empty()) return;
    if (node.mapped().deadline) node.mapped().deadline->cancel();
    in_flight_ = static_cast<int>(pending_.size());
    node.mapped().done(ec, std::move(r));
  }

  void say_goodbye() {
    if (!channel_.is_open()) return;
    auto hang_up = [self = this->shared_from_this()](error_code) { self->end("closed by the edge"); };
    if (channel_.send(wire::encode(wire::Close{wire::Status::shutdown, "edge closing"}).shared(), hang_up))
      end("closed by the edge");
  }

  // The connection is over: every pending request fails, then on_close.
  void end(const std::string& why) {
    ready_ = false;
    channel_.close();
    auto pending = std::move(pending_);
    pending_.clear();
    in_flight_ = 0;
    for (auto& [id, p] : pending) {
      if (p.deadline) p.deadline->cancel();
      p.done(asio::error::connection_aborted, {});
    }
    if (auto on_close = std::move(on_close_)) on_close(why);
  }

  asio::strand<asio::any_io_executor> strand_;
  asio::ssl::context* tls_;
  ConnectionOptions options_;
  wire::Hello ours_;
  wire::Limits limits_;
  tcp::resolver resolver_;
  FrameChannel<Stream> channel_;
  asio::steady_timer connect_timer_;
  std::string host_;
  ConnectHandler connected_;
  CloseHandler on_close_;
  std::unordered_map<uint64_t, Pending> pending_;
  bool closing_ = false;
  std::string close_reason_;  // the cloud's Close, once it came
  std::atomic<int> in_flight_{0};
  std::atomic<bool> ready_{false};
  std::atomic<std::size_t> max_frame_{0};
};

}  // namespace

std::shared_ptr<CloudConnection> CloudConnection::create(asio::any_io_executor executor,
                                                         asio::ssl::context* tls, ConnectionOptions options,
                                                         wire::Hello ours, wire::Limits limits) {
  if (tls)
    return std::make_shared<Connection<TlsSocket>>(std::move(executor), tls, options, std::move(ours),
                                                   limits);
  return std::make_shared<Connection<tcp::socket>>(std::move(executor), tls, options, std::move(ours),
                                                   limits);
}

}  // namespace ee::net
