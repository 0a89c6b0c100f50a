// ee-cloud as a user runs it: a real process with development certificates on loopback, driven by ee-load
// and by hand-made clients. Answers equal the local run bit for bit, every refused handshake is refused,
// bad frames close only their own connection, batches form and merge across split layers, cloud exits
// leave the batch, late requests are not computed, overload answers Overloaded with memory bounded, and
// SIGTERM drains without losing a request.
#include <gtest/gtest.h>

#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "common/model/multi_exit_model.hpp"
#include "common/net/framing.hpp"
#include "common/net/tls.hpp"
#include "common/wire/codec.hpp"
#include "common/wire/handshake.hpp"
#include "tests/integration/process.hpp"

namespace ee {
namespace {

namespace asio = boost::asio;
using ee::testing::http_get;
using ee::testing::metric;
using ee::testing::Process;
using ee::testing::run;
using tcp = asio::ip::tcp;
namespace fs = std::filesystem;

const fs::path kSource = EE_SOURCE_DIR;
const fs::path kVit = kSource / "models/fmnist-vit";
const fs::path kBert = kSource / "models/spam-bert";

struct Dir {
  fs::path path = fs::temp_directory_path() / ("ee_cloud_test_" + std::to_string(::getpid()));
  Dir() {
    fs::create_directories(path);
    std::string out;
    if (run("bash " + (kSource / "deploy/gen-certs.sh").string() + " --test-certs " + path.string(), &out) !=
        0)
      throw std::runtime_error("gen-certs.sh failed: " + out);
  }
  ~Dir() { fs::remove_all(path); }
};

const Dir& certs() {
  static const Dir dir;
  return dir;
}

// One ee-cloud process on free ports.
class Cloud {
 public:
  explicit Cloud(std::vector<std::string> extra = {}, const fs::path& model = kVit)
      : port_(ee::testing::free_port()), ops_(ee::testing::free_port()) {
    const fs::path& d = certs().path;
    std::vector<std::string> argv = {EE_CLOUD_BIN,
                                     "--model",
                                     model.string(),
                                     "--listen",
                                     "127.0.0.1:" + std::to_string(port_),
                                     "--ops-listen",
                                     "127.0.0.1:" + std::to_string(ops_),
                                     "--cert",
                                     (d / "server.crt").string(),
                                     "--key",
                                     (d / "server.key").string(),
                                     "--ca",
                                     (d / "ca.crt").string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process_ = std::make_unique<Process>(argv, d / ("cloud_" + std::to_string(port_) + ".log"));
    if (!ee::testing::wait_http_ok(ops_, "/readyz", std::chrono::seconds(60)))
      throw std::runtime_error("ee-cloud did not become ready:\n" + process_->log());
  }
  int port() const { return port_; }
  int ops() const { return ops_; }
  Process& process() { return *process_; }
  std::string metrics() const { return http_get(ops_, "/metrics").body; }
  double value(const std::string& series) const { return metric(metrics(), series); }

 private:
  int port_, ops_;
  std::unique_ptr<Process> process_;
};

// ee-load against `cloud` with the edge-1 certificate unless `cert` names another; returns its JSON summary
// (empty on failure) and its exit code.
struct LoadRun {
  int rc = -1;
  nlohmann::json summary;
  std::string output;
};
LoadRun load(const Cloud& cloud, const std::string& args, const std::string& cert = "edge-1") {
  const fs::path& d = certs().path;
  const fs::path json = d / ("load_" + std::to_string(cloud.port()) + ".json");
  fs::remove(json);
  LoadRun r;
  r.rc = run(std::string(EE_LOAD_BIN) + " --cloud 127.0.0.1:" + std::to_string(cloud.port()) + " --cert " +
                 (d / (cert + ".crt")).string() + " --key " + (d / (cert + ".key")).string() + " --ca " +
                 (d / "ca.crt").string() + " --json " + json.string() + " " + args,
             &r.output);
  if (fs::exists(json)) r.summary = nlohmann::json::parse(std::ifstream(json));
  return r;
}

int64_t count(const nlohmann::json& j, const std::string& status) {
  return j["by_status"].value(status, int64_t{0});
}

TEST(Cloud, EveryFashionMnistAnswerAtEverySplitEqualsTheLocalRunBitForBit) {
  Cloud cloud;
  const LoadRun r = load(cloud, "--model " + kVit.string() +
                                    " --splits 0,1,2,3,4,5 --dtype f32 --rule max_prob:0.9 "
                                    "--verify --connections 4 --concurrency 32");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_EQ(r.summary["requests"], 60000);
  EXPECT_EQ(count(r.summary, "ok"), 60000);
  EXPECT_EQ(r.summary["verify_mismatches"], 0);
  // Batches really formed.
  EXPECT_GT(cloud.value("ee_cloud_layer_samples_total{layer=\"6\"}") /
                cloud.value("ee_cloud_executions_total{layer=\"6\"}"),
            1.5);
}

TEST(Cloud, QuantizedActivationsEqualTheLocalDecodePath) {
  Cloud cloud;
  for (const char* dtype : {"f16", "i8"}) {
    const LoadRun r = load(cloud, "--model " + kVit.string() + " --splits 1,3,5 --limit 2000 --dtype " +
                                      std::string(dtype) + " --rule patience:2 --verify --concurrency 16");
    ASSERT_EQ(r.rc, 0) << dtype << "\n" << r.output;
    EXPECT_EQ(count(r.summary, "ok"), 6000) << dtype;
    EXPECT_EQ(r.summary["verify_mismatches"], 0) << dtype;
  }
}

TEST(Cloud, TextAnswersAtEverySplitEqualTheLocalRun) {
  const fs::path data = certs().path / "spam";
  std::string out;
  if (run("/usr/bin/python3 " + (kSource / "models/train/spam_data.py").string() + " --out " + data.string(),
          &out) != 0)
    GTEST_SKIP()
        << "the SpamAssassin test split could not be made (deploy/install-deps.sh installs the corpus): "
        << out;
  Cloud cloud({}, kBert);
  const LoadRun r =
      load(cloud, "--model " + kBert.string() + " --text " + (data / "test.jsonl").string() +
                      " --splits 0,1,2,3 --dtype f32 --rule max_prob:0.99 --verify --concurrency 8");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_GT(count(r.summary, "ok"), 4000);
  EXPECT_EQ(r.summary["verify_mismatches"], 0);
}

// A TLS handshake and a Hello exchange with `cert`, in a context that loads any certificate (the daemons'
// own contexts refuse to start with an expired one). True when the worker answered our Hello.
bool hello_accepted(int port, const std::string& cert, const wire::Hello& hello, const wire::Limits& limits) {
  const fs::path& d = certs().path;
  asio::io_context io;
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  ctx.use_certificate_chain_file((d / (cert + ".crt")).string());
  ctx.use_private_key_file((d / (cert + ".key")).string(), asio::ssl::context::pem);
  ctx.load_verify_file((d / "ca.crt").string());
  ctx.set_verify_mode(asio::ssl::verify_peer);
  asio::ssl::stream<tcp::socket> s(io, ctx);
  try {
    s.lowest_layer().connect({asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)});
    s.handshake(asio::ssl::stream_base::client);
    net::write_frame(s, wire::encode(hello).span(), wire::kDefaultMaxFrameBytes);
    std::vector<uint8_t> frame;
    net::read_frame(s, frame, wire::kDefaultMaxFrameBytes);
    return std::holds_alternative<wire::Hello>(wire::decode(frame, limits));
  } catch (const std::exception&) {
    return false;  // TLS 1.3 finishes the client's handshake first: the refusal shows on the next read
  }
}

TEST(Cloud, RefusesEveryBadClientCertificateAndKeepsServingTheGoodOne) {
  Cloud cloud;
  const auto model = model::MultiExitModel::load(kVit);
  const wire::Limits limits = wire::Limits::for_model(model->config(), model->hash());
  const wire::Hello hello = wire::hello_for(*model, "test", model::Gemm::packed);
  ASSERT_TRUE(hello_accepted(cloud.port(), "edge-1", hello, limits));
  const std::map<std::string, std::string> refused = {{"other-ca-client", "unknown_ca"},
                                                      {"impostor-client", "unknown_ca"},
                                                      {"self-signed-client", "self_signed"},
                                                      {"expired-client", "expired"},
                                                      {"future-client", "not_yet_valid"}};
  for (const auto& [cert, reason] : refused) {
    const std::string series = "ee_cloud_tls_handshake_failures_total{reason=\"" + reason + "\"}";
    const double before = cloud.value(series);
    EXPECT_FALSE(hello_accepted(cloud.port(), cert, hello, limits)) << cert << " was accepted";
    EXPECT_EQ(cloud.value(series), before + 1) << cert;
    EXPECT_TRUE(hello_accepted(cloud.port(), "edge-1", hello, limits)) << "after " << cert;
  }
  const LoadRun good = load(cloud, "--model " + kVit.string() + " --limit 50 --splits 2");
  EXPECT_EQ(good.rc, 0) << good.output;
}

// Connects a raw TCP socket to the service port.
tcp::socket raw_connect(asio::io_context& io, int port) {
  tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)});
  return s;
}

// True when the server closes `s` within `limit` (a read returns eof or an error).
bool closed_within(tcp::socket& s, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  s.non_blocking(true);
  char buf[256];
  while (std::chrono::steady_clock::now() < end) {
    boost::system::error_code ec;
    s.read_some(asio::buffer(buf), ec);
    if (ec && ec != asio::error::would_block) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

TEST(Cloud, AStalledHandshakeIsClosedAtItsDeadlineAndPlaintextIsRefused) {
  Cloud cloud({"--handshake-timeout-s", "1"});
  asio::io_context io;
  tcp::socket stalled = raw_connect(io, cloud.port());
  tcp::socket plaintext = raw_connect(io, cloud.port());
  asio::write(plaintext, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n")));
  // A well-behaved edge is served meanwhile.
  const LoadRun good = load(cloud, "--model " + kVit.string() + " --limit 200 --splits 1");
  EXPECT_EQ(good.rc, 0) << good.output;
  EXPECT_TRUE(closed_within(plaintext, std::chrono::seconds(5)));
  EXPECT_TRUE(closed_within(stalled, std::chrono::seconds(5))) << "the stalled handshake was not closed";
  EXPECT_GE(cloud.value("ee_cloud_tls_handshake_failures_total{reason=\"timeout\"}"), 1);
  EXPECT_GE(cloud.value("ee_cloud_tls_handshake_failures_total{reason=\"not_tls\"}"), 1);
}

// A mutual-TLS client that speaks frames by hand.
class RawEdge {
 public:
  explicit RawEdge(int port) : ctx_(net::make_client_tls_context(files())), stream_(io_, ctx_) {
    stream_.lowest_layer().connect({asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)});
    net::set_server_name(stream_, "127.0.0.1");
    stream_.handshake(asio::ssl::stream_base::client);
  }
  static net::TlsFiles files() {
    const fs::path& d = certs().path;
    return {d / "edge-1.crt", d / "edge-1.key", d / "ca.crt"};
  }
  void send(std::span<const uint8_t> frame) { net::write_frame(stream_, frame, wire::kDefaultMaxFrameBytes); }
  void send_raw(const std::vector<uint8_t>& bytes) { asio::write(stream_, asio::buffer(bytes)); }
  // The next message, decoded against the model's limits.
  wire::Message receive(const wire::Limits& limits) {
    std::vector<uint8_t> frame;
    net::read_frame(stream_, frame, wire::kDefaultMaxFrameBytes);
    return wire::decode(frame, limits);
  }

 private:
  asio::io_context io_;
  asio::ssl::context ctx_;
  asio::ssl::stream<tcp::socket> stream_;
};

TEST(Cloud, BadFramesAndBadHellosCloseOnlyTheirOwnConnection) {
  Cloud cloud;
  const auto model = model::MultiExitModel::load(kVit);
  const wire::Limits limits = wire::Limits::for_model(model->config(), model->hash());
  const wire::Hello hello = wire::hello_for(*model, "test", model::Gemm::packed);
  auto expect_close = [&](RawEdge& edge, wire::Status status, const char* what) {
    try {
      const wire::Message m = edge.receive(limits);
      const auto* c = std::get_if<wire::Close>(&m);
      ASSERT_NE(c, nullptr) << what << ": no Close";
      EXPECT_EQ(c->status, status) << what << ": " << c->reason;
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << ": " << e.what();
    }
  };
  {
    RawEdge edge(cloud.port());
    wire::Hello other = hello;
    other.model_hash = std::string(64, 'a');
    edge.send(wire::encode(other).span());
    expect_close(edge, wire::Status::model_mismatch, "another model hash");
  }
  {
    RawEdge edge(cloud.port());
    wire::Hello old = hello;
    old.protocol_version = 999;
    edge.send(wire::encode(old).span());
    expect_close(edge, wire::Status::version_mismatch, "another protocol version");
  }
  {
    RawEdge edge(cloud.port());
    wire::Hello bf16 = hello;
    bf16.precision = hello.precision == wire::Precision::fp32 ? wire::Precision::bf16 : wire::Precision::fp32;
    edge.send(wire::encode(bf16).span());
    expect_close(edge, wire::Status::precision_mismatch, "another precision");
  }
  {
    RawEdge edge(cloud.port());
    edge.send(wire::encode(hello).span());
    ASSERT_TRUE(std::holds_alternative<wire::Hello>(edge.receive(limits)));
    const std::vector<uint8_t> garbage(100, 0x42);
    edge.send(garbage);
    expect_close(edge, wire::Status::bad_request, "a frame that is not a message");
  }
  {
    RawEdge edge(cloud.port());
    edge.send(wire::encode(hello).span());
    ASSERT_TRUE(std::holds_alternative<wire::Hello>(edge.receive(limits)));
    edge.send_raw({0xff, 0xff, 0xff, 0x7f});  // a length prefix far over the limit
    expect_close(edge, wire::Status::bad_request, "an oversized frame");
  }
  {
    RawEdge edge(cloud.port());
    edge.send(wire::encode(hello).span());
    ASSERT_TRUE(std::holds_alternative<wire::Hello>(edge.receive(limits)));
    model::Matrix rows = model::Matrix::Zero(17, 64);
    wire::ActivationMeta meta;
    meta.request_id = 7;
    meta.model_hash = limits.model_hash;
    meta.split_layer = 2;
    const wire::Encoded a = wire::encode_activation(meta, rows, {wire::DType::f32});
    std::vector<uint8_t> truncated(a.span().begin(), a.span().end() - 10);
    edge.send(truncated);
    expect_close(edge, wire::Status::bad_request, "a truncated Activation");
  }
  const LoadRun good = load(cloud, "--model " + kVit.string() + " --limit 100 --splits 3");
  EXPECT_EQ(good.rc, 0) << "other connections keep being served: " << good.output;
  EXPECT_TRUE(cloud.process().running());
}

TEST(Cloud, SamplesFromDifferentSplitLayersShareBatches) {
  // The same load with and without re-batching: merging runs the deep layers in fewer, fuller batches.
  double executions[2] = {0, 0};
  for (int rebatch = 0; rebatch < 2; ++rebatch) {
    Cloud cloud(rebatch ? std::vector<std::string>{} : std::vector<std::string>{"--no-rebatch"});
    const LoadRun r = load(cloud, "--model " + kVit.string() +
                                      " --limit 3000 --splits 1,2,3,4 --rule entropy:0 "
                                      "--concurrency 64 --connections 4");
    ASSERT_EQ(r.rc, 0) << r.output;
    for (int l = 5; l <= 6; ++l)
      executions[rebatch] += cloud.value("ee_cloud_executions_total{layer=\"" + std::to_string(l) + "\"}");
  }
  EXPECT_LT(executions[1], executions[0]) << "re-batching did not merge samples from different split layers";
}

TEST(Cloud, CloudExitsLeaveTheBatchAndLateRequestsAreNotComputed) {
  Cloud cloud;
  const LoadRun r = load(
      cloud, "--model " + kVit.string() + " --limit 2000 --splits 1 --rule max_prob:0.9 --concurrency 16");
  ASSERT_EQ(r.rc, 0) << r.output;
  const double at2 = cloud.value("ee_cloud_layer_samples_total{layer=\"2\"}");
  const double at6 = cloud.value("ee_cloud_layer_samples_total{layer=\"6\"}");
  EXPECT_EQ(at2, 2000);
  EXPECT_LT(at6, at2 / 2) << "samples that exited kept running";
  EXPECT_GT(cloud.value("ee_cloud_exits_total{layer=\"2\"}"), 0);

  const LoadRun late =
      load(cloud, "--model " + kVit.string() + " --limit 500 --splits 1 --deadline-ms 0.001 --concurrency 8");
  EXPECT_EQ(cloud.value("ee_cloud_layer_samples_total{layer=\"2\"}"), at2)
      << "expired requests were computed";
  EXPECT_GT(cloud.value("ee_cloud_requests_total{status=\"deadline_exceeded\"}"), 0) << late.output;
}

long rss_kib(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

TEST(Cloud, OverloadAnswersOverloadedWithMemoryBounded) {
  Cloud cloud({"--max-queue", "8", "--max-batch", "4"});
  const LoadRun warm = load(cloud, "--model " + kVit.string() + " --limit 500 --splits 0 --concurrency 4");
  ASSERT_EQ(warm.rc, 0) << warm.output;
  const long before = rss_kib(cloud.process().pid());
  const LoadRun r = load(cloud, "--model " + kVit.string() +
                                    " --splits 0 --rule entropy:0 --requests 40000 "
                                    "--connections 8 --concurrency 256");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_GT(count(r.summary, "overloaded"), 0) << r.output;
  EXPECT_EQ(count(r.summary, "ok") + count(r.summary, "overloaded"), 40000) << r.output;
  const long after = rss_kib(cloud.process().pid());
  EXPECT_LT(after - before, 64 * 1024) << "RSS grew from " << before << " to " << after << " KiB";
}

TEST(Cloud, SigtermDrainsWithoutLosingARequest) {
  Cloud cloud;
  const fs::path& d = certs().path;
  const fs::path json = d / "drain.json";
  Process loader({EE_LOAD_BIN,
                  "--cloud",
                  "127.0.0.1:" + std::to_string(cloud.port()),
                  "--cert",
                  (d / "edge-1.crt").string(),
                  "--key",
                  (d / "edge-1.key").string(),
                  "--ca",
                  (d / "ca.crt").string(),
                  "--model",
                  kVit.string(),
                  "--splits",
                  "0",
                  "--rule",
                  "entropy:0",
                  "--duration-s",
                  "6",
                  "--concurrency",
                  "32",
                  "--connections",
                  "4",
                  "--json",
                  json.string()},
                 d / "drain_load.log");
  std::this_thread::sleep_for(std::chrono::seconds(2));
  ASSERT_GT(cloud.value("ee_cloud_requests_total{status=\"ok\"}"), 0);
  cloud.process().signal(SIGTERM);
  EXPECT_EQ(cloud.process().wait_for(std::chrono::seconds(30)), 0) << cloud.process().log();
  ASSERT_EQ(loader.wait_for(std::chrono::seconds(60)), 0) << loader.log();
  const nlohmann::json j = nlohmann::json::parse(std::ifstream(json));
  EXPECT_GT(count(j, "ok"), 0);
  EXPECT_EQ(count(j, "client_aborted"), 0) << "requests in flight were lost: " << j.dump();
  EXPECT_EQ(count(j, "client_timeout"), 0) << j.dump();
}

}  // namespace
}  // namespace ee
