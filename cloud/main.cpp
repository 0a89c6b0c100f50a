// ee-cloud: the cloud worker. Finishes, for many edge daemons, the layers their hard samples still need:
// mutual TLS on the service port, a plaintext operations port for probes and Prometheus.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <thread>

#include "cloud/batcher.hpp"
#include "cloud/metrics.hpp"
#include "cloud/server.hpp"
#include "common/metrics/metrics.hpp"
#include "common/model/multi_exit_model.hpp"
#include "common/net/endpoint.hpp"
#include "common/net/ops_server.hpp"
#include "common/net/tls.hpp"
#include "common/wire/handshake.hpp"

namespace {

namespace asio = boost::asio;
using namespace ee;

struct Flags {
  std::string model_dir = "models/fmnist-vit";
  std::string listen = "127.0.0.1:7443";
  std::string ops_listen = "127.0.0.1:9100";
  std::string cert = "certs/server.crt", key = "certs/server.key", ca = "certs/ca.crt";
  bool insecure = false;
  std::string precision = "fp32";
  int threads = 1, io_threads = 1;
  int max_batch = 32, max_queue = 1024;
  int64_t max_queue_delay_us = 500;
  bool no_rebatch = false;
  int max_connections = 256, max_in_flight = 64;
  double handshake_timeout_s = 5, read_timeout_s = 300, write_timeout_s = 10;
  double max_connection_age_s = 0, grace_period_s = 25;
  std::size_t max_frame_bytes = wire::kDefaultMaxFrameBytes;
};

std::chrono::milliseconds ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

void add_flags(CLI::App& app, Flags& f) {
  app.add_option("-m,--model", f.model_dir, "model directory (config.json + model.safetensors)")
      ->capture_default_str();
  app.add_option("--listen", f.listen, "service address HOST:PORT (mutual TLS)")->capture_default_str();
  app.add_option("--ops-listen", f.ops_listen,
                 "operations address HOST:PORT: /livez /readyz /metrics (plain HTTP)")
      ->capture_default_str();
  app.add_option("--cert", f.cert, "server certificate chain (PEM)")->capture_default_str();
  app.add_option("--key", f.key, "server private key (PEM)")->capture_default_str();
  app.add_option("--ca", f.ca, "CA that signs the edges' client certificates (PEM)")->capture_default_str();
  app.add_flag("--insecure", f.insecure,
               "plaintext on the service port, no client certificates (testing only)");
  app.add_option("--precision", f.precision, "weight products: fp32, or bf16 on AMX tiles (edges must match)")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  app.add_option("-t,--threads", f.threads, "threads one layer may use")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--io-threads", f.io_threads, "threads serving connections")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--max-batch", f.max_batch, "samples per batch at most")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  app.add_option("--max-queue-delay-us", f.max_queue_delay_us,
                 "longest a request waits for its batch to fill before the batch runs anyway")
      ->check(CLI::Range(int64_t{0}, int64_t{10'000'000}))
      ->capture_default_str();
  app.add_option("--max-queue", f.max_queue,
                 "requests waiting or running at most; more are answered Overloaded")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_flag("--no-rebatch", f.no_rebatch,
               "one queue per split layer: batches do not take in samples that arrived at deeper layers");
  app.add_option("--max-connections", f.max_connections, "open edge connections at most")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  app.add_option("--max-in-flight", f.max_in_flight,
                 "unanswered requests per connection; reading pauses beyond")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  app.add_option("--max-frame-bytes", f.max_frame_bytes,
                 "largest frame accepted (the edges may negotiate less)")
      ->check(CLI::Range(std::size_t{1024}, std::size_t{1} << 30))
      ->capture_default_str();
  app.add_option("--handshake-timeout-s", f.handshake_timeout_s, "TLS handshake deadline")
      ->capture_default_str();
  app.add_option(
         "--read-timeout-s", f.read_timeout_s,
         "close a connection that does not complete a frame for this long (idle or stalled mid-frame)")
      ->capture_default_str();
  app.add_option("--write-timeout-s", f.write_timeout_s, "deadline to send a frame")->capture_default_str();
  app.add_option("--max-connection-age-s", f.max_connection_age_s,
                 "drain and close connections older than this, so edges rebalance across replicas (0: never)")
      ->capture_default_str();
  app.add_option("--grace-period-s", f.grace_period_s, "on SIGTERM, longest wait for requests in flight")
      ->capture_default_str();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "ee-cloud: the cloud worker of eesplit. Runs the layers past the edges' split for the samples "
      "they could not answer, batching requests from many edges layer by layer."};
  Flags f;
  add_flags(app, f);
  app.set_config("--config", "", "read flags from this TOML/INI file (command-line flags win)");
  bool print_config = false;
  app.add_flag("--print-config", print_config, "print the effective configuration as a config file and exit");
  CLI11_PARSE(app, argc, argv);
  if (print_config) {
    std::fputs(app.config_to_str(true, true).c_str(), stdout);
    return 0;
  }

  try {
    const auto model = model::MultiExitModel::load(f.model_dir);
    const model::Gemm gemm = f.precision == "bf16" ? model::Gemm::bf16 : model::Gemm::packed;
    model->prepare(gemm);
    metrics::Registry registry;
    cloud::Metrics m(registry, model->num_layers());

    std::optional<asio::ssl::context> tls;
    if (f.insecure) {
      spdlog::warn(
          "*** --insecure: the service port {} is PLAINTEXT and accepts any client. Testing only. ***",
          f.listen);
    } else {
      tls.emplace(net::make_server_tls_context({f.cert, f.key, f.ca}));
    }

    cloud::BatcherOptions bo;
    bo.max_batch = f.max_batch;
    bo.max_queue = f.max_queue;
    bo.max_queue_delay = std::chrono::microseconds(f.max_queue_delay_us);
    bo.rebatch = !f.no_rebatch;
    bo.exec = model::ExecOptions{f.threads, gemm};
    cloud::Batcher batcher(model, bo, m);

    auto context = std::make_shared<cloud::ServerContext>(cloud::ServerContext{
        cloud::ServerOptions{net::parse_endpoint(f.listen), f.max_connections, f.max_in_flight,
                             ms(f.handshake_timeout_s), ms(f.read_timeout_s), ms(f.write_timeout_s),
                             ms(f.max_connection_age_s), f.max_frame_bytes},
        wire::hello_for(*model, std::filesystem::path(f.model_dir).filename().string(), gemm,
                        static_cast<uint32_t>(f.max_frame_bytes)),
        wire::Limits::for_model(model->config(), model->hash()), batcher, m, tls ? &*tls : nullptr});
    context->limits.max_frame_bytes = f.max_frame_bytes;

    asio::io_context io;
    cloud::Server server(io, context);
    net::OpsServer ops(io, net::parse_endpoint(f.ops_listen), registry);
    server.start();
    ops.start();
    ops.set_ready(true);
    m.ready.set(1);
    spdlog::info("ee-cloud: {} ({} layers, {} on {}), serving {} on {}, operations on {}", f.model_dir,
                 model->num_layers(), context->hello.precision == wire::Precision::bf16 ? "bf16" : "fp32",
                 wire::to_string(context->hello.kernel), tls ? "mutual TLS" : "PLAINTEXT",
                 net::to_string(server.local_endpoint()), net::to_string(ops.local_endpoint()));

    // SIGTERM: not ready, no new connections, requests in flight answered, Close(Shutdown), exit 0.
    asio::signal_set signals(io, SIGINT, SIGTERM);
    asio::steady_timer grace(io), poll(io);
    std::function<void()> wait_for_sessions = [&] {
      if (server.sessions() == 0 && batcher.queued() == 0) return io.stop();
      poll.expires_after(std::chrono::milliseconds(20));
      poll.async_wait([&](boost::system::error_code ec) {
        if (!ec) wait_for_sessions();
      });
    };
    signals.async_wait([&](boost::system::error_code ec, int sig) {
      if (ec) return;
      spdlog::info("ee-cloud: signal {}: draining (grace period {} s)", sig, f.grace_period_s);
      ops.set_ready(false);
      m.ready.set(0);
      server.drain();
      grace.expires_after(ms(f.grace_period_s));
      grace.async_wait([&](boost::system::error_code e) {
        if (e) return;
        spdlog::warn("ee-cloud: grace period over with {} requests in flight", batcher.queued());
        io.stop();
      });
      wait_for_sessions();
    });

    std::vector<std::thread> threads;
    for (int i = 1; i < f.io_threads; ++i) threads.emplace_back([&] { io.run(); });
    io.run();
    for (auto& t : threads) t.join();
    ops.stop();
    batcher.drain();
    spdlog::info("ee-cloud: stopped");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ee-cloud: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
