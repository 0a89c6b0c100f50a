// ee::metrics: the exact Prometheus text (exposition format 0.0.4) of a small registry, histogram bucket
// boundaries, escaping, name checks, and exact totals under concurrent updates.
#include "common/metrics/metrics.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <thread>
#include <vector>

namespace ee::metrics {
namespace {

using ::testing::HasSubstr;

TEST(Registry, RendersTheTextFormatExactly) {
  Registry r;
  auto& requests = r.counter_family("ee_requests_total", "Requests answered, by status.", {"status"});
  requests.labels({"ok"}).inc(3);
  requests.labels({"overloaded"}).inc();
  requests.labels({"deadline_exceeded"});  // created, never incremented: still exported as 0
  r.gauge("ee_open_connections", "Open TLS connections.").set(2);
  auto& latency = r.histogram("ee_queue_seconds", "Time from arrival to batch start.", {0.25, 0.5, 1});
  for (const double v : {0.125, 0.5, 0.75, 2.0}) latency.observe(v);  // binary fractions: an exact sum
  auto& batch = r.histogram_family("ee_batch_size", "Samples per executed batch.", {"layer"}, {1, 4});
  batch.labels({"2"}).observe(3);

  EXPECT_EQ(r.render(),
            "# HELP ee_requests_total Requests answered, by status.\n"
            "# TYPE ee_requests_total counter\n"
            "ee_requests_total{status=\"deadline_exceeded\"} 0\n"
            "ee_requests_total{status=\"ok\"} 3\n"
            "ee_requests_total{status=\"overloaded\"} 1\n"
            "# HELP ee_open_connections Open TLS connections.\n"
            "# TYPE ee_open_connections gauge\n"
            "ee_open_connections 2\n"
            "# HELP ee_queue_seconds Time from arrival to batch start.\n"
            "# TYPE ee_queue_seconds histogram\n"
            "ee_queue_seconds_bucket{le=\"0.25\"} 1\n"
            "ee_queue_seconds_bucket{le=\"0.5\"} 2\n"
            "ee_queue_seconds_bucket{le=\"1\"} 3\n"
            "ee_queue_seconds_bucket{le=\"+Inf\"} 4\n"
            "ee_queue_seconds_sum 3.375\n"
            "ee_queue_seconds_count 4\n"
            "# HELP ee_batch_size Samples per executed batch.\n"
            "# TYPE ee_batch_size histogram\n"
            "ee_batch_size_bucket{layer=\"2\",le=\"1\"} 0\n"
            "ee_batch_size_bucket{layer=\"2\",le=\"4\"} 1\n"
            "ee_batch_size_bucket{layer=\"2\",le=\"+Inf\"} 1\n"
            "ee_batch_size_sum{layer=\"2\"} 3\n"
            "ee_batch_size_count{layer=\"2\"} 1\n");
}

TEST(Registry, FamilyWithoutChildrenHasOnlyItsHeader) {
  Registry r;
  r.counter_family("ee_tls_handshake_failures_total", "Refused handshakes, by reason.", {"reason"});
  EXPECT_EQ(r.render(),
            "# HELP ee_tls_handshake_failures_total Refused handshakes, by reason.\n"
            "# TYPE ee_tls_handshake_failures_total counter\n");
}

TEST(Registry, LabelsReturnTheSameChild) {
  Registry r;
  auto& f = r.counter_family("x_total", "x", {"a", "b"});
  Counter& c = f.labels({"1", "2"});
  c.inc();
  EXPECT_EQ(&f.labels({"1", "2"}), &c);
  EXPECT_NE(&f.labels({"2", "1"}), &c);
  for (int i = 0; i < 100; ++i) f.labels({"n", std::to_string(i)});  // growing the family moves no child
  EXPECT_EQ(&f.labels({"1", "2"}), &c);
  EXPECT_EQ(c.value(), 1u);
  EXPECT_THROW(f.labels({"1"}), std::invalid_argument);
  EXPECT_THROW(f.labels({"1", "2", "3"}), std::invalid_argument);
}

TEST(Registry, EscapesLabelValuesAndHelp) {
  Registry r;
  r.counter_family("e_total", "Help with \\ and\nnewline \"quoted\".", {"path"})
      .labels({"C:\\x \"y\"\nz"})
      .inc();
  EXPECT_EQ(r.render(),
            "# HELP e_total Help with \\\\ and\\nnewline \"quoted\".\n"
            "# TYPE e_total counter\n"
            "e_total{path=\"C:\\\\x \\\"y\\\"\\nz\"} 1\n");
}

TEST(Registry, RefusesNamesTheFormatDoesNotAllow) {
  Registry r;
  r.counter("ok_total", "");
  EXPECT_THROW(r.counter("ok_total", ""), std::invalid_argument);  // twice
  EXPECT_THROW(r.gauge("ok_total", ""), std::invalid_argument);    // twice, other type
  EXPECT_THROW(r.counter("requests", ""), std::invalid_argument);  // counter without _total
  EXPECT_THROW(r.gauge("1st", ""), std::invalid_argument);         // leading digit
  EXPECT_THROW(r.gauge("a-b", ""), std::invalid_argument);         // '-'
  EXPECT_THROW(r.gauge("", ""), std::invalid_argument);
  EXPECT_THROW(r.gauge_family("g", "", {"a:b"}), std::invalid_argument);
  EXPECT_THROW(r.gauge_family("g", "", {"__reserved"}), std::invalid_argument);
  EXPECT_THROW(r.gauge_family("g", "", {"a", "a"}), std::invalid_argument);
  EXPECT_THROW(r.histogram_family("h", "", {"le"}, {1}), std::invalid_argument);
  EXPECT_NO_THROW(r.gauge_family("g", "", {"le"}));  // reserved for histograms only
  EXPECT_NO_THROW(r.gauge("ns:sub_name", ""));
  try {
    r.counter("bad name_total", "");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("'bad name_total'"));
  }
}

TEST(Histogram, AValueEqualToABoundIsInThatBucket) {
  Histogram h({1, 2, 5});
  for (const double v : {-3.0, 0.0, 1.0, std::nextafter(1.0, 2.0), 2.0, 5.0, std::nextafter(5.0, 6.0), 1e300})
    h.observe(v);
  const auto s = h.snapshot();
  // <= 1: -3, 0, 1   <= 2: + next(1), 2   <= 5: + 5   +Inf: + next(5), 1e300
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{3, 5, 6, 8}));
  EXPECT_EQ(s.count, 8u);
}

TEST(Histogram, NanGoesToInfAndDurationsToSeconds) {
  Histogram h({0.001, 1});
  h.observe(std::chrono::microseconds(1000));  // exactly 0.001 s: the first bucket
  h.observe(std::chrono::milliseconds(1500));
  EXPECT_EQ(h.snapshot().cumulative, (std::vector<uint64_t>{1, 1, 2}));
  EXPECT_DOUBLE_EQ(h.snapshot().sum, 1.501);
  h.observe(std::nan(""));
  EXPECT_EQ(h.snapshot().cumulative, (std::vector<uint64_t>{1, 1, 3}));
  EXPECT_TRUE(std::isnan(h.snapshot().sum));
}

TEST(Histogram, RefusesBadBounds) {
  EXPECT_THROW(Histogram({}), std::invalid_argument);
  EXPECT_THROW(Histogram({1, 1}), std::invalid_argument);
  EXPECT_THROW(Histogram({2, 1}), std::invalid_argument);
  EXPECT_THROW(Histogram({1, HUGE_VAL}), std::invalid_argument);
  EXPECT_THROW(Histogram({std::nan("")}), std::invalid_argument);
  Registry r;
  EXPECT_THROW(r.histogram("h", "", {3, 2}), std::invalid_argument);
}

TEST(Buckets, ExponentialAndLinear) {
  EXPECT_EQ(exponential_buckets(1, 2, 5), (std::vector<double>{1, 2, 4, 8, 16}));
  EXPECT_EQ(linear_buckets(0.5, 0.5, 3), (std::vector<double>{0.5, 1.0, 1.5}));
  EXPECT_THROW(exponential_buckets(0, 2, 3), std::invalid_argument);
  EXPECT_THROW(exponential_buckets(1, 1, 3), std::invalid_argument);
  EXPECT_THROW(linear_buckets(0, 0, 3), std::invalid_argument);
  EXPECT_THROW(linear_buckets(0, 1, 0), std::invalid_argument);
}

TEST(Values, SpecialAndFractionalValuesRender) {
  Registry r;
  auto& g = r.gauge_family("v", "", {"k"});
  g.labels({"a"}).set(HUGE_VAL);
  g.labels({"b"}).set(-HUGE_VAL);
  g.labels({"c"}).set(std::nan(""));
  g.labels({"d"}).set(1e-6);
  g.labels({"e"}).set(-0.25);
  EXPECT_EQ(r.render(),
            "# TYPE v gauge\n"  // no HELP line without help text
            "v{k=\"a\"} +Inf\nv{k=\"b\"} -Inf\nv{k=\"c\"} NaN\nv{k=\"d\"} 1e-06\nv{k=\"e\"} -0.25\n");
}

TEST(Concurrency, UpdatesFromSeveralThreadsSumExactly) {
  Registry r;
  auto& family = r.counter_family("c_total", "", {"t"});
  Counter& shared = r.counter("shared_total", "");
  Gauge& gauge = r.gauge("g", "");
  Histogram& hist = r.histogram("h", "", {0.5});
  constexpr int kThreads = 4, kPerThread = 100'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Counter& own = family.labels({std::to_string(t % 2)});
      for (int i = 0; i < kPerThread; ++i) {
        shared.inc();
        own.inc(2);
        gauge.inc(1);
        gauge.dec(0.5);
        hist.observe(i % 2 ? 1.0 : 0.25);
        if (i % 10'000 == 0) (void)r.render();  // rendering while others update must be safe
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(shared.value(), uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(family.labels({"0"}).value() + family.labels({"1"}).value(), uint64_t{kThreads} * kPerThread * 2);
  EXPECT_EQ(gauge.value(), kThreads * kPerThread * 0.5);  // halves are exact in binary
  const auto s = hist.snapshot();
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{kThreads * kPerThread / 2, kThreads * kPerThread}));
  EXPECT_EQ(s.sum, kThreads * (kPerThread / 2) * 1.25);
}

}  // namespace
}  // namespace ee::metrics
