#pragma once
// Common ground of the learning policies: the arm set, the cost model that turns an outcome into a reward,
// and the SLO filter applied before any bandit looks at its indices.
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "common/sched/cost_model.hpp"
#include "common/sched/policy.hpp"

namespace ee::sched {

class Bandit : public Policy {
 public:
  // cost may be null for bandits fed raw rewards in [0, 1] through observe_reward() (tests, simulations);
  // observe() then throws, having no way to price an outcome.
  Bandit(std::string name, std::vector<Arm> arms, std::shared_ptr<const CostModel> cost);

  std::string name() const override { return name_; }
  const std::vector<Arm>& arms() const override { return arms_; }
  // Applies the cost model's feasibility (SLO, deadline) and lets the bandit pick among what is left.
  Arm choose(const Context& ctx) final;
  void observe(const Arm& arm, const Outcome& outcome) override;
  // A reward already computed, on the cost model's scale (or in [0, 1] without one).
  void observe_reward(std::size_t arm, double reward, const Context& ctx = {});

  std::size_t index_of(const Arm& arm) const;  // throws SchedError for an arm outside the set
  const CostModel* cost_model() const { return cost_.get(); }
  // Arm indices choose() may return in this context, ascending.
  std::vector<std::size_t> candidates(const Context& ctx) const;

 protected:
  // candidates: non-empty, ascending. Ties go to the lowest index so a seed fixes every choice.
  virtual std::size_t pick(const std::vector<std::size_t>& candidates, const Context& ctx) = 0;
  virtual void update(std::size_t arm, double reward, const Context& ctx) = 0;
  // reward mapped to [0, 1] with the cost model's range (what UCB-V, UCB-Tuned, Thompson assume).
  double unit(double reward) const;

 private:
  std::string name_;
  std::vector<Arm> arms_;
  std::shared_ptr<const CostModel> cost_;
  double lo_ = 0, hi_ = 1;
};

// The arm with the largest score among candidates; lowest index on ties.
std::size_t argmax(const std::vector<std::size_t>& candidates, const std::vector<double>& score);

}  // namespace ee::sched
