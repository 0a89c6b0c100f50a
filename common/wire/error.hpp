#pragma once
// The one exception type of ee::wire: whatever is wrong with a message or its input, named by field.
#include <stdexcept>
#include <string>

namespace ee::wire {

class WireError : public std::runtime_error {
 public:
  // field: dotted path of the offending field ("activation.tokens"); detail: the value and why it is bad.
  WireError(std::string field, const std::string& detail)
      : std::runtime_error(field + ": " + detail), field_(std::move(field)) {}
  const std::string& field() const { return field_; }

 private:
  std::string field_;
};

}  // namespace ee::wire
