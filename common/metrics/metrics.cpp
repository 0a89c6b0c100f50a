#include "common/metrics/metrics.hpp"

#include <charconv>
#include <cmath>
#include <set>

namespace ee::metrics {
namespace {

bool valid_metric_name(std::string_view s) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

// Label names are metric names without ':'; names starting with "__" are reserved for Prometheus itself.
bool valid_label_name(std::string_view s) {
  return valid_metric_name(s) && s.find(':') == std::string_view::npos && !s.starts_with("__");
}

// Shortest text that reads back as the same double, as Prometheus' Go client writes it ('g', -1).
void append_value(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    char buf[32];
    const auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;
    out.append(buf, end);
  }
}

void append_value(std::string& out, uint64_t v) {
  char buf[24];
  const auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;
  out.append(buf, end);
}

// HELP text escapes backslash and line feed; label values also escape the double quote.
void append_escaped(std::string& out, std::string_view s, bool quote) {
  for (const char c : s) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (c == '"' && quote)
      out += "\\\"";
    else
      out += c;
  }
}

// `name{a="x",b="y"[,le="..."]} ` without braces when there are no labels at all.
void append_series(std::string& out, std::string_view name, std::string_view suffix,
                   const std::vector<std::string>& label_names, const std::vector<std::string>& values,
                   const std::string* le = nullptr) {
  out += name;
  out += suffix;
  if (!label_names.empty() || le) {
    out += '{';
    for (std::size_t i = 0; i < label_names.size(); ++i) {
      if (i) out += ',';
      out += label_names[i];
      out += "=\"";
      append_escaped(out, values[i], true);
      out += '"';
    }
    if (le) {
      if (!label_names.empty()) out += ',';
      out += "le=\"";
      out += *le;
      out += '"';
    }
    out += '}';
  }
  out += ' ';
}

}  // namespace

// ---- Histogram ---------------------------------------------------------------------------------------

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)) {
  detail::check_bounds(bounds_);
  counts_ = std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1);
}

void Histogram::observe(double v) noexcept {
  // lower_bound: the first bound >= v, so a value equal to a bound lands in that bound's bucket.
  const std::size_t i =
      std::isnan(v)
          ? bounds_.size()
          : static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.cumulative.resize(bounds_.size() + 1);
  uint64_t running = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  s.count = running;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> exponential_buckets(double start, double factor, std::size_t count) {
  if (!(start > 0) || !(factor > 1) || count == 0)
    throw std::invalid_argument("exponential_buckets: need start > 0, factor > 1, count >= 1 (got " +
                                std::to_string(start) + ", " + std::to_string(factor) + ", " +
                                std::to_string(count) + ")");
  std::vector<double> bounds(count);
  double b = start;
  for (auto& x : bounds) {
    x = b;
    b *= factor;
  }
  return bounds;
}

std::vector<double> linear_buckets(double start, double width, std::size_t count) {
  if (!(width > 0) || count == 0)
    throw std::invalid_argument("linear_buckets: need width > 0, count >= 1 (got " + std::to_string(width) +
                                ", " + std::to_string(count) + ")");
  std::vector<double> bounds(count);
  for (std::size_t i = 0; i < count; ++i) bounds[i] = start + width * static_cast<double>(i);
  return bounds;
}

// ---- rendering ---------------------------------------------------------------------------------------

namespace detail {

void check_bounds(const std::vector<double>& upper_bounds) {
  if (upper_bounds.empty()) throw std::invalid_argument("histogram: no bucket bounds");
  for (std::size_t i = 0; i < upper_bounds.size(); ++i) {
    if (!std::isfinite(upper_bounds[i]))
      throw std::invalid_argument("histogram: bucket bound " + std::to_string(i) +
                                  " is not finite (+Inf is always the last bucket)");
    if (i && !(upper_bounds[i] > upper_bounds[i - 1]))
      throw std::invalid_argument("histogram: bucket bounds not strictly increasing at index " +
                                  std::to_string(i) + " (" + std::to_string(upper_bounds[i]) + ")");
  }
}

FamilyBase::FamilyBase(std::string name, std::string help, std::vector<std::string> label_names)
    : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {}

void FamilyBase::check_values(const std::vector<std::string>& values) const {
  if (values.size() == label_names_.size()) return;
  std::string names;
  for (const auto& n : label_names_) names += (names.empty() ? "" : ",") + n;
  throw std::invalid_argument("metric " + name_ + ": " + std::to_string(values.size()) +
                              " label values given for labels {" + names + "}");
}

void render_header(std::string& out, std::string_view name, std::string_view help, std::string_view type) {
  if (!help.empty()) {
    out += "# HELP ";
    out += name;
    out += ' ';
    append_escaped(out, help, false);
    out += '\n';
  }
  out += "# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void render_samples(std::string& out, std::string_view name, const std::vector<std::string>& label_names,
                    const std::vector<std::string>& values, const Counter& c) {
  append_series(out, name, "", label_names, values);
  append_value(out, c.value());
  out += '\n';
}

void render_samples(std::string& out, std::string_view name, const std::vector<std::string>& label_names,
                    const std::vector<std::string>& values, const Gauge& g) {
  append_series(out, name, "", label_names, values);
  append_value(out, g.value());
  out += '\n';
}

void render_samples(std::string& out, std::string_view name, const std::vector<std::string>& label_names,
                    const std::vector<std::string>& values, const Histogram& h) {
  const Histogram::Snapshot s = h.snapshot();
  const auto& bounds = h.upper_bounds();
  std::string le;
  for (std::size_t i = 0; i <= bounds.size(); ++i) {
    le.clear();
    append_value(le, i < bounds.size() ? bounds[i] : HUGE_VAL);
    append_series(out, name, "_bucket", label_names, values, &le);
    append_value(out, s.cumulative[i]);
    out += '\n';
  }
  append_series(out, name, "_sum", label_names, values);
  append_value(out, s.sum);
  out += '\n';
  append_series(out, name, "_count", label_names, values);
  append_value(out, s.count);
  out += '\n';
}

}  // namespace detail

// ---- Registry ----------------------------------------------------------------------------------------

template <typename Metric>
Family<Metric>& Registry::add(std::string name, std::string help, std::vector<std::string> label_names,
                              std::vector<double> upper_bounds) {
  if (!valid_metric_name(name)) throw std::invalid_argument("metric name '" + name + "' is not a valid name");
  if (std::is_same_v<Metric, Counter> && !name.ends_with("_total"))
    throw std::invalid_argument("counter name '" + name + "' does not end in _total");
  std::set<std::string_view> seen;
  for (const auto& l : label_names) {
    if (!valid_label_name(l) || (std::is_same_v<Metric, Histogram> && l == "le"))
      throw std::invalid_argument("metric " + name + ": label name '" + l + "' is not allowed");
    if (!seen.insert(l).second) throw std::invalid_argument("metric " + name + ": label '" + l + "' twice");
  }
  if constexpr (std::is_same_v<Metric, Histogram>) detail::check_bounds(upper_bounds);

  std::lock_guard lock(mutex_);
  for (const auto& f : families_)
    if (f->name() == name) throw std::invalid_argument("metric " + name + " is already registered");
  // The constructor is private to Registry, so no make_unique.
  auto* family =
      new Family<Metric>(std::move(name), std::move(help), std::move(label_names), std::move(upper_bounds));
  families_.emplace_back(family);
  return *family;
}

Family<Counter>& Registry::counter_family(std::string name, std::string help,
                                          std::vector<std::string> label_names) {
  return add<Counter>(std::move(name), std::move(help), std::move(label_names));
}

Family<Gauge>& Registry::gauge_family(std::string name, std::string help,
                                      std::vector<std::string> label_names) {
  return add<Gauge>(std::move(name), std::move(help), std::move(label_names));
}

Family<Histogram>& Registry::histogram_family(std::string name, std::string help,
                                              std::vector<std::string> label_names,
                                              std::vector<double> upper_bounds) {
  return add<Histogram>(std::move(name), std::move(help), std::move(label_names), std::move(upper_bounds));
}

Counter& Registry::counter(std::string name, std::string help) {
  return counter_family(std::move(name), std::move(help), {}).labels({});
}

Gauge& Registry::gauge(std::string name, std::string help) {
  return gauge_family(std::move(name), std::move(help), {}).labels({});
}

Histogram& Registry::histogram(std::string name, std::string help, std::vector<double> upper_bounds) {
  return histogram_family(std::move(name), std::move(help), {}, std::move(upper_bounds)).labels({});
}

std::string Registry::render() const {
  std::string out;
  std::lock_guard lock(mutex_);
  for (const auto& f : families_) f->render(out);
  return out;
}

}  // namespace ee::metrics
