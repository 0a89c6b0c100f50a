#include "common/net/ops_server.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace ee::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr std::string_view kPlainText = "text/plain; charset=utf-8";
// A failed accept (e.g. out of file descriptors) is retried after this pause instead of spinning.
constexpr auto kAcceptRetry = std::chrono::milliseconds(100);

std::string describe(const tcp::endpoint& ep) {
  const std::string address = ep.address().to_string();
  return (ep.address().is_v6() ? "[" + address + "]" : address) + ":" + std::to_string(ep.port());
}

class Session;

}  // namespace

struct OpsServer::State {
  State(asio::io_context& context, const metrics::Registry& r, Options o)
      : io(context),
        registry(r),
        options(o),
        acceptor(asio::make_strand(context)),
        retry(acceptor.get_executor()) {}

  asio::io_context& io;
  const metrics::Registry& registry;
  const Options options;
  std::atomic<bool> ready{false};
  tcp::acceptor acceptor;  // and retry: used on the acceptor's strand only
  asio::steady_timer retry;

  std::mutex mutex;  // guards stopped and sessions
  bool stopped = false;
  std::vector<std::weak_ptr<Session>> sessions;
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, std::shared_ptr<OpsServer::State> state)
      : stream_(std::move(socket)), state_(std::move(state)) {}

  void start() {
    asio::dispatch(stream_.get_executor(), beast::bind_front_handler(&Session::do_read, shared_from_this()));
  }

  void close() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->stream_.close(); });
  }

 private:
  void do_read() {
    head_ = false;
    parser_.emplace();
    parser_->body_limit(state_->options.body_limit);
    stream_.expires_after(state_->options.timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    static const auto& parse_errors = make_error_code(http::error::end_of_stream).category();
    if (ec == http::error::end_of_stream) return shutdown();
    if (ec == http::error::body_limit)
      return respond(11, http::status::payload_too_large, "request body too large\n", kPlainText, false);
    // Anything else from the parser is a malformed request; a network error or the deadline ends the session.
    if (ec == http::error::partial_message) return;
    if (ec && ec.category() == parse_errors)
      return respond(11, http::status::bad_request, "bad request: " + ec.message() + "\n", kPlainText, false);
    if (ec) return;
    handle(parser_->get());
  }

  void handle(const http::request<http::string_body>& req) {
    std::string_view target(req.target().data(), req.target().size());
    target = target.substr(0, target.find('?'));
    const unsigned version = req.version();
    const bool keep_alive = req.keep_alive();
    head_ = req.method() == http::verb::head;
    if (target != "/livez" && target != "/readyz" && target != "/metrics")
      return respond(version, http::status::not_found, "not found\n", kPlainText, keep_alive);
    if (req.method() != http::verb::get)
      return respond(version, http::status::method_not_allowed, "only GET is allowed\n", kPlainText,
                     keep_alive);
    if (target == "/livez") return respond(version, http::status::ok, "ok\n", kPlainText, keep_alive);
    if (target == "/readyz") {
      if (state_->ready.load(std::memory_order_relaxed))
        return respond(version, http::status::ok, "ready\n", kPlainText, keep_alive);
      return respond(version, http::status::service_unavailable, "not ready\n", kPlainText, keep_alive);
    }
    respond(version, http::status::ok, state_->registry.render(), metrics::kContentType, keep_alive);
  }

  void respond(unsigned version, http::status status, std::string body, std::string_view content_type,
               bool keep_alive) {
    response_ = {};
    response_.version(version);
    response_.result(status);
    response_.set(http::field::content_type, beast::string_view(content_type.data(), content_type.size()));
    if (status == http::status::method_not_allowed) response_.set(http::field::allow, "GET");
    response_.keep_alive(keep_alive);
    response_.body() = std::move(body);
    response_.prepare_payload();
    if (head_) response_.body().clear();  // a response to HEAD describes the body it would have had
    stream_.expires_after(state_->options.timeout);
    http::async_write(stream_, response_,
                      beast::bind_front_handler(&Session::on_write, shared_from_this(), !keep_alive));
  }

  void on_write(bool close, beast::error_code ec, std::size_t) {
    if (ec) return;
    if (close) return shutdown();
    do_read();
  }

  void shutdown() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;  // fresh per request: the body limit resets
  http::response<http::string_body> response_;
  bool head_ = false;  // the request being answered is a HEAD
  std::shared_ptr<OpsServer::State> state_;
};

void do_accept(const std::shared_ptr<OpsServer::State>& state) {
  state->acceptor.async_accept(asio::make_strand(state->io),
                               [state](beast::error_code ec, tcp::socket socket) {
                                 if (ec == asio::error::operation_aborted || !state->acceptor.is_open())
                                   return;
                                 if (ec) {
                                   state->retry.expires_after(kAcceptRetry);
                                   state->retry.async_wait([state](beast::error_code wait_ec) {
                                     if (!wait_ec) do_accept(state);
                                   });
                                   return;
                                 }
                                 auto session = std::make_shared<Session>(std::move(socket), state);
                                 {
                                   std::lock_guard lock(state->mutex);
                                   if (state->stopped) return;
                                   std::erase_if(state->sessions, [](const auto& w) { return w.expired(); });
                                   state->sessions.push_back(session);
                                 }
                                 session->start();
                                 do_accept(state);
                               });
}

}  // namespace

OpsServer::OpsServer(asio::io_context& io, const tcp::endpoint& endpoint, const metrics::Registry& registry,
                     Options options)
    : state_(std::make_shared<State>(io, registry, options)) {
  auto fail = [&](beast::error_code ec, const char* what) {
    throw boost::system::system_error(ec,
                                      "ops server: cannot " + std::string(what) + " " + describe(endpoint));
  };
  beast::error_code ec;
  tcp::acceptor& acceptor = state_->acceptor;
  if (acceptor.open(endpoint.protocol(), ec); ec) fail(ec, "open a socket for");
  if (acceptor.set_option(asio::socket_base::reuse_address(true), ec); ec) fail(ec, "set SO_REUSEADDR on");
  if (acceptor.bind(endpoint, ec); ec) fail(ec, "bind");
  if (acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) fail(ec, "listen on");
  local_ = acceptor.local_endpoint();
}

OpsServer::~OpsServer() {
  stop();
}

void OpsServer::start() {
  asio::dispatch(state_->acceptor.get_executor(), [state = state_] {
    if (state->acceptor.is_open()) do_accept(state);
  });
}

void OpsServer::stop() {
  std::vector<std::shared_ptr<Session>> open;
  {
    std::lock_guard lock(state_->mutex);
    if (state_->stopped) return;
    state_->stopped = true;
    for (const auto& w : state_->sessions)
      if (auto s = w.lock()) open.push_back(std::move(s));
    state_->sessions.clear();
  }
  asio::dispatch(state_->acceptor.get_executor(), [state = state_] {
    beast::error_code ec;
    state->acceptor.close(ec);
    state->retry.cancel();
  });
  for (const auto& s : open) s->close();
}

tcp::endpoint OpsServer::local_endpoint() const {
  return local_;
}

void OpsServer::set_ready(bool ready) noexcept {
  state_->ready.store(ready, std::memory_order_relaxed);
}

bool OpsServer::ready() const noexcept {
  return state_->ready.load(std::memory_order_relaxed);
}

}  // namespace ee::net
