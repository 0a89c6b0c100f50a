#pragma once
// Policies from spec strings, for command lines and config files:
//   "ucb1", "ucb1:beta=1", "splitee-s", "ucb-v:zeta=1.2", "ucb-tuned", "d-ucb:gamma=0.998,xi=0.25",
//   "sw-ucb:window=500", "linucb:alpha=1", "thompson:seed=7", "fixed:split=2,threshold=0.9",
//   "edge-only", "cloud-only", "oracle-fixed", "oracle-sample".
// Every learning policy also takes thresholds=0.8/0.9/0.95 to cross its split arms with exit thresholds.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/sched/cost_model.hpp"
#include "common/sched/oracle.hpp"
#include "common/sched/policy.hpp"

namespace ee::sched {

struct PolicyEnv {
  int num_layers = 0;
  std::shared_ptr<const CostModel> cost;     // prices outcomes for the learning policies
  std::uint64_t seed = 0;                    // for randomised policies (Thompson) unless the spec names one
  std::vector<double> thresholds;            // default (split, threshold) crossing; empty: split arms only
  std::shared_ptr<const RewardTable> table;  // what the oracles are told in advance
};

struct PolicySpec {
  std::string name;
  std::map<std::string, std::string> params;
};
PolicySpec parse_policy_spec(const std::string& spec);  // throws SchedError naming the bad part

std::unique_ptr<Policy> make_policy(const std::string& spec, const PolicyEnv& env);
// Every name make_policy understands.
std::vector<std::string> policy_names();

}  // namespace ee::sched
