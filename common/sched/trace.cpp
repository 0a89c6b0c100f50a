#include "common/sched/trace.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <istream>
#include <ostream>

#include "common/sched/policy.hpp"

namespace ee::sched {

namespace {

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const auto comma = line.find(',', start);
    out.push_back(line.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

std::string where(const std::string& source, std::size_t line) {
  return source + ":" + std::to_string(line) + ": ";
}

long parse_int(const std::string& s, const std::string& at, const char* what) {
  char* end = nullptr;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || end != s.c_str() + s.size())
    throw SchedError(at + what + " '" + s + "' is not an integer");
  return v;
}

double parse_real(const std::string& s, const std::string& at, const char* what) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v))
    throw SchedError(at + what + " '" + s + "' is not a finite number");
  return v;
}

// Four decimals, trailing zeros dropped: thresholds live on a 0.01 grid, and the 10k-sample reference trace
// stays small enough to commit (a confident exit's entropy is "0", not "1.234e-05").
std::string fmt(double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  std::string s = buf;
  if (s.find('.') != std::string::npos) {
    s.erase(s.find_last_not_of('0') + 1);
    if (s.back() == '.') s.pop_back();
  }
  return s == "-0" ? "0" : s;
}

const char* const kColumns[] = {"pred_", "maxprob_", "entropy_", "margin_"};

}  // namespace

Confidence parse_confidence(const std::string& name) {
  if (name == "max-prob") return Confidence::max_prob;
  if (name == "margin") return Confidence::margin;
  throw SchedError("confidence measure '" + name + "' is not one of max-prob, margin");
}

double confidence_of(const ExitRecord& r, Confidence measure) {
  return measure == Confidence::margin ? r.margin : r.max_prob;
}

ExitTrace::ExitTrace(std::vector<int> exit_layers) : exit_layers_(std::move(exit_layers)) {
  for (std::size_t i = 0; i < exit_layers_.size(); ++i)
    if (exit_layers_[i] < 1 || (i > 0 && exit_layers_[i] <= exit_layers_[i - 1]))
      throw SchedError("exit trace: exit layers must be ascending and >= 1 (got " +
                       std::to_string(exit_layers_[i]) + ")");
}

int ExitTrace::exit_index(int layer) const {
  const auto it = std::lower_bound(exit_layers_.begin(), exit_layers_.end(), layer);
  return it != exit_layers_.end() && *it == layer ? static_cast<int>(it - exit_layers_.begin()) : -1;
}

const ExitRecord* ExitTrace::exit_at(std::size_t i, int layer) const {
  const int k = exit_index(layer);
  return k < 0 ? nullptr : &samples_[i].exits[static_cast<std::size_t>(k)];
}

void ExitTrace::add(TraceSample s) {
  if (s.exits.size() != exit_layers_.size())
    throw SchedError("exit trace: sample " + std::to_string(samples_.size()) + " has " +
                     std::to_string(s.exits.size()) + " exits, the trace " +
                     std::to_string(exit_layers_.size()));
  if (s.group.find_first_of(",\"\r\n") != std::string::npos)
    throw SchedError("exit trace: group '" + s.group + "' contains a comma, quote or line break");
  samples_.push_back(std::move(s));
}

double ExitTrace::accuracy(int layer) const {
  const int k = exit_index(layer);
  if (k < 0) throw SchedError("exit trace: no exit after layer " + std::to_string(layer));
  std::size_t labelled = 0, correct = 0;
  for (const auto& s : samples_) {
    if (s.label < 0) continue;
    ++labelled;
    correct += s.exits[static_cast<std::size_t>(k)].prediction == s.label;
  }
  return labelled ? static_cast<double>(correct) / static_cast<double>(labelled) : 0.0;
}

void ExitTrace::write(std::ostream& out) const {
  out << "sample,label,group";
  for (int layer : exit_layers_)
    for (const char* c : kColumns) out << ',' << c << layer;
  out << '\n';
  for (std::size_t i = 0; i < samples_.size(); ++i) {
    const auto& s = samples_[i];
    out << i << ',' << s.label << ',' << s.group;
    for (const auto& e : s.exits)
      out << ',' << e.prediction << ',' << fmt(e.max_prob) << ',' << fmt(e.entropy) << ',' << fmt(e.margin);
    out << '\n';
  }
}

void ExitTrace::save(const std::filesystem::path& path) const {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw SchedError("cannot write exit trace " + path.string());
  write(out);
  if (!out.flush()) throw SchedError("cannot write exit trace " + path.string());
}

ExitTrace ExitTrace::read(std::istream& in, const std::string& source) {
  std::string line;
  if (!std::getline(in, line)) throw SchedError(source + ": empty exit trace");
  const auto header = split_csv(line);
  if (header.size() < 7 || (header.size() - 3) % 4 != 0 || header[0] != "sample" || header[1] != "label" ||
      header[2] != "group")
    throw SchedError(where(source, 1) +
                     "header must be sample,label,group then pred_N,maxprob_N,entropy_N,margin_N per exit");
  std::vector<int> layers;
  for (std::size_t c = 3; c < header.size(); c += 4) {
    const std::string& name = header[c];
    if (name.rfind(kColumns[0], 0) != 0)
      throw SchedError(where(source, 1) + "column '" + name + "' should be pred_<layer>");
    const std::string layer = name.substr(std::string(kColumns[0]).size());
    const long l = parse_int(layer, where(source, 1), "exit layer");
    for (std::size_t k = 1; k < 4; ++k)
      if (header[c + k] != kColumns[k] + layer)
        throw SchedError(where(source, 1) + "column '" + header[c + k] + "' should be " + kColumns[k] +
                         layer);
    if (l < 1 || l > 100000) throw SchedError(where(source, 1) + "exit layer " + layer + " out of range");
    layers.push_back(static_cast<int>(l));
  }
  ExitTrace trace(layers);
  std::size_t lineno = 1;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const auto at = where(source, lineno);
    const auto f = split_csv(line);
    if (f.size() != header.size())
      throw SchedError(at + std::to_string(f.size()) + " fields, the header has " +
                       std::to_string(header.size()));
    if (parse_int(f[0], at, "sample") != static_cast<long>(trace.size()))
      throw SchedError(at + "sample index " + f[0] + " out of sequence (expected " +
                       std::to_string(trace.size()) + ")");
    TraceSample s;
    const long label = parse_int(f[1], at, "label");
    if (label < -1 || label > 1'000'000) throw SchedError(at + "label " + f[1] + " out of range");
    s.label = static_cast<int>(label);
    s.group = f[2];
    for (std::size_t c = 3; c < f.size(); c += 4) {
      ExitRecord r;
      const long pred = parse_int(f[c], at, "prediction");
      if (pred < 0 || pred > 1'000'000) throw SchedError(at + "prediction " + f[c] + " out of range");
      r.prediction = static_cast<int>(pred);
      r.max_prob = parse_real(f[c + 1], at, "maxprob");
      r.entropy = parse_real(f[c + 2], at, "entropy");
      r.margin = parse_real(f[c + 3], at, "margin");
      if (r.max_prob < 0 || r.max_prob > 1 || r.margin < 0 || r.margin > 1 || r.entropy < 0)
        throw SchedError(at + "confidence measures out of range (maxprob " + f[c + 1] + ", margin " +
                         f[c + 3] + ")");
      s.exits.push_back(r);
    }
    trace.add(std::move(s));
  }
  return trace;
}

ExitTrace ExitTrace::load(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SchedError("cannot open exit trace " + path.string());
  return read(in, path.string());
}

ExitRecord ExitTrace::measure(std::span<const float> logits) {
  if (logits.empty()) throw SchedError("exit trace: no logits to measure");
  ExitRecord r;
  const auto top = std::max_element(logits.begin(), logits.end());
  r.prediction = static_cast<int>(top - logits.begin());
  // Softmax shifted by the top logit: no overflow whatever the scale.
  double z = 0;
  for (float l : logits) z += std::exp(static_cast<double>(l) - *top);
  double best = 0, second = 0, h = 0;
  for (float l : logits) {
    const double p = std::exp(static_cast<double>(l) - *top) / z;
    if (p > best) {
      second = best;
      best = p;
    } else if (p > second) {
      second = p;
    }
    if (p > 0) h -= p * std::log(p);
  }
  r.max_prob = best;
  r.entropy = std::max(0.0, h);
  r.margin = best - second;
  return r;
}

}  // namespace ee::sched
