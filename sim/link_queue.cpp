#include "sim/link_queue.hpp"

#include <algorithm>
#include <string>

namespace ee::sim {

LinkQueue::LinkQueue(const NetTrace& trace, LinkOptions options)
    : trace_(&trace), options_(options), rng_(options.seed) {}

Transfer LinkQueue::send(double at_s, std::uint64_t bytes) {
  if (!(at_s >= 0)) throw NetTraceError(trace_->name() + ": send at negative time " + std::to_string(at_s));
  if (at_s < last_sent_s_)
    throw NetTraceError(trace_->name() + ": send at " + std::to_string(at_s) +
                        " s is before the previous send (" + std::to_string(last_sent_s_) + " s)");
  last_sent_s_ = at_s;
  Transfer t{at_s, at_s, at_s};
  if (bytes == 0) return t;
  const NetTrace& tr = *trace_;
  double p = std::max(tr.capacity_before(at_s), position_);
  const auto arrive = [&](double departed) {
    t.departed_s = departed;
    last_arrived_s_ = std::max(last_arrived_s_, departed + tr.one_way_delay_s(departed));
  };
  if (tr.lossless() && tr.constant_delay()) {
    // Every packet sees the same delay, so the last one's arrival is the send's.
    t.packets = (bytes + kMahimahiPacketBytes - 1) / kMahimahiPacketBytes;
    p += static_cast<double>(bytes);
    arrive(tr.time_at_capacity(p));
  } else {
    for (std::uint64_t left = bytes; left > 0;) {
      const std::uint64_t size = std::min(left, kMahimahiPacketBytes);
      left -= size;
      ++t.packets;
      for (;;) {
        const double end = p + static_cast<double>(size);
        const double departed = tr.time_at_capacity(end);
        if (tr.lossless() || sched::uniform01(rng_) >= tr.loss(departed)) {
          p = end;
          arrive(departed);
          break;
        }
        ++t.lost;
        const double recovery =
            options_.loss_recovery_s >= 0 ? options_.loss_recovery_s : 2 * tr.one_way_delay_s(departed);
        p = std::max(end, tr.capacity_before(departed + recovery));
      }
    }
  }
  position_ = p;
  t.arrived_s = last_arrived_s_;
  return t;
}

double LinkQueue::backlog_bytes(double at_s) const {
  return std::max(0.0, position_ - trace_->capacity_before(at_s));
}

double LinkQueue::backlog_drained_to_s(double bytes) const {
  return trace_->time_at_capacity(position_ - bytes);
}

Transfer transfer(const NetTrace& trace, double at_s, std::uint64_t bytes, const LinkOptions& options) {
  LinkQueue q(trace, options);
  return q.send(at_s, bytes);
}

}  // namespace ee::sim
