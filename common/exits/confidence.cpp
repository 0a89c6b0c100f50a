#include "common/exits/confidence.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <vector>

namespace ee::exits {

namespace {

void check_logits(std::span<const float> logits) {
  if (logits.size() < 2) throw std::invalid_argument("confidence needs at least two logits");
  for (float v : logits) {
    if (!std::isfinite(v)) throw std::invalid_argument("confidence: logit is not finite");
  }
}

}  // namespace

std::vector<float> probabilities(std::span<const float> logits) {
  check_logits(logits);
  const double top = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - top);
  std::vector<float> p;
  p.reserve(logits.size());
  for (float v : logits) p.push_back(static_cast<float>(std::exp(static_cast<double>(v) - top) / sum));
  return p;
}

Confidence confidence(std::span<const float> logits) {
  check_logits(logits);
  const auto top = std::max_element(logits.begin(), logits.end());
  // Softmax in double relative to the max, so large logits cannot overflow.
  double sum = 0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - *top);
  double p1 = 0, p2 = 0, entropy = 0;
  for (float v : logits) {
    const double p = std::exp(static_cast<double>(v) - *top) / sum;
    if (p > 0) entropy -= p * std::log(p);
    if (p > p1) {
      p2 = p1;
      p1 = p;
    } else if (p > p2) {
      p2 = p;
    }
  }
  return {static_cast<int>(top - logits.begin()), static_cast<float>(p1), static_cast<float>(entropy),
          static_cast<float>(p1 - p2)};
}

ExitRule ExitRule::parse(std::string_view spec) {
  const auto colon = spec.find(':');
  if (colon == std::string_view::npos) {
    throw std::invalid_argument("exit rule '" + std::string(spec) +
                                "' is not measure:threshold (e.g. max_prob:0.9)");
  }
  const std::string_view name = spec.substr(0, colon), value = spec.substr(colon + 1);
  ExitRule rule;
  if (name == "max_prob") {
    rule.measure = Measure::max_prob;
  } else if (name == "entropy") {
    rule.measure = Measure::entropy;
  } else if (name == "margin") {
    rule.measure = Measure::margin;
  } else if (name == "patience") {
    rule.measure = Measure::patience;
  } else {
    throw std::invalid_argument("unknown exit measure '" + std::string(name) +
                                "' (max_prob, entropy, margin, patience)");
  }
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), rule.threshold);
  if (ec != std::errc() || end != value.data() + value.size() || !std::isfinite(rule.threshold)) {
    throw std::invalid_argument("exit rule '" + std::string(spec) + "': threshold is not a number");
  }
  const bool ok = rule.measure == Measure::patience
                      ? rule.threshold >= 1 && rule.threshold == std::floor(rule.threshold)
                      : rule.threshold >= 0;
  if (!ok) {
    throw std::invalid_argument("exit rule '" + std::string(spec) +
                                "': patience needs a whole number >= 1, other thresholds must be >= 0");
  }
  return rule;
}

std::string ExitRule::str() const {
  static const char* names[] = {"max_prob", "entropy", "margin", "patience"};
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, threshold);
  return std::string(names[static_cast<int>(measure)]) + ":" +
         std::string(buf, ec == std::errc() ? end : buf);
}

bool ExitDecider::should_exit(const Confidence& c) {
  switch (rule.measure) {
    case Measure::max_prob:
      return c.max_prob >= rule.threshold;
    case Measure::entropy:
      return c.entropy <= rule.threshold;
    case Measure::margin:
      return c.margin >= rule.threshold;
    case Measure::patience:
      state.streak = c.label == state.last_label ? state.streak + 1 : 0;
      state.last_label = c.label;
      return state.streak >= rule.threshold;
  }
  return false;
}

}  // namespace ee::exits
