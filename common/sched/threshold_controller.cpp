#include "common/sched/threshold_controller.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

namespace ee::sched {

DropWeight parse_drop_weight(const std::string& name) {
  if (name == "disagreement") return DropWeight::disagreement;
  if (name == "final-confidence") return DropWeight::final_confidence;
  throw SchedError("unknown drop weight '" + name + "' (disagreement | final-confidence)");
}

std::string to_string(DropWeight w) {
  return w == DropWeight::disagreement ? "disagreement" : "final-confidence";
}

namespace {
void check_range(double v, double lo, double hi, const char* what) {
  if (!(v >= lo && v <= hi))
    throw SchedError(std::string("threshold controller: ") + what + " " + std::to_string(v) + " not in [" +
                     std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

// Variance of a [0, 1] weight whose mean is estimated from `weight` over `n` samples, pulled towards 1/2
// as Agresti-Coull do, so that a band with no disagreement seen yet is not taken as certain.
double smoothed_variance(double weight, double n, double z) {
  const double r = (weight + z * z / 2) / (n + z * z);
  return r * (1 - r);
}
}  // namespace

ThresholdController::ThresholdController(ThresholdControllerParams p) : p_(p) {
  check_range(p.budget, 0, 1, "budget");
  check_range(p.audit_rate, 0, 1, "audit_rate");
  check_range(p.z, 0, 10, "z");
  check_range(p.min_threshold, 0, 1, "min_threshold");
  check_range(p.max_threshold, p.min_threshold, 1, "max_threshold");
  check_range(p.initial, p.min_threshold, p.max_threshold, "initial threshold");
  check_range(p.step, 1e-4, 0.5, "step");
  check_range(p.max_lower_step, 0, 1, "max_lower_step");
  check_range(p.shift_z, 0, 100, "shift_z");
  if (p.window < 1 || p.window > 10'000'000)
    throw SchedError("threshold controller: window " + std::to_string(p.window) + " not in [1, 1e7]");
  if (p.shift_window >= p.window)
    throw SchedError("threshold controller: shift_window " + std::to_string(p.shift_window) +
                     " must be shorter than the window " + std::to_string(p.window));
  if (p.update_every < 1) throw SchedError("threshold controller: update_every must be >= 1");
  if (p.min_band_evidence < 1) throw SchedError("threshold controller: min_band_evidence must be >= 1");
  bins_ = static_cast<std::size_t>(std::floor(1.0 / p_.step + 1e-9)) + 1;
  reset();
}

void ThresholdController::reset() {
  threshold_ = p_.initial;
  rng_.seed(p_.seed);
  window_.clear();
  window_samples_ = 0;
  observed_ = 0;
  layers_.clear();
  since_update_ = 0;
}

int ThresholdController::bin_of(double c) const {
  // The epsilon keeps 0.9 / 0.01 = 89.999... in bin 90, so "C >= grid value" and "bin >= k" agree.
  const auto b = static_cast<long>(std::floor(std::clamp(c, 0.0, 1.0) / p_.step + 1e-9));
  return static_cast<int>(std::min<long>(b, static_cast<long>(bins()) - 1));
}

ThresholdController::Bins& ThresholdController::layer_bins(int layer) {
  auto [it, fresh] = layers_.try_emplace(layer);
  if (fresh) {
    Bins& b = it->second;
    for (auto* v : {&b.checked_weight, &b.evidence_weight}) v->assign(bins(), 0.0);
    for (auto* v : {&b.evidence, &b.unchecked, &b.exits, &b.audits}) v->assign(bins(), 0);
  }
  return it->second;
}

bool ThresholdController::draw_audit() {
  return p_.audit_rate > 0 && uniform01(rng_) < p_.audit_rate;
}

void ThresholdController::add(const Record& r, int sign) {
  if (r.kind != kPassed) window_samples_ = sign > 0 ? window_samples_ + 1 : window_samples_ - 1;
  if (r.kind == kNoExit) return;
  Bins& b = layer_bins(r.layer);
  const auto i = static_cast<std::size_t>(r.bin);
  auto bump = [sign](std::uint64_t& c) { c = sign > 0 ? c + 1 : c - 1; };
  if (r.kind == kExit || r.kind == kAudit) bump(b.exits[i]);
  if (r.kind == kAudit) bump(b.audits[i]);
  if (r.kind == kExit) {
    bump(b.unchecked[i]);
    return;
  }
  bump(b.evidence[i]);
  b.evidence_weight[i] += sign * r.weight;
  if (r.kind != kPassed) b.checked_weight[i] += sign * r.weight;
}

void ThresholdController::push(const Record& r) {
  window_.push_back(r);
  add(r, +1);
}

void ThresholdController::drop_front() {
  add(window_.front(), -1);
  window_.pop_front();
}

void ThresholdController::observe(const Arm& arm, const Outcome& o) {
  const LayerExit* e = o.exit_at(arm.split);
  const std::uint64_t t = observed_;
  // Answers from the last layer (split 0, split L, no exit head at the split) cannot differ from it.
  if (e == nullptr || o.answered_by == AnsweredBy::edge_final || arm.split == 0) {
    push({t, 0, 0, kNoExit, 0});
  } else if (o.exited() && !(o.audited && o.final_prediction)) {
    push({t, e->layer, bin_of(e->confidence), kExit, 0});
  } else if (o.final_prediction) {
    auto weight = [&](const LayerExit& x) {
      if (x.prediction == *o.final_prediction) return 0.0;
      return p_.weight == DropWeight::final_confidence
                 ? std::clamp(o.final_confidence.value_or(1.0), 0.0, 1.0)
                 : 1.0;
    };
    push({t, e->layer, bin_of(e->confidence), o.exited() ? kAudit : kOffload, weight(*e)});
    for (const auto& x : o.exits)
      if (x.layer < e->layer) push({t, x.layer, bin_of(x.confidence), kPassed, weight(x)});
  } else {
    return;  // offloaded but the final answer never came back: nothing learned, nothing counted
  }
  ++observed_;
  while (window_samples_ > p_.window) drop_front();
  // A sample's evidence-only records follow its own: at the front, their sample has left.
  while (!window_.empty() && window_.front().kind == kPassed) drop_front();
  ++since_update_;
  maybe_update();
}

void ThresholdController::estimate_layer(const Bins& b, int first_bin, Estimate& est, double& var) const {
  const double min_evidence = static_cast<double>(p_.min_band_evidence);
  int k = static_cast<int>(bins()) - 1;
  while (k >= first_bin) {
    double checked = 0, unchecked = 0, evidence = 0, weight = 0;
    for (; k >= first_bin && evidence < min_evidence; --k) {
      const auto i = static_cast<std::size_t>(k);
      checked += b.checked_weight[i];
      unchecked += static_cast<double>(b.unchecked[i]);
      evidence += static_cast<double>(b.evidence[i]);
      weight += b.evidence_weight[i];
      est.exits += b.exits[i];
      est.audits += b.audits[i];
      est.unchecked += b.unchecked[i];
    }
    // The lowest band, short of evidence: lend it the evidence of the bins below the candidate.
    for (int j = first_bin - 1; j >= 0 && evidence < min_evidence && unchecked > 0; --j) {
      evidence += static_cast<double>(b.evidence[static_cast<std::size_t>(j)]);
      weight += b.evidence_weight[static_cast<std::size_t>(j)];
    }
    const double rate = evidence > 0 ? weight / evidence : 1.0;
    est.checked += checked;
    est.point += checked + unchecked * rate;
    // The unchecked exits' own spread around the rate, plus the rate's estimation error.
    var += unchecked * smoothed_variance(weight, evidence, p_.z) * (1 + unchecked / std::max(evidence, 1.0));
  }
}

ThresholdController::Estimate ThresholdController::estimate(double threshold) const {
  Estimate est;
  est.samples = window_samples_;
  if (window_samples_ == 0) {
    est.upper = 1.0;
    return est;
  }
  double var = 0;
  for (const auto& [layer, b] : layers_) estimate_layer(b, bin_of(threshold), est, var);
  const double n = static_cast<double>(window_samples_);
  est.upper = std::min(1.0, (est.point + p_.z * std::sqrt(var)) / n);
  est.point /= n;
  est.checked /= n;
  return est;
}

bool ThresholdController::shift_detected() const {
  if (p_.shift_window == 0 || window_samples_ < 2 * p_.shift_window) return false;
  // The recent checked samples, per layer and bin.
  std::map<int, std::pair<std::vector<double>, std::vector<double>>> recent;  // layer -> (count, weight)
  for (auto it = window_.rbegin(); it != window_.rend() && it->sample + p_.shift_window >= observed_; ++it) {
    if (it->kind != kOffload && it->kind != kAudit && it->kind != kPassed) continue;
    auto& [n, w] = recent[it->layer];
    if (n.empty()) n.assign(bins(), 0), w.assign(bins(), 0);
    n[static_cast<std::size_t>(it->bin)] += 1;
    w[static_cast<std::size_t>(it->bin)] += it->weight;
  }
  // Expected recent weight under the older evidence: per bin its own rate, shrunk towards the rate of the
  // band around it when the bin saw little (so a bin's change of mix between offloads and audits, as the
  // threshold moves, is not read as a shift).
  const double prior = 10, min_evidence = static_cast<double>(p_.min_band_evidence);
  double observed = 0, expected = 0, var = 0;
  for (const auto& [layer, rn] : recent) {
    const Bins& b = layers_.at(layer);
    const auto& [n, w] = rn;
    std::vector<double> old_n(bins()), old_w(bins());
    for (std::size_t i = 0; i < bins(); ++i) {
      old_n[i] = static_cast<double>(b.evidence[i]) - n[i];
      old_w[i] = b.evidence_weight[i] - w[i];
    }
    for (int k = static_cast<int>(bins()) - 1; k >= 0;) {
      double band_n = 0, band_w = 0;
      const int top = k;
      for (; k >= 0 && band_n < min_evidence; --k) {
        band_n += old_n[static_cast<std::size_t>(k)];
        band_w += old_w[static_cast<std::size_t>(k)];
      }
      if (band_n <= 0) continue;
      const double band_rate = band_w / band_n;
      for (int j = top; j > k; --j) {
        const auto i = static_cast<std::size_t>(j);
        if (n[i] == 0) continue;
        const double rate = (old_w[i] + prior * band_rate) / (old_n[i] + prior);
        const double v = smoothed_variance(old_w[i] + prior * band_rate, old_n[i] + prior, p_.z);
        observed += w[i];
        expected += n[i] * rate;
        var += n[i] * v * (1 + n[i] / (old_n[i] + prior));
      }
    }
  }
  return var > 0 && observed - expected > p_.shift_z * std::sqrt(var);
}

void ThresholdController::maybe_update() {
  if (since_update_ < p_.update_every || window_samples_ < p_.min_samples) return;
  since_update_ = 0;
  const bool shift = shift_detected();
  if (shift) {
    while (!window_.empty() && window_.front().sample + p_.shift_window < observed_) drop_front();
  }
  double target = p_.max_threshold;
  Estimate at_target;
  const auto first = static_cast<long>(std::ceil(p_.min_threshold / p_.step - 1e-9));
  const auto last = static_cast<long>(std::floor(p_.max_threshold / p_.step + 1e-9));
  for (long k = first; k <= last; ++k) {  // D is monotone: the first grid point within budget is the lowest
    const double a = static_cast<double>(k) * p_.step;
    at_target = estimate(a);
    if (at_target.upper <= p_.budget) {
      target = a;
      break;
    }
  }
  target = std::clamp(target, p_.min_threshold, p_.max_threshold);
  const double from = threshold_;
  threshold_ = target >= threshold_ ? target : std::max(target, threshold_ - p_.max_lower_step);
  if (log_) log_({observed_, from, threshold_, target, at_target, shift});
}

nlohmann::json ThresholdController::state() const {
  // Each record as [sample, layer, bin, kind, weight] (a window of 50k records stays ~1.5 MB).
  auto records = nlohmann::json::array();
  for (const auto& r : window_) records.push_back({r.sample, r.layer, r.bin, r.kind, r.weight});
  return {{"threshold", threshold_}, {"step", p_.step},        {"since_update", since_update_},
          {"observed", observed_},   {"rng", rng_state(rng_)}, {"records", records}};
}

void ThresholdController::restore(const nlohmann::json& j) {
  auto is_count = [&](const char* key) { return j.contains(key) && j[key].is_number_unsigned(); };
  if (!j.is_object() || !j.contains("threshold") || !j["threshold"].is_number() || !j.contains("records") ||
      !j["records"].is_array() || !j.contains("rng") || !j["rng"].is_string() || !j.contains("step") ||
      !is_count("since_update") || !is_count("observed"))
    throw SchedError(
        "threshold controller state: needs threshold, step, since_update, observed, rng and records");
  if (j["step"].get<double>() != p_.step)
    throw SchedError("threshold controller state: grid step " + j["step"].dump() + " differs from " +
                     std::to_string(p_.step));
  const double t = j["threshold"].get<double>();
  check_range(t, p_.min_threshold, p_.max_threshold, "saved threshold");
  const auto observed = j["observed"].get<std::uint64_t>();
  std::vector<Record> records;
  std::size_t samples = 0;
  for (const auto& x : j["records"]) {
    const bool shape = x.is_array() && x.size() == 5 && x[0].is_number_unsigned() &&
                       x[1].is_number_integer() && x[2].is_number_integer() && x[3].is_number_integer() &&
                       x[4].is_number();
    if (!shape) throw SchedError("threshold controller state: bad record " + x.dump());
    const auto kind = x[3].get<int>();
    const auto bin = x[2].get<long>();
    const double weight = x[4].get<double>();
    if (kind < kNoExit || kind > kPassed || bin < 0 || bin >= static_cast<long>(bins()) ||
        x[1].get<int>() < 0 || !(weight >= 0 && weight <= 1) || x[0].get<std::uint64_t>() >= observed)
      throw SchedError("threshold controller state: record out of range " + x.dump());
    samples += kind != kPassed;
    records.push_back(
        {x[0].get<std::uint64_t>(), x[1].get<int>(), static_cast<int>(bin), static_cast<Kind>(kind), weight});
  }
  if (samples > p_.window) throw SchedError("threshold controller state: more records than the window");
  Rng rng;
  set_rng_state(rng, j["rng"].get<std::string>());
  reset();
  for (const auto& r : records) push(r);
  threshold_ = t;
  rng_ = rng;
  observed_ = observed;
  since_update_ = j["since_update"].get<std::uint64_t>();
}

}  // namespace ee::sched
