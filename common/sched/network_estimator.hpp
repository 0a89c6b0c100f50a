#pragma once
// Running estimates of uplink bandwidth and round-trip time from the offloads the edge has made: an EWMA,
// like TCP's SRTT, so a policy sees the recent network rather than its whole history.
#include <cstdint>

#include "common/sched/policy.hpp"

namespace ee::sched {

class NetworkEstimator {
 public:
  // weight: share of each new sample in the estimate (TCP's SRTT uses 1/8).
  explicit NetworkEstimator(double weight = 0.125);

  // One payload of `bytes` took `transfer_ms` to send. Zero-length or zero-time samples carry no rate.
  void observe_transfer(std::uint64_t bytes, double transfer_ms);
  void observe_rtt(double rtt_ms);
  // Both from an offload's outcome (does nothing for samples that did not cross the network).
  void observe(const Outcome& outcome, double rtt_ms);

  bool has_bandwidth() const { return bandwidth_samples_ > 0; }
  bool has_rtt() const { return rtt_samples_ > 0; }
  double bandwidth_mbps() const { return bandwidth_mbps_; }
  double rtt_ms() const { return rtt_ms_; }
  // Writes the estimates into a context (left at 0 = unknown until measured).
  void fill(Context& ctx) const;

 private:
  double weight_;
  double bandwidth_mbps_ = 0, rtt_ms_ = 0;
  std::uint64_t bandwidth_samples_ = 0, rtt_samples_ = 0;
};

}  // namespace ee::sched
