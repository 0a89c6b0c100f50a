#include "common/runtime/batch.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace ee::runtime {
namespace {

std::invalid_argument mismatch(const char* what, int a, int b) {
  return std::invalid_argument("Batch: " + std::string(what) + " " + std::to_string(a) + " and " +
                               std::to_string(b) + " differ");
}

}  // namespace

Sample Sample::from(const wire::Activation& a, Clock::time_point received) {
  Sample s;
  s.request_id = a.request_id();
  if (a.deadline().count() > 0) s.deadline = received + a.deadline();
  s.exit = a.exit();
  s.audit = a.audit();
  return s;
}

Batch::Batch(model::Hidden h, std::vector<Sample> samples) : h_(std::move(h)), samples_(std::move(samples)) {
  if (static_cast<int>(samples_.size()) != h_.batch()) throw mismatch("sample count", h_.batch(), size());
}

Batch::Batch(model::Hidden h, const exits::ExitRule& rule, uint64_t first_id) : h_(std::move(h)) {
  samples_.resize(static_cast<std::size_t>(h_.batch()));
  for (Sample& s : samples_) {
    s.request_id = first_id++;
    s.exit.rule = rule;
  }
}

Batch Batch::decode(std::span<const wire::Activation* const> requests, std::span<const Sample> samples) {
  if (requests.size() != samples.size())
    throw mismatch("request and sample counts", static_cast<int>(requests.size()),
                   static_cast<int>(samples.size()));
  Batch out;
  if (requests.empty()) return out;
  model::Hidden& h = out.h_;
  h.depth = requests.front()->split_layer();
  const int hidden = requests.front()->hidden();
  for (const wire::Activation* a : requests) {
    if (a->split_layer() != h.depth)
      throw wire::WireError("batch.split_layer", "mixes layers " + std::to_string(h.depth) + " and " +
                                                     std::to_string(a->split_layer()));
    if (a->hidden() != hidden)
      throw wire::WireError("batch.hidden",
                            "mixes " + std::to_string(hidden) + " and " + std::to_string(a->hidden()));
    h.tokens = std::max(h.tokens, a->tokens());
    h.lengths.push_back(a->tokens());
  }
  h.x.resize(static_cast<Eigen::Index>(requests.size()) * h.tokens, hidden);
  for (int b = 0; b < h.batch(); ++b) requests[static_cast<std::size_t>(b)]->decode_into(h.sample(b));
  out.samples_.assign(samples.begin(), samples.end());
  return out;
}

Batch Batch::take(std::span<const int> indices) {
  for (std::size_t i = 0; i < indices.size(); ++i) {
    if (indices[i] < 0 || indices[i] >= size() || (i > 0 && indices[i] <= indices[i - 1]))
      throw std::invalid_argument("Batch::take: indices must ascend within 0.." + std::to_string(size() - 1));
  }
  Batch out, rest;
  for (Batch* part : {&out, &rest}) {
    part->h_.tokens = h_.tokens;
    part->h_.depth = h_.depth;
  }
  out.h_.x.resize(static_cast<Eigen::Index>(indices.size()) * h_.tokens, h_.x.cols());
  rest.h_.x.resize(static_cast<Eigen::Index>(size() - static_cast<int>(indices.size())) * h_.tokens,
                   h_.x.cols());
  std::size_t next = 0;
  for (int b = 0; b < size(); ++b) {
    const bool taken = next < indices.size() && indices[next] == b;
    next += taken;
    Batch& to = taken ? out : rest;
    to.h_.sample(to.size()) = h_.sample(b);
    to.h_.lengths.push_back(h_.lengths[static_cast<std::size_t>(b)]);
    to.samples_.push_back(std::move(samples_[static_cast<std::size_t>(b)]));
  }
  *this = std::move(rest);
  return out;
}

void Batch::append(std::span<Batch> others) {
  int tokens = h_.tokens, count = size();
  Eigen::Index hidden = empty() ? -1 : h_.x.cols();
  int depth = empty() ? -1 : h_.depth;
  for (const Batch& o : others) {
    if (o.empty()) continue;
    if (depth >= 0 && o.depth() != depth) throw mismatch("depths", depth, o.depth());
    if (hidden >= 0 && o.h_.x.cols() != hidden)
      throw mismatch("hidden sizes", static_cast<int>(hidden), static_cast<int>(o.h_.x.cols()));
    depth = o.depth();
    hidden = o.h_.x.cols();
    tokens = std::max(tokens, o.tokens());
    count += o.size();
  }
  if (count == size()) return;

  model::Hidden h;
  h.tokens = tokens;
  h.depth = depth;
  h.x.setZero(static_cast<Eigen::Index>(count) * tokens, hidden);
  h.lengths.reserve(static_cast<std::size_t>(count));
  samples_.reserve(static_cast<std::size_t>(count));
  auto copy_rows = [&](const model::Hidden& from) {
    for (int b = 0; b < from.batch(); ++b) {
      const int length = from.lengths[static_cast<std::size_t>(b)];
      h.sample(h.batch()).topRows(length) = from.sample(b).topRows(length);
      h.lengths.push_back(length);
    }
  };
  copy_rows(h_);
  for (Batch& o : others) {
    copy_rows(o.h_);
    samples_.insert(samples_.end(), o.samples_.begin(), o.samples_.end());
    o = Batch();
  }
  h_ = std::move(h);
}

}  // namespace ee::runtime
