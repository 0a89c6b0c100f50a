#pragma once
// HttpServer: the edge's KServe v2 HTTP/1.1 front end (Boost.Beast, plaintext: the API is local). It owns
// its io_context and threads; each connection is a session on its own strand, one request at a time
// (keep-alive, no pipelining). Routes:
//   GET  /v2                                       server metadata
//   GET  /v2/health/live, /v2/health/ready         200, or 400 (the protocol's "false") when not ready
//   GET  /v2/models/{m}[/versions/{v}]             model metadata
//   GET  /v2/models/{m}[/versions/{v}]/ready       200 or 400
//   POST /v2/models/{m}[/versions/{v}]/infer       parsed here, answered by the daemon's InferHandler
//   GET  /metrics                                  the MetricsHandler's text (404 without one)
// Anything else is 404, a known route with another method 405; errors carry {"error": "..."}. A body over
// the limit is 413; an infer request beyond the in-flight bound, or before set_ready(true), is 503 with
// Retry-After, answered at once.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "edge/kserve.hpp"

namespace ee::edge {

struct ServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 8000;  // 0: a free port, see HttpServer::port()
  int threads = 1;
  std::size_t max_body_bytes = 8u << 20;  // larger bodies are answered 413
  std::size_t max_in_flight = 256;  // infer requests handed to the handler and not yet answered; beyond: 503
  std::chrono::seconds retry_after{1};             // the 503's Retry-After
  std::chrono::milliseconds io_timeout{30000};     // each read and write, keep-alive waits included
  std::chrono::milliseconds drain_timeout{10000};  // how long stop() waits for requests in flight
  std::string server_name = "ee-edge";             // GET /v2
  std::string server_version = "0.1.0";
};

// The answer to one infer request: a result, or an error to answer with its status (503 gets Retry-After).
using InferOutcome = std::variant<InferResult, HttpError>;
// Answers one infer request. Call it once, from any thread; later calls are ignored. If every copy is
// destroyed without a call, the client gets a 500. Calls after the server is destroyed do nothing.
using InferCallback = std::function<void(InferOutcome)>;
// Runs on a server thread, so it must not block: hand the request on and return. Throwing HttpError (or
// any exception: 500) answers the request unless the callback was already called.
using InferHandler = std::function<void(InferRequest, InferCallback)>;
using MetricsHandler = std::function<std::string()>;

struct ServerStats {
  uint64_t connections = 0;  // accepted
  uint64_t requests = 0;     // responses written, by class below
  uint64_t responses_2xx = 0, responses_4xx = 0, responses_5xx = 0;
  uint64_t rejected_busy = 0;  // 503s for the in-flight bound
};

class HttpServer {
 public:
  // One entry of `models` per name served; the handler sees the name in request.format.model_name.
  HttpServer(ServerOptions options, std::vector<ModelDescription> models, InferHandler infer,
             MetricsHandler metrics = {});
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts the threads; throws std::runtime_error naming the address when it cannot listen.
  void start();
  uint16_t port() const;  // the bound port (after start)

  // Not ready until set: readiness says 400, infer says 503.
  void set_ready(bool ready);
  bool ready() const;

  // Graceful: stops accepting, closes idle connections, lets requests in flight be answered (up to
  // drain_timeout), then closes everything and joins the threads. Idempotent; not from a server thread.
  void stop();

  std::size_t in_flight() const;
  ServerStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ee::edge
