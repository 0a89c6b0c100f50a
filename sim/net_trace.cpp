#include "sim/net_trace.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>

namespace ee::sim {

namespace {

std::string at_line(const std::string& name, int line) {
  return name + ":" + std::to_string(line) + ": ";
}

// Drops the whitespace (and a Windows line end) tools leave around a value.
std::string_view trimmed(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

// Comma-separated fields, each trimmed; views into `line`.
std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  for (;;) {
    const auto comma = line.find(',');
    fields.push_back(trimmed(line.substr(0, comma)));
    if (comma == std::string_view::npos) return fields;
    line.remove_prefix(comma + 1);
  }
}

double parse_number(std::string_view text, const std::string& where, const char* column) {
  double v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || !std::isfinite(v))
    throw NetTraceError(where + column + " is not a number: '" + std::string(text) + "'");
  return v;
}

}  // namespace

NetTrace NetTrace::load(const std::filesystem::path& file, const MahimahiLink& link) {
  std::ifstream in(file);
  if (!in) throw NetTraceError(file.string() + ": cannot open the trace file");
  std::string first;
  std::getline(in, first);
  in.clear();
  in.seekg(0);
  if (trimmed(first).starts_with("t_s")) {
    if (link.delay_ms != 0 || link.loss != 0)
      throw NetTraceError(file.string() +
                          ": a CSV trace carries its own rtt and loss; a delay or loss for Mahimahi "
                          "traces does not apply to it");
    return parse_csv(in, file.string());
  }
  return parse_mahimahi(in, file.string(), link);
}

NetTrace NetTrace::parse_mahimahi(std::istream& in, const std::string& name, const MahimahiLink& link) {
  if (!(link.delay_ms >= 0) || !std::isfinite(link.delay_ms))
    throw NetTraceError(name + ": one-way delay " + std::to_string(link.delay_ms) + " ms is not >= 0");
  if (!(link.loss >= 0 && link.loss < 1))
    throw NetTraceError(name + ": loss " + std::to_string(link.loss) + " is not in [0, 1)");
  NetTrace t;
  t.name_ = name;
  t.format_ = TraceFormat::mahimahi;
  t.link_ = link;
  t.lossless_ = link.loss == 0;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const std::string_view v = trimmed(line);
    if (v.empty()) throw NetTraceError(at_line(name, n) + "empty line");
    if (v.front() == '-') throw NetTraceError(at_line(name, n) + "negative timestamp " + std::string(v));
    std::uint64_t ms = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), ms);
    if (ec != std::errc{} || end != v.data() + v.size())
      throw NetTraceError(at_line(name, n) + "not an integer millisecond timestamp: '" + std::string(v) +
                          "'");
    const double stamp = static_cast<double>(ms);
    if (!t.opportunity_ms_.empty() && stamp < t.opportunity_ms_.back())
      throw NetTraceError(at_line(name, n) + "timestamp " + std::string(v) + " is before the previous one (" +
                          std::to_string(static_cast<std::uint64_t>(t.opportunity_ms_.back())) +
                          "); timestamps must not decrease");
    t.opportunity_ms_.push_back(stamp);
  }
  if (t.opportunity_ms_.empty()) throw NetTraceError(name + ": no timestamps (empty trace)");
  t.period_ms_ = t.opportunity_ms_.back();
  if (t.period_ms_ == 0)
    throw NetTraceError(name + ": the last timestamp is the trace's period and must be > 0 ms");
  t.at_period_end_ = static_cast<std::uint64_t>(
      t.opportunity_ms_.end() -
      std::lower_bound(t.opportunity_ms_.begin(), t.opportunity_ms_.end(), t.period_ms_));
  t.period_s_ = t.period_ms_ / 1000;
  t.period_bytes_ = static_cast<double>(t.opportunity_ms_.size() * kMahimahiPacketBytes);
  return t;
}

NetTrace NetTrace::parse_csv(std::istream& in, const std::string& name) {
  static constexpr const char* kColumns[] = {"t_s", "bandwidth_mbps", "rtt_ms", "loss"};
  NetTrace t;
  t.name_ = name;
  t.format_ = TraceFormat::csv;
  std::string line;
  if (!std::getline(in, line))
    throw NetTraceError(name + ": empty file (expected the header t_s,bandwidth_mbps,rtt_ms,loss)");
  std::vector<std::string_view> header = split_fields(line);
  if (header.size() != 4 || !std::equal(header.begin(), header.end(), std::begin(kColumns)))
    throw NetTraceError(at_line(name, 1) + "header is '" + std::string(trimmed(line)) +
                        "', expected 't_s,bandwidth_mbps,rtt_ms,loss'");
  double deliverable = 0;  // capacity that loss does not take: the link must deliver something
  for (int n = 2; std::getline(in, line); ++n) {
    const std::string where = at_line(name, n);
    if (trimmed(line).empty()) throw NetTraceError(where + "empty line");
    const std::vector<std::string_view> fields = split_fields(line);
    if (fields.size() != 4)
      throw NetTraceError(where + std::to_string(fields.size()) +
                          " fields, expected 4 (t_s,bandwidth_mbps,rtt_ms,loss)");
    const double ts = parse_number(fields[0], where, "t_s");
    const double mbps = parse_number(fields[1], where, "bandwidth_mbps");
    const double rtt = parse_number(fields[2], where, "rtt_ms");
    const double loss = parse_number(fields[3], where, "loss");
    if (t.row_t_s_.empty() && ts != 0)
      throw NetTraceError(where + "the first row must be at t_s 0, not " + std::string(fields[0]));
    if (!t.row_t_s_.empty() && ts <= t.row_t_s_.back())
      throw NetTraceError(where + "t_s " + std::string(fields[0]) + " does not increase (previous " +
                          std::to_string(t.row_t_s_.back()) + ")");
    if (mbps < 0) throw NetTraceError(where + "negative bandwidth_mbps " + std::string(fields[1]));
    if (rtt < 0) throw NetTraceError(where + "negative rtt_ms " + std::string(fields[2]));
    if (!(loss >= 0 && loss <= 1))
      throw NetTraceError(where + "loss " + std::string(fields[3]) + " is not in [0, 1]");
    t.row_t_s_.push_back(ts);
    t.row_bytes_per_s_.push_back(mbps * 1e6 / 8);
    t.row_delay_s_.push_back(rtt / 2000);
    t.row_loss_.push_back(loss);
  }
  const std::size_t rows = t.row_t_s_.size();
  if (rows == 0) throw NetTraceError(name + ": no rows after the header");
  t.period_s_ = rows == 1 ? 1.0 : 2 * t.row_t_s_[rows - 1] - t.row_t_s_[rows - 2];
  t.row_cum_bytes_.assign(1, 0.0);
  for (std::size_t i = 0; i < rows; ++i) {
    const double end = i + 1 < rows ? t.row_t_s_[i + 1] : t.period_s_;
    const double bytes = t.row_bytes_per_s_[i] * (end - t.row_t_s_[i]);
    t.row_cum_bytes_.push_back(t.row_cum_bytes_.back() + bytes);
    deliverable += bytes * (1 - t.row_loss_[i]);
  }
  t.period_bytes_ = t.row_cum_bytes_.back();
  if (!(deliverable > 0))
    throw NetTraceError(name + ": the link never delivers anything (every row has bandwidth 0 or loss 1)");
  t.lossless_ = std::all_of(t.row_loss_.begin(), t.row_loss_.end(), [](double l) { return l == 0; });
  t.constant_delay_ = std::all_of(t.row_delay_s_.begin(), t.row_delay_s_.end(),
                                  [&](double d) { return d == t.row_delay_s_.front(); });
  return t;
}

std::size_t NetTrace::row_at(double t_s) const {
  double r = std::fmod(std::max(t_s, 0.0), period_s_);
  const auto it = std::upper_bound(row_t_s_.begin(), row_t_s_.end(), r);
  return static_cast<std::size_t>(it - row_t_s_.begin()) - 1;
}

std::uint64_t NetTrace::opportunities_before(double t_ms) const {
  if (t_ms <= 0) return 0;
  double loops = std::floor(t_ms / period_ms_);
  double r = t_ms - loops * period_ms_;
  if (r >= period_ms_) {  // rounding
    loops += 1;
    r -= period_ms_;
  }
  r = std::max(r, 0.0);
  const auto k = static_cast<std::uint64_t>(loops);
  std::uint64_t count =
      k * opportunity_ms_.size() +
      static_cast<std::uint64_t>(std::lower_bound(opportunity_ms_.begin(), opportunity_ms_.end(), r) -
                                 opportunity_ms_.begin());
  // Opportunities stamped at the period fire at exactly k * period = t_ms: not before it.
  if (r == 0 && k > 0) count -= at_period_end_;
  return count;
}

double NetTrace::capacity_before(double t_s) const {
  if (t_s <= 0) return 0;
  if (format_ == TraceFormat::mahimahi)
    return static_cast<double>(opportunities_before(t_s * 1000) * kMahimahiPacketBytes);
  const double loops = std::floor(t_s / period_s_);
  const double r = std::clamp(t_s - loops * period_s_, 0.0, period_s_);
  const std::size_t i = row_at(r);
  return loops * period_bytes_ + row_cum_bytes_[i] + (r - row_t_s_[i]) * row_bytes_per_s_[i];
}

double NetTrace::time_at_capacity(double bytes) const {
  if (bytes <= 0) return 0;
  if (format_ == TraceFormat::mahimahi) {
    // Byte number `bytes` travels in opportunity j (0-based, counting every loop).
    const auto j =
        static_cast<std::uint64_t>(std::ceil(bytes / static_cast<double>(kMahimahiPacketBytes))) - 1;
    const std::uint64_t n = opportunity_ms_.size();
    return (opportunity_ms_[j % n] + static_cast<double>(j / n) * period_ms_) / 1000;
  }
  const double loops = std::ceil(bytes / period_bytes_) - 1;
  const double rem = bytes - loops * period_bytes_;  // (0, period_bytes_]
  auto it = std::lower_bound(row_cum_bytes_.begin() + 1, row_cum_bytes_.end(), rem);
  if (it == row_cum_bytes_.end()) --it;  // rounding put rem a hair above the period's total
  const std::size_t i = static_cast<std::size_t>(it - row_cum_bytes_.begin()) - 1;
  const double into = row_bytes_per_s_[i] > 0 ? (rem - row_cum_bytes_[i]) / row_bytes_per_s_[i] : 0.0;
  return loops * period_s_ + row_t_s_[i] + into;
}

double NetTrace::mean_bandwidth_mbps(double t0_s, double t1_s) const {
  if (!(t1_s > t0_s))
    throw NetTraceError(name_ + ": mean bandwidth over an empty window [" + std::to_string(t0_s) + ", " +
                        std::to_string(t1_s) + ")");
  return (capacity_before(t1_s) - capacity_before(t0_s)) * 8 / (t1_s - t0_s) / 1e6;
}

double NetTrace::one_way_delay_s(double t_s) const {
  return format_ == TraceFormat::mahimahi ? link_.delay_ms / 1000 : row_delay_s_[row_at(t_s)];
}

double NetTrace::loss(double t_s) const {
  return format_ == TraceFormat::mahimahi ? link_.loss : row_loss_[row_at(t_s)];
}

}  // namespace ee::sim
