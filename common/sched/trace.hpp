#pragma once
// Exit trace: what every exit head of a model said about every sample of a data set, recorded once (by
// ee-eval --trace) and replayed by the simulator under any policy without running the model again.
//
// File format (CSV, one header line, one line per sample, '\n' line ends, no quoting):
//   sample,label,group,pred_1,maxprob_1,entropy_1,margin_1,pred_2,...
// Columns after `group` come in fours, one group per exit layer, named with the 1-based layer they follow,
// ascending; the last exit layer is the model's last layer. label: true class, -1 when unknown. group: free
// text without commas, quotes or line breaks (may be empty), e.g. a data subset. maxprob: largest softmax
// probability; entropy: softmax entropy in nats; margin: top-1 minus top-2 probability; numbers are written
// with four decimals, trailing zeros dropped.
#include <filesystem>
#include <iosfwd>
#include <span>
#include <string>
#include <vector>

namespace ee::sched {

struct ExitRecord {
  int prediction = -1;
  double max_prob = 0;
  double entropy = 0;
  double margin = 0;
};

struct TraceSample {
  int label = -1;
  std::string group;
  std::vector<ExitRecord> exits;  // one per ExitTrace::exit_layers entry
};

enum class Confidence { max_prob, margin };
Confidence parse_confidence(const std::string& name);  // "max-prob" | "margin"; throws SchedError
double confidence_of(const ExitRecord& r, Confidence measure);

class ExitTrace {
 public:
  explicit ExitTrace(std::vector<int> exit_layers = {});

  const std::vector<int>& exit_layers() const { return exit_layers_; }
  int num_layers() const { return exit_layers_.empty() ? 0 : exit_layers_.back(); }
  std::size_t size() const { return samples_.size(); }
  const TraceSample& operator[](std::size_t i) const { return samples_[i]; }
  const std::vector<TraceSample>& samples() const { return samples_; }
  // Index of `layer` in exit_layers(), or -1 when the model has no exit there.
  int exit_index(int layer) const;
  // The exit after `layer` for sample i; nullptr when there is none.
  const ExitRecord* exit_at(std::size_t i, int layer) const;

  void add(TraceSample s);  // throws SchedError if its exits do not match exit_layers()
  // Share of labelled samples the exit after `layer` classifies correctly.
  double accuracy(int layer) const;

  void write(std::ostream& out) const;
  void save(const std::filesystem::path& path) const;
  // `source` names the input in error messages (file and line).
  static ExitTrace read(std::istream& in, const std::string& source);
  static ExitTrace load(const std::filesystem::path& path);

  // Confidence measures of one exit from its logits.
  static ExitRecord measure(std::span<const float> logits);

 private:
  std::vector<int> exit_layers_;
  std::vector<TraceSample> samples_;
};

}  // namespace ee::sched
