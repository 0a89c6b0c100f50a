#include "edge/http_server.hpp"

#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <unordered_map>

namespace ee::edge {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using beast::error_code;

class Session;

// Beast (as of Boost 1.74) speaks boost::string_view.
std::string_view std_view(beast::string_view s) {
  return {s.data(), s.size()};
}
beast::string_view beast_view(std::string_view s) {
  return {s.data(), s.size()};
}

// What the listener, the sessions and the callbacks the handler holds share. The callbacks may outlive
// the server: they reach a session only through `awaiting`, under the mutex, while `stopped` is false.
struct Core {
  ServerOptions options;
  std::vector<ModelDescription> models;
  InferHandler infer;
  MetricsHandler metrics;
  std::atomic<bool> ready{false};
  // Set by stop() before it tells any session: from then on every response closes its connection.
  std::atomic<bool> draining{false};
  std::atomic<std::size_t> in_flight{0};
  std::atomic<uint64_t> connections{0}, responses_2xx{0}, responses_4xx{0}, responses_5xx{0},
      rejected_busy{0};

  std::mutex mutex;
  std::condition_variable all_closed;
  bool accepting = true;
  bool stopped = false;
  uint64_t next_session = 0;
  std::unordered_map<uint64_t, std::weak_ptr<Session>> sessions;
  // Sessions waiting for the handler's answer, kept alive here rather than by the callback, so that the
  // server can destroy them (and their sockets) before its io_context.
  std::unordered_map<uint64_t, std::shared_ptr<Session>> awaiting;

  const ModelDescription* find(std::string_view name) const {
    for (const ModelDescription& m : models)
      if (m.name == name) return &m;
    return nullptr;
  }
};

// One infer request's answer, shared by the copies of its callback.
class Pending {
 public:
  Pending(std::shared_ptr<Core> core, uint64_t session) : core_(std::move(core)), session_(session) {}
  ~Pending() {
    try {
      complete(HttpError(500, "the inference handler dropped the request without answering"));
    } catch (...) {
    }
  }
  void complete(InferOutcome outcome);

 private:
  std::shared_ptr<Core> core_;
  uint64_t session_;
  std::atomic<bool> done_{false};
};

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> parts;
  std::size_t start = 1;
  while (start <= path.size()) {
    const std::size_t end = std::min(path.find('/', start), path.size());
    parts.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<Core> core, uint64_t id)
      : stream_(std::move(socket)), core_(std::move(core)), id_(id) {}

  ~Session() {
    std::lock_guard lock(core_->mutex);
    core_->sessions.erase(id_);
    if (core_->sessions.empty()) core_->all_closed.notify_all();
  }

  auto executor() { return stream_.get_executor(); }

  void start() {
    asio::dispatch(executor(), [self = shared_from_this()] { self->read_header(); });
  }

  // From stop(): idle connections close now, a request in flight is answered first.
  void shut_down() {
    if (state_ == State::reading || state_ == State::lingering) stream_.cancel();
  }

  // On the strand, or from stop() once no thread runs the io_context.
  void close() {
    state_ = State::closed;
    error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  // The handler's answer, on the session's strand.
  void finish(InferOutcome outcome) {
    if (auto* error = std::get_if<HttpError>(&outcome)) return fail(error->status(), error->what());
    EncodedBody encoded;
    try {
      encoded = encode_infer_response(*model_, format_, std::get<InferResult>(outcome));
    } catch (const std::exception& e) {
      return fail(500, std::string("cannot encode the result: ") + e.what());
    }
    prepare(200, std::move(encoded.body),
            encoded.json_length ? "application/octet-stream" : "application/json");
    if (encoded.json_length)
      res_.set("Inference-Header-Content-Length", std::to_string(*encoded.json_length));
    write();
  }

 private:
  enum class State { reading, handling, writing, lingering, closed };

  void read_header() {
    if (core_->draining) return close();
    state_ = State::reading;
    parser_.emplace();
    parser_->body_limit(core_->options.max_body_bytes);
    stream_.expires_after(core_->options.io_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::on_header, shared_from_this()));
  }

  void on_header(error_code ec, std::size_t) {
    if (ec) return on_read_error(ec);
    // curl sends Expect: 100-continue for larger bodies and waits a second for the go-ahead.
    if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      continue_ = {http::status::continue_, parser_->get().version()};
      stream_.expires_after(core_->options.io_timeout);
      http::async_write(stream_, continue_, [self = shared_from_this()](error_code ec, std::size_t) {
        if (ec) return self->close();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    stream_.expires_after(core_->options.io_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::on_body, shared_from_this()));
  }

  void on_body(error_code ec, std::size_t) {
    if (ec) return on_read_error(ec);
    req_ = parser_->release();
    parser_.reset();
    keep_alive_ = req_.keep_alive();
    version_ = req_.version();
    try {
      route();
    } catch (const std::exception& e) {
      // From the metrics callback, say: answer it rather than let it end the server's thread.
      fail(500, std::string("internal error: ") + e.what());
    }
  }

  void on_read_error(error_code ec) {
    keep_alive_ = false;
    if (ec == http::error::body_limit)
      return fail(413, "the request body exceeds the limit of " +
                           std::to_string(core_->options.max_body_bytes) + " bytes");
    if (ec == http::error::header_limit) return fail(431, "the request's header is too large");
    if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::operation_aborted ||
        ec == beast::error::timeout || ec == asio::error::connection_reset || !parser_ ||
        !parser_->got_some())
      return close();
    fail(400, "malformed HTTP request: " + ec.message());
  }

  void route() {
    const std::string_view target = std_view(req_.target());
    const std::string_view path = target.substr(0, target.find('?'));
    const http::verb method = req_.method();
    const auto allow = [&](http::verb wanted) {
      if (method == wanted) return true;
      prepare(405,
              encode_error("method " + std::string(req_.method_string()) + " is not allowed on " +
                           std::string(path) + "; use " + std::string(http::to_string(wanted))),
              "application/json");
      res_.set(http::field::allow, http::to_string(wanted));
      write();
      return false;
    };
    if (path == "/metrics") {
      if (!allow(http::verb::get)) return;
      if (!core_->metrics) return fail(404, "this server has no metrics");
      return reply(200, core_->metrics(), "text/plain; version=0.0.4");
    }
    const std::vector<std::string_view> parts = split_path(path);
    const std::size_t n = parts.size();
    if (n == 0 || path.front() != '/' || parts[0] != "v2") return unknown_route(path);
    if (n == 1) {
      if (!allow(http::verb::get)) return;
      return reply(200, encode_server_metadata(core_->options.server_name, core_->options.server_version),
                   "application/json");
    }
    if (n == 3 && parts[1] == "health" && (parts[2] == "live" || parts[2] == "ready")) {
      if (!allow(http::verb::get)) return;
      return reply(parts[2] == "live" || core_->ready ? 200 : 400, "", "");
    }
    if (n < 3 || parts[1] != "models") return unknown_route(path);
    // /v2/models/{m}[/versions/{v}][/ready | /infer]
    std::size_t at = 3;
    std::optional<std::string_view> version;
    if (n >= 5 && parts[3] == "versions") {
      version = parts[4];
      at = 5;
    }
    const std::string_view action = at < n ? parts[at] : "";
    if (at + 1 < n || (at < n && action != "ready" && action != "infer")) return unknown_route(path);
    if (!allow(action == "infer" ? http::verb::post : http::verb::get)) return;
    const ModelDescription* model = core_->find(parts[2]);
    if (!model) return fail(404, "unknown model '" + std::string(parts[2]) + "'");
    if (version && *version != model->version)
      return fail(404, "model '" + model->name + "' has no version '" + std::string(*version) + "'");
    if (action.empty()) return reply(200, encode_model_metadata(*model), "application/json");
    if (action == "ready") return reply(core_->ready ? 200 : 400, "", "");
    infer(*model);
  }

  void unknown_route(std::string_view path) {
    fail(404, "unknown route " + std::string(req_.method_string()) + " " + std::string(path));
  }

  void infer(const ModelDescription& model) {
    if (!core_->ready) return fail(503, "the server is not ready");
    if (core_->in_flight.fetch_add(1) >= core_->options.max_in_flight) {
      core_->in_flight.fetch_sub(1);
      ++core_->rejected_busy;
      return fail(503, "too many requests in flight (" + std::to_string(core_->options.max_in_flight) +
                           "); retry later");
    }
    InferRequest request;
    try {
      std::optional<std::size_t> json_length;
      if (const auto h = req_.find("Inference-Header-Content-Length"); h != req_.end())
        json_length = parse_json_length(std_view(h->value()));
      request = parse_infer_request(model, req_.body(), json_length);
    } catch (const HttpError& e) {
      core_->in_flight.fetch_sub(1);
      return fail(e.status(), e.what());
    }
    req_ = {};  // the body is parsed; free it while the request runs
    model_ = &model;
    format_ = request.format;
    state_ = State::handling;
    auto pending = std::make_shared<Pending>(core_, id_);
    {
      std::lock_guard lock(core_->mutex);
      core_->awaiting[id_] = shared_from_this();
    }
    try {
      core_->infer(std::move(request),
                   [pending](InferOutcome outcome) { pending->complete(std::move(outcome)); });
    } catch (const HttpError& e) {
      pending->complete(e);
    } catch (const std::exception& e) {
      pending->complete(HttpError(500, std::string("inference failed: ") + e.what()));
    }
  }

  void prepare(unsigned status, std::string body, std::string_view content_type) {
    res_ = {};
    res_.version(version_);
    res_.result(status);
    res_.set(http::field::server, core_->options.server_name);
    if (!content_type.empty()) res_.set(http::field::content_type, beast_view(content_type));
    res_.body() = std::move(body);
    res_.keep_alive(keep_alive_ && !core_->draining);
    res_.prepare_payload();
  }

  void reply(unsigned status, std::string body, std::string_view content_type) {
    prepare(status, std::move(body), content_type);
    write();
  }

  void fail(unsigned status, std::string_view message) {
    prepare(status, encode_error(message), "application/json");
    if (status == 503) res_.set(http::field::retry_after, std::to_string(core_->options.retry_after.count()));
    write();
  }

  void write() {
    state_ = State::writing;
    const unsigned status = res_.result_int();
    ++(status < 400 ? core_->responses_2xx : status < 500 ? core_->responses_4xx : core_->responses_5xx);
    stream_.expires_after(core_->options.io_timeout);
    http::async_write(stream_, res_, beast::bind_front_handler(&Session::on_write, shared_from_this()));
  }

  void on_write(error_code ec, std::size_t) {
    if (ec) return close();
    if (!res_.keep_alive()) return linger();
    read_header();
  }

  // Closing a socket with unread input makes the kernel send a reset, which can destroy the response the
  // client has not read yet (a 413's body, say); so: shut down sending, read until the client closes.
  void linger() {
    state_ = State::lingering;
    error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return close();
    stream_.expires_after(
        std::min<std::chrono::milliseconds>(core_->options.io_timeout, std::chrono::seconds(2)));
    stream_.async_read_some(asio::buffer(scratch_), [self = shared_from_this()](error_code ec, std::size_t) {
      if (ec || self->core_->draining) return self->close();
      self->linger();
    });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
  http::response<http::empty_body> continue_;
  std::array<char, 4096> scratch_;
  std::shared_ptr<Core> core_;
  uint64_t id_;
  State state_ = State::reading;
  bool keep_alive_ = false;
  unsigned version_ = 11;
  const ModelDescription* model_ = nullptr;
  ResponseFormat format_;  // of the infer request in flight
};

void Pending::complete(InferOutcome outcome) {
  if (done_.exchange(true)) return;
  core_->in_flight.fetch_sub(1);
  std::lock_guard lock(core_->mutex);
  if (core_->stopped) return;
  const auto it = core_->awaiting.find(session_);
  if (it == core_->awaiting.end()) return;
  std::shared_ptr<Session> session = std::move(it->second);
  core_->awaiting.erase(it);
  auto executor = session->executor();
  asio::post(executor, [session = std::move(session), outcome = std::move(outcome)]() mutable {
    session->finish(std::move(outcome));
  });
}

}  // namespace

struct HttpServer::Impl {
  std::shared_ptr<Core> core = std::make_shared<Core>();
  asio::io_context ioc;
  tcp::acceptor acceptor{asio::make_strand(ioc)};
  asio::steady_timer retry{acceptor.get_executor()};
  // Keeps the threads running while a session waits for the handler with no operation pending.
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  uint16_t port = 0;
  bool started = false;
  std::once_flag stopped;

  void accept() {
    acceptor.async_accept(asio::make_strand(ioc), [this](error_code ec, tcp::socket socket) {
      if (!acceptor.is_open()) return;
      if (ec) {
        // Out of descriptors, say: try again shortly rather than spin.
        retry.expires_after(std::chrono::milliseconds(100));
        retry.async_wait([this](error_code) { accept(); });
        return;
      }
      std::shared_ptr<Session> session;
      {
        std::lock_guard lock(core->mutex);
        if (core->accepting) {
          const uint64_t id = core->next_session++;
          session = std::make_shared<Session>(std::move(socket), core, id);
          core->sessions[id] = session;
        }
      }
      if (session) {
        ++core->connections;
        session->start();
      }
      accept();
    });
  }

  void stop() {
    std::vector<std::shared_ptr<Session>> open;
    {
      std::lock_guard lock(core->mutex);
      core->accepting = false;
      core->draining = true;
      for (auto& [id, weak] : core->sessions)
        if (auto s = weak.lock()) open.push_back(std::move(s));
    }
    asio::post(acceptor.get_executor(), [this] {
      error_code ec;
      acceptor.close(ec);
      retry.cancel();
    });
    for (auto& s : open) asio::post(s->executor(), [s] { s->shut_down(); });
    open.clear();
    std::vector<std::shared_ptr<Session>> orphans;
    {
      std::unique_lock lock(core->mutex);
      if (started)
        core->all_closed.wait_for(lock, core->options.drain_timeout, [&] { return core->sessions.empty(); });
      core->stopped = true;
      for (auto& [id, s] : core->awaiting) orphans.push_back(std::move(s));
      core->awaiting.clear();
    }
    work.reset();
    ioc.stop();
    for (std::thread& t : threads) t.join();
    threads.clear();
    // No thread runs the io_context now, so what is still open can be closed from here.
    {
      std::lock_guard lock(core->mutex);
      for (auto& [id, weak] : core->sessions)
        if (auto s = weak.lock()) open.push_back(std::move(s));
    }
    for (auto& s : open) s->close();
    open.clear();
    // Destroyed here, before the io_context their sockets belong to.
    orphans.clear();
  }
};

HttpServer::HttpServer(ServerOptions options, std::vector<ModelDescription> models, InferHandler infer,
                       MetricsHandler metrics)
    : impl_(std::make_unique<Impl>()) {
  if (options.threads < 1) throw std::invalid_argument("ServerOptions.threads must be at least 1");
  if (!infer) throw std::invalid_argument("HttpServer needs an infer handler");
  for (std::size_t i = 0; i < models.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (models[i].name == models[j].name)
        throw std::invalid_argument("HttpServer: model '" + models[i].name + "' is listed twice");
  impl_->core->options = std::move(options);
  impl_->core->models = std::move(models);
  impl_->core->infer = std::move(infer);
  impl_->core->metrics = std::move(metrics);
}

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::start() {
  const ServerOptions& o = impl_->core->options;
  if (impl_->started) throw std::logic_error("HttpServer::start called twice");
  try {
    const tcp::endpoint endpoint(asio::ip::make_address(o.address), o.port);
    tcp::acceptor& acceptor = impl_->acceptor;
    acceptor.open(endpoint.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen(asio::socket_base::max_listen_connections);
    impl_->port = acceptor.local_endpoint().port();
  } catch (const boost::system::system_error& e) {
    throw std::runtime_error("cannot listen on " + o.address + ":" + std::to_string(o.port) + ": " +
                             e.code().message());
  }
  impl_->started = true;
  impl_->work.emplace(impl_->ioc.get_executor());
  impl_->accept();
  for (int i = 0; i < o.threads; ++i) impl_->threads.emplace_back([this] { impl_->ioc.run(); });
}

uint16_t HttpServer::port() const {
  return impl_->port;
}

void HttpServer::set_ready(bool ready) {
  impl_->core->ready = ready;
}
bool HttpServer::ready() const {
  return impl_->core->ready;
}

void HttpServer::stop() {
  std::call_once(impl_->stopped, [this] { impl_->stop(); });
}

std::size_t HttpServer::in_flight() const {
  return impl_->core->in_flight;
}

ServerStats HttpServer::stats() const {
  const Core& c = *impl_->core;
  ServerStats s;
  s.connections = c.connections;
  s.responses_2xx = c.responses_2xx;
  s.responses_4xx = c.responses_4xx;
  s.responses_5xx = c.responses_5xx;
  s.requests = s.responses_2xx + s.responses_4xx + s.responses_5xx;
  s.rejected_busy = c.rejected_busy;
  return s;
}

}  // namespace ee::edge
