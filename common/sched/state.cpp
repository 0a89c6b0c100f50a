#include "common/sched/state.hpp"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <system_error>

namespace ee::sched {

namespace {
constexpr std::uintmax_t kMaxStateBytes = 64ull << 20;  // far above any real policy; stops a wrong path early

nlohmann::json arm_names(const Policy& policy) {
  nlohmann::json names = nlohmann::json::array();
  for (const auto& a : policy.arms()) names.push_back(to_string(a));
  return names;
}
}  // namespace

nlohmann::json state_document(const Policy& policy) {
  return {{"format", kStateFormat},
          {"version", kStateVersion},
          {"policy", policy.name()},
          {"arms", arm_names(policy)},
          {"state", policy.state()}};
}

void restore_document(Policy& policy, const nlohmann::json& doc) {
  if (!doc.is_object() || doc.value("format", std::string()) != kStateFormat)
    throw SchedError("not an eesplit scheduler state (format must be '" + std::string(kStateFormat) + "')");
  // Compared as JSON: get<int>() would read version 4294967297 as 1.
  if (!doc.contains("version") || !doc["version"].is_number_integer() || doc["version"] != kStateVersion)
    throw SchedError("state version " +
                     (doc.contains("version") ? doc["version"].dump() : std::string("(missing)")) +
                     " is not the supported version " + std::to_string(kStateVersion));
  const std::string saved = doc.value("policy", std::string());
  if (saved != policy.name())
    throw SchedError("state is for policy '" + saved + "', not '" + policy.name() + "'");
  if (!doc.contains("arms") || doc["arms"] != arm_names(policy))
    throw SchedError("state's arms " +
                     (doc.contains("arms") ? doc["arms"].dump() : std::string("(missing)")) +
                     " differ from the policy's " + arm_names(policy).dump());
  if (!doc.contains("state")) throw SchedError("state document has no 'state'");
  try {
    policy.restore(doc["state"]);
  } catch (const nlohmann::json::exception& e) {
    throw SchedError(std::string("policy state is malformed: ") + e.what());
  }
}

void save_state(const Policy& policy, const std::filesystem::path& path) {
  const std::string text = state_document(policy).dump(1);
  auto tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw SchedError("cannot write scheduler state " + tmp.string());
    out << text << '\n';
    if (!out.flush()) throw SchedError("cannot write scheduler state " + tmp.string());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw SchedError("cannot move scheduler state to " + path.string() + ": " + ec.message());
}

void load_state(Policy& policy, const std::filesystem::path& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw SchedError("scheduler state " + path.string() + ": " + ec.message());
  if (size > kMaxStateBytes)
    throw SchedError("scheduler state " + path.string() + ": " + std::to_string(size) +
                     " bytes is too large");
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  if (!in) throw SchedError("scheduler state " + path.string() + ": read failed");
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(buf.str());
  } catch (const nlohmann::json::exception& e) {
    throw SchedError("scheduler state " + path.string() + " is not valid JSON: " + e.what());
  }
  try {
    restore_document(policy, doc);
  } catch (const SchedError& e) {
    throw SchedError("scheduler state " + path.string() + ": " + e.what());
  }
}

bool restore_or_reset(Policy& policy, const std::filesystem::path& path, std::string* why) {
  try {
    load_state(policy, path);
    return true;
  } catch (const SchedError& e) {
    policy.reset();
    if (why) *why = e.what();
    return false;
  }
}

}  // namespace ee::sched
