#pragma once
// The edge-facing service: accepts connections (mutual TLS, or plaintext behind --insecure), runs one
// session per connection and hands every decoded Activation to the Batcher. Sessions follow Boost.Beast's
// idiom: each on its own strand, handlers bound to shared_from_this(), a deadline before every async
// operation (the TLS handshake here, every read and write in the FrameChannel), one write in flight with a
// bounded queue, and reads paused while a connection has max_in_flight requests unanswered.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <optional>

#include "cloud/batcher.hpp"
#include "cloud/metrics.hpp"
#include "common/wire/codec.hpp"
#include "common/wire/handshake.hpp"

namespace ee::cloud {

struct ServerOptions {
  boost::asio::ip::tcp::endpoint listen;
  int max_connections = 256;  // more are closed at accept
  int max_in_flight = 64;     // unanswered requests per connection; reading pauses at the limit
  std::chrono::milliseconds handshake_timeout{std::chrono::seconds(5)};
  // From waiting for a frame to its last byte: an idle connection and one stalled mid-frame are both
  // closed after it.
  std::chrono::milliseconds read_timeout{std::chrono::minutes(5)};
  std::chrono::milliseconds write_timeout{std::chrono::seconds(10)};
  // A connection older than this drains and closes, so long-lived connections rebalance across replicas;
  // zero: never.
  std::chrono::milliseconds max_connection_age{0};
  std::size_t max_frame_bytes = wire::kDefaultMaxFrameBytes;
};

// What every session shares; outlives them (the sessions hold a shared_ptr).
struct ServerContext {
  ServerOptions options;
  wire::Hello hello;  // ours
  wire::Limits limits;
  Batcher& batcher;
  Metrics& metrics;
  boost::asio::ssl::context* tls = nullptr;  // null: plaintext (--insecure)
};

class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // Stop taking requests, answer those in flight, send Close(Shutdown) and hang up. Any thread.
  virtual void drain() = 0;
};

class Server {
 public:
  // Binds and listens; throws boost::system::system_error naming the endpoint.
  Server(boost::asio::io_context& io, std::shared_ptr<const ServerContext> context);
  void start();
  // Stops accepting and drains every session. Any thread.
  void drain();
  // Sessions still open.
  int sessions();
  boost::asio::ip::tcp::endpoint local_endpoint() const { return local_; }

 private:
  void accept();
  void on_accept(boost::system::error_code ec, boost::asio::ip::tcp::socket socket);

  boost::asio::io_context& io_;
  std::shared_ptr<const ServerContext> context_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::ip::tcp::endpoint local_;
  std::mutex mutex_;
  std::list<std::weak_ptr<SessionBase>> sessions_;
  bool draining_ = false;
};

}  // namespace ee::cloud
