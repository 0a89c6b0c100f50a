#include "cloud/server.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <type_traits>

#include "common/net/frame_channel.hpp"
#include "common/net/tls.hpp"

namespace ee::cloud {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

template <class Stream>
class Session final : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(std::shared_ptr<const ServerContext> context, tcp::socket socket)
      : context_(std::move(context)),
        options_(context_->options),
        peer_(endpoint_string(socket)),
        timer_(socket.get_executor()),
        age_timer_(socket.get_executor()) {
    if constexpr (net::kIsTls<Stream>) {
      channel_.emplace(channel_options(*context_), std::move(socket), *context_->tls);
    } else {
      channel_.emplace(channel_options(*context_), std::move(socket));
    }
  }

  ~Session() override {
    if (counted_) context_->metrics.connections.dec();
  }

  void start() {
    if constexpr (net::kIsTls<Stream>) {
      timer_.expires_after(options_.handshake_timeout);
      timer_.async_wait([self = this->shared_from_this()](error_code ec) {
        if (ec) return;
        self->handshake_timed_out_ = true;
        self->channel_->close();
      });
      channel_->stream().async_handshake(
          asio::ssl::stream_base::server,
          [self = this->shared_from_this()](error_code ec) { self->on_handshake(ec); });
    } else {
      on_handshake({});
    }
  }

  void drain() override {
    asio::post(channel_->get_executor(),
               [self = this->shared_from_this()] { self->begin_drain("the worker is shutting down"); });
  }

 private:
  static std::string endpoint_string(const tcp::socket& s) {
    error_code ec;
    const auto ep = s.remote_endpoint(ec);
    return ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
  }
  static net::ChannelOptions channel_options(const ServerContext& c) {
    net::ChannelOptions o;
    o.max_frame = c.options.max_frame_bytes;
    o.read_timeout = c.options.read_timeout;
    o.write_timeout = c.options.write_timeout;
    // Results of the requests in flight, plus our Hello and a Close.
    o.max_queued = static_cast<std::size_t>(c.options.max_in_flight) + 2;
    return o;
  }
  void on_handshake(error_code ec) {
    timer_.cancel();
    if (ec) {
      if constexpr (net::kIsTls<Stream>) {
        const net::TlsFailure why = handshake_timed_out_
                                        ? net::TlsFailure::timeout
                                        : net::classify_handshake_failure(channel_->stream(), ec);
        context_->metrics.handshake_failures(std::string(net::to_string(why))).inc();
        spdlog::info("{}: TLS handshake refused ({}): {}", peer_, net::to_string(why), ec.message());
      }
      channel_->close();
      return;
    }
    if constexpr (net::kIsTls<Stream>) edge_ = net::peer_common_name(channel_->stream().native_handle());
    counted_ = true;
    context_->metrics.connections.inc();
    if (options_.max_connection_age.count() > 0) {
      age_timer_.expires_after(options_.max_connection_age);
      age_timer_.async_wait([self = this->shared_from_this()](error_code e) {
        if (!e) self->begin_drain("the connection reached its maximum age");
      });
    }
    read();
  }

  void read() {
    channel_->async_read([self = this->shared_from_this()](error_code ec, std::span<const uint8_t> frame) {
      self->on_frame(ec, frame);
    });
  }

  void on_frame(error_code ec, std::span<const uint8_t> frame) {
    if (ec) {
      if (closing_) return shutdown();  // the edge hung up after our Close
      if (ec != asio::error::eof && ec != asio::error::operation_aborted)
        spdlog::info("{} ({}): connection closed: {}", peer_, edge_, ec.message());
      if (ec == net::frame_errc::too_large || ec == net::frame_errc::empty)
        return finish(wire::Status::bad_request, ec.message());
      return channel_->close();
    }
    context_->metrics.bytes_received.inc(frame.size() + net::kLengthPrefixBytes);
    wire::Message message;
    try {
      message = wire::decode(frame, limits_);
    } catch (const wire::WireError& e) {
      return finish(wire::Status::bad_request, e.what());
    }
    if (!hello_done_) return on_hello(message);
    if (auto* a = std::get_if<wire::Activation>(&message)) {
      on_activation(*a);
    } else if (std::holds_alternative<wire::Close>(message)) {
      peer_closed_ = true;
      begin_drain("the edge closed the session");
    } else {
      return finish(wire::Status::bad_request, "expected an Activation or a Close after the Hello");
    }
    if (draining_ || in_flight_ < options_.max_in_flight) {
      read();
    } else {
      paused_ = true;  // on_result resumes
    }
  }

  void on_hello(const wire::Message& message) {
    const auto* hello = std::get_if<wire::Hello>(&message);
    if (!hello) return finish(wire::Status::bad_request, "the first message must be a Hello");
    if (auto refusal = wire::check_hello(*hello, context_->hello)) {
      spdlog::warn("{} ({}): refused: {}", peer_, edge_, refusal->reason);
      return finish(refusal->status, refusal->reason);
    }
    try {
      limits_.max_frame_bytes = wire::negotiated_max_frame(*hello, context_->hello, limits_);
    } catch (const wire::WireError& e) {
      return finish(wire::Status::bad_request, e.what());
    }
    channel_->set_max_frame(limits_.max_frame_bytes);
    hello_done_ = true;
    send(wire::encode(context_->hello));
    read();
  }

  void on_activation(const wire::Activation& a) {
    // Draining: what the edge sent before it saw our Close is answered at once; it continues locally.
    if (draining_) return send(wire::encode(refused(a, wire::Status::shutdown, drain_reason_.c_str())));
    const auto received = Clock::now();
    ++in_flight_;
    auto reply = [weak = this->weak_from_this(), ex = channel_->get_executor()](wire::Result r) {
      asio::post(ex, [weak, r = std::move(r)]() mutable {
        if (auto self = weak.lock()) self->on_result(std::move(r));
      });
    };
    switch (context_->batcher.submit(a, received, std::move(reply))) {
      case Batcher::Admit::accepted:
        return;
      case Batcher::Admit::overloaded:
        return on_result(refused(a, wire::Status::overloaded, "the worker's queue is full"));
      case Batcher::Admit::shutting_down:
        return on_result(refused(a, wire::Status::shutdown, "the worker is shutting down"));
    }
  }

  wire::Result refused(const wire::Activation& a, wire::Status status, const char* why) {
    context_->metrics.requests(status).inc();
    wire::Result r;
    r.request_id = a.request_id();
    r.status = status;
    r.error = why;
    return r;
  }

  void on_result(wire::Result r) {
    --in_flight_;
    try {
      send(wire::encode(r));
    } catch (const wire::WireError& e) {
      spdlog::error("{}: cannot encode the result of request {}: {}", peer_, r.request_id, e.what());
      channel_->close();
      return;
    }
    if (draining_) {
      if (in_flight_ == 0) say_goodbye();
    } else if (paused_ && in_flight_ < options_.max_in_flight && channel_->is_open()) {
      paused_ = false;
      read();
    }
  }

  void send(const wire::Encoded& e) {
    if (auto ec = channel_->send(e.shared(), {})) {
      // The queue is sized for every request in flight, so this is a peer that stopped reading.
      spdlog::info("{} ({}): cannot send: {}", peer_, edge_, ec.message());
      channel_->close();
    }
  }

  void begin_drain(const char* why) {
    if (draining_ || !channel_->is_open()) return;
    draining_ = true;
    drain_reason_ = why;
    age_timer_.cancel();
    if (paused_) {  // late frames still get their answer
      paused_ = false;
      read();
    }
    if (in_flight_ == 0) say_goodbye();
  }

  // Every request taken in is answered: Close(Shutdown), then frames the edge sent before it saw the Close
  // are answered Shutdown until it hangs up, or until the linger deadline.
  void say_goodbye() {
    if (closing_) return;
    closing_ = true;
    send(wire::encode(wire::Close{wire::Status::shutdown, drain_reason_}));
    if (peer_closed_) return shutdown();
    timer_.expires_after(options_.write_timeout);
    timer_.async_wait([self = this->shared_from_this()](error_code ec) {
      if (!ec) self->shutdown();
    });
  }

  // A protocol error: Close with the reason, hang up once it is written.
  void finish(wire::Status status, const std::string& reason) {
    if (closing_) return channel_->close();
    closing_ = true;
    draining_ = true;
    const auto frame = wire::encode(wire::Close{status, reason}).shared();
    auto hang_up = [self = this->shared_from_this()](error_code) { self->shutdown(); };
    if (channel_->send(frame, hang_up)) channel_->close();
  }

  void shutdown() {
    if (shut_) return;
    shut_ = true;
    if constexpr (net::kIsTls<Stream>) {
      timer_.expires_after(options_.write_timeout);
      timer_.async_wait([self = this->shared_from_this()](error_code ec) {
        if (!ec) self->channel_->close();
      });
      channel_->stream().async_shutdown([self = this->shared_from_this()](error_code) {
        self->timer_.cancel();
        self->channel_->close();
      });
    } else {
      error_code ignored;
      channel_->stream().shutdown(tcp::socket::shutdown_send, ignored);
      channel_->close();
    }
  }

  std::shared_ptr<const ServerContext> context_;
  const ServerOptions& options_;
  wire::Limits limits_ = context_->limits;
  std::string peer_, edge_ = "-";
  std::optional<net::FrameChannel<Stream>> channel_;  // set in the constructor, which picks the stream
  asio::steady_timer timer_;                          // the handshake's, then the TLS shutdown's deadline
  asio::steady_timer age_timer_;                      // max connection age
  int in_flight_ = 0;
  bool counted_ = false, handshake_timed_out_ = false, hello_done_ = false, paused_ = false;
  bool draining_ = false, closing_ = false, peer_closed_ = false, shut_ = false;
  std::string drain_reason_;
};

}  // namespace

Server::Server(asio::io_context& io, std::shared_ptr<const ServerContext> context)
    : io_(io), context_(std::move(context)), acceptor_(io) {
  const tcp::endpoint& ep = context_->options.listen;
  acceptor_.open(ep.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  error_code ec;
  acceptor_.bind(ep, ec);
  if (ec)
    throw boost::system::system_error(
        ec, "cannot listen on " + ep.address().to_string() + ":" + std::to_string(ep.port()));
  acceptor_.listen(asio::socket_base::max_listen_connections);
  local_ = acceptor_.local_endpoint();
}

void Server::start() {
  accept();
}

void Server::accept() {
  acceptor_.async_accept(asio::make_strand(io_),
                         [this](error_code ec, tcp::socket socket) { on_accept(ec, std::move(socket)); });
}

void Server::on_accept(error_code ec, tcp::socket socket) {
  if (ec == asio::error::operation_aborted) return;
  if (!ec) {
    std::lock_guard lock(mutex_);
    sessions_.remove_if([](const std::weak_ptr<SessionBase>& w) { return w.expired(); });
    if (draining_ || static_cast<int>(sessions_.size()) >= context_->options.max_connections) {
      spdlog::warn("refusing a connection: {}", draining_ ? "draining" : "at --max-connections");
      error_code ignored;
      socket.close(ignored);
    } else {
      socket.set_option(tcp::no_delay(true), ec);
      if (context_->tls) {
        auto s = std::make_shared<Session<net::TlsSocket>>(context_, std::move(socket));
        sessions_.push_back(s);
        s->start();
      } else {
        auto s = std::make_shared<Session<tcp::socket>>(context_, std::move(socket));
        sessions_.push_back(s);
        s->start();
      }
    }
  }
  accept();
}

void Server::drain() {
  asio::post(acceptor_.get_executor(), [this] {
    error_code ignored;
    acceptor_.close(ignored);
  });
  std::lock_guard lock(mutex_);
  draining_ = true;
  for (auto& w : sessions_)
    if (auto s = w.lock()) s->drain();
}

int Server::sessions() {
  std::lock_guard lock(mutex_);
  sessions_.remove_if([](const std::weak_ptr<SessionBase>& w) { return w.expired(); });
  return static_cast<int>(sessions_.size());
}

}  // namespace ee::cloud
