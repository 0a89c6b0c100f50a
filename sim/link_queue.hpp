#pragma once
// One direction of an emulated link: a FIFO bottleneck that drains at the trace's capacity, then the trace's
// propagation delay, then the far end. ee-sim asks it when a frame arrives; ee-link asks it when to release
// each packet it relays. Both see the same numbers for the same sends, which is what lets the simulator be
// checked against real daemons running through ee-link.
//
// Bytes go through in 1500-byte packets (Mahimahi's unit). The bottleneck is work-conserving: a send that
// finds the link busy starts where the previous one ends (sharing a half-used opportunity, as mm-link does);
// one that finds it idle starts at its own time, and capacity nobody used is gone.
//
// Loss, for a byte stream: TCP retransmits, so a lost packet is late, never missing. A lost packet still
// uses its share of the link; its sender learns of the loss one round trip (2 x one-way delay) after it
// left the bottleneck (duplicate ACKs / SACK, fast retransmit) and sends it again, and nothing behind it in
// the stream is delivered before it (in-order delivery), so the link carries nothing new for that round trip.
// That is optimistic against a tail loss that waits for a retransmission timeout (Linux: >= 200 ms) and
// ignores the congestion window's reaction, and pessimistic against SACK keeping the pipe full; it makes a
// loss cost what it mostly costs a request-sized transfer: about one RTT. LinkOptions can replace the RTT.
#include <cstdint>

#include "common/sched/rng.hpp"
#include "sim/net_trace.hpp"

namespace ee::sim {

struct LinkOptions {
  // Time from a lost packet leaving the bottleneck to its resend; < 0: the round trip at that moment.
  double loss_recovery_s = -1;
  std::uint64_t seed = 1;  // loss draws; the same seed and sends give the same deliveries
};

// One send's fate. A send of 0 bytes departs and arrives at its start.
struct Transfer {
  double sent_s = 0;      // when the send reached the link
  double departed_s = 0;  // when its last byte left the bottleneck
  double arrived_s = 0;   // when its last byte reached the far end, in stream order
  std::uint64_t packets = 0, lost = 0;
  double seconds() const { return arrived_s - sent_s; }
};

class LinkQueue {
 public:
  // `trace` must outlive the queue.
  explicit LinkQueue(const NetTrace& trace, LinkOptions options = {});

  // `bytes` reach the link at `at_s` (>= 0, not before an earlier send's time) behind everything sent
  // before. Throws NetTraceError on a negative or decreasing time.
  Transfer send(double at_s, std::uint64_t bytes);

  // Bytes sent but not yet out of the bottleneck at `at_s` (includes a lost packet's resend).
  double backlog_bytes(double at_s) const;
  // The earliest time the backlog is down to `bytes`, if nothing more is sent.
  double backlog_drained_to_s(double bytes) const;

  const NetTrace& trace() const { return *trace_; }

 private:
  const NetTrace* trace_;
  LinkOptions options_;
  sched::Rng rng_;
  double position_ = 0;  // C(t) at which the last byte sent so far leaves the bottleneck
  double last_sent_s_ = 0, last_arrived_s_ = 0;
};

// A send over an idle link: what ee-sim uses for a frame that has the link to itself. Pure: the same
// arguments give the same Transfer.
Transfer transfer(const NetTrace& trace, double at_s, std::uint64_t bytes, const LinkOptions& options = {});

}  // namespace ee::sim
