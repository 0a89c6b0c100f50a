#pragma once
// What ee-cloud reports on /metrics, named as Prometheus expects (base units, _total) and covering what
// Triton's batcher reports: requests by status, inferences against executions (their ratio is the mean
// batch size), pending requests, queue and compute time, batch sizes; and what only a layer-wise batcher
// has: samples run and cloud exits per layer. Children are looked up once here, so the hot path never
// takes a family's lock.
#include <array>
#include <string>
#include <vector>

#include "common/metrics/metrics.hpp"
#include "common/wire/codec.hpp"

namespace ee::cloud {

struct Metrics {
  Metrics(metrics::Registry& registry, int num_layers);

  metrics::Counter& requests(wire::Status s) { return *requests_[static_cast<std::size_t>(s)]; }
  metrics::Counter& executions(int layer) { return *executions_[static_cast<std::size_t>(layer)]; }
  metrics::Counter& layer_samples(int layer) { return *layer_samples_[static_cast<std::size_t>(layer)]; }
  metrics::Counter& cloud_exits(int layer) { return *cloud_exits_[static_cast<std::size_t>(layer)]; }
  metrics::Counter& handshake_failures(const std::string& reason) {
    return handshake_failures_.labels({reason});
  }

  metrics::Gauge& pending;              // requests waiting or running
  metrics::Gauge& connections;          // open edge connections
  metrics::Gauge& ready;                // 1 while /readyz answers 200
  metrics::Histogram& queue_seconds;    // arrival to first layer
  metrics::Histogram& compute_seconds;  // one layer step of one batch
  metrics::Histogram& request_seconds;  // arrival to answer
  metrics::Histogram& batch_size;       // samples per layer step
  metrics::Counter& bytes_received;

 private:
  metrics::Family<metrics::Counter>& handshake_failures_;
  std::array<metrics::Counter*, 8> requests_{};
  std::vector<metrics::Counter*> executions_, layer_samples_, cloud_exits_;  // by layer (1-based)
};

}  // namespace ee::cloud
