#include "common/sched/linucb.hpp"

#include <Eigen/Cholesky>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

namespace ee::sched {

namespace {
void check_positive(double v, const char* what) {
  if (!std::isfinite(v) || v <= 0)
    throw SchedError(std::string("linucb: ") + what + " " + std::to_string(v) + " must be > 0");
}
}  // namespace

LinUcb::LinUcb(std::vector<Arm> arms, std::shared_ptr<const CostModel> cost, LinUcbParams p)
    : Bandit("linucb", std::move(arms), std::move(cost)), p_(p) {
  if (!std::isfinite(p.alpha) || p.alpha < 0)
    throw SchedError("linucb: alpha " + std::to_string(p.alpha) + " must be >= 0");
  check_positive(p.ridge, "ridge");
  check_positive(p.bandwidth_scale, "bandwidth_scale");
  check_positive(p.rtt_scale, "rtt_scale");
  check_positive(p.queue_scale, "queue_scale");
  reset();
}

std::string LinUcb::name() const {
  return "linucb:alpha=" + format_value(p_.alpha) + ",ridge=" + format_value(p_.ridge) +
         ",bw_scale=" + format_value(p_.bandwidth_scale) + ",rtt_scale=" + format_value(p_.rtt_scale) +
         ",queue_scale=" + format_value(p_.queue_scale);
}

void LinUcb::reset() {
  a_.assign(arms().size(), Mat::Identity() * p_.ridge);
  b_.assign(arms().size(), Vec::Zero());
}

LinUcb::Vec LinUcb::features(const Context& ctx) const {
  Vec x;
  x << 1.0, ctx.bandwidth_mbps / p_.bandwidth_scale, ctx.rtt_ms / p_.rtt_scale,
      ctx.queue_depth / p_.queue_scale;
  return x;
}

double LinUcb::predict(std::size_t arm, const Context& ctx) const {
  const Vec theta = a_[arm].ldlt().solve(b_[arm]);
  return theta.dot(features(ctx));
}

std::size_t LinUcb::pick(const std::vector<std::size_t>& candidates, const Context& ctx) {
  const Vec x = features(ctx);
  std::vector<double> score(arms().size(), -std::numeric_limits<double>::infinity());
  for (std::size_t i : candidates) {
    const auto ldlt = a_[i].ldlt();  // A is symmetric positive definite by construction
    const Vec theta = ldlt.solve(b_[i]);
    const double width = std::sqrt(std::max(0.0, x.dot(ldlt.solve(x))));
    score[i] = theta.dot(x) + p_.alpha * width;
  }
  return argmax(candidates, score);
}

void LinUcb::update(std::size_t arm, double reward, const Context& ctx) {
  const Vec x = features(ctx);
  if (!x.allFinite())
    throw SchedError("linucb: context has a non-finite feature (bandwidth " +
                     std::to_string(ctx.bandwidth_mbps) + ", rtt " + std::to_string(ctx.rtt_ms) + ")");
  a_[arm] += x * x.transpose();
  b_[arm] += reward * x;
}

nlohmann::json LinUcb::state() const {
  nlohmann::json arms_json = nlohmann::json::array();
  for (std::size_t i = 0; i < a_.size(); ++i) {
    std::vector<double> a(a_[i].data(), a_[i].data() + a_[i].size()),
        b(b_[i].data(), b_[i].data() + b_[i].size());
    arms_json.push_back({{"A", a}, {"b", b}});
  }
  return {{"features", kFeatures}, {"arms", arms_json}};
}

void LinUcb::restore(const nlohmann::json& j) {
  // Compared as JSON, not through get<int>(), which would read 4294967300 as 4.
  if (!j.is_object() || !j.contains("features") || j["features"] != kFeatures || !j.contains("arms") ||
      !j["arms"].is_array() || j["arms"].size() != arms().size())
    throw SchedError(name() + " state: expected " + std::to_string(arms().size()) + " arms of " +
                     std::to_string(kFeatures) + " features");
  std::vector<Mat> a(arms().size());
  std::vector<Vec> b(arms().size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto& e = j["arms"][i];
    const auto av = e.value("A", std::vector<double>{}), bv = e.value("b", std::vector<double>{});
    if (av.size() != kFeatures * kFeatures || bv.size() != kFeatures)
      throw SchedError(name() + " state: arm " + std::to_string(i) + " has the wrong matrix sizes");
    a[i] = Eigen::Map<const Mat>(av.data());
    b[i] = Eigen::Map<const Vec>(bv.data());
    // A = ridge * I + sum x x' is positive definite. LDLT would also factor -I or an indefinite matrix,
    // whose "confidence width" x' A^-1 x goes negative; a Cholesky factorisation exists only for SPD.
    if (!a[i].allFinite() || !b[i].allFinite() || !a[i].isApprox(a[i].transpose()) ||
        a[i].llt().info() != Eigen::Success)
      throw SchedError(name() + " state: arm " + std::to_string(i) +
                       " matrix A is not symmetric positive definite");
  }
  a_ = std::move(a);
  b_ = std::move(b);
}

}  // namespace ee::sched
