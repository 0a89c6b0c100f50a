#pragma once
// Network traces written inline in a test, as the parsers would read them from a file.
#include <sstream>
#include <string>

#include "sim/net_trace.hpp"

namespace ee::testing {

// A Mahimahi trace ("test.up") from its lines.
inline sim::NetTrace mahimahi_trace(const std::string& text, const sim::MahimahiLink& link = {}) {
  std::istringstream in(text);
  return sim::NetTrace::parse_mahimahi(in, "test.up", link);
}

// A CSV trace ("test.csv") from its rows; the header is added.
inline sim::NetTrace csv_trace(const std::string& rows) {
  std::istringstream in("t_s,bandwidth_mbps,rtt_ms,loss\n" + rows);
  return sim::NetTrace::parse_csv(in, "test.csv");
}

}  // namespace ee::testing
