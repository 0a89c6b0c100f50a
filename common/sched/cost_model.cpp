#include "common/sched/cost_model.hpp"

#include <algorithm>
#include <cmath>

namespace ee::sched {

namespace {
void check_layers(int num_layers, const char* model) {
  if (num_layers < 1)
    throw SchedError(std::string(model) + ": num_layers " + std::to_string(num_layers) + " < 1");
}
void check_nonneg(double v, const std::string& what) {
  if (!std::isfinite(v) || v < 0)
    throw SchedError(what + " " + std::to_string(v) + " must be finite and >= 0");
}
}  // namespace

std::optional<double> CostModel::counterfactual_reward(const Arm&, const Arm&, const Outcome&) const {
  return std::nullopt;
}
std::optional<double> CostModel::predicted_latency_ms(int, const Context&) const {
  return std::nullopt;
}
bool CostModel::feasible(int split, const Context& ctx) const {
  (void)split;
  (void)ctx;
  return true;
}

// ---- SplitEE ----

SplitEECost::SplitEECost(SplitEEParams p) : p_(p) {
  check_layers(p.num_layers, "SplitEECost");
  check_nonneg(p.lambda, "SplitEECost: lambda");
  check_nonneg(p.offload, "SplitEECost: offload cost");
}

double SplitEECost::reward_min() const {
  return -(p_.lambda * p_.num_layers + p_.offload);
}

double SplitEECost::reward_of(int split, bool offloaded, double confidence) const {
  return confidence - p_.lambda * split - (offloaded ? p_.offload : 0.0);
}

double SplitEECost::reward(const Arm& arm, const Outcome& o) const {
  // Confidence of whichever exit answered: the split layer's on an edge exit, the last layer's otherwise.
  return reward_of(arm.split, o.offloaded(), o.answer_confidence);
}

double SplitEECost::cost(const Arm& arm, const Outcome& o) const {
  // A fallback finishes the model on the edge after trying to offload: every layer ran here.
  const int edge_layers = o.answered_by == AnsweredBy::edge_fallback ? p_.num_layers : arm.split;
  return p_.lambda * edge_layers + (o.sent || o.offloaded() ? p_.offload : 0.0);
}

std::optional<double> SplitEECost::counterfactual_reward(const Arm& other, const Arm& played,
                                                         const Outcome& o) const {
  // Only shallower splits: their exits ran on the way to the played split, so their confidences are known.
  if (other.split > played.split) return std::nullopt;
  if (other == played) return reward(played, o);
  // C_L of this sample: known when the last layer ran; after an edge exit it is not, and the deepest
  // confidence seen stands in for it (the exit was confident, and deeper exits rarely lose confidence).
  const double final_conf = o.final_confidence ? *o.final_confidence : o.answer_confidence;
  if (other.split == 0) return reward_of(0, true, final_conf);
  if (other.split == p_.num_layers) return reward_of(other.split, false, final_conf);
  const LayerExit* e = o.exit_at(other.split);
  const double threshold = other.threshold.value_or(o.threshold);
  if (e != nullptr && e->confidence >= threshold) return reward_of(other.split, false, e->confidence);
  return reward_of(other.split, true, final_conf);
}

// ---- latency ----

LatencyCost::LatencyCost(LatencyParams p) : p_(p) {
  check_layers(p.num_layers, "LatencyCost");
  check_nonneg(p.edge_ms_per_layer, "LatencyCost: edge_ms_per_layer");
  check_nonneg(p.cloud_ms_per_layer, "LatencyCost: cloud_ms_per_layer");
  check_nonneg(p.default_bandwidth_mbps, "LatencyCost: default_bandwidth_mbps");
  check_nonneg(p.ms_price, "LatencyCost: ms_price");
  if (!(p.max_ms > 0)) throw SchedError("LatencyCost: max_ms " + std::to_string(p.max_ms) + " must be > 0");
  if (p.slo_ms && !(*p.slo_ms > 0))
    throw SchedError("LatencyCost: slo_ms " + std::to_string(*p.slo_ms) + " must be > 0");
}

double LatencyCost::cost(const Arm&, const Outcome& o) const {
  return o.latency.total_ms;
}

double LatencyCost::reward(const Arm&, const Outcome& o) const {
  return o.answer_confidence - p_.ms_price * std::min(o.latency.total_ms, p_.max_ms);
}

std::optional<double> LatencyCost::predicted_latency_ms(int split, const Context& ctx) const {
  if (split < 0 || split > p_.num_layers)
    throw SchedError("LatencyCost: split " + std::to_string(split) + " outside 0.." +
                     std::to_string(p_.num_layers));
  const double edge = p_.edge_ms_per_layer * split;
  if (split == p_.num_layers) return edge;
  const double mbps = ctx.bandwidth_mbps > 0 ? ctx.bandwidth_mbps : p_.default_bandwidth_mbps;
  if (mbps <= 0) return std::nullopt;  // no measurement yet: nothing honest to predict
  const double bytes = static_cast<double>(split == 0 ? p_.input_bytes : p_.payload_bytes);
  const double transfer = bytes * 8.0 / (mbps * 1000.0);
  return edge + transfer + ctx.rtt_ms + p_.cloud_ms_per_layer * (p_.num_layers - split);
}

bool LatencyCost::feasible(int split, const Context& ctx) const {
  std::optional<double> bound = p_.slo_ms;
  if (ctx.deadline_ms) bound = bound ? std::min(*bound, *ctx.deadline_ms) : *ctx.deadline_ms;
  if (!bound) return true;
  const auto predicted = predicted_latency_ms(split, ctx);
  return !predicted || *predicted <= *bound;
}

}  // namespace ee::sched
