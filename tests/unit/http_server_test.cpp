// ee::edge::HttpServer: a real server on 127.0.0.1 (a free port) with a fake inference handler that
// answers from the pixels' sum, talked to by a Beast client. Every route, every refusal (404, 405, 413,
// 503 + Retry-After) followed by a good request, answers completed from other threads, handler failures,
// and a graceful stop with a request in flight. Every wait is bounded.
#include "edge/http_server.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <thread>

#include "tests/unit/edge_models.hpp"

namespace ee::edge {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using ee::testing::spam_text_model;
using ee::testing::tiny_image_model;
using nlohmann::json;
using ::testing::HasSubstr;

constexpr auto kBound = std::chrono::seconds(10);

// The fake model: a sample's label is its pixel sum (or text length) mod 2, edge_us carries the sum.
InferResult fake_answer(const InferRequest& request) {
  InferResult r;
  for (int b = 0; b < request.batch(); ++b) {
    float sum = 0;
    if (!request.pixels.empty()) {
      for (int i = 0; i < 4; ++i) sum += request.pixels[static_cast<std::size_t>(b * 4 + i)];
    } else {
      sum = static_cast<float>(request.texts[static_cast<std::size_t>(b)].size());
    }
    const int64_t label = static_cast<int64_t>(sum) % 2;
    r.samples.push_back(
        {label, {label ? 0.f : 1.f, label ? 1.f : 0.f}, b + 1, AnsweredBy::edge, 2, sum, 0, 0});
  }
  return r;
}

// Requests the test holds back and answers later, from its own thread.
struct Held {
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<std::pair<InferRequest, InferCallback>> items;

  void push(InferRequest r, InferCallback cb) {
    std::lock_guard lock(mutex);
    items.emplace_back(std::move(r), std::move(cb));
    cv.notify_all();
  }
  bool wait_for_count(std::size_t n) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, kBound, [&] { return items.size() >= n; });
  }
  std::pair<InferRequest, InferCallback> pop() {
    std::lock_guard lock(mutex);
    auto item = std::move(items.front());
    items.pop_front();
    return item;
  }
};

// A worker thread that answers every request it is handed, as the daemon's batch layer would.
class Worker {
 public:
  Worker() : thread_([this] { run(); }) {}
  ~Worker() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void push(InferRequest r, InferCallback cb) {
    {
      std::lock_guard lock(mutex_);
      queue_.emplace_back(std::move(r), std::move(cb));
    }
    cv_.notify_all();
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    while (true) {
      cv_.wait(lock, [&] { return done_ || !queue_.empty(); });
      if (queue_.empty()) return;
      auto [request, callback] = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      callback(fake_answer(request));
      lock.lock();
    }
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::pair<InferRequest, InferCallback>> queue_;
  bool done_ = false;
  std::thread thread_;
};

enum class Mode { inline_answer, worker, hold, error_503, throw_422, throw_runtime, drop, bad_result, twice };

struct Fixture {
  Mode mode = Mode::inline_answer;
  Held held;
  std::unique_ptr<Worker> worker = std::make_unique<Worker>();
  std::atomic<int> handler_threads_seen{0};
  std::unique_ptr<HttpServer> server;

  explicit Fixture(ServerOptions options = {}) {
    options.port = 0;
    options.threads = 2;
    server = std::make_unique<HttpServer>(
        options, std::vector<ModelDescription>{tiny_image_model(), spam_text_model()},
        [this](InferRequest request, InferCallback callback) {
          handle(std::move(request), std::move(callback));
        },
        [] { return std::string("# TYPE ee_requests_total counter\nee_requests_total 3\n"); });
    server->start();
    server->set_ready(true);
  }

  void handle(InferRequest request, InferCallback callback) {
    switch (mode) {
      case Mode::inline_answer:
        return callback(fake_answer(request));
      case Mode::worker:
        return worker->push(std::move(request), std::move(callback));
      case Mode::hold:
        return held.push(std::move(request), std::move(callback));
      case Mode::error_503:
        return callback(HttpError(503, "the cloud is overloaded"));
      case Mode::throw_422:
        throw HttpError(422, "this model cannot take that");
      case Mode::throw_runtime:
        throw std::runtime_error("the engine broke");
      case Mode::drop:
        return;
      case Mode::bad_result: {
        InferResult r = fake_answer(request);
        r.samples.pop_back();
        return callback(std::move(r));
      }
      case Mode::twice:
        callback(fake_answer(request));
        return callback(HttpError(500, "a second answer"));
    }
  }
};

using Response = http::response<http::string_body>;

// One keep-alive connection. Writes are synchronous (small, on loopback); reads are bounded.
class Client {
 public:
  explicit Client(uint16_t port) : stream_(io_) {
    stream_.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port));
  }

  void write(http::request<http::string_body> request) {
    request.set(http::field::host, "127.0.0.1");
    request.prepare_payload();
    http::write(stream_.socket(), request);
  }
  void write_raw(std::string_view bytes) {
    asio::write(stream_.socket(), asio::buffer(bytes.data(), bytes.size()));
  }

  Response read() {
    Response response;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64u << 20);
    beast::error_code result = asio::error::timed_out;
    http::async_read(stream_, buffer_, parser, [&](beast::error_code ec, std::size_t) { result = ec; });
    io_.restart();
    io_.run_for(kBound);
    if (result) throw beast::system_error(result, "read");
    return parser.release();
  }

  // True when the server has closed the connection (reading yields end of stream).
  bool closed_by_server() {
    Response ignored;
    beast::error_code result = asio::error::timed_out;
    http::async_read(stream_, buffer_, ignored, [&](beast::error_code ec, std::size_t) { result = ec; });
    io_.restart();
    io_.run_for(kBound);
    return result == http::error::end_of_stream || result == asio::error::eof ||
           result == asio::error::connection_reset;
  }

  Response send(http::request<http::string_body> request) {
    write(std::move(request));
    return read();
  }
  Response get(const std::string& target) { return send({http::verb::get, target, 11}); }
  Response post(const std::string& target, std::string body) {
    http::request<http::string_body> r{http::verb::post, target, 11};
    r.body() = std::move(body);
    return send(std::move(r));
  }

 private:
  asio::io_context io_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

std::string image_body(const std::vector<int>& pixels, const std::string& id = "") {
  json body = {{"inputs",
                {{{"name", "image"},
                  {"shape", {static_cast<int>(pixels.size() / 4), 4}},
                  {"datatype", "UINT8"},
                  {"data", pixels}}}}};
  if (!id.empty()) body["id"] = id;
  return body.dump();
}

std::string header(const Response& r, std::string_view name) {
  const auto it = r.find(beast::string_view(name.data(), name.size()));
  return it == r.end() ? "" : std::string(it->value());
}

// A good infer request on `client` is answered correctly.
void expect_good(Client& client, const std::string& id = "good") {
  const Response r = client.post("/v2/models/tiny/infer", image_body({1, 2, 3, 5}, id));
  ASSERT_EQ(r.result_int(), 200) << r.body();
  const json doc = json::parse(r.body());
  EXPECT_EQ(doc["id"], id);
  EXPECT_EQ(doc["outputs"][0]["name"], "label");
  EXPECT_EQ(doc["outputs"][0]["data"], json({1}));
  EXPECT_EQ(doc["outputs"][6]["name"], "edge_us");
  EXPECT_EQ(doc["outputs"][6]["data"], json({11}));
}

std::string error_of(const Response& r) {
  EXPECT_EQ(header(r, "Content-Type"), "application/json");
  return json::parse(r.body()).at("error").get<std::string>();
}

// ---- routes -------------------------------------------------------------------------------------------

TEST(HttpServer, EveryRouteOnOneKeepAliveConnection) {
  Fixture f;
  Client c(f.server->port());

  Response r = c.get("/v2");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(json::parse(r.body()), json::parse(encode_server_metadata("ee-edge", "0.1.0")));
  EXPECT_TRUE(r.keep_alive());

  r = c.get("/v2/health/live");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(r.body(), "");
  EXPECT_EQ(c.get("/v2/health/ready").result_int(), 200);
  f.server->set_ready(false);
  EXPECT_EQ(c.get("/v2/health/ready").result_int(), 400);
  EXPECT_EQ(c.get("/v2/models/tiny/ready").result_int(), 400);
  EXPECT_EQ(c.get("/v2/health/live").result_int(), 200);
  r = c.post("/v2/models/tiny/infer", image_body({1, 2, 3, 4}));
  EXPECT_EQ(r.result_int(), 503);
  EXPECT_THAT(error_of(r), HasSubstr("not ready"));
  f.server->set_ready(true);
  EXPECT_EQ(c.get("/v2/models/tiny/ready").result_int(), 200);
  EXPECT_EQ(c.get("/v2/models/spam/versions/1/ready").result_int(), 200);

  r = c.get("/v2/models/tiny");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(r.body(), encode_model_metadata(tiny_image_model()));
  EXPECT_EQ(c.get("/v2/models/spam/versions/1").body(), encode_model_metadata(spam_text_model()));
  r = c.get("/v2/models/tiny/versions/2");
  EXPECT_EQ(r.result_int(), 404);
  EXPECT_EQ(error_of(r), "model 'tiny' has no version '2'");
  r = c.get("/v2/models/nope");
  EXPECT_EQ(r.result_int(), 404);
  EXPECT_EQ(error_of(r), "unknown model 'nope'");
  r = c.post("/v2/models/nope/infer", image_body({1, 2, 3, 4}));
  EXPECT_EQ(r.result_int(), 404);
  EXPECT_EQ(error_of(r), "unknown model 'nope'");

  r = c.get("/metrics");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(header(r, "Content-Type"), "text/plain; version=0.0.4");
  EXPECT_EQ(r.body(), "# TYPE ee_requests_total counter\nee_requests_total 3\n");

  for (const std::string target : {"/", "/v1/models/tiny", "/v2/", "/v2/models", "/v2/models/tiny/predict",
                                   "/v2/models/tiny/infer/x", "/v2/health", "/v2/health/dead"}) {
    r = c.get(target);
    EXPECT_EQ(r.result_int(), 404) << target;
    EXPECT_THAT(error_of(r), HasSubstr("unknown route GET " + target)) << target;
  }
  // The query string is not part of the route.
  EXPECT_EQ(c.get("/v2/health/live?verbose=1").result_int(), 200);

  r = c.post("/v2/health/live", "");
  EXPECT_EQ(r.result_int(), 405);
  EXPECT_EQ(header(r, "Allow"), "GET");
  EXPECT_THAT(error_of(r), HasSubstr("method POST is not allowed on /v2/health/live"));
  r = c.get("/v2/models/tiny/infer");
  EXPECT_EQ(r.result_int(), 405);
  EXPECT_EQ(header(r, "Allow"), "POST");
  r = c.send({http::verb::delete_, "/metrics", 11});
  EXPECT_EQ(r.result_int(), 405);

  expect_good(c);
  const ServerStats s = f.server->stats();
  EXPECT_EQ(s.connections, 1u);
  EXPECT_GE(s.responses_4xx, 10u);
  EXPECT_EQ(s.requests, s.responses_2xx + s.responses_4xx + s.responses_5xx);
}

TEST(HttpServer, NoMetricsHandlerIs404) {
  HttpServer server({.port = 0}, {tiny_image_model()}, [](InferRequest, InferCallback) {});
  server.start();
  Client c(server.port());
  EXPECT_EQ(c.get("/metrics").result_int(), 404);
}

// ---- inference --------------------------------------------------------------------------------------

TEST(HttpServer, InferJsonAndText) {
  Fixture f;
  Client c(f.server->port());
  const Response r = c.post("/v2/models/tiny/infer", image_body({1, 2, 3, 4, 0, 0, 0, 1}, "batch"));
  ASSERT_EQ(r.result_int(), 200) << r.body();
  EXPECT_EQ(header(r, "Content-Type"), "application/json");
  EXPECT_EQ(header(r, "Inference-Header-Content-Length"), "");
  const json doc = json::parse(r.body());
  EXPECT_EQ(doc["model_name"], "tiny");
  EXPECT_EQ(doc["id"], "batch");
  EXPECT_EQ(doc["outputs"][0]["data"], json({0, 1}));          // 10 % 2, 1 % 2
  EXPECT_EQ(doc["outputs"][1]["data"], json({"cat", "dog"}));  // label_name
  EXPECT_EQ(doc["outputs"][3]["data"], json({1, 2}));          // exit_layer

  const json text = {
      {"inputs", {{{"name", "text"}, {"shape", {2}}, {"datatype", "BYTES"}, {"data", {"ab", "abc"}}}}},
      {"outputs", {{{"name", "label"}}}}};
  const Response t = c.post("/v2/models/spam/infer", text.dump());
  ASSERT_EQ(t.result_int(), 200) << t.body();
  const json tdoc = json::parse(t.body());
  ASSERT_EQ(tdoc["outputs"].size(), 1u);
  EXPECT_EQ(tdoc["outputs"][0]["data"], json({0, 1}));
}

TEST(HttpServer, BinaryBothWaysAsTritonsClient) {
  Fixture f;
  Client c(f.server->port());
  const std::string json_part =
      R"({"inputs":[{"name":"image","shape":[1,1,2,2],"datatype":"UINT8","parameters":{"binary_data_size":4}}],)"
      R"("parameters":{"binary_data_output":true}})";
  http::request<http::string_body> req{http::verb::post, "/v2/models/tiny/versions/1/infer", 11};
  req.set("Inference-Header-Content-Length", std::to_string(json_part.size()));
  req.set(http::field::content_type, "application/octet-stream");
  req.body() = json_part + std::string("\x01\x02\x03\x07", 4);
  const Response r = c.send(std::move(req));
  ASSERT_EQ(r.result_int(), 200) << r.body();
  EXPECT_EQ(header(r, "Content-Type"), "application/octet-stream");
  const std::size_t json_length = std::stoul(header(r, "Inference-Header-Content-Length"));
  const json doc = json::parse(r.body().substr(0, json_length));
  std::size_t offset = json_length;
  int64_t label = -1;
  float edge_us = -1;
  for (const json& out : doc["outputs"]) {
    const std::size_t size = out["parameters"]["binary_data_size"];
    if (out["name"] == "label") std::memcpy(&label, r.body().data() + offset, 8);
    if (out["name"] == "edge_us") std::memcpy(&edge_us, r.body().data() + offset, 4);
    offset += size;
  }
  EXPECT_EQ(offset, r.body().size());
  EXPECT_EQ(label, 1);
  EXPECT_EQ(edge_us, 13.0f);
}

TEST(HttpServer, ExpectContinueIsAnswered) {
  Fixture f;
  Client c(f.server->port());
  const std::string body = image_body({1, 2, 3, 5}, "continue");
  c.write_raw("POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: " +
              std::to_string(body.size()) + "\r\n\r\n");
  const Response go = c.read();
  EXPECT_EQ(go.result_int(), 100);
  c.write_raw(body);
  const Response r = c.read();
  ASSERT_EQ(r.result_int(), 200) << r.body();
  EXPECT_EQ(json::parse(r.body())["id"], "continue");
}

TEST(HttpServer, EveryBadRequestGetsItsErrorAndTheNextRequestWorks) {
  Fixture f;
  Client c(f.server->port());
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"{not json", "malformed JSON"},
      {R"({"inputs":[{"name":"image","shape":[1,4],"datatype":"UINT8","data":[1,2,3]}]})",
       "has 3 values; shape [1,4] needs 4"},
      {R"({"inputs":[{"name":"image","shape":[1,4],"datatype":"INT8","data":[1,2,3,4]}]})", "datatype INT8"},
      {R"({"inputs":[{"name":"image","shape":[1,5],"datatype":"UINT8","data":[1,2,3,4,5]}]})",
       "has shape [1,5]"},
      {R"({"inputs":[{"name":"pixels","shape":[1,4],"datatype":"UINT8","data":[1,2,3,4]}]})",
       "unknown input 'pixels'"},
      {R"({"inputs":[{"name":"image","shape":[1,4],"datatype":"UINT8","data":[1,2,300,4]}]})",
       "element 2 is 300"},
      {R"({"inputs":[{"name":"image","shape":[1,4],"datatype":"FP32","data":[1,2,-3,4]}]})",
       "element 2 is -3"},
      {R"({"inputs":[{"name":"image","shape":[0,4],"datatype":"UINT8","data":[]}]})", "batch size 0"},
  };
  for (const auto& [body, message] : bad) {
    const Response r = c.post("/v2/models/tiny/infer", body);
    EXPECT_EQ(r.result_int(), 400) << body;
    EXPECT_THAT(error_of(r), HasSubstr(message)) << body;
    EXPECT_TRUE(r.keep_alive());
    expect_good(c);
  }
  const json empty_text = {
      {"inputs", {{{"name", "text"}, {"shape", {1}}, {"datatype", "BYTES"}, {"data", {""}}}}}};
  const Response r = c.post("/v2/models/spam/infer", empty_text.dump());
  EXPECT_EQ(r.result_int(), 400);
  EXPECT_THAT(error_of(r), HasSubstr("element 0 is an empty text"));
  expect_good(c);

  http::request<http::string_body> bad_length{http::verb::post, "/v2/models/tiny/infer", 11};
  bad_length.set("Inference-Header-Content-Length", "lots");
  bad_length.body() = image_body({1, 2, 3, 4});
  const Response l = c.send(std::move(bad_length));
  EXPECT_EQ(l.result_int(), 400);
  EXPECT_THAT(error_of(l), HasSubstr("Inference-Header-Content-Length 'lots'"));
  expect_good(c);
  EXPECT_EQ(f.server->in_flight(), 0u);
}

TEST(HttpServer, BodyOverTheLimitIs413AndTheServerGoesOn) {
  Fixture f(ServerOptions{.max_body_bytes = 1024});
  {
    Client c(f.server->port());
    const Response r = c.post("/v2/models/tiny/infer", std::string(4096, ' '));
    EXPECT_EQ(r.result_int(), 413);
    EXPECT_EQ(error_of(r), "the request body exceeds the limit of 1024 bytes");
    EXPECT_FALSE(r.keep_alive());
    EXPECT_TRUE(c.closed_by_server());
  }
  {
    // With Expect: 100-continue the refusal comes before the body is sent.
    Client c(f.server->port());
    c.write_raw(
        "POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: "
        "5000\r\n\r\n");
    EXPECT_EQ(c.read().result_int(), 413);
  }
  Client next(f.server->port());
  expect_good(next);
}

TEST(HttpServer, MalformedHttpIs400ThenClosed) {
  Fixture f;
  {
    Client c(f.server->port());
    c.write_raw("GARBAGE\x01 / HTTP/1.1\r\n\r\n");
    const Response r = c.read();
    EXPECT_EQ(r.result_int(), 400);
    EXPECT_THAT(error_of(r), HasSubstr("malformed HTTP request"));
    EXPECT_TRUE(c.closed_by_server());
  }
  Client next(f.server->port());
  expect_good(next);
}

TEST(HttpServer, TooManyInFlightIs503WithRetryAfter) {
  Fixture f(ServerOptions{.max_in_flight = 2, .retry_after = std::chrono::seconds(3)});
  f.mode = Mode::hold;
  Client a(f.server->port()), b(f.server->port()), c(f.server->port());
  http::request<http::string_body> req{http::verb::post, "/v2/models/tiny/infer", 11};
  req.body() = image_body({1, 2, 3, 5}, "held");
  a.write(req);
  b.write(req);
  ASSERT_TRUE(f.held.wait_for_count(2));
  EXPECT_EQ(f.server->in_flight(), 2u);

  const Response busy = c.post("/v2/models/tiny/infer", image_body({1, 2, 3, 5}));
  EXPECT_EQ(busy.result_int(), 503);
  EXPECT_EQ(header(busy, "Retry-After"), "3");
  EXPECT_THAT(error_of(busy), HasSubstr("too many requests in flight (2)"));
  EXPECT_EQ(f.server->stats().rejected_busy, 1u);
  // Only inference counts against the bound.
  EXPECT_EQ(c.get("/v2/health/ready").result_int(), 200);

  // Answered from this thread, not a server thread.
  for (int i = 0; i < 2; ++i) {
    auto [request, callback] = f.held.pop();
    callback(fake_answer(request));
  }
  for (Client* client : {&a, &b}) {
    const Response r = client->read();
    ASSERT_EQ(r.result_int(), 200) << r.body();
    EXPECT_EQ(json::parse(r.body())["id"], "held");
  }
  EXPECT_EQ(f.server->in_flight(), 0u);
  f.mode = Mode::inline_answer;
  expect_good(c);
}

TEST(HttpServer, ConcurrentClientsAnsweredFromAWorkerThread) {
  Fixture f;
  f.mode = Mode::worker;
  constexpr int kClients = 8, kRequests = 25;
  std::vector<std::future<int>> results;
  for (int k = 0; k < kClients; ++k) {
    results.push_back(std::async(std::launch::async, [&f, k] {
      Client c(f.server->port());
      int correct = 0;
      for (int i = 0; i < kRequests; ++i) {
        const std::vector<int> px = {k, i, 1, 0};
        const std::string id = std::to_string(k) + "/" + std::to_string(i);
        const Response r = c.post("/v2/models/tiny/infer", image_body(px, id));
        const json doc = json::parse(r.body());
        correct += r.result_int() == 200 && doc["id"] == id &&
                   doc["outputs"][6]["data"] == json({k + i + 1}) &&
                   doc["outputs"][0]["data"] == json({(k + i + 1) % 2});
      }
      return correct;
    }));
  }
  for (auto& r : results) {
    ASSERT_EQ(r.wait_for(kBound * 3), std::future_status::ready);
    EXPECT_EQ(r.get(), kRequests);
  }
  EXPECT_EQ(f.server->in_flight(), 0u);
}

TEST(HttpServer, HandlerFailuresBecomeErrorsAndTheServerGoesOn) {
  Fixture f;
  Client c(f.server->port());
  const std::vector<std::tuple<Mode, unsigned, std::string>> cases = {
      {Mode::error_503, 503, "the cloud is overloaded"},
      {Mode::throw_422, 422, "this model cannot take that"},
      {Mode::throw_runtime, 500, "inference failed: the engine broke"},
      {Mode::drop, 500, "dropped the request without answering"},
      {Mode::bad_result, 500, "cannot encode the result: result has 0 samples"},
  };
  for (const auto& [mode, status, message] : cases) {
    f.mode = mode;
    const Response r = c.post("/v2/models/tiny/infer", image_body({1, 2, 3, 4}));
    EXPECT_EQ(r.result_int(), status) << message;
    EXPECT_THAT(error_of(r), HasSubstr(message));
    if (status == 503) {
      EXPECT_EQ(header(r, "Retry-After"), "1");
    }
    f.mode = Mode::inline_answer;
    expect_good(c);
  }
  // A second answer to one request is ignored.
  f.mode = Mode::twice;
  expect_good(c, "first answer wins");
  f.mode = Mode::inline_answer;
  expect_good(c);
  EXPECT_EQ(f.server->in_flight(), 0u);
}

// ---- stopping ---------------------------------------------------------------------------------------

TEST(HttpServer, GracefulStopAnswersTheRequestInFlight) {
  Fixture f;
  f.mode = Mode::hold;
  auto busy = std::make_unique<Client>(f.server->port());
  Client idle(f.server->port());
  EXPECT_EQ(idle.get("/v2/health/live").result_int(), 200);
  http::request<http::string_body> req{http::verb::post, "/v2/models/tiny/infer", 11};
  req.body() = image_body({1, 2, 3, 5}, "in flight");
  busy->write(req);
  ASSERT_TRUE(f.held.wait_for_count(1));

  auto stopped = std::async(std::launch::async, [&] { f.server->stop(); });
  // The idle keep-alive connection is closed; the one with a request in flight is not.
  EXPECT_TRUE(idle.closed_by_server());
  // No new connections once stopping.
  bool refused = false;
  for (int attempt = 0; attempt < 100 && !refused; ++attempt) {
    try {
      Client late(f.server->port());
      refused = late.closed_by_server();
    } catch (const beast::system_error&) {
      refused = true;
    }
  }
  EXPECT_TRUE(refused);
  EXPECT_NE(stopped.wait_for(std::chrono::seconds(0)), std::future_status::ready);

  auto [request, callback] = f.held.pop();
  callback(fake_answer(request));
  const Response r = busy->read();
  ASSERT_EQ(r.result_int(), 200);
  EXPECT_EQ(json::parse(r.body())["id"], "in flight");
  EXPECT_FALSE(r.keep_alive());
  busy.reset();  // a client closes on Connection: close, which lets the server finish at once
  ASSERT_EQ(stopped.wait_for(kBound), std::future_status::ready);
  stopped.get();
}

TEST(HttpServer, StopGivesUpOnAHandlerThatNeverAnswers) {
  InferCallback kept;
  {
    Fixture f(ServerOptions{.drain_timeout = std::chrono::milliseconds(100)});
    f.mode = Mode::hold;
    Client c(f.server->port());
    http::request<http::string_body> req{http::verb::post, "/v2/models/tiny/infer", 11};
    req.body() = image_body({1, 2, 3, 5});
    c.write(req);
    ASSERT_TRUE(f.held.wait_for_count(1));
    auto item = f.held.pop();
    kept = std::move(item.second);
    f.server->stop();
    EXPECT_TRUE(c.closed_by_server());
  }
  // The server is gone: a late answer (and the callback's destruction) must do nothing.
  kept(HttpError(500, "late"));
  kept = nullptr;
}

TEST(HttpServer, StartRefusesABusyPort) {
  HttpServer first({.port = 0}, {tiny_image_model()}, [](InferRequest, InferCallback) {});
  first.start();
  ServerOptions options;
  options.port = first.port();
  HttpServer second(options, {tiny_image_model()}, [](InferRequest, InferCallback) {});
  try {
    second.start();
    ADD_FAILURE() << "bound a port already in use";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("cannot listen on 127.0.0.1:" + std::to_string(first.port())));
  }
}

}  // namespace
}  // namespace ee::edge
