#pragma once
// The scheduler's vocabulary: an arm (a split layer, optionally with its own exit threshold), the context a
// choice is made in, the outcome the policy is told afterwards, and the Policy interface every scheduler
// implements. Pure data and decisions: no sockets, tensors or threads, so the same objects run inside the
// edge daemon and inside the simulator.
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace ee::sched {

// Bad input to the scheduler (spec string, state file, arm, measurement): the message names the value.
class SchedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Arm {
  // Encoder layers run on the edge: 0 = send the input/embeddings to the cloud, L = never offload.
  int split = 0;
  // SPINN-style (split, threshold) arm; empty: the exit threshold in force (fixed or from the controller).
  std::optional<double> threshold;
  friend bool operator==(const Arm&, const Arm&) = default;
};
std::string to_string(const Arm& arm);  // "3" or "3@0.9"
// Shortest text that names a parameter value in a spec string ("0.995", "500").
std::string format_value(double v);
Arm parse_arm(const std::string& text);  // inverse of to_string; throws SchedError

// Arms 0..num_layers, each optionally crossed with every threshold in `thresholds`.
std::vector<Arm> split_arms(int num_layers, const std::vector<double>& thresholds = {});

struct Context {
  double bandwidth_mbps = 0;          // EWMA of measured uplink throughput; 0 = not measured yet
  double rtt_ms = 0;                  // EWMA of round-trip time; 0 = not measured yet
  int queue_depth = 0;                // requests waiting at the edge
  std::optional<double> deadline_ms;  // time left for this request when the choice is made
  double now_s = 0;                   // monotone timestamp, seconds
  // Row of the exit trace being replayed. Only the oracles read it: they are told the future on purpose.
  std::optional<std::size_t> sample;
};

enum class AnsweredBy {
  edge_exit,      // exit head at the split layer was confident enough
  edge_final,     // split == L: the edge ran the whole model
  cloud,          // offloaded; the cloud answered from the last layer
  edge_fallback,  // offload failed (cloud unreachable, deadline): the edge finished locally
};

struct LayerExit {
  int layer = 0;  // 1-based encoder layer the exit head follows
  int prediction = -1;
  double confidence = 0;  // the exit rule's measure (SplitEE: max softmax probability)
};

struct LatencyParts {
  double edge_ms = 0;      // embedding + layers 1..split + exit heads on the edge
  double transfer_ms = 0;  // serialisation + uplink of the payload
  double cloud_ms = 0;     // queueing + layers split+1..L on the cloud
  double total_ms = 0;     // request in -> answer out, as the client saw it
};

struct Outcome {
  Context context;       // a copy of what choose() was given: requests overlap, so observe() cannot guess it
  double threshold = 0;  // exit threshold in force at the split layer
  std::vector<LayerExit> exits;  // every exit head the edge ran, ascending by layer
  AnsweredBy answered_by = AnsweredBy::cloud;
  int answer_layer = 0;
  int answer_prediction = -1;
  double answer_confidence = 0;
  // The last layer's answer when it ran anywhere (cloud, edge-only, audit): the controller's label-free
  // check.
  std::optional<int> final_prediction;
  std::optional<double> final_confidence;
  bool sent = false;     // activations crossed the network (offload or audit)
  bool audited = false;  // answered on the edge but also sent on so the cloud's answer could check it
  LatencyParts latency;
  std::uint64_t payload_bytes = 0;

  bool exited() const { return answered_by == AnsweredBy::edge_exit; }
  bool offloaded() const {
    return answered_by == AnsweredBy::cloud || answered_by == AnsweredBy::edge_fallback;
  }
  // The exit at `layer` if the edge ran it.
  const LayerExit* exit_at(int layer) const;
};

class Policy {
 public:
  virtual ~Policy() = default;
  // The spec string that rebuilds this policy through make_policy (and names it in state files).
  virtual std::string name() const = 0;
  virtual const std::vector<Arm>& arms() const = 0;
  // Not const: choices may draw random numbers or count rounds.
  virtual Arm choose(const Context& ctx) = 0;
  // Outcomes may arrive in any order relative to choose() calls (requests overlap in the daemon).
  virtual void observe(const Arm& arm, const Outcome& outcome) = 0;
  // Learned state as JSON (see state.hpp for the versioned file around it) and back; restore throws
  // SchedError.
  virtual nlohmann::json state() const = 0;
  virtual void restore(const nlohmann::json& state) = 0;
  virtual void reset() = 0;
};

}  // namespace ee::sched
