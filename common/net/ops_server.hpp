#pragma once
// The operations port: plaintext HTTP/1.1 (Boost.Beast) with /livez, /readyz and /metrics, apart from the
// service port because Kubernetes probes and Prometheus scrapers cannot present client certificates.
//
//   GET /livez    200 while the process serves at all
//   GET /readyz   200 while the readiness flag is set, else 503 (set false on SIGTERM to drain)
//   GET /metrics  the registry's text exposition format, Content-Type metrics::kContentType
//   other paths 404, other methods 405 (with Allow: GET), a body over the limit 413 and close.
//
// One session per connection on its own strand, keep-alive, a deadline before every read and write. The
// server runs on the caller's io_context (any number of threads); stop() ends it and every session.
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <memory>

#include "common/metrics/metrics.hpp"

namespace ee::net {

class OpsServer {
 public:
  struct Options {
    // Longest a connection may take to send a request or receive a response, and the idle keep-alive limit.
    std::chrono::milliseconds timeout{std::chrono::seconds(10)};
    std::size_t body_limit = 1024;  // probes and scrapes send no body
  };

  // Binds and listens on `endpoint` (port 0: any free port, see local_endpoint()); throws
  // boost::system::system_error naming the endpoint if it cannot. Accepts nothing until start().
  // `registry` must outlive the io_context's handlers.
  OpsServer(boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& endpoint,
            const metrics::Registry& registry, Options options);
  OpsServer(boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& endpoint,
            const metrics::Registry& registry)
      : OpsServer(io, endpoint, registry, Options{}) {}
  ~OpsServer();  // stop()
  OpsServer(const OpsServer&) = delete;
  OpsServer& operator=(const OpsServer&) = delete;

  void start();
  // Closes the listener and every open connection; their handlers finish with operation_aborted, so a
  // run() with no other work returns. Idempotent; callable from any thread.
  void stop();

  boost::asio::ip::tcp::endpoint local_endpoint() const;
  void set_ready(bool ready) noexcept;
  bool ready() const noexcept;

  struct State;  // shared with the sessions, which may outlive this object until their handlers run

 private:
  std::shared_ptr<State> state_;
  boost::asio::ip::tcp::endpoint local_;
};

}  // namespace ee::net
