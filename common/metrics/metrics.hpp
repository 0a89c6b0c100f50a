#pragma once
// Prometheus metrics for the daemons: counters, gauges and fixed-bucket histograms in labelled families, and
// a registry that renders the text exposition format 0.0.4 for /metrics.
//
// Hot path: updating a metric is one or two relaxed atomic operations and never locks. Creating a labelled
// child (Family::labels) locks its family, so callers look children up once and keep the reference, which
// stays valid as long as the registry. Names follow Prometheus conventions: base units (seconds, bytes) in
// the name, counters end in `_total`; the registry refuses names the format does not allow.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace ee::metrics {

// The Content-Type of Registry::render()'s text.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

// Monotonic count of events.
class Counter {
 public:
  void inc(uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down (open connections, queue depth, a threshold).
class Gauge {
 public:
  void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
  void inc(double v = 1) noexcept { value_.fetch_add(v, std::memory_order_relaxed); }
  void dec(double v = 1) noexcept { value_.fetch_sub(v, std::memory_order_relaxed); }
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Observations counted in fixed buckets: bucket i holds values <= upper_bounds[i] (a value equal to a bound
// is in that bucket), one more bucket holds the rest (+Inf), and the sum of all values is kept beside them.
class Histogram {
 public:
  // Bounds must be finite and strictly increasing (at least one); throws std::invalid_argument.
  explicit Histogram(std::vector<double> upper_bounds);

  // NaN is counted in the +Inf bucket (it is above no bound) and makes the sum NaN, as in Prometheus'
  // clients.
  void observe(double v) noexcept;
  template <typename Rep, typename Period>
  void observe(std::chrono::duration<Rep, Period> d) noexcept {
    observe(std::chrono::duration<double>(d).count());
  }

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // per bound, then +Inf: observations <= that bound
    double sum = 0;
    uint64_t count = 0;  // == cumulative.back()
  };
  // Read while observations continue: each bucket is read once, so count always equals the +Inf bucket.
  Snapshot snapshot() const;
  const std::vector<double>& upper_bounds() const noexcept { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket, not cumulative; bounds_.size() + 1
  std::atomic<double> sum_{0};
};

// `count` bounds start, start*factor, start*factor^2, ... (start > 0, factor > 1, count >= 1).
std::vector<double> exponential_buckets(double start, double factor, std::size_t count);
// `count` bounds start, start+width, ... (width > 0, count >= 1).
std::vector<double> linear_buckets(double start, double width, std::size_t count);

namespace detail {

class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, std::vector<std::string> label_names);
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;

  const std::string& name() const noexcept { return name_; }
  // Appends this family's HELP (unless the help text is empty), TYPE and sample lines.
  virtual void render(std::string& out) const = 0;

 protected:
  // Throws std::invalid_argument unless `values` has one value per label name.
  void check_values(const std::vector<std::string>& values) const;

  std::string name_, help_;
  std::vector<std::string> label_names_;
};

// Throws std::invalid_argument unless the bounds are finite and strictly increasing (at least one).
void check_bounds(const std::vector<double>& upper_bounds);

void render_header(std::string& out, std::string_view name, std::string_view help, std::string_view type);
// The sample lines of one child, whose label values pair with label_names.
void render_samples(std::string& out, std::string_view name, const std::vector<std::string>& label_names,
                    const std::vector<std::string>& values, const Counter& c);
void render_samples(std::string& out, std::string_view name, const std::vector<std::string>& label_names,
                    const std::vector<std::string>& values, const Gauge& g);
void render_samples(std::string& out, std::string_view name, const std::vector<std::string>& label_names,
                    const std::vector<std::string>& values, const Histogram& h);

constexpr std::string_view type_name(const Counter*) {
  return "counter";
}
constexpr std::string_view type_name(const Gauge*) {
  return "gauge";
}
constexpr std::string_view type_name(const Histogram*) {
  return "histogram";
}

}  // namespace detail

// All series of one metric name, one child per combination of label values (label names fixed at creation).
template <typename Metric>
class Family final : public detail::FamilyBase {
 public:
  // The child for these label values, in the order of the family's label names; created at the first call.
  // Takes the family's lock: look children up once, keep the reference. Throws std::invalid_argument for a
  // wrong number of values.
  Metric& labels(std::vector<std::string> values) {
    check_values(values);
    std::lock_guard lock(mutex_);
    auto [it, inserted] = children_.try_emplace(std::move(values));
    if (inserted) it->second = make_();
    return *it->second;
  }

  void render(std::string& out) const override {
    detail::render_header(out, name_, help_, detail::type_name(static_cast<const Metric*>(nullptr)));
    std::lock_guard lock(mutex_);
    for (const auto& [values, child] : children_)
      detail::render_samples(out, name_, label_names_, values, *child);
  }

 private:
  friend class Registry;
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> upper_bounds = {})
      : FamilyBase(std::move(name), std::move(help), std::move(label_names)),
        bounds_(std::move(upper_bounds)) {}
  std::unique_ptr<Metric> make_() const {
    if constexpr (std::is_same_v<Metric, Histogram>)
      return std::make_unique<Histogram>(bounds_);
    else
      return std::make_unique<Metric>();
  }

  std::vector<double> bounds_;  // histograms only
  mutable std::mutex mutex_;
  std::map<std::vector<std::string>, std::unique_ptr<Metric>> children_;  // sorted: stable output order
};

// Owns every family; renders them in registration order. Registering is thread-safe; a name may be
// registered once (std::invalid_argument otherwise, as for a name or label name the format does not allow,
// a counter not ending in `_total`, or a histogram label named `le`).
class Registry {
 public:
  Family<Counter>& counter_family(std::string name, std::string help, std::vector<std::string> label_names);
  Family<Gauge>& gauge_family(std::string name, std::string help, std::vector<std::string> label_names);
  Family<Histogram>& histogram_family(std::string name, std::string help,
                                      std::vector<std::string> label_names, std::vector<double> upper_bounds);

  // A metric without labels (a family with no label names and its one child).
  Counter& counter(std::string name, std::string help);
  Gauge& gauge(std::string name, std::string help);
  Histogram& histogram(std::string name, std::string help, std::vector<double> upper_bounds);

  // The text exposition format (version 0.0.4) of every family, for a response of type kContentType.
  std::string render() const;

 private:
  template <typename Metric>
  Family<Metric>& add(std::string name, std::string help, std::vector<std::string> label_names,
                      std::vector<double> upper_bounds = {});

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<detail::FamilyBase>> families_;
};

}  // namespace ee::metrics
