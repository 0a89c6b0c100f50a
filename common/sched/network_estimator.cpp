#include "common/sched/network_estimator.hpp"

#include <cmath>

namespace ee::sched {

namespace {
void check_finite_nonneg(double v, const char* what) {
  if (!std::isfinite(v) || v < 0)
    throw SchedError(std::string("NetworkEstimator: ") + what + " " + std::to_string(v));
}
// The first sample seeds the average; otherwise a cold estimate of 0 would drag the next ones down.
double ewma(double old, double sample, double weight, std::uint64_t count) {
  return count == 0 ? sample : old + weight * (sample - old);
}
}  // namespace

NetworkEstimator::NetworkEstimator(double weight) : weight_(weight) {
  if (!(weight > 0 && weight <= 1))
    throw SchedError("NetworkEstimator: weight " + std::to_string(weight) + " not in (0, 1]");
}

void NetworkEstimator::observe_transfer(std::uint64_t bytes, double transfer_ms) {
  check_finite_nonneg(transfer_ms, "transfer_ms");
  if (bytes == 0 || transfer_ms == 0) return;
  const double mbps = static_cast<double>(bytes) * 8.0 / (transfer_ms * 1000.0);
  bandwidth_mbps_ = ewma(bandwidth_mbps_, mbps, weight_, bandwidth_samples_++);
}

void NetworkEstimator::observe_rtt(double rtt_ms) {
  check_finite_nonneg(rtt_ms, "rtt_ms");
  rtt_ms_ = ewma(rtt_ms_, rtt_ms, weight_, rtt_samples_++);
}

void NetworkEstimator::observe(const Outcome& outcome, double rtt_ms) {
  if (!outcome.sent) return;
  observe_transfer(outcome.payload_bytes, outcome.latency.transfer_ms);
  observe_rtt(rtt_ms);
}

void NetworkEstimator::fill(Context& ctx) const {
  ctx.bandwidth_mbps = bandwidth_mbps_;
  ctx.rtt_ms = rtt_ms_;
}

}  // namespace ee::sched
