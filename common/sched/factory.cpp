#include "common/sched/factory.hpp"

#include <cmath>
#include <cstdlib>
#include <functional>
#include <set>

#include "common/sched/fixed.hpp"
#include "common/sched/linucb.hpp"
#include "common/sched/thompson.hpp"
#include "common/sched/ucb.hpp"

namespace ee::sched {

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// Reads the parameters one policy accepts; anything left over is a typo worth an error.
class Params {
 public:
  explicit Params(const PolicySpec& spec) : spec_(spec) {}

  double number(const std::string& key, double fallback) {
    used_.insert(key);
    const auto it = spec_.params.find(key);
    if (it == spec_.params.end()) return fallback;
    char* end = nullptr;
    const double v = std::strtod(it->second.c_str(), &end);
    if (it->second.empty() || end != it->second.c_str() + it->second.size() || !std::isfinite(v))
      throw SchedError("policy '" + spec_.name + "': " + key + "='" + it->second + "' is not a number");
    return v;
  }
  std::uint64_t count(const std::string& key, std::uint64_t fallback) {
    const double v = number(key, static_cast<double>(fallback));
    if (v < 0 || v != std::floor(v) || v > 9.0e15)
      throw SchedError("policy '" + spec_.name + "': " + key + "=" + format_value(v) +
                       " must be a whole number >= 0");
    return static_cast<std::uint64_t>(v);
  }
  std::vector<double> list(const std::string& key, std::vector<double> fallback) {
    used_.insert(key);
    const auto it = spec_.params.find(key);
    if (it == spec_.params.end()) return fallback;
    std::vector<double> out;
    std::size_t start = 0;
    while (start <= it->second.size()) {
      const auto slash = it->second.find('/', start);
      const std::string item =
          it->second.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      char* end = nullptr;
      const double v = std::strtod(item.c_str(), &end);
      if (item.empty() || end != item.c_str() + item.size() || !std::isfinite(v))
        throw SchedError("policy '" + spec_.name + "': " + key + "='" + it->second +
                         "' is not a /-separated list");
      out.push_back(v);
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    return out;
  }
  void finish() const {
    for (const auto& [k, v] : spec_.params)
      if (!used_.count(k)) throw SchedError("policy '" + spec_.name + "' has no parameter '" + k + "'");
  }

 private:
  const PolicySpec& spec_;
  std::set<std::string> used_;
};

std::vector<Arm> learning_arms(Params& p, const PolicyEnv& env) {
  return split_arms(env.num_layers, p.list("thresholds", env.thresholds));
}

using Maker = std::function<std::unique_ptr<Policy>(Params&, const PolicyEnv&)>;

const std::map<std::string, Maker>& makers() {
  static const std::map<std::string, Maker> m = {
      {"fixed",
       [](Params& p, const PolicyEnv& env) -> std::unique_ptr<Policy> {
         const auto split = p.count("split", static_cast<std::uint64_t>(env.num_layers));
         if (split > static_cast<std::uint64_t>(env.num_layers))
           throw SchedError("policy 'fixed': split " + std::to_string(split) + " > " +
                            std::to_string(env.num_layers));
         Arm arm{static_cast<int>(split), std::nullopt};
         const double t = p.number("threshold", -1);
         if (t >= 0) arm.threshold = t;
         return std::make_unique<FixedSplit>(arm);
       }},
      {"edge-only",
       [](Params&, const PolicyEnv& env) -> std::unique_ptr<Policy> {
         return std::make_unique<EdgeOnly>(env.num_layers);
       }},
      {"cloud-only",
       [](Params&, const PolicyEnv&) -> std::unique_ptr<Policy> { return std::make_unique<CloudOnly>(); }},
      {"ucb1",
       [](Params& p, const PolicyEnv& env) -> std::unique_ptr<Policy> {
         return std::make_unique<Ucb1>(learning_arms(p, env), env.cost, p.number("beta", 1.0));
       }},
      {"splitee-s",
       [](Params& p, const PolicyEnv& env) -> std::unique_ptr<Policy> {
         return std::make_unique<SplitEESide>(learning_arms(p, env), env.cost, p.number("beta", 1.0));
       }},
      {"ucb-v",
       [](Params& p, const PolicyEnv& env) -> std::unique_ptr<Policy> {
         return std::make_unique<UcbV>(learning_arms(p, env), env.cost, p.number("zeta", 1.2));
       }},
      {"ucb-tuned",
       [](Params& p, const PolicyEnv& env) -> std::unique_ptr<Policy> {
         return std::make_unique<UcbTuned>(learning_arms(p, env), env.cost);
       }},
      {"d-ucb",
       [](Params& p, const PolicyEnv& env) -> std::unique_ptr<Policy> {
         return std::make_unique<DiscountedUcb>(learning_arms(p, env), env.cost, p.number("gamma", 0.998),
                                                p.number("xi", 0.25));
       }},
      {"sw-ucb",
       [](Params& p, const PolicyEnv& env) -> std::unique_ptr<Policy> {
         return std::make_unique<SlidingWindowUcb>(learning_arms(p, env), env.cost, p.count("window", 500),
                                                   p.number("xi", 0.5));
       }},
      {"linucb",
       [](Params& p, const PolicyEnv& env) -> std::unique_ptr<Policy> {
         LinUcbParams lp;
         lp.alpha = p.number("alpha", lp.alpha);
         lp.ridge = p.number("ridge", lp.ridge);
         lp.bandwidth_scale = p.number("bw_scale", lp.bandwidth_scale);
         lp.rtt_scale = p.number("rtt_scale", lp.rtt_scale);
         lp.queue_scale = p.number("queue_scale", lp.queue_scale);
         return std::make_unique<LinUcb>(learning_arms(p, env), env.cost, lp);
       }},
      {"thompson",
       [](Params& p, const PolicyEnv& env) -> std::unique_ptr<Policy> {
         return std::make_unique<ThompsonSampling>(learning_arms(p, env), env.cost,
                                                   p.count("seed", env.seed));
       }},
      {"oracle-fixed",
       [](Params&, const PolicyEnv& env) -> std::unique_ptr<Policy> {
         return std::make_unique<BestFixedArmOracle>(env.table);
       }},
      {"oracle-sample",
       [](Params&, const PolicyEnv& env) -> std::unique_ptr<Policy> {
         return std::make_unique<PerSampleOracle>(env.table);
       }},
  };
  return m;
}

}  // namespace

PolicySpec parse_policy_spec(const std::string& spec) {
  PolicySpec out;
  const auto colon = spec.find(':');
  out.name = trim(spec.substr(0, colon));
  if (out.name.empty()) throw SchedError("policy spec '" + spec + "': no policy name");
  if (colon == std::string::npos) return out;
  std::size_t start = colon + 1;
  while (start <= spec.size()) {
    const auto comma = spec.find(',', start);
    const std::string item =
        trim(spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw SchedError("policy spec '" + spec + "': '" + item + "' is not key=value");
    const std::string key = trim(item.substr(0, eq));
    if (out.params.count(key)) throw SchedError("policy spec '" + spec + "': '" + key + "' given twice");
    out.params[key] = trim(item.substr(eq + 1));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::unique_ptr<Policy> make_policy(const std::string& spec, const PolicyEnv& env) {
  const PolicySpec parsed = parse_policy_spec(spec);
  const auto it = makers().find(parsed.name);
  if (it == makers().end()) {
    std::string known;
    for (const auto& n : policy_names()) known += (known.empty() ? "" : ", ") + n;
    throw SchedError("unknown policy '" + parsed.name + "' (known: " + known + ")");
  }
  if (env.num_layers < 1) throw SchedError("make_policy('" + spec + "'): num_layers must be >= 1");
  Params params(parsed);
  auto policy = it->second(params, env);
  params.finish();
  return policy;
}

std::vector<std::string> policy_names() {
  std::vector<std::string> names;
  for (const auto& [name, maker] : makers()) names.push_back(name);
  return names;
}

}  // namespace ee::sched
