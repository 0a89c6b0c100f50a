#pragma once
// Batch: the hidden states of a set of samples at one depth, with what each sample carries through the
// layers (request id, deadline, exit rule and state, audit flag). It is the unit every user of the engine
// schedules: the edge runs a batch up to its split and sends the undecided rows, the cloud decodes
// requests into batches, merges batches that reached the same depth and lets samples leave as they exit.
// Rows and their samples move together: no operation can reorder one without the other.
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "common/exits/confidence.hpp"
#include "common/model/hidden.hpp"
#include "common/wire/codec.hpp"

namespace ee::runtime {

using Clock = std::chrono::steady_clock;

// The exit that answered a sample.
struct Exit {
  int layer = 0;
  exits::Confidence confidence;
  std::vector<float> probabilities;  // softmax of the exit's logits
};

// What travels with one sample's rows.
struct Sample {
  uint64_t request_id = 0;
  Clock::time_point deadline = Clock::time_point::max();  // max: none
  exits::ExitDecider exit;
  bool audit = false;  // run to the final layer even after an exit, to report its label too
  // Set when an audited sample's exit fired: the answer, held while the sample runs on to the final layer.
  std::optional<Exit> exited;

  // The sample an Activation describes; its relative deadline counts from `received`.
  static Sample from(const wire::Activation& a, Clock::time_point received);
};

class Batch {
 public:
  Batch() = default;
  // One sample per entry of h.lengths; throws std::invalid_argument when the counts differ.
  Batch(model::Hidden h, std::vector<Sample> samples);
  // Every sample under one rule, with request ids first_id, first_id + 1, ... and no deadline.
  Batch(model::Hidden h, const exits::ExitRule& rule, uint64_t first_id = 0);
  // Decodes requests straight into the rows of one batch, padded to the longest. Throws wire::WireError
  // when their split layers or hidden sizes differ (the cloud groups by depth before it calls this).
  static Batch decode(std::span<const wire::Activation* const> requests, std::span<const Sample> samples);

  int size() const { return h_.batch(); }
  bool empty() const { return size() == 0; }
  int depth() const { return h_.depth; }
  int tokens() const { return h_.tokens; }
  model::Hidden& hidden() { return h_; }
  const model::Hidden& hidden() const { return h_; }
  std::span<Sample> samples() { return samples_; }
  std::span<const Sample> samples() const { return samples_; }
  Sample& sample(int b) { return samples_[static_cast<std::size_t>(b)]; }
  const Sample& sample(int b) const { return samples_[static_cast<std::size_t>(b)]; }
  // The valid rows of sample b (its padding left out): what goes on the wire.
  auto rows(int b) const { return h_.sample(b).topRows(h_.lengths[static_cast<std::size_t>(b)]); }

  // Moves the samples at `indices` (ascending, each < size()) out into a batch of their own at the same
  // depth and token count; this batch keeps the others, in order.
  Batch take(std::span<const int> indices);
  // Appends the others' samples after this batch's, in order, with one re-layout however many there are.
  // All must be at one depth and hidden size (an empty batch takes theirs; throws std::invalid_argument
  // otherwise); the result is padded to the largest token count, padding rows zero. The others are left
  // empty.
  void append(std::span<Batch> others);
  void append(Batch&& other) { append(std::span(&other, 1)); }

 private:
  model::Hidden h_;
  std::vector<Sample> samples_;
};

}  // namespace ee::runtime
