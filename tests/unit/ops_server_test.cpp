// ee::net::OpsServer: the operations endpoints answered to a Beast client over loopback, keep-alive, the
// limits, and a clean stop with connections still open. The server's io_context runs on its own thread;
// every client call has a deadline.
#include "common/net/ops_server.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <future>
#include <thread>

namespace ee::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using ::testing::HasSubstr;

constexpr auto kBound = std::chrono::seconds(10);

// The server on 127.0.0.1 (any free port) with its io_context on a thread.
struct Running {
  metrics::Registry registry;
  asio::io_context io;
  std::optional<OpsServer> server;
  std::future<void> thread;

  explicit Running(OpsServer::Options options = {}) {
    registry.counter("ee_requests_total", "Requests.").inc(7);
    server.emplace(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0), registry, options);
    server->start();
    thread = std::async(std::launch::async, [this] { io.run(); });
  }
  ~Running() {
    server->stop();
    if (thread.wait_for(kBound) != std::future_status::ready) std::abort();  // a hung stop must not hang CI
  }
};

// A keep-alive client connection.
struct Client {
  asio::io_context io;
  beast::tcp_stream stream{io};
  beast::flat_buffer buffer;

  explicit Client(const tcp::endpoint& endpoint) {
    stream.expires_after(kBound);
    stream.connect(endpoint);
  }

  http::response<http::string_body> request(http::verb method, std::string target, std::string body = {},
                                            bool keep_alive = true) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "localhost");
    req.keep_alive(keep_alive);
    if (!body.empty()) req.body() = std::move(body);
    req.prepare_payload();
    stream.expires_after(kBound);
    http::write(stream, req);
    http::response_parser<http::string_body> parser;
    parser.skip(method == http::verb::head);  // a response to HEAD has headers only
    http::read(stream, buffer, parser);
    return parser.release();
  }

  // True once the server has closed the connection (a read ends with EOF rather than the client's deadline).
  bool closed_by_server() {
    stream.expires_after(kBound);
    char byte;
    beast::error_code ec;
    stream.read_some(asio::buffer(&byte, 1), ec);
    return ec == asio::error::eof;
  }
};

TEST(OpsServer, LivenessReadinessAndMetricsOnOneKeepAliveConnection) {
  Running ops;
  Client c(ops.server->local_endpoint());

  auto live = c.request(http::verb::get, "/livez");
  EXPECT_EQ(live.result(), http::status::ok);
  EXPECT_TRUE(live.keep_alive());

  EXPECT_FALSE(ops.server->ready());
  EXPECT_EQ(c.request(http::verb::get, "/readyz").result(), http::status::service_unavailable);
  ops.server->set_ready(true);
  EXPECT_EQ(c.request(http::verb::get, "/readyz").result(), http::status::ok);
  ops.server->set_ready(false);  // draining
  EXPECT_EQ(c.request(http::verb::get, "/readyz").result(), http::status::service_unavailable);

  auto m = c.request(http::verb::get, "/metrics");
  EXPECT_EQ(m.result(), http::status::ok);
  EXPECT_EQ(m[http::field::content_type], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(m.body(), ops.registry.render());
  EXPECT_THAT(m.body(), HasSubstr("ee_requests_total 7\n"));

  // Updates show in the next scrape; a query string is ignored.
  ops.registry.gauge("ee_ready", "").set(1);
  EXPECT_THAT(c.request(http::verb::get, "/metrics?name[]=x").body(), HasSubstr("ee_ready 1\n"));
}

TEST(OpsServer, UnknownPathIs404AndOtherMethods405) {
  Running ops;
  Client c(ops.server->local_endpoint());
  EXPECT_EQ(c.request(http::verb::get, "/").result(), http::status::not_found);
  EXPECT_EQ(c.request(http::verb::get, "/metrics/x").result(), http::status::not_found);
  EXPECT_EQ(c.request(http::verb::post, "/nowhere", "x").result(), http::status::not_found);
  for (auto verb : {http::verb::post, http::verb::put, http::verb::delete_, http::verb::head}) {
    auto res = c.request(verb, "/metrics", verb == http::verb::post ? "x" : "");
    EXPECT_EQ(res.result(), http::status::method_not_allowed) << verb;
    EXPECT_EQ(res[http::field::allow], "GET");
  }
  EXPECT_EQ(c.request(http::verb::get, "/livez").result(), http::status::ok);  // the connection still serves
}

TEST(OpsServer, BodyOverTheLimitIs413AndCloses) {
  Running ops(OpsServer::Options{.timeout = kBound, .body_limit = 16});
  Client c(ops.server->local_endpoint());
  EXPECT_EQ(c.request(http::verb::post, "/livez", std::string(16, 'x')).result(),
            http::status::method_not_allowed);
  auto res = c.request(http::verb::post, "/livez", std::string(17, 'x'));
  EXPECT_EQ(res.result(), http::status::payload_too_large);
  EXPECT_FALSE(res.keep_alive());
  EXPECT_TRUE(c.closed_by_server());
  Client other(ops.server->local_endpoint());
  EXPECT_EQ(other.request(http::verb::get, "/livez").result(), http::status::ok);
}

TEST(OpsServer, MalformedRequestIs400AndCloses) {
  Running ops;
  Client c(ops.server->local_endpoint());
  asio::write(c.stream, asio::buffer(std::string("GARBAGE\r\n\r\n")));
  http::response<http::string_body> res;
  http::read(c.stream, c.buffer, res);
  EXPECT_EQ(res.result(), http::status::bad_request);
  EXPECT_TRUE(c.closed_by_server());
}

TEST(OpsServer, ConnectionCloseIsHonoured) {
  Running ops;
  Client c(ops.server->local_endpoint());
  auto res = c.request(http::verb::get, "/livez", {}, false);
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_FALSE(res.keep_alive());
  EXPECT_TRUE(c.closed_by_server());
}

TEST(OpsServer, IdleConnectionIsClosedAfterTheTimeout) {
  Running ops(OpsServer::Options{.timeout = std::chrono::milliseconds(200), .body_limit = 1024});
  Client c(ops.server->local_endpoint());
  EXPECT_EQ(c.request(http::verb::get, "/livez").result(), http::status::ok);
  EXPECT_TRUE(c.closed_by_server());  // well before the client's own deadline
}

TEST(OpsServer, StopClosesOpenConnectionsAndRunReturns) {
  auto ops = std::make_unique<Running>();
  Client idle(ops->server->local_endpoint());
  Client busy(ops->server->local_endpoint());
  EXPECT_EQ(busy.request(http::verb::get, "/livez").result(), http::status::ok);
  const auto endpoint = ops->server->local_endpoint();
  ops->server->stop();
  // run() returns by itself: no handler or socket is left behind.
  ASSERT_EQ(ops->thread.wait_for(kBound), std::future_status::ready);
  EXPECT_TRUE(busy.closed_by_server());
  EXPECT_TRUE(idle.closed_by_server());
  ops.reset();
  // The port is free again.
  asio::io_context io;
  metrics::Registry registry;
  EXPECT_NO_THROW({ OpsServer again(io, endpoint, registry); });
}

TEST(OpsServer, RefusesAnEndpointInUseNamingIt) {
  Running ops;
  asio::io_context io;
  metrics::Registry registry;
  const auto endpoint = ops.server->local_endpoint();
  try {
    OpsServer second(io, endpoint, registry);
    FAIL() << "bound twice";
  } catch (const boost::system::system_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("127.0.0.1:" + std::to_string(endpoint.port())));
  }
}

}  // namespace
}  // namespace ee::net
