#pragma once
// A policy's learned state in a small versioned JSON file, so an edge daemon restarts where it left off:
//   {"format": "eesplit-sched-state", "version": 1, "policy": "<spec>", "arms": ["0", "1", ...],
//    "state": {...policy-specific...}}
// A file from another policy, another arm set, another version, or a damaged one is rejected with a message
// that says which; restore_or_reset() then starts the policy fresh instead of guessing.
#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "common/sched/policy.hpp"

namespace ee::sched {

inline constexpr const char* kStateFormat = "eesplit-sched-state";
inline constexpr int kStateVersion = 1;

nlohmann::json state_document(const Policy& policy);
// Throws SchedError naming the mismatch; the policy is left as it was.
void restore_document(Policy& policy, const nlohmann::json& doc);

// Written to a temporary file and renamed over `path`, so a crash never leaves half a file.
void save_state(const Policy& policy, const std::filesystem::path& path);
// Throws SchedError with the path and the reason; the policy is left as it was.
void load_state(Policy& policy, const std::filesystem::path& path);
// load_state, except that failure resets the policy and returns false with the reason in *why.
bool restore_or_reset(Policy& policy, const std::filesystem::path& path, std::string* why);

}  // namespace ee::sched
