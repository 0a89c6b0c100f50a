// ee-replay: replays SplitEE's setting from an exit trace (ee-eval --trace) under each scheduling policy and
// prints accuracy, accuracy drop against the final layer, SplitEE cost, cost reduction against running every
// sample to the final layer, and regret against the oracles; then the label-free threshold controller's run
// next to SplitEE's fixed threshold, with the worst accuracy drop over any window of requests and, for a
// stream whose inputs change part-way (--shift-at), what happens after the change.
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
  bool in_order = false;
  std::string confidence = "max-prob";
  std::string controller_policy = "splitee-s";
  ThresholdControllerParams controller;
  std::string weight = "disagreement";
  std::size_t budget_window = 5000, shift_at = 0;
  bool no_controller = false, markdown = false;
  std::string json_out, controller_log;
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

// The labelled view of a run, request by request: the worst accuracy drop against the final layer over any
// `w` consecutive requests and, from request `shift_at` on, the same after the change and how long it took
// to be back within budget.
struct Windows {
  double worst_drop = 0, over_budget = 0;  // over all windows: the largest drop, the share above budget
  // From shift_at on (shift_at > 0): drop, cost reduction, worst window ending after it, and the requests
  // after shift_at until the trailing window's drop is within budget for good (-1: not within the run).
  double after_drop = 0, after_reduction = 0, after_worst = 0;
  long reaction = 0;
};

Windows windows(const ExitTrace& trace, const ReplayResult& r, double full_cost, std::size_t w,
                std::size_t shift_at, double budget) {
  const std::size_t n = r.steps.size();
  std::vector<double> drop(n + 1, 0);  // prefix sums of (final right) - (answer right)
  for (std::size_t t = 0; t < n; ++t) {
    const TraceSample& s = trace[r.steps[t].row];
    drop[t + 1] = drop[t] + (s.exits.back().prediction == s.label) - (r.steps[t].answer == s.label);
  }
  Windows out;
  w = std::min(w, n);
  std::size_t windows = 0, over = 0;
  long last_over = -1;
  for (std::size_t end = w; end <= n; ++end, ++windows) {
    const double d = (drop[end] - drop[end - w]) / static_cast<double>(w);
    out.worst_drop = std::max(out.worst_drop, d);
    over += d > budget;
    if (shift_at > 0 && end > shift_at) {
      out.after_worst = std::max(out.after_worst, d);
      if (d > budget) last_over = static_cast<long>(end);
    }
  }
  out.over_budget = windows ? static_cast<double>(over) / static_cast<double>(windows) : 0;
  if (shift_at > 0 && shift_at < n) {
    double cost = 0;
    for (std::size_t t = shift_at; t < n; ++t) cost += r.steps[t].cost;
    const double after = static_cast<double>(n - shift_at);
    out.after_drop = (drop[n] - drop[shift_at]) / after;
    out.after_reduction = 1 - cost / after / full_cost;
    out.reaction = last_over < 0                       ? 0
                   : last_over == static_cast<long>(n) ? -1
                                                       : last_over - static_cast<long>(shift_at);
  }
  return out;
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
  config.shuffle = !o.in_order;
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
      " %%\nSplitEE setting: alpha %.3g on %s, lambda %.3g per edge layer, offload cost %.3g, %zu "
      "passes (%s); best fixed arm in hindsight: split %s\n\n",
      o.alpha, o.confidence.c_str(), o.lambda, o.offload, o.passes,
      o.in_order ? "in trace order" : ("shuffled, seed " + std::to_string(o.seed)).c_str(),
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
  ThresholdControllerParams params = o.controller;
  params.weight = parse_drop_weight(o.weight);
  std::printf(
      "\nThreshold controller (budget %.2f points of accuracy drop against the final layer, estimated "
      "without "
      "labels by %s; audit rate %.1f %%, start alpha %.3g, window %zu, shift test over %zu) with %s; worst "
      "drop over any %zu requests\n",
      100 * params.budget, to_string(params.weight).c_str(), 100 * params.audit_rate, params.initial,
      params.window, params.shift_window, o.controller_policy.c_str(), o.budget_window);
  config.keep_steps = true;
  auto fixed_policy = make_policy(o.controller_policy, env);
  const auto fixed = replay(trace, *fixed_policy, *cost, config, *table);
  auto policy = make_policy(o.controller_policy, env);
  ThresholdController controller(params);
  std::ofstream log;
  if (!o.controller_log.empty()) {
    log.open(o.controller_log);
    log << "sample,from,to,target,point,upper,checked,samples,exits,audits,unchecked,shift\n";
    controller.set_decision_log([&log](const ThresholdController::Decision& d) {
      const auto& e = d.at_target;
      log << d.sample << ',' << d.from << ',' << d.to << ',' << d.target << ',' << e.point << ',' << e.upper
          << ',' << e.checked << ',' << e.samples << ',' << e.exits << ',' << e.audits << ',' << e.unchecked
          << ',' << d.shift << '\n';
    });
  }
  const auto controlled = replay(trace, *policy, *cost, config, *table, &controller);
  if (log.is_open() && !log) throw SchedError("cannot write " + o.controller_log);
  const bool shift = o.shift_at > 0;
  if (o.markdown) {
    std::printf(
        "| run | accuracy %% | drop (points) | agreement with final layer %% | SplitEE cost | cost reduction "
        "%% | mean alpha | final alpha | audited %% | worst %zu-request drop | windows over budget %% |%s\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|%s\n",
        o.budget_window,
        shift ? " drop after the shift | cost reduction after | worst window after | requests to recover |"
              : "",
        shift ? "---:|---:|---:|---:|" : "");
  } else {
    std::printf("%-22s %9s %6s %9s %7s %9s %6s %6s %7s %6s %6s%s\n", "run", "accuracy", "drop", "agreement",
                "cost", "reduction", "alpha", "final", "audited", "worst", "over",
                shift ? "  after: drop reduction worst recover" : "");
  }
  nlohmann::json runs = nlohmann::json::array();
  auto row = [&](const std::string& name, const ReplayResult& r) {
    const double drop = 100 * (r.final_accuracy - r.accuracy);
    const Windows w = windows(trace, r, cost->final_layer_cost(), o.budget_window, o.shift_at, params.budget);
    std::printf(o.markdown ? "| %s | %.2f | %.2f | %.2f | %.4f | %.1f | %.3f | %.3f | %.2f | %.2f | %.1f |"
                           : "%-22s %8.2f%% %6.2f %8.2f%% %7.4f %8.1f%% %6.3f %6.3f %6.2f%% %6.2f %5.1f%%",
                name.c_str(), 100 * r.accuracy, drop, 100 * r.agreement, r.mean_cost, 100 * r.cost_reduction,
                r.mean_threshold, r.final_threshold, 100 * r.audit_share, 100 * w.worst_drop,
                100 * w.over_budget);
    const std::string recover = w.reaction < 0 ? "never" : std::to_string(w.reaction);
    if (shift) {
      std::printf(o.markdown ? " %.2f | %.1f | %.2f | %s |" : "  %10.2f %8.1f%% %5.2f %7s",
                  100 * w.after_drop, 100 * w.after_reduction, 100 * w.after_worst, recover.c_str());
    }
    std::printf("\n");
    nlohmann::json j = to_json(name, r);
    j["worst_window_drop_points"] = 100 * w.worst_drop;
    j["windows_over_budget"] = w.over_budget;
    if (shift) {
      j["after_shift"] = {{"drop_points", 100 * w.after_drop},
                          {"cost_reduction", w.after_reduction},
                          {"worst_window_drop_points", 100 * w.after_worst},
                          {"requests_to_recover", w.reaction}};
    }
    runs.push_back(j);
  };
  row("fixed alpha " + nlohmann::json(o.alpha).dump(), fixed);
  row("controller", controlled);
  out["controller"] = {{"params",
                        {{"budget", params.budget},
                         {"weight", to_string(params.weight)},
                         {"audit_rate", params.audit_rate},
                         {"z", params.z},
                         {"initial", params.initial},
                         {"window", params.window},
                         {"min_band_evidence", params.min_band_evidence},
                         {"shift_window", params.shift_window},
                         {"shift_z", params.shift_z}}},
                       {"policy", o.controller_policy},
                       {"budget_window", o.budget_window},
                       {"shift_at", o.shift_at},
                       {"fixed", runs[0]},
                       {"controlled", runs[1]}};
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
  app.add_flag("--in-order", o.in_order,
               "replay every pass in trace order, not shuffled (a stream whose inputs change part-way)");
  app.add_option("--confidence", o.confidence, "confidence measure: max-prob | margin")
      ->capture_default_str();
  app.add_flag("--no-controller", o.no_controller, "skip the threshold controller's run");
  app.add_option("--controller-policy", o.controller_policy, "split policy the controller runs with")
      ->capture_default_str();
  app.add_option("--budget", o.controller.budget,
                 "controller: allowed accuracy drop against the final layer (fraction)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--audit-rate", o.controller.audit_rate,
                 "controller: share of edge exits also sent to the cloud")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--start-alpha", o.controller.initial, "controller: initial threshold")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--z", o.controller.z, "controller: z of the one-sided bound on the drop")
      ->check(CLI::Range(0.0, 10.0))
      ->capture_default_str();
  app.add_option("--window", o.controller.window, "controller: samples the estimate looks back over")
      ->check(CLI::Range(1, 10000000))
      ->capture_default_str();
  app.add_option("--weight", o.weight,
                 "controller: what a disagreement with the final layer costs in the drop estimate: "
                 "disagreement (1) | final-confidence (the final layer's confidence)")
      ->check(CLI::IsMember({"disagreement", "final-confidence"}))
      ->capture_default_str();
  app.add_option("--min-band-evidence", o.controller.min_band_evidence,
                 "controller: checked samples per pooled confidence band")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_option("--shift-window", o.controller.shift_window,
                 "controller: recent samples the shift test compares with the older evidence (0: no test)")
      ->capture_default_str();
  app.add_option("--shift-z", o.controller.shift_z, "controller: standard deviations that signal a shift")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  app.add_option("--controller-log", o.controller_log,
                 "write the controller's decisions (alpha over time and the evidence behind each) as CSV");
  app.add_option("--budget-window", o.budget_window,
                 "report the worst accuracy drop over any this many consecutive requests")
      ->check(CLI::Range(1, 100000000))
      ->capture_default_str();
  app.add_option("--shift-at", o.shift_at,
                 "the stream's inputs change at this request: report drop and cost after it and the requests "
                 "until the drop over --budget-window is within budget for good")
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
