#include "common/sched/bandit.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace ee::sched {

Bandit::Bandit(std::string name, std::vector<Arm> arms, std::shared_ptr<const CostModel> cost)
    : name_(std::move(name)), arms_(std::move(arms)), cost_(std::move(cost)) {
  if (arms_.empty()) throw SchedError("policy '" + name_ + "': no arms");
  for (std::size_t i = 0; i < arms_.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (arms_[i] == arms_[j])
        throw SchedError("policy '" + name_ + "': arm " + to_string(arms_[i]) + " listed twice");
  if (cost_) {
    lo_ = cost_->reward_min();
    hi_ = cost_->reward_max();
    if (!(hi_ > lo_))
      throw SchedError("policy '" + name_ + "': cost model '" + cost_->name() +
                       "' has an empty reward range");
  }
}

std::size_t Bandit::index_of(const Arm& arm) const {
  const auto it = std::find(arms_.begin(), arms_.end(), arm);
  if (it == arms_.end())
    throw SchedError("policy '" + name_ + "': arm " + to_string(arm) + " is not one of its arms");
  return static_cast<std::size_t>(it - arms_.begin());
}

std::vector<std::size_t> Bandit::candidates(const Context& ctx) const {
  std::vector<std::size_t> all(arms_.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
  if (!cost_) return all;
  std::vector<std::size_t> ok;
  for (std::size_t i : all)
    if (cost_->feasible(arms_[i].split, ctx)) ok.push_back(i);
  if (!ok.empty()) return ok;
  // Nothing meets the SLO: the request is late whatever we do, so at least be as fast as possible.
  double best = std::numeric_limits<double>::infinity();
  for (std::size_t i : all)
    if (auto p = cost_->predicted_latency_ms(arms_[i].split, ctx)) best = std::min(best, *p);
  for (std::size_t i : all) {
    auto p = cost_->predicted_latency_ms(arms_[i].split, ctx);
    if (p && *p <= best) ok.push_back(i);
  }
  return ok.empty() ? all : ok;
}

Arm Bandit::choose(const Context& ctx) {
  return arms_[pick(candidates(ctx), ctx)];
}

void Bandit::observe(const Arm& arm, const Outcome& outcome) {
  if (!cost_) throw SchedError("policy '" + name_ + "': observe() needs a cost model; use observe_reward()");
  update(index_of(arm), cost_->reward(arm, outcome), outcome.context);
}

void Bandit::observe_reward(std::size_t arm, double reward, const Context& ctx) {
  if (arm >= arms_.size())
    throw SchedError("policy '" + name_ + "': arm index " + std::to_string(arm) +
                     " >= " + std::to_string(arms_.size()));
  if (!std::isfinite(reward))
    throw SchedError("policy '" + name_ + "': reward " + std::to_string(reward) + " is not finite");
  update(arm, reward, ctx);
}

double Bandit::unit(double reward) const {
  return std::clamp((reward - lo_) / (hi_ - lo_), 0.0, 1.0);
}

std::size_t argmax(const std::vector<std::size_t>& candidates, const std::vector<double>& score) {
  std::size_t best = candidates.front();
  for (std::size_t i : candidates)
    if (score[i] > score[best]) best = i;
  return best;
}

}  // namespace ee::sched
