#include "common/sched/ucb.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

namespace ee::sched {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<double> read_vector(const nlohmann::json& j, const char* key, std::size_t size,
                                const std::string& who) {
  if (!j.contains(key) || !j[key].is_array() || j[key].size() != size)
    throw SchedError(who + " state: '" + key + "' must be an array of " + std::to_string(size) + " numbers");
  std::vector<double> v;
  for (const auto& x : j[key]) {
    const bool negative_count = std::string(key) == "n" && x.is_number() && x.get<double>() < 0;
    if (!x.is_number() || !std::isfinite(x.get<double>()) || negative_count)
      throw SchedError(who + " state: '" + key + "' holds a bad value " + x.dump());
    v.push_back(x.get<double>());
  }
  return v;
}

std::uint64_t read_count(const nlohmann::json& j, const char* key, const std::string& who) {
  if (!j.contains(key) || !j[key].is_number_unsigned())
    throw SchedError(who + " state: '" + key + "' must be a non-negative integer");
  return j[key].get<std::uint64_t>();
}

void check_positive(double v, const std::string& what) {
  if (!std::isfinite(v) || v <= 0) throw SchedError(what + " " + std::to_string(v) + " must be > 0");
}
}  // namespace

// ---- sample means ----

SampleMeanBandit::SampleMeanBandit(std::string name, std::vector<Arm> arms,
                                   std::shared_ptr<const CostModel> cost, bool unit_scale)
    : Bandit(std::move(name), std::move(arms), std::move(cost)), unit_scale_(unit_scale) {
  reset();
}

void SampleMeanBandit::reset() {
  n_.assign(arms().size(), 0.0);
  sum_.assign(arms().size(), 0.0);
  sumsq_.assign(arms().size(), 0.0);
  t_ = 0;
}

double SampleMeanBandit::mean(std::size_t arm) const {
  return n_[arm] > 0 ? sum_[arm] / n_[arm] : 0.0;
}

double SampleMeanBandit::variance(std::size_t arm) const {
  if (n_[arm] <= 0) return 0.0;
  const double m = mean(arm);
  return std::max(0.0, sumsq_[arm] / n_[arm] - m * m);
}

void SampleMeanBandit::add(std::size_t arm, double reward) {
  const double r = unit_scale_ ? unit(reward) : reward;
  n_[arm] += 1;
  sum_[arm] += r;
  sumsq_[arm] += r * r;
}

void SampleMeanBandit::update(std::size_t arm, double reward, const Context&) {
  ++t_;
  add(arm, reward);
}

std::size_t SampleMeanBandit::pick(const std::vector<std::size_t>& candidates, const Context&) {
  for (std::size_t i : candidates)
    if (n_[i] == 0) return i;  // every arm once before any index means anything
  const double log_t = std::log(static_cast<double>(std::max<std::uint64_t>(t_, 1)));
  std::vector<double> score(arms().size(), -kInf);
  for (std::size_t i : candidates) score[i] = index(i, log_t);
  return argmax(candidates, score);
}

nlohmann::json SampleMeanBandit::state() const {
  return {{"t", t_}, {"n", n_}, {"sum", sum_}, {"sumsq", sumsq_}};
}

void SampleMeanBandit::restore(const nlohmann::json& j) {
  const std::size_t k = arms().size();
  if (!j.is_object()) throw SchedError(name() + " state: not an object");
  auto t = read_count(j, "t", name());
  auto n = read_vector(j, "n", k, name()), sum = read_vector(j, "sum", k, name()),
       sumsq = read_vector(j, "sumsq", k, name());
  t_ = t;
  n_ = std::move(n);
  sum_ = std::move(sum);
  sumsq_ = std::move(sumsq);
}

// ---- UCB1 / SplitEE ----

Ucb1::Ucb1(std::vector<Arm> arms, std::shared_ptr<const CostModel> cost, double beta)
    : SampleMeanBandit("ucb1", std::move(arms), std::move(cost), /*unit_scale=*/false), beta_(beta) {
  check_positive(beta, "ucb1: beta");
}

std::string Ucb1::name() const {
  return "ucb1:beta=" + format_value(beta_);
}

double Ucb1::index(std::size_t arm, double log_t) const {
  return mean(arm) + beta_ * std::sqrt(log_t / n_[arm]);
}

SplitEESide::SplitEESide(std::vector<Arm> arms, std::shared_ptr<const CostModel> cost, double beta)
    : Ucb1(std::move(arms), std::move(cost), beta) {}

std::string SplitEESide::name() const {
  return "splitee-s:beta=" + format_value(beta());
}

void SplitEESide::observe(const Arm& played, const Outcome& outcome) {
  Ucb1::observe(played, outcome);
  // The exits below the split ran too: their arms learn what they would have earned, at no extra cost.
  for (std::size_t i = 0; i < arms().size(); ++i) {
    const Arm& other = arms()[i];
    if (other == played || other.split > played.split) continue;
    if (auto r = cost_model()->counterfactual_reward(other, played, outcome)) add(i, *r);
  }
}

// ---- UCB-V / UCB-Tuned ----

UcbV::UcbV(std::vector<Arm> arms, std::shared_ptr<const CostModel> cost, double zeta)
    : SampleMeanBandit("ucb-v", std::move(arms), std::move(cost), /*unit_scale=*/true), zeta_(zeta) {
  if (!(zeta > 1))
    throw SchedError("ucb-v: zeta " + std::to_string(zeta) + " must be > 1 (the bound needs it)");
}

std::string UcbV::name() const {
  return "ucb-v:zeta=" + format_value(zeta_);
}

double UcbV::index(std::size_t arm, double log_t) const {
  const double e = zeta_ * log_t, n = n_[arm];
  return mean(arm) + std::sqrt(2.0 * variance(arm) * e / n) + 3.0 * e / n;  // range b = 1 on the unit scale
}

UcbTuned::UcbTuned(std::vector<Arm> arms, std::shared_ptr<const CostModel> cost)
    : SampleMeanBandit("ucb-tuned", std::move(arms), std::move(cost), /*unit_scale=*/true) {}

double UcbTuned::index(std::size_t arm, double log_t) const {
  const double n = n_[arm];
  const double v = variance(arm) + std::sqrt(2.0 * log_t / n);
  return mean(arm) + std::sqrt(log_t / n * std::min(0.25, v));
}

// ---- discounted UCB ----

DiscountedUcb::DiscountedUcb(std::vector<Arm> arms, std::shared_ptr<const CostModel> cost, double gamma,
                             double xi)
    : Bandit("d-ucb", std::move(arms), std::move(cost)), gamma_(gamma), xi_(xi) {
  if (!(gamma > 0 && gamma < 1)) throw SchedError("d-ucb: gamma " + std::to_string(gamma) + " not in (0, 1)");
  check_positive(xi, "d-ucb: xi");
  reset();
}

std::string DiscountedUcb::name() const {
  return "d-ucb:gamma=" + format_value(gamma_) + ",xi=" + format_value(xi_);
}

void DiscountedUcb::reset() {
  n_.assign(arms().size(), 0.0);
  sum_.assign(arms().size(), 0.0);
}

void DiscountedUcb::update(std::size_t arm, double reward, const Context&) {
  for (std::size_t i = 0; i < n_.size(); ++i) {
    n_[i] *= gamma_;
    sum_[i] *= gamma_;
  }
  n_[arm] += 1;
  sum_[arm] += unit(reward);
}

std::size_t DiscountedUcb::pick(const std::vector<std::size_t>& candidates, const Context&) {
  double total = 0;
  for (double n : n_) total += n;
  std::vector<double> score(arms().size(), -kInf);
  for (std::size_t i : candidates) {
    // An arm whose weight has faded to almost nothing is as good as untried: look again.
    if (n_[i] < 1e-9) return i;
    score[i] = sum_[i] / n_[i] + 2.0 * std::sqrt(xi_ * std::log(std::max(total, 1.0)) / n_[i]);
  }
  return argmax(candidates, score);
}

nlohmann::json DiscountedUcb::state() const {
  return {{"n", n_}, {"sum", sum_}};
}

void DiscountedUcb::restore(const nlohmann::json& j) {
  if (!j.is_object()) throw SchedError(name() + " state: not an object");
  auto n = read_vector(j, "n", arms().size(), name()), sum = read_vector(j, "sum", arms().size(), name());
  n_ = std::move(n);
  sum_ = std::move(sum);
}

// ---- sliding-window UCB ----

SlidingWindowUcb::SlidingWindowUcb(std::vector<Arm> arms, std::shared_ptr<const CostModel> cost,
                                   std::size_t window, double xi)
    : Bandit("sw-ucb", std::move(arms), std::move(cost)), window_(window), xi_(xi) {
  if (window < 1 || window > 10'000'000)
    throw SchedError("sw-ucb: window " + std::to_string(window) + " not in [1, 1e7]");
  check_positive(xi, "sw-ucb: xi");
  reset();
}

std::string SlidingWindowUcb::name() const {
  return "sw-ucb:window=" + std::to_string(window_) + ",xi=" + format_value(xi_);
}

void SlidingWindowUcb::reset() {
  t_ = 0;
  recent_.clear();
  n_.assign(arms().size(), 0.0);
  sum_.assign(arms().size(), 0.0);
}

void SlidingWindowUcb::update(std::size_t arm, double reward, const Context&) {
  ++t_;
  const double r = unit(reward);
  recent_.emplace_back(arm, r);
  n_[arm] += 1;
  sum_[arm] += r;
  if (recent_.size() > window_) {
    const auto [old, old_r] = recent_.front();
    recent_.pop_front();
    n_[old] -= 1;
    sum_[old] -= old_r;
  }
}

std::size_t SlidingWindowUcb::pick(const std::vector<std::size_t>& candidates, const Context&) {
  const double log_t =
      std::log(static_cast<double>(std::max<std::uint64_t>(std::min<std::uint64_t>(t_, window_), 1)));
  std::vector<double> score(arms().size(), -kInf);
  for (std::size_t i : candidates) {
    if (n_[i] < 0.5) return i;  // not seen within the window
    score[i] = sum_[i] / n_[i] + std::sqrt(xi_ * log_t / n_[i]);
  }
  return argmax(candidates, score);
}

nlohmann::json SlidingWindowUcb::state() const {
  nlohmann::json recent = nlohmann::json::array();
  for (const auto& [arm, r] : recent_) recent.push_back({arm, r});
  return {{"t", t_}, {"recent", recent}};
}

void SlidingWindowUcb::restore(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("recent") || !j["recent"].is_array())
    throw SchedError(name() + " state: 'recent' must be an array of [arm, reward] pairs");
  const auto t = read_count(j, "t", name());
  std::deque<std::pair<std::size_t, double>> recent;
  for (const auto& e : j["recent"]) {
    if (!e.is_array() || e.size() != 2 || !e[0].is_number_unsigned() || !e[1].is_number() ||
        e[0].get<std::size_t>() >= arms().size() || !(e[1].get<double>() >= 0 && e[1].get<double>() <= 1))
      throw SchedError(name() + " state: bad window entry " + e.dump());
    recent.emplace_back(e[0].get<std::size_t>(), e[1].get<double>());
  }
  if (recent.size() > window_)
    throw SchedError(name() + " state: " + std::to_string(recent.size()) + " entries exceed the window");
  reset();
  for (const auto& [arm, r] : recent) {
    recent_.emplace_back(arm, r);
    n_[arm] += 1;
    sum_[arm] += r;
  }
  t_ = t;
}

}  // namespace ee::sched
