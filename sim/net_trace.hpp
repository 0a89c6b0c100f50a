#pragma once
// Network traces: what one direction of a link can carry over time, its one-way propagation delay and its
// packet loss. Two file forms map to the same model:
//   - Mahimahi: one line per 1500-byte delivery opportunity, an integer millisecond timestamp per line,
//     non-decreasing; the file repeats with its last timestamp as the period (mm-link's semantics).
//     Delay and loss are not in the file; they come with it (MahimahiLink), as mm-delay and mm-loss add them.
//   - CSV: a header `t_s,bandwidth_mbps,rtt_ms,loss`, then rows with t_s increasing from 0; each row holds
//     until the next (the last for as long as the interval before it, or 1 s if it is the only row), and the
//     file repeats with that period. One-way delay is rtt_ms / 2.
// Everything below is a pure function of the trace: the link's capacity is a cumulative function C(t) (the
// bytes it can carry in [0, t)), which lib users (LinkQueue, ee-sim, ee-link) turn into delivery times.
#include <cstdint>
#include <filesystem>
#include <istream>
#include <stdexcept>
#include <string>
#include <vector>

namespace ee::sim {

class NetTraceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What one Mahimahi delivery opportunity carries.
inline constexpr std::uint64_t kMahimahiPacketBytes = 1500;

enum class TraceFormat { mahimahi, csv };

// Delay and loss that go with a Mahimahi file (the file itself has only the opportunities).
struct MahimahiLink {
  double delay_ms = 0;  // one-way propagation delay, >= 0
  double loss = 0;      // per-packet loss probability, in [0, 1)
};

class NetTrace {
 public:
  // Reads a trace file: CSV if its first line starts with "t_s", else Mahimahi. `link` applies to Mahimahi
  // files only; a CSV carries its own delay and loss, so a non-default `link` with a CSV file is an error.
  // Throws NetTraceError naming the file (and line) and what is wrong.
  static NetTrace load(const std::filesystem::path& file, const MahimahiLink& link = {});
  // `name` is what errors call the input (a file name).
  static NetTrace parse_mahimahi(std::istream& in, const std::string& name, const MahimahiLink& link = {});
  static NetTrace parse_csv(std::istream& in, const std::string& name);

  const std::string& name() const { return name_; }
  TraceFormat format() const { return format_; }
  double period_s() const { return period_s_; }
  // Bytes the link carries per period, and their mean rate.
  double period_capacity_bytes() const { return period_bytes_; }
  double mean_bandwidth_mbps() const { return period_bytes_ * 8 / period_s_ / 1e6; }

  // C(t): bytes the link can carry in [0, t) (Mahimahi: opportunities strictly before t); 0 for t <= 0.
  double capacity_before(double t_s) const;
  // The earliest time by which the link has carried `bytes` bytes in all: for Mahimahi, the time of the
  // opportunity that carries byte number `bytes`; 0 for bytes <= 0.
  double time_at_capacity(double bytes) const;
  // Mean rate over [t0_s, t1_s) (t1_s > t0_s), for plots of bandwidth over time.
  double mean_bandwidth_mbps(double t0_s, double t1_s) const;

  double one_way_delay_s(double t_s) const;
  double loss(double t_s) const;
  bool lossless() const { return lossless_; }
  bool constant_delay() const { return constant_delay_; }

 private:
  NetTrace() = default;
  // Index of the CSV row in force at `t_s`.
  std::size_t row_at(double t_s) const;
  // Mahimahi opportunities strictly before t_ms.
  std::uint64_t opportunities_before(double t_ms) const;

  std::string name_;
  TraceFormat format_ = TraceFormat::mahimahi;
  double period_s_ = 0, period_bytes_ = 0;
  bool lossless_ = true, constant_delay_ = true;

  // Mahimahi: opportunity timestamps within one period, and the link's constant delay and loss.
  std::vector<double> opportunity_ms_;
  double period_ms_ = 0;
  std::uint64_t at_period_end_ = 0;  // opportunities stamped exactly at the period (they fire at k * period)
  MahimahiLink link_;

  // CSV: row start times, rates, capacity before each row (one more entry: the period's total), delay, loss.
  std::vector<double> row_t_s_, row_bytes_per_s_, row_cum_bytes_, row_delay_s_, row_loss_;
};

}  // namespace ee::sim
