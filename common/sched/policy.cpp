#include "common/sched/policy.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace ee::sched {

std::string format_value(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string to_string(const Arm& arm) {
  std::string s = std::to_string(arm.split);
  if (arm.threshold) {
    s += '@';  // appended piecewise: "@" + string trips GCC 12's false -Wrestrict
    s += format_value(*arm.threshold);
  }
  return s;
}

namespace {
double parse_double(const std::string& text, const std::string& what) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v))
    throw SchedError("arm '" + what + "': '" + text + "' is not a number");
  return v;
}
}  // namespace

Arm parse_arm(const std::string& text) {
  const auto at = text.find('@');
  const std::string split = text.substr(0, at);
  const double s = parse_double(split, text);
  if (s < 0 || s != std::floor(s) || s > 10000)
    throw SchedError("arm '" + text + "': split must be a layer index");
  Arm arm{static_cast<int>(s), std::nullopt};
  if (at != std::string::npos) {
    const double t = parse_double(text.substr(at + 1), text);
    if (t < 0 || t > 1) throw SchedError("arm '" + text + "': threshold must be in [0, 1]");
    arm.threshold = t;
  }
  return arm;
}

std::vector<Arm> split_arms(int num_layers, const std::vector<double>& thresholds) {
  if (num_layers < 1) throw SchedError("split_arms: num_layers " + std::to_string(num_layers) + " < 1");
  std::vector<Arm> arms;
  for (int s = 0; s <= num_layers; ++s) {
    // A threshold only matters where an exit is taken on the edge: 0 < s < L.
    if (thresholds.empty() || s == 0 || s == num_layers) {
      arms.push_back({s, std::nullopt});
      continue;
    }
    for (double t : thresholds) {
      if (!(t >= 0 && t <= 1))
        throw SchedError("split_arms: threshold " + std::to_string(t) + " not in [0, 1]");
      arms.push_back({s, t});
    }
  }
  return arms;
}

const LayerExit* Outcome::exit_at(int layer) const {
  for (const auto& e : exits)
    if (e.layer == layer) return &e;
  return nullptr;
}

}  // namespace ee::sched
