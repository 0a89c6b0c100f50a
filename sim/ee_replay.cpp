// ee-replay: replays SplitEE's setting from an exit trace (ee-eval --trace) under each scheduling policy and
// prints accuracy, accuracy drop against the final layer, SplitEE cost, cost reduction against running every
// sample to the final layer, and regret against the oracles; then the label-free threshold controller's run
// next to SplitEE's fixed threshold.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/sched/factory.hpp"
#include "common/sched/replay.hpp"
#include "common/sched/threshold_controller.hpp"
#include "common/sched/trace.hpp"

namespace {

using namespace ee::sched;

struct Options {
  std::string trace;
  std::vector<std::string> policies;
  double alpha = 0.9, lambda = 0.1, offload = 0.5;
  std::size_t passes = 5;
  std::uint64_t seed = 0;
  std::string confidence = "max-prob";
  std::string controller_policy = "splitee-s";
  ThresholdControllerParams controller;
  bool no_controller = false, markdown = false;
  std::string json_out;
};

std::vector<std::string> default_policies(int layers) {
  std::vector<std::string> p = {"edge-only", "cloud-only"};
  for (int s = 1; s < layers; ++s) p.push_back("fixed:split=" + std::to_string(s));
  for (const char* s : {"ucb1", "splitee-s", "ucb-v", "ucb-tuned", "d-ucb", "sw-ucb", "linucb", "thompson",
                        "oracle-fixed", "oracle-sample"})
    p.emplace_back(s);
  return p;
}

// The spec up to its first secondary parameter keeps the table narrow ("linucb:alpha=1").
std::string short_name(const std::string& spec) {
  return spec.substr(0, spec.find(','));
}

double share_of_best(const ReplayResult& r, const Policy& p, const Arm& best) {
  double total = 0, hit = 0;
  for (std::size_t i = 0; i < p.arms().size(); ++i) {
    total += static_cast<double>(r.last_pass_pulls[i]);
    if (p.arms()[i] == best) hit += static_cast<double>(r.last_pass_pulls[i]);
  }
  return total > 0 ? hit / total : 0;
}

void print_header(bool md) {
  if (md) {
    std::printf(
        "| policy | accuracy %% | drop (points) | SplitEE cost | cost reduction %% | regret / sample | "
        "gap to per-sample oracle | offloaded %% | best fixed arm, last pass %% |\n");
    std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  } else {
    std::printf("%-26s %9s %7s %7s %9s %9s %9s %9s %9s\n", "policy", "accuracy", "drop", "cost", "reduction",
                "regret/n", "gap/n", "offload", "best-arm");
  }
}

void print_row(bool md, const std::string& name, const ReplayResult& r, double best_share) {
  const double n = static_cast<double>(r.samples);
  const double drop = 100 * (r.final_accuracy - r.accuracy);
  if (md) {
    std::printf("| %s | %.2f | %.2f | %.4f | %.1f | %.4f | %.4f | %.1f | %.1f |\n", name.c_str(),
                100 * r.accuracy, drop, r.mean_cost, 100 * r.cost_reduction, r.regret / n, r.oracle_gap / n,
                100 * r.offload_share, 100 * best_share);
  } else {
    std::printf("%-26s %8.2f%% %7.2f %7.4f %8.1f%% %9.4f %9.4f %8.1f%% %8.1f%%\n", name.c_str(),
                100 * r.accuracy, drop, r.mean_cost, 100 * r.cost_reduction, r.regret / n, r.oracle_gap / n,
                100 * r.offload_share, 100 * best_share);
  }
}

nlohmann::json to_json(const std::string& name, const ReplayResult& r) {
  const double n = static_cast<double>(r.samples);
  nlohmann::json j = {{"policy", name},
                      {"samples", r.samples},
                      {"accuracy", r.accuracy},
                      {"final_accuracy", r.final_accuracy},
                      {"accuracy_drop_points", 100 * (r.final_accuracy - r.accuracy)},
                      {"agreement", r.agreement},
                      {"mean_cost", r.mean_cost},
                      {"cost_reduction", r.cost_reduction},
                      {"mean_reward", r.mean_reward},
                      {"offload_share", r.offload_share},
                      {"audit_share", r.audit_share},
                      {"mean_threshold", r.mean_threshold},
                      {"final_threshold", r.final_threshold},
                      {"pulls", r.pulls}};
  if (!std::isnan(r.regret)) {
    j["regret_per_sample"] = r.regret / n;
    j["oracle_gap_per_sample"] = r.oracle_gap / n;
  }
  return j;
}

int finish(const Options& o, const nlohmann::json& out) {
  if (!o.json_out.empty()) {
    std::ofstream f(o.json_out);
    f << out.dump(1) << "\n";
    if (!f) throw SchedError("cannot write " + o.json_out);
  }
  return 0;
}

int run(const Options& o) {
  const ExitTrace trace = ExitTrace::load(o.trace);
  const int layers = trace.num_layers();
  ReplayConfig config;
  config.threshold = o.alpha;
  config.passes = o.passes;
  config.seed = o.seed;
  config.confidence = parse_confidence(o.confidence);
  auto cost = std::make_shared<SplitEECost>(SplitEEParams{layers, o.lambda, o.offload});
  const auto arms = split_arms(layers);
  auto table = std::make_shared<RewardTable>(splitee_reward_table(trace, arms, *cost, config));
  const Arm best = arms[table->best_fixed_arm()];

  std::printf("trace %s: %zu samples, exits after layers", o.trace.c_str(), trace.size());
  for (int l : trace.exit_layers()) std::printf(" %d", l);
  std::printf("; per-exit accuracy");
  for (int l : trace.exit_layers()) std::printf(" %.2f", 100 * trace.accuracy(l));
  std::printf(
      " %%\nSplitEE setting: alpha %.3g on %s, lambda %.3g per edge layer, offload cost %.3g, %zu shuffled "
      "passes (seed %llu); best fixed arm in hindsight: split %s\n\n",
      o.alpha, o.confidence.c_str(), o.lambda, o.offload, o.passes, static_cast<unsigned long long>(o.seed),
      to_string(best).c_str());

  nlohmann::json out = {{"trace", o.trace},     {"samples", trace.size()},
                        {"alpha", o.alpha},     {"lambda", o.lambda},
                        {"offload", o.offload}, {"passes", o.passes},
                        {"seed", o.seed},       {"best_fixed_arm", to_string(best)}};
  print_header(o.markdown);
  const PolicyEnv env{layers, cost, o.seed, {}, table};
  for (const auto& spec : o.policies.empty() ? default_policies(layers) : o.policies) {
    auto policy = make_policy(spec, env);
    const auto r = replay(trace, *policy, *cost, config, *table);
    print_row(o.markdown, short_name(policy->name()), r, share_of_best(r, *policy, best));
    out["policies"].push_back(to_json(policy->name(), r));
  }
  if (o.no_controller) return finish(o, out);

  // The controller's run against the same policy at SplitEE's fixed alpha.
  std::printf(
      "\nThreshold controller (budget %.2f points of disagreement with the final layer, audit rate %.1f %%, "
      "start alpha %.3g) with %s\n",
      100 * o.controller.budget, 100 * o.controller.audit_rate, o.controller.initial,
      o.controller_policy.c_str());
  auto fixed_policy = make_policy(o.controller_policy, env);
  const auto fixed = replay(trace, *fixed_policy, *cost, config, *table);
  auto policy = make_policy(o.controller_policy, env);
  ThresholdController controller(o.controller);
  const auto controlled = replay(trace, *policy, *cost, config, *table, &controller);
  if (o.markdown) {
    std::printf(
        "| run | accuracy %% | drop (points) | agreement with final layer %% | SplitEE cost | cost reduction "
        "%% | "
        "mean alpha | final alpha | audited %% |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  } else {
    std::printf("%-28s %9s %7s %10s %7s %9s %7s %7s %8s\n", "run", "accuracy", "drop", "agreement", "cost",
                "reduction", "alpha", "final", "audited");
  }
  auto row = [&](const std::string& name, const ReplayResult& r) {
    const double drop = 100 * (r.final_accuracy - r.accuracy);
    std::printf(o.markdown ? "| %s | %.2f | %.2f | %.2f | %.4f | %.1f | %.3f | %.3f | %.2f |\n"
                           : "%-28s %8.2f%% %7.2f %9.2f%% %7.4f %8.1f%% %7.3f %7.3f %7.2f%%\n",
                name.c_str(), 100 * r.accuracy, drop, 100 * r.agreement, r.mean_cost, 100 * r.cost_reduction,
                r.mean_threshold, r.final_threshold, 100 * r.audit_share);
  };
  row("fixed alpha " + nlohmann::json(o.alpha).dump(), fixed);
  row("controller", controlled);
  out["controller"] = {{"params",
                        {{"budget", o.controller.budget},
                         {"audit_rate", o.controller.audit_rate},
                         {"z", o.controller.z},
                         {"initial", o.controller.initial},
                         {"window", o.controller.window}}},
                       {"policy", o.controller_policy},
                       {"fixed", to_json("fixed alpha", fixed)},
                       {"controlled", to_json("controller", controlled)}};
  return finish(o, out);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "ee-replay: replay SplitEE's split-computing setting from an exit trace (ee-eval --trace) under each\n"
      "scheduling policy; print accuracy, drop vs the final layer, SplitEE cost, cost reduction vs running "
      "every\n"
      "sample to the final layer, regret vs the oracles, and the label-free threshold controller's run."};
  Options o;
  app.add_option("trace,-t,--trace", o.trace, "exit trace CSV written by ee-eval --trace")->required();
  app.add_option("-p,--policy", o.policies,
                 "policy spec, repeatable (default: every policy). e.g. ucb1, splitee-s, sw-ucb:window=500, "
                 "linucb:alpha=1, fixed:split=2");
  app.add_option("-a,--alpha", o.alpha, "SplitEE's exit threshold on the confidence")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--lambda", o.lambda, "cost of one encoder layer on the edge")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("-o,--offload", o.offload, "cost of one offload")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--passes", o.passes, "shuffled passes over the trace")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--seed", o.seed, "order of the passes; seed of randomised policies")->capture_default_str();
  app.add_option("--confidence", o.confidence, "confidence measure: max-prob | margin")
      ->capture_default_str();
  app.add_flag("--no-controller", o.no_controller, "skip the threshold controller's run");
  app.add_option("--controller-policy", o.controller_policy, "split policy the controller runs with")
      ->capture_default_str();
  app.add_option("--budget", o.controller.budget,
                 "controller: allowed disagreement with the final layer (fraction)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--audit-rate", o.controller.audit_rate,
                 "controller: share of edge exits also sent to the cloud")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--start-alpha", o.controller.initial, "controller: initial threshold")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--z", o.controller.z, "controller: z of the one-sided Wilson bound")
      ->check(CLI::Range(0.0, 10.0))
      ->capture_default_str();
  app.add_option("--window", o.controller.window, "controller: samples the estimate looks back over")
      ->check(CLI::Range(1, 10000000))
      ->capture_default_str();
  app.add_flag("--markdown", o.markdown, "print the tables as Markdown");
  app.add_option("--json", o.json_out, "also write the results as JSON to this file");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ee-replay: error: %s\n", e.what());
    return 1;
  }
}
