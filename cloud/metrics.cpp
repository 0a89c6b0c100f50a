#include "cloud/metrics.hpp"

namespace ee::cloud {
namespace {

const std::vector<double> kSecondsBuckets = metrics::exponential_buckets(1e-5, 2, 20);  // 10 us .. ~5 s

}  // namespace

Metrics::Metrics(metrics::Registry& r, int num_layers)
    : pending(r.gauge("ee_cloud_pending_requests", "Requests waiting in the batcher or running")),
      connections(r.gauge("ee_cloud_open_connections", "Edge connections past the TLS handshake")),
      ready(r.gauge("ee_cloud_ready", "1 while the worker accepts requests")),
      queue_seconds(r.histogram("ee_cloud_queue_duration_seconds",
                                "Time from a request's arrival to its first layer", kSecondsBuckets)),
      compute_seconds(r.histogram("ee_cloud_compute_duration_seconds",
                                  "Time of one layer step of one batch (layer and exit head)",
                                  kSecondsBuckets)),
      request_seconds(r.histogram("ee_cloud_request_duration_seconds",
                                  "Time from a request's arrival to its answer", kSecondsBuckets)),
      batch_size(r.histogram("ee_cloud_batch_size", "Samples per layer step",
                             metrics::exponential_buckets(1, 2, 9))),
      bytes_received(r.counter("ee_cloud_received_bytes_total", "Frame bytes received from edges")),
      handshake_failures_(r.counter_family("ee_cloud_tls_handshake_failures_total",
                                           "Refused or failed TLS handshakes, by reason", {"reason"})) {
  auto& req = r.counter_family("ee_cloud_requests_total", "Answered requests by status", {"status"});
  for (std::size_t s = 0; s < requests_.size(); ++s)
    requests_[s] = &req.labels({std::string(wire::to_string(static_cast<wire::Status>(s)))});
  auto& exe = r.counter_family("ee_cloud_executions_total", "Layer steps run, by layer", {"layer"});
  auto& samples = r.counter_family("ee_cloud_layer_samples_total",
                                   "Samples run through a layer (inferences per layer)", {"layer"});
  auto& exits = r.counter_family("ee_cloud_exits_total",
                                 "Samples answered by a cloud-side exit before the "
                                 "last layer, by exit layer",
                                 {"layer"});
  executions_.resize(static_cast<std::size_t>(num_layers) + 1);
  layer_samples_.resize(executions_.size());
  cloud_exits_.resize(executions_.size());
  for (int l = 1; l <= num_layers; ++l) {
    const std::vector<std::string> label{std::to_string(l)};
    executions_[static_cast<std::size_t>(l)] = &exe.labels(label);
    layer_samples_[static_cast<std::size_t>(l)] = &samples.labels(label);
    cloud_exits_[static_cast<std::size_t>(l)] = &exits.labels(label);
  }
}

}  // namespace ee::cloud
