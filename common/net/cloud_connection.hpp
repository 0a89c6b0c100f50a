#pragma once
// The edge's side of one connection to a cloud worker (schemas/split_protocol.fbs): connect under a
// deadline, TLS with the server's certificate and name verified, the Hello exchange checked (version,
// model hash, precision and kernel), then pipelined Activations whose Results come back in any order,
// each request under its own deadline. Every callback runs on the connection's strand; every public call
// may come from any thread. The edge's pool and the load generator both drive the cloud through this.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/wire/codec.hpp"

namespace ee::net {

struct ConnectionOptions {
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(3)};  // resolve + TCP + TLS + Hellos
  std::chrono::milliseconds read_timeout{std::chrono::minutes(5)};     // waiting for a frame to its last byte
  std::chrono::milliseconds write_timeout{std::chrono::seconds(10)};
  int max_in_flight = 64;  // send() beyond it fails at once with frame_errc::queue_full
};

class CloudConnection {
 public:
  using Frame = std::shared_ptr<const std::vector<uint8_t>>;
  // ec set: the request got no Result (its deadline passed, the connection closed, the queue was full).
  using ResultHandler = std::function<void(boost::system::error_code ec, wire::Result result)>;
  // why: empty on success, else what failed (refused Hello with the cloud's reason, TLS, timeout, ...).
  using ConnectHandler = std::function<void(const std::string& why)>;
  using CloseHandler = std::function<void(const std::string& why)>;

  // tls null: plaintext (the worker's --insecure mode). `ours` is this side's Hello; `limits` checks what
  // the cloud sends.
  static std::shared_ptr<CloudConnection> create(boost::asio::any_io_executor executor,
                                                 boost::asio::ssl::context* tls, ConnectionOptions options,
                                                 wire::Hello ours, wire::Limits limits);
  virtual ~CloudConnection() = default;

  // Resolves host, connects, handshakes; `done` once. `on_close` is called once when a ready connection
  // ends (the cloud's Close reason, or the transport error); pending requests fail before it.
  virtual void connect(std::string host, std::string port, ConnectHandler done, CloseHandler on_close) = 0;
  // `activation` is an encoded Activation whose request_id is `request_id` (unique among those pending);
  // deadline zero: none. `done` is called exactly once.
  virtual void send(uint64_t request_id, Frame activation, std::chrono::microseconds deadline,
                    ResultHandler done) = 0;
  // Sends Close and hangs up after the requests in flight are answered (or fail).
  virtual void close() = 0;

  // Approximate when read from another thread (for least-in-flight choice).
  virtual int in_flight() const = 0;
  virtual bool ready() const = 0;
  // The frame limit both sides agreed on (valid once ready).
  virtual std::size_t max_frame() const = 0;
};

}  // namespace ee::net
