#include "common/sched/replay.hpp"

#include <algorithm>

#include "common/sched/rng.hpp"

namespace ee::sched {

namespace {
void check_arm(const ExitTrace& trace, const Arm& arm) {
  if (arm.split < 0 || arm.split > trace.num_layers())
    throw SchedError("replay: arm " + to_string(arm) + " outside 0.." + std::to_string(trace.num_layers()));
}
}  // namespace

Outcome simulate_outcome(const ExitTrace& trace, std::size_t row, const Arm& arm, double threshold,
                         Confidence confidence, bool audit, const Context& ctx) {
  check_arm(trace, arm);
  if (row >= trace.size())
    throw SchedError("replay: sample " + std::to_string(row) + " >= " + std::to_string(trace.size()));
  const int last = trace.num_layers();
  const auto& layers = trace.exit_layers();
  const TraceSample& s = trace[row];
  const ExitRecord& fin = s.exits.back();

  Outcome o;
  o.context = ctx;
  o.threshold = arm.threshold.value_or(threshold);
  for (std::size_t k = 0; k < layers.size() && layers[k] <= arm.split; ++k)
    o.exits.push_back({layers[k], s.exits[k].prediction, confidence_of(s.exits[k], confidence)});

  auto answer_final = [&](AnsweredBy by) {
    o.answered_by = by;
    o.answer_layer = last;
    o.answer_prediction = fin.prediction;
    o.answer_confidence = confidence_of(fin, confidence);
  };
  const LayerExit* e = o.exit_at(arm.split);
  if (arm.split == last) {
    answer_final(AnsweredBy::edge_final);
  } else if (arm.split > 0 && e != nullptr && e->confidence >= o.threshold) {
    o.answered_by = AnsweredBy::edge_exit;
    o.answer_layer = e->layer;
    o.answer_prediction = e->prediction;
    o.answer_confidence = e->confidence;
    o.audited = o.sent = audit;
  } else {
    answer_final(AnsweredBy::cloud);
    o.sent = true;
  }
  if (!o.exited() || o.audited) {
    o.final_prediction = fin.prediction;
    o.final_confidence = confidence_of(fin, confidence);
  }
  return o;
}

RewardTable splitee_reward_table(const ExitTrace& trace, const std::vector<Arm>& arms,
                                 const SplitEECost& cost, const ReplayConfig& config) {
  RewardTable table(arms, trace.size());
  for (std::size_t i = 0; i < trace.size(); ++i)
    for (std::size_t a = 0; a < arms.size(); ++a)
      table.at(i, a) = cost.reward(
          arms[a], simulate_outcome(trace, i, arms[a], config.threshold, config.confidence, false));
  return table;
}

ReplayResult replay(const ExitTrace& trace, Policy& policy, const SplitEECost& cost,
                    const ReplayConfig& config, const RewardTable& table, ThresholdController* controller) {
  if (trace.size() == 0) throw SchedError("replay: empty trace");
  if (table.samples() != trace.size())
    throw SchedError("replay: reward table has " + std::to_string(table.samples()) + " samples, the trace " +
                     std::to_string(trace.size()));
  if (cost.params().num_layers != trace.num_layers())
    throw SchedError("replay: cost model has " + std::to_string(cost.params().num_layers) +
                     " layers, the trace " + std::to_string(trace.num_layers()));
  ReplayResult res;
  res.policy = policy.name();
  res.pulls.assign(policy.arms().size(), 0);
  const std::size_t best_fixed = table.best_fixed_arm();

  Rng rng(config.seed);
  std::vector<std::size_t> order(trace.size());
  double correct = 0, final_correct = 0, labelled = 0, agree = 0, total_cost = 0, total_reward = 0,
         regret = 0, gap = 0, offloads = 0, audits = 0, threshold_sum = 0;
  std::uint64_t t = 0;
  for (std::size_t pass = 0; pass < config.passes; ++pass) {
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    if (config.shuffle) shuffle(order, rng);
    if (pass + 1 == config.passes) res.last_pass_pulls.assign(policy.arms().size(), 0);
    for (std::size_t row : order) {
      Context ctx;
      ctx.now_s = static_cast<double>(t++);
      ctx.sample = row;
      const Arm arm = policy.choose(ctx);
      const auto idx = static_cast<std::size_t>(std::find(policy.arms().begin(), policy.arms().end(), arm) -
                                                policy.arms().begin());
      if (idx >= policy.arms().size())
        throw SchedError("replay: policy chose arm " + to_string(arm) + " outside its arms");
      const double threshold = controller ? controller->threshold() : config.threshold;
      Outcome o = simulate_outcome(trace, row, arm, threshold, config.confidence, false, ctx);
      if (controller && o.exited() && controller->draw_audit())
        o = simulate_outcome(trace, row, arm, threshold, config.confidence, true, ctx);
      policy.observe(arm, o);
      if (controller) controller->observe(arm, o);

      const TraceSample& s = trace[row];
      if (s.label >= 0) {
        labelled += 1;
        correct += o.answer_prediction == s.label;
        final_correct += s.exits.back().prediction == s.label;
      }
      agree += o.answer_prediction == s.exits.back().prediction;
      const double r = cost.reward(arm, o);
      const double c = cost.cost(arm, o);
      if (config.keep_steps) res.steps.push_back({row, o.answer_prediction, o.threshold, c});
      total_cost += c;
      total_reward += r;
      regret += table.at(row, best_fixed) - r;
      gap += table.at(row, table.best_arm(row)) - r;
      offloads += o.offloaded();
      audits += o.audited;
      threshold_sum += o.threshold;
      ++res.pulls[idx];
      if (pass + 1 == config.passes) ++res.last_pass_pulls[idx];
    }
  }
  const double n = static_cast<double>(t);
  res.samples = t;
  res.accuracy = labelled > 0 ? correct / labelled : 0;
  res.final_accuracy = labelled > 0 ? final_correct / labelled : 0;
  res.agreement = agree / n;
  res.mean_cost = total_cost / n;
  res.cost_reduction = 1.0 - res.mean_cost / cost.final_layer_cost();
  res.mean_reward = total_reward / n;
  if (!controller) {
    res.regret = regret;
    res.oracle_gap = gap;
  }
  res.offload_share = offloads / n;
  res.audit_share = audits / n;
  res.mean_threshold = threshold_sum / n;
  res.final_threshold = controller ? controller->threshold() : config.threshold;
  return res;
}

}  // namespace ee::sched
