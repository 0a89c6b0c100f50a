#include "common/sched/fixed.hpp"

#include <nlohmann/json.hpp>

namespace ee::sched {

FixedSplit::FixedSplit(Arm arm) : arms_{arm} {
  if (arm.split < 0) throw SchedError("fixed: split " + std::to_string(arm.split) + " < 0");
}

std::string FixedSplit::name() const {
  std::string s = "fixed:split=" + std::to_string(arms_.front().split);
  if (arms_.front().threshold) s += ",threshold=" + format_value(*arms_.front().threshold);
  return s;
}

nlohmann::json FixedSplit::state() const {
  return nlohmann::json::object();
}

void FixedSplit::restore(const nlohmann::json& state) {
  if (!state.is_object() || !state.empty()) throw SchedError("fixed policy: state must be an empty object");
}

EdgeOnly::EdgeOnly(int num_layers) : FixedSplit(Arm{num_layers, std::nullopt}) {
  if (num_layers < 1) throw SchedError("edge-only: num_layers " + std::to_string(num_layers) + " < 1");
}

CloudOnly::CloudOnly() : FixedSplit(Arm{0, std::nullopt}) {}

}  // namespace ee::sched
