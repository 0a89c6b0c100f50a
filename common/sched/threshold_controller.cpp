#include "common/sched/threshold_controller.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

namespace ee::sched {

double wilson_upper(double k, double n, double z) {
  if (n <= 0) return 1.0;
  const double p = k / n, z2 = z * z;
  const double centre = p + z2 / (2 * n);
  const double spread = z * std::sqrt(p * (1 - p) / n + z2 / (4 * n * n));
  return std::min(1.0, (centre + spread) / (1 + z2 / n));
}

namespace {
void check_range(double v, double lo, double hi, const char* what) {
  if (!(v >= lo && v <= hi))
    throw SchedError(std::string("threshold controller: ") + what + " " + std::to_string(v) + " not in [" +
                     std::to_string(lo) + ", " + std::to_string(hi) + "]");
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
  if (p.window < 1 || p.window > 10'000'000)
    throw SchedError("threshold controller: window " + std::to_string(p.window) + " not in [1, 1e7]");
  if (p.update_every < 1) throw SchedError("threshold controller: update_every must be >= 1");
  reset();
}

void ThresholdController::reset() {
  threshold_ = p_.initial;
  rng_.seed(p_.seed);
  window_.clear();
  const auto n = static_cast<std::size_t>(std::floor(1.0 / p_.step + 1e-9)) + 1;
  disagree_exact_.assign(n, 0);
  disagree_audited_.assign(n, 0);
  exits_.assign(n, 0);
  audits_.assign(n, 0);
  since_update_ = 0;
}

int ThresholdController::bin_of(double c) const {
  // The epsilon keeps 0.9 / 0.01 = 89.999... in bin 90, so "C >= grid value" and "bin >= k" agree.
  const auto b = static_cast<long>(std::floor(std::clamp(c, 0.0, 1.0) / p_.step + 1e-9));
  return static_cast<int>(std::min<long>(b, static_cast<long>(bins()) - 1));
}

bool ThresholdController::draw_audit() {
  return p_.audit_rate > 0 && uniform01(rng_) < p_.audit_rate;
}

void ThresholdController::add(const Record& r, int sign) {
  auto bump = [sign](std::uint64_t& c) { c = sign > 0 ? c + 1 : c - 1; };
  if (r.kind == kNoExit) return;
  const auto b = static_cast<std::size_t>(r.bin);
  if (r.kind == kAudited || r.kind == kUnaudited) bump(exits_[b]);
  if (r.kind == kAudited) bump(audits_[b]);
  if (!r.disagree) return;
  if (r.kind == kExact) bump(disagree_exact_[b]);
  if (r.kind == kAudited) bump(disagree_audited_[b]);
}

void ThresholdController::push(const Record& r) {
  window_.push_back(r);
  add(r, +1);
  if (window_.size() > p_.window) {
    add(window_.front(), -1);
    window_.pop_front();
  }
}

void ThresholdController::observe(const Arm& arm, const Outcome& o) {
  const LayerExit* e = o.exit_at(arm.split);
  // Answers from the last layer (split 0, split L, no exit head at the split) cannot disagree with it.
  if (e == nullptr || o.answered_by == AnsweredBy::edge_final || arm.split == 0) {
    push({kNoExit, 0, false});
  } else if (o.exited()) {
    if (o.audited && o.final_prediction)
      push({kAudited, bin_of(e->confidence), e->prediction != *o.final_prediction});
    else
      push({kUnaudited, bin_of(e->confidence), false});
  } else if (o.final_prediction) {
    push({kExact, bin_of(e->confidence), e->prediction != *o.final_prediction});
  } else {
    return;  // offloaded but the final answer never came back: nothing learned, nothing counted
  }
  ++since_update_;
  maybe_update();
}

ThresholdController::Estimate ThresholdController::estimate(double threshold) const {
  Estimate est;
  est.samples = window_.size();
  if (window_.empty()) {
    est.upper = 1.0;
    return est;
  }
  // Only samples with C >= threshold would exit at that threshold: sum the bins from its own upward. The
  // audits are a uniform sample of all exits, hence of the exits above any threshold too.
  double exact = 0, audited = 0, exits = 0, audits = 0;
  for (auto b = static_cast<std::size_t>(bin_of(threshold)); b < bins(); ++b) {
    exact += static_cast<double>(disagree_exact_[b]);
    audited += static_cast<double>(disagree_audited_[b]);
    exits += static_cast<double>(exits_[b]);
    audits += static_cast<double>(audits_[b]);
  }
  est.exits = static_cast<std::size_t>(exits);
  est.audits = static_cast<std::size_t>(audits);
  const double n = static_cast<double>(est.samples), exit_share = exits / n;
  est.point = exact / n + (audits > 0 ? exit_share * audited / audits : 0.0);
  est.upper = std::min(1.0, exact / n + (exits > 0 ? exit_share * wilson_upper(audited, audits, p_.z) : 0.0));
  return est;
}

void ThresholdController::maybe_update() {
  if (since_update_ < p_.update_every || window_.size() < p_.min_samples) return;
  since_update_ = 0;
  double target = p_.max_threshold;
  const auto first = static_cast<long>(std::ceil(p_.min_threshold / p_.step - 1e-9));
  const auto last = static_cast<long>(std::floor(p_.max_threshold / p_.step + 1e-9));
  for (long k = first; k <= last; ++k) {  // D is monotone: the first grid point within budget is the lowest
    const double a = static_cast<double>(k) * p_.step;
    if (estimate(a).upper <= p_.budget) {
      target = a;
      break;
    }
  }
  target = std::clamp(target, p_.min_threshold, p_.max_threshold);
  threshold_ = target >= threshold_ ? target : std::max(target, threshold_ - p_.max_lower_step);
}

nlohmann::json ThresholdController::state() const {
  // Each record as one integer: bin * 8 + kind * 2 + disagree (a window of 50k records stays ~300 kB).
  std::vector<long> records;
  records.reserve(window_.size());
  for (const auto& r : window_)
    records.push_back(static_cast<long>(r.bin) * 8 + r.kind * 2 + (r.disagree ? 1 : 0));
  return {{"threshold", threshold_},
          {"step", p_.step},
          {"since_update", since_update_},
          {"rng", rng_state(rng_)},
          {"records", records}};
}

void ThresholdController::restore(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("threshold") || !j["threshold"].is_number() || !j.contains("records") ||
      !j["records"].is_array() || !j.contains("rng") || !j["rng"].is_string() || !j.contains("step") ||
      !j.contains("since_update") || !j["since_update"].is_number_unsigned())
    throw SchedError("threshold controller state: needs threshold, step, since_update, rng and records");
  if (j["step"].get<double>() != p_.step)
    throw SchedError("threshold controller state: grid step " + j["step"].dump() + " differs from " +
                     std::to_string(p_.step));
  const double t = j["threshold"].get<double>();
  check_range(t, p_.min_threshold, p_.max_threshold, "saved threshold");
  if (j["records"].size() > p_.window)
    throw SchedError("threshold controller state: more records than the window");
  std::vector<Record> records;
  for (const auto& x : j["records"]) {
    if (!x.is_number_integer() || x.get<long>() < 0)
      throw SchedError("threshold controller state: bad record " + x.dump());
    const long v = x.get<long>();
    const int kind = static_cast<int>((v % 8) / 2);
    const long bin = v / 8;
    if (bin >= static_cast<long>(bins()))
      throw SchedError("threshold controller state: record bin " + std::to_string(bin) + " out of range");
    records.push_back({static_cast<Kind>(kind), static_cast<int>(bin), (v % 2) == 1});
  }
  Rng rng;
  set_rng_state(rng, j["rng"].get<std::string>());
  reset();
  for (const auto& r : records) push(r);
  threshold_ = t;
  rng_ = rng;
  since_update_ = j["since_update"].get<std::uint64_t>();
}

}  // namespace ee::sched
