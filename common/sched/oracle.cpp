#include "common/sched/oracle.hpp"

#include <nlohmann/json.hpp>

namespace ee::sched {

RewardTable::RewardTable(std::vector<Arm> arms, std::size_t samples)
    : arms_(std::move(arms)), samples_(samples), reward_(arms_.size() * samples, 0.0) {
  if (arms_.empty()) throw SchedError("RewardTable: no arms");
}

double RewardTable::mean(std::size_t arm) const {
  if (samples_ == 0) return 0.0;
  double s = 0;
  for (std::size_t i = 0; i < samples_; ++i) s += at(i, arm);
  return s / static_cast<double>(samples_);
}

std::size_t RewardTable::best_fixed_arm() const {
  std::size_t best = 0;
  double best_mean = mean(0);
  for (std::size_t a = 1; a < arms_.size(); ++a) {
    const double m = mean(a);
    if (m > best_mean) {
      best = a;
      best_mean = m;
    }
  }
  return best;
}

std::size_t RewardTable::best_arm(std::size_t sample) const {
  if (sample >= samples_)
    throw SchedError("RewardTable: sample " + std::to_string(sample) + " >= " + std::to_string(samples_));
  std::size_t best = 0;
  for (std::size_t a = 1; a < arms_.size(); ++a)
    if (at(sample, a) > at(sample, best)) best = a;
  return best;
}

namespace {
void restore_empty(const nlohmann::json& state, const char* who) {
  if (!state.is_object() || !state.empty())
    throw SchedError(std::string(who) + ": state must be an empty object");
}
std::shared_ptr<const RewardTable> check(std::shared_ptr<const RewardTable> t, const char* who) {
  if (!t || t->samples() == 0) throw SchedError(std::string(who) + ": needs a non-empty reward table");
  return t;
}
}  // namespace

BestFixedArmOracle::BestFixedArmOracle(std::shared_ptr<const RewardTable> table)
    : table_(check(std::move(table), "oracle-fixed")), best_(table_->best_fixed_arm()) {}
nlohmann::json BestFixedArmOracle::state() const {
  return nlohmann::json::object();
}
void BestFixedArmOracle::restore(const nlohmann::json& state) {
  restore_empty(state, "oracle-fixed");
}

PerSampleOracle::PerSampleOracle(std::shared_ptr<const RewardTable> table)
    : table_(check(std::move(table), "oracle-sample")) {}

Arm PerSampleOracle::choose(const Context& ctx) {
  if (!ctx.sample) throw SchedError("oracle-sample: the context names no sample (Context::sample)");
  return table_->arms()[table_->best_arm(*ctx.sample)];
}
nlohmann::json PerSampleOracle::state() const {
  return nlohmann::json::object();
}
void PerSampleOracle::restore(const nlohmann::json& state) {
  restore_empty(state, "oracle-sample");
}

}  // namespace ee::sched
