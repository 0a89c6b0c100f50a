// ee-load: drives ee-cloud the way many edges would. It computes, with the real model, the hidden states of
// a dataset's samples at a mix of split layers, opens N mutual-TLS connections and sends them closed-loop
// (a fixed number outstanding) or open-loop (Poisson arrivals at a rate), with deadlines. It reports
// throughput, goodput (answers within the SLO per second), latency percentiles and where the time went;
// with --verify it checks every answer against the same continuation computed locally, bit for bit.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

#include "common/model/multi_exit_model.hpp"
#include "common/net/cloud_connection.hpp"
#include "common/net/endpoint.hpp"
#include "common/net/framing.hpp"
#include "common/net/tls.hpp"
#include "common/runtime/early_exit.hpp"
#include "common/wire/handshake.hpp"
#include "sim/dataset.hpp"
#include "sim/evaluation.hpp"
#include "sim/text_dataset.hpp"

namespace {

namespace asio = boost::asio;
using namespace ee;
using Clock = std::chrono::steady_clock;

struct Flags {
  std::string cloud = "127.0.0.1:7443";
  std::string cert = "certs/edge-1.crt", key = "certs/edge-1.key", ca = "certs/ca.crt";
  bool insecure = false;
  std::string model_dir = "models/fmnist-vit";
  std::string images = (sim::kFashionMnistDir / "t10k-images-idx3-ubyte.gz").string();
  std::string labels = (sim::kFashionMnistDir / "t10k-labels-idx1-ubyte.gz").string();
  std::string text;
  int limit = 0;
  std::vector<int> splits = {1, 2, 3, 4};
  std::string dtype = "f32";
  std::string rule = "max_prob:0.9";
  std::string precision = "fp32";
  int connections = 1, concurrency = 8;
  double rate = 0;  // > 0: open loop
  int64_t requests = 0;
  double duration_s = 0;
  double deadline_ms = 0, slo_ms = 100;
  bool verify = false, undecided_only = false;
  unsigned seed = 1;
  std::string json_out;
};

// One request ready to send: sample `sample`'s hidden state at `split`, encoded, and what the cloud must
// answer (the same continuation run here, from the decoded frame).
struct Prepared {
  int sample = 0, split = 0;
  net::CloudConnection::Frame frame;
  int expected_layer = 0;
  std::vector<float> expected_probabilities;
};

struct Record {
  double latency_s = 0, cloud_s = 0;
  wire::Status status = wire::Status::ok;
  std::string transport_error;  // why no Result came (empty when one did)
  bool correct = false, mismatch = false;
  int exit_layer = 0;
};

std::vector<Prepared> prepare(const model::MultiExitModel& model, const sim::EvalDataset& data,
                              const Flags& f) {
  const exits::ExitRule rule = exits::ExitRule::parse(f.rule);
  const wire::EncodeOptions enc{wire::parse_dtype(f.dtype)};
  const wire::Limits limits = wire::Limits::for_model(model.config(), model.hash());
  model::Workspace ws(model::ExecOptions{1, f.precision == "bf16" ? model::Gemm::bf16 : model::Gemm::packed});
  std::vector<Prepared> out;
  const int batch = 64;
  for (int first = 0; first < data.size(); first += batch) {
    const int n = std::min(batch, data.size() - first);
    runtime::Batch b(data.embed(first, n), rule, static_cast<uint64_t>(first));
    std::vector<bool> decided(static_cast<std::size_t>(n), false);
    for (int split = 0; split <= *std::max_element(f.splits.begin(), f.splits.end()); ++split) {
      if (split > 0) {
        // Exits before the split update each sample's streak exactly as an edge would.
        model.run_layers(b.hidden(), split, ws);
        if (model.has_exit(split)) {
          const model::Matrix logits = model.exit_logits(b.hidden(), split, ws);
          for (int i = 0; i < n; ++i) {
            const auto row =
                std::span<const float>(logits.row(i).data(), static_cast<std::size_t>(logits.cols()));
            decided[static_cast<std::size_t>(i)] =
                b.sample(i).exit.should_exit(exits::confidence(row)) || decided[static_cast<std::size_t>(i)];
          }
        }
      }
      if (std::find(f.splits.begin(), f.splits.end(), split) == f.splits.end()) continue;
      for (int i = 0; i < n; ++i) {
        if (f.undecided_only && decided[static_cast<std::size_t>(i)]) continue;
        Prepared p;
        p.sample = first + i;
        p.split = split;
        wire::ActivationMeta meta;
        meta.request_id = out.size() + 1;
        meta.model_hash = limits.model_hash;
        meta.split_layer = split;
        meta.deadline = std::chrono::microseconds(static_cast<int64_t>(f.deadline_ms * 1000));
        meta.exit = b.sample(i).exit;
        const wire::Encoded e = wire::encode_activation(meta, b.rows(i), enc);
        p.frame = e.shared();
        if (f.verify) {
          const wire::Message m = wire::decode(e.span(), limits);
          const auto& a = std::get<wire::Activation>(m);
          const wire::Activation* one[] = {&a};
          runtime::Sample s;
          s.exit = a.exit();
          runtime::Batch local = runtime::Batch::decode(one, std::span(&s, 1));
          auto answers = runtime::run_with_exits(model, local, model.num_layers(), ws);
          p.expected_layer = answers.at(0).exit.layer;
          p.expected_probabilities = std::move(answers.at(0).exit.probabilities);
        }
        out.push_back(std::move(p));
      }
    }
  }
  return out;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1;
  return v[std::min(i, v.size() - 1)];
}

class Load {
 public:
  Load(const Flags& f, const std::vector<Prepared>& prepared, const sim::EvalDataset& data,
       std::vector<std::shared_ptr<net::CloudConnection>> conns)
      : f_(f),
        prepared_(prepared),
        data_(data),
        conns_(std::move(conns)),
        busy_(prepared.size(), false),
        rng_(f.seed),
        order_(prepared.size()) {
    std::iota(order_.begin(), order_.end(), 0);
    std::shuffle(order_.begin(), order_.end(), rng_);
    target_ =
        f.requests > 0 ? f.requests : (f.duration_s > 0 ? INT64_MAX : static_cast<int64_t>(prepared.size()));
  }

  void start(asio::io_context& io) {
    start_ = Clock::now();
    if (f_.duration_s > 0)
      stop_at_ =
          start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(f_.duration_s));
    if (f_.rate > 0) {
      timer_.emplace(io);
      next_arrival_ = start_;
      arrive();
    } else {
      for (int i = 0; i < f_.concurrency; ++i) send_next();
    }
  }

  bool done() const { return finished_ == sent_ && (sent_ >= target_ || stopped_); }
  const std::vector<Record>& records() const { return records_; }
  double seconds() const { return std::chrono::duration<double>(end_ - start_).count(); }
  int64_t client_drops() const { return client_drops_; }

 private:
  void arrive() {
    if (!can_send()) return;
    send_next();
    std::exponential_distribution<double> gap(f_.rate);
    next_arrival_ += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap(rng_)));
    timer_->expires_at(next_arrival_);
    timer_->async_wait([this](boost::system::error_code ec) {
      if (!ec) arrive();
    });
  }

  bool can_send() {
    if (sent_ >= target_ || (f_.duration_s > 0 && Clock::now() >= stop_at_)) {
      stopped_ = true;
      if (done()) end_ = Clock::now();
      return false;
    }
    return true;
  }

  void send_next() {
    if (!can_send()) return;
    // The least loaded ready connection.
    net::CloudConnection* conn = nullptr;
    for (auto& c : conns_)
      if (c->ready() && (!conn || c->in_flight() < conn->in_flight())) conn = c.get();
    std::size_t item = 0;
    bool found = false;
    for (std::size_t tries = 0; tries < order_.size(); ++tries) {
      item = order_[cursor_++ % order_.size()];
      if (!busy_[item]) {
        found = true;
        break;
      }
    }
    if (!conn) {  // every connection has closed: the run is over
      stopped_ = true;
      if (done()) end_ = Clock::now();
      return;
    }
    if (!found) {
      ++client_drops_;
      return;
    }
    busy_[item] = true;
    ++sent_;
    const auto sent_at = Clock::now();
    const Prepared& p = prepared_[item];
    conn->send(item + 1, p.frame, std::chrono::microseconds(static_cast<int64_t>(f_.deadline_ms * 1000)),
               [this, item, sent_at](boost::system::error_code ec, wire::Result r) {
                 on_result(item, sent_at, ec, std::move(r));
               });
  }

  void on_result(std::size_t item, Clock::time_point sent_at, boost::system::error_code ec, wire::Result r) {
    const Prepared& p = prepared_[item];
    Record rec;
    rec.latency_s = std::chrono::duration<double>(Clock::now() - sent_at).count();
    if (ec)
      rec.transport_error = ec == boost::asio::error::not_connected ? "not_sent"
                            : ec == net::frame_errc::timeout        ? "timeout"
                                                                    : "aborted";
    rec.status = r.status;
    rec.cloud_s = std::chrono::duration<double>(r.cloud_compute).count();
    rec.exit_layer = r.exit_layer;
    if (!ec && r.status == wire::Status::ok) {
      rec.correct = r.label == data_.labels[static_cast<std::size_t>(p.sample)];
      if (f_.verify) {
        rec.mismatch = r.exit_layer != p.expected_layer || r.probabilities != p.expected_probabilities;
        if (rec.mismatch && mismatches_logged_++ < 5)
          spdlog::error("sample {} split {}: the cloud answered exit {} (label {}), expected exit {}",
                        p.sample, p.split, r.exit_layer, r.label, p.expected_layer);
      }
    }
    records_.push_back(rec);
    busy_[item] = false;
    ++finished_;
    progress();
    if (f_.rate <= 0) send_next();
    if (done()) end_ = Clock::now();
  }

  void progress() {
    const auto now = Clock::now();
    if (now - last_progress_ < std::chrono::seconds(1) && finished_ != target_) return;
    last_progress_ = now;
    if (target_ != INT64_MAX)
      std::fprintf(stderr, "\rrequests: %lld/%lld", static_cast<long long>(finished_),
                   static_cast<long long>(target_));
    else
      std::fprintf(stderr, "\rrequests: %lld (%.0f s)", static_cast<long long>(finished_),
                   std::chrono::duration<double>(now - start_).count());
    std::fflush(stderr);
  }

  const Flags& f_;
  const std::vector<Prepared>& prepared_;
  const sim::EvalDataset& data_;
  std::vector<std::shared_ptr<net::CloudConnection>> conns_;
  std::vector<bool> busy_;
  std::mt19937_64 rng_;
  std::vector<std::size_t> order_;
  std::size_t cursor_ = 0;
  int64_t target_ = 0, sent_ = 0, finished_ = 0, client_drops_ = 0;
  int mismatches_logged_ = 0;
  bool stopped_ = false;
  Clock::time_point start_, end_, stop_at_, next_arrival_, last_progress_;
  std::optional<asio::steady_timer> timer_;
  std::vector<Record> records_;
};

nlohmann::json summarize(const Load& load, const Flags& f) {
  const auto& recs = load.records();
  std::map<std::string, int64_t> by_status;
  std::vector<double> latency, cloud, network;
  int64_t ok = 0, good = 0, correct = 0, mismatches = 0, exit_sum = 0;
  for (const Record& r : recs) {
    ++by_status[r.transport_error.empty() ? std::string(wire::to_string(r.status))
                                          : "client_" + r.transport_error];
    if (!r.transport_error.empty() || r.status != wire::Status::ok) continue;
    ++ok;
    latency.push_back(r.latency_s);
    cloud.push_back(r.cloud_s);
    network.push_back(std::max(0.0, r.latency_s - r.cloud_s));
    good += r.latency_s * 1000 <= f.slo_ms;
    correct += r.correct;
    mismatches += r.mismatch;
    exit_sum += r.exit_layer;
  }
  const double secs = std::max(1e-9, load.seconds());
  nlohmann::json j;
  j["requests"] = recs.size();
  j["seconds"] = secs;
  j["throughput_rps"] = static_cast<double>(ok) / secs;
  j["goodput_rps"] = static_cast<double>(good) / secs;
  j["slo_ms"] = f.slo_ms;
  j["by_status"] = by_status;
  j["client_drops"] = load.client_drops();
  j["accuracy"] = ok ? static_cast<double>(correct) / static_cast<double>(ok) : 0.0;
  j["mean_exit_layer"] = ok ? static_cast<double>(exit_sum) / static_cast<double>(ok) : 0.0;
  if (f.verify) j["verify_mismatches"] = mismatches;
  for (const auto& [name, v] :
       {std::pair{"latency_ms", &latency}, {"cloud_ms", &cloud}, {"network_ms", &network}}) {
    j[name] = {{"p50", 1e3 * percentile(*v, 0.5)},
               {"p95", 1e3 * percentile(*v, 0.95)},
               {"p99", 1e3 * percentile(*v, 0.99)},
               {"p999", 1e3 * percentile(*v, 0.999)}};
  }
  return j;
}

void print(const nlohmann::json& j) {
  std::printf("\n%-22s %lld in %.2f s\n", "requests", static_cast<long long>(j["requests"]),
              j["seconds"].get<double>());
  std::printf("%-22s %.1f /s\n", "throughput (ok)", j["throughput_rps"].get<double>());
  std::printf("%-22s %.1f /s within %.1f ms\n", "goodput", j["goodput_rps"].get<double>(),
              j["slo_ms"].get<double>());
  std::printf("%-22s", "answers");
  for (const auto& [k, v] : j["by_status"].items())
    std::printf(" %s=%lld", k.c_str(), static_cast<long long>(v));
  std::printf("\n%-22s %.2f %%   mean exit layer %.2f\n", "accuracy", 100 * j["accuracy"].get<double>(),
              j["mean_exit_layer"].get<double>());
  for (const char* name : {"latency_ms", "cloud_ms", "network_ms"}) {
    const auto& p = j[name];
    std::printf("%-22s p50 %.3f  p95 %.3f  p99 %.3f  p99.9 %.3f ms\n", name, p["p50"].get<double>(),
                p["p95"].get<double>(), p["p99"].get<double>(), p["p999"].get<double>());
  }
  if (j.contains("verify_mismatches"))
    std::printf("%-22s %lld answers differ from the local run\n", "verify",
                static_cast<long long>(j["verify_mismatches"]));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "ee-load: load generator for ee-cloud. Sends real hidden states of a dataset at a mix of split "
      "layers over N connections, closed-loop or open-loop, and reports throughput, goodput and "
      "latency percentiles."};
  Flags f;
  app.add_option("--cloud", f.cloud, "worker address HOST:PORT")->capture_default_str();
  app.add_option("--cert", f.cert, "client certificate (PEM)")->capture_default_str();
  app.add_option("--key", f.key, "client private key (PEM)")->capture_default_str();
  app.add_option("--ca", f.ca, "CA of the worker's certificate (PEM)")->capture_default_str();
  app.add_flag("--insecure", f.insecure, "plaintext (the worker's --insecure mode)");
  app.add_option("-m,--model", f.model_dir, "model directory (the worker's)")->capture_default_str();
  app.add_option("--images", f.images, "IDX images (image models)")->capture_default_str();
  app.add_option("--labels", f.labels, "IDX labels (image models)")->capture_default_str();
  app.add_option("--text", f.text, "JSONL records (text models; default <model>/sample/test_sample.jsonl)");
  app.add_option("-n,--limit", f.limit, "use only the first N samples (0: all)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--splits", f.splits, "split layers to send from, mixed evenly")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--dtype", f.dtype, "activation dtype: f32 | f16 | i8")
      ->check(CLI::IsMember({"f32", "f16", "i8"}))
      ->capture_default_str();
  app.add_option("-r,--rule", f.rule, "exit rule the cloud applies after the split")->capture_default_str();
  app.add_option("--precision", f.precision, "fp32 | bf16 (must match the worker)")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  app.add_option("-c,--connections", f.connections, "connections")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  app.add_option("--concurrency", f.concurrency, "closed loop: requests outstanding at once")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--rate", f.rate, "open loop: Poisson arrivals per second (0: closed loop)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--requests", f.requests, "requests to send (default: one per prepared sample and split)");
  app.add_option("--duration-s", f.duration_s, "or: send for this long");
  app.add_option("--deadline-ms", f.deadline_ms, "deadline per request (0: none)")->capture_default_str();
  app.add_option("--slo-ms", f.slo_ms, "latency objective for goodput")->capture_default_str();
  app.add_flag("--verify", f.verify, "check every answer bit for bit against the continuation computed here");
  app.add_flag("--undecided-only", f.undecided_only,
               "send only samples no exit up to the split answered (what an edge sends)");
  app.add_option("--seed", f.seed, "order of the requests")->capture_default_str();
  app.add_option("--json", f.json_out, "write the summary as JSON to this file");
  CLI11_PARSE(app, argc, argv);

  try {
    exits::ExitRule::parse(f.rule);
    const net::HostPort cloud = net::parse_host_port(f.cloud);
    const auto model = model::MultiExitModel::load(f.model_dir);
    for (int s : f.splits)
      if (s < 0 || s >= model->num_layers())
        throw std::invalid_argument("--splits: " + std::to_string(s) + " is outside 0.." +
                                    std::to_string(model->num_layers() - 1));
    const auto& c = model->config();
    if (c.architecture == model::Architecture::bert && f.text.empty())
      f.text = f.model_dir + "/sample/test_sample.jsonl";
    const sim::EvalDataset data = c.architecture == model::Architecture::bert
                                      ? sim::text_eval_dataset(*model, f.model_dir, f.text, f.limit)
                                      : sim::image_eval_dataset(*model, f.images, f.labels, f.limit);
    std::fprintf(stderr, "ee-load: preparing %d samples at splits", data.size());
    for (int s : f.splits) std::fprintf(stderr, " %d", s);
    std::fprintf(stderr, " (%s)%s\n", f.dtype.c_str(), f.verify ? ", with the expected answers" : "");
    const std::vector<Prepared> prepared = prepare(*model, data, f);
    if (prepared.empty()) throw std::runtime_error("nothing to send (every sample exited before its split)");

    asio::io_context io;
    std::optional<asio::ssl::context> tls;
    if (!f.insecure) tls.emplace(net::make_client_tls_context({f.cert, f.key, f.ca}));
    const model::Gemm gemm = f.precision == "bf16" ? model::Gemm::bf16 : model::Gemm::packed;
    net::ConnectionOptions co;
    co.max_in_flight = std::max(64, f.concurrency);
    std::vector<std::shared_ptr<net::CloudConnection>> conns;
    std::atomic<int> connecting{f.connections};
    std::string failure;
    for (int i = 0; i < f.connections; ++i) {
      auto conn = net::CloudConnection::create(io.get_executor(), tls ? &*tls : nullptr, co,
                                               wire::hello_for(*model, "ee-load", gemm),
                                               wire::Limits::for_model(c, model->hash()));
      conn->connect(
          cloud.host, cloud.port,
          [&](const std::string& why) {
            if (!why.empty()) failure = why;
            --connecting;
          },
          [](const std::string& why) { spdlog::info("connection closed: {}", why); });
      conns.push_back(std::move(conn));
    }
    while (connecting > 0) io.run_one();
    if (!failure.empty()) throw std::runtime_error(failure);

    Load load(f, prepared, data, conns);
    load.start(io);
    while (!load.done()) io.run_one();
    for (auto& conn : conns) conn->close();
    io.run_for(std::chrono::seconds(2));
    const nlohmann::json j = summarize(load, f);
    print(j);
    if (!f.json_out.empty()) std::ofstream(f.json_out) << j.dump(2) << "\n";
    if (f.verify && j["verify_mismatches"].get<int64_t>() > 0) return 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ee-load: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
