#pragma once
// Index policies of the UCB family over split arms.
//  Ucb1             SplitEE's rule: mean + beta * sqrt(ln t / n), on SplitEE's raw reward scale.
//  SplitEESide      SplitEE-S: a sample that ran to layer i also rewards every shallower arm j < i.
//  UcbV             Audibert, Munos, Szepesvari 2009: variance-aware bonus (rewards mapped to [0, 1]).
//  UcbTuned         Auer et al. 2002: bonus capped by the empirical variance (rewards mapped to [0, 1]).
//  DiscountedUcb    Garivier & Moulines 2011: past rewards fade by gamma per round (network changes).
//  SlidingWindowUcb Garivier & Moulines 2011: only the last `window` rounds count.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "common/sched/bandit.hpp"

namespace ee::sched {

// Pull counts and reward sums per arm; the base of the stationary UCB variants.
class SampleMeanBandit : public Bandit {
 public:
  nlohmann::json state() const override;
  void restore(const nlohmann::json& state) override;
  void reset() override;
  double pulls(std::size_t arm) const { return n_[arm]; }
  double mean(std::size_t arm) const;  // on the scale the policy learns on
  std::uint64_t rounds() const { return t_; }

 protected:
  SampleMeanBandit(std::string name, std::vector<Arm> arms, std::shared_ptr<const CostModel> cost,
                   bool unit_scale);
  std::size_t pick(const std::vector<std::size_t>& candidates, const Context& ctx) override;
  void update(std::size_t arm, double reward, const Context& ctx) override;
  // Adds a reward to an arm's statistics without counting a round (side observations).
  void add(std::size_t arm, double reward);
  virtual double index(std::size_t arm, double log_t) const = 0;
  double variance(std::size_t arm) const;

  std::vector<double> n_, sum_, sumsq_;
  std::uint64_t t_ = 0;

 private:
  bool unit_scale_;
};

class Ucb1 : public SampleMeanBandit {
 public:
  Ucb1(std::vector<Arm> arms, std::shared_ptr<const CostModel> cost, double beta = 1.0);
  std::string name() const override;
  double beta() const { return beta_; }

 protected:
  double index(std::size_t arm, double log_t) const override;

 private:
  double beta_;
};

class SplitEESide final : public Ucb1 {
 public:
  SplitEESide(std::vector<Arm> arms, std::shared_ptr<const CostModel> cost, double beta = 1.0);
  std::string name() const override;
  void observe(const Arm& arm, const Outcome& outcome) override;
};

class UcbV final : public SampleMeanBandit {
 public:
  UcbV(std::vector<Arm> arms, std::shared_ptr<const CostModel> cost, double zeta = 1.2);
  std::string name() const override;

 protected:
  double index(std::size_t arm, double log_t) const override;

 private:
  double zeta_;
};

class UcbTuned final : public SampleMeanBandit {
 public:
  UcbTuned(std::vector<Arm> arms, std::shared_ptr<const CostModel> cost);
  std::string name() const override { return "ucb-tuned"; }

 protected:
  double index(std::size_t arm, double log_t) const override;
};

class DiscountedUcb final : public Bandit {
 public:
  DiscountedUcb(std::vector<Arm> arms, std::shared_ptr<const CostModel> cost, double gamma = 0.998,
                double xi = 0.25);
  std::string name() const override;
  nlohmann::json state() const override;
  void restore(const nlohmann::json& state) override;
  void reset() override;

 protected:
  std::size_t pick(const std::vector<std::size_t>& candidates, const Context& ctx) override;
  void update(std::size_t arm, double reward, const Context& ctx) override;

 private:
  double gamma_, xi_;
  std::vector<double> n_, sum_;  // discounted counts and sums of [0, 1] rewards
};

class SlidingWindowUcb final : public Bandit {
 public:
  SlidingWindowUcb(std::vector<Arm> arms, std::shared_ptr<const CostModel> cost, std::size_t window = 500,
                   double xi = 0.5);
  std::string name() const override;
  nlohmann::json state() const override;
  void restore(const nlohmann::json& state) override;
  void reset() override;

 protected:
  std::size_t pick(const std::vector<std::size_t>& candidates, const Context& ctx) override;
  void update(std::size_t arm, double reward, const Context& ctx) override;

 private:
  std::size_t window_;
  double xi_;
  std::uint64_t t_ = 0;
  std::deque<std::pair<std::size_t, double>> recent_;  // (arm, [0, 1] reward), oldest first
  std::vector<double> n_, sum_;                        // over `recent_`
};

}  // namespace ee::sched
