#pragma once
// How sure an exit head is, and the rules that decide from it whether a sample leaves at that exit:
// max softmax probability (SplitEE's C_i, BranchyNet), entropy (DeeBERT), margin between the top two
// probabilities, and patience (PABEE: the prediction stayed the same for k consecutive exits).
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ee::exits {

struct Confidence {
  int label = -1;      // argmax
  float max_prob = 0;  // largest softmax probability
  float entropy = 0;   // of the softmax distribution, in nats
  float margin = 0;    // largest minus second-largest probability
};

// From one sample's logits. Throws std::invalid_argument on fewer than two classes or non-finite logits.
Confidence confidence(std::span<const float> logits);
// The softmax of one sample's logits, computed as confidence() does (in double, relative to the max).
// Same preconditions.
std::vector<float> probabilities(std::span<const float> logits);

enum class Measure { max_prob, entropy, margin, patience };

struct ExitRule {
  Measure measure = Measure::max_prob;
  // max_prob, margin: exit when >= threshold; entropy: exit when <= threshold; patience: exit once the
  // prediction has been unchanged for `threshold` consecutive exits (a whole number >= 1).
  double threshold = 0.9;

  // "max_prob:0.9", "entropy:0.2", "margin:0.5", "patience:2"; throws std::invalid_argument saying why.
  static ExitRule parse(std::string_view spec);
  std::string str() const;
  bool operator==(const ExitRule&) const = default;
};

// Where one sample stands in its walk through the exits. Patience needs it: a streak that started on the
// edge continues on the cloud, so the state travels with the sample's hidden state (wire::Activation).
struct ExitState {
  int last_label = -1;  // prediction of the previous exit; -1 before the first
  int streak = 0;       // consecutive exits that agreed with the one before
  bool operator==(const ExitState&) const = default;
};

// One sample's walk through the exits: feed every exit's confidence in layer order. Plain data, so a
// decider can be sent across the split and carried on with (split or not, the sample exits at the same
// layer).
struct ExitDecider {
  ExitRule rule;
  ExitState state;
  bool should_exit(const Confidence& c);
};

}  // namespace ee::exits
