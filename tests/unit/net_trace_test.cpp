// Network traces: both file forms parse into the capacity model the hand-computed cases below expect,
// malformed files are refused with the file and line named, and the shipped synthetic traces load.
#include "sim/net_trace.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/unit/trace_text.hpp"

namespace ee::sim {
namespace {

namespace fs = std::filesystem;

using ee::testing::csv_trace;
using ee::testing::mahimahi_trace;

// Runs `parse`, expecting a NetTraceError whose message contains every needle.
template <typename F>
void expect_error(F parse, std::initializer_list<std::string> needles) {
  try {
    parse();
    ADD_FAILURE() << "no error; expected one mentioning " << *needles.begin();
  } catch (const NetTraceError& e) {
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

TEST(Mahimahi, OneOpportunityPerMillisecondIsTwelveMegabits) {
  // Mahimahi's own example of a fixed-rate link: the file "1", looping every millisecond.
  const NetTrace t = mahimahi_trace("1\n");
  EXPECT_EQ(t.format(), TraceFormat::mahimahi);
  EXPECT_DOUBLE_EQ(t.period_s(), 0.001);
  EXPECT_DOUBLE_EQ(t.mean_bandwidth_mbps(), 12.0);
  // Opportunities at 1, 2, ... ms; capacity counts those strictly before t.
  EXPECT_EQ(t.capacity_before(0.001), 0);
  EXPECT_EQ(t.capacity_before(0.0015), 1500);
  EXPECT_EQ(t.capacity_before(0.0105), 15000);
  EXPECT_DOUBLE_EQ(t.time_at_capacity(1), 0.001);
  EXPECT_DOUBLE_EQ(t.time_at_capacity(1500), 0.001);
  EXPECT_DOUBLE_EQ(t.time_at_capacity(1501), 0.002);
  EXPECT_DOUBLE_EQ(t.mean_bandwidth_mbps(0.5, 1.5), 12.0);
}

TEST(Mahimahi, OpportunitiesAtThePeriodFireOncePerLoopBesideTheNextLoopsFirst) {
  // "0 10 10" loops with period 10: opportunities at 0, 10, 10, then 10 (= 0 + 10), 20, 20, 20, 30, ...
  const NetTrace t = mahimahi_trace("0\n10\n10\n");
  EXPECT_DOUBLE_EQ(t.period_s(), 0.010);
  EXPECT_EQ(t.capacity_before(0.0), 0);
  EXPECT_EQ(t.capacity_before(0.005), 1 * 1500.0);
  EXPECT_EQ(t.capacity_before(0.010), 1 * 1500.0);
  EXPECT_EQ(t.capacity_before(0.0101), 4 * 1500.0);
  EXPECT_EQ(t.capacity_before(0.020), 4 * 1500.0);
  EXPECT_EQ(t.capacity_before(0.0201), 7 * 1500.0);
  EXPECT_DOUBLE_EQ(t.time_at_capacity(1500), 0.0);
  EXPECT_DOUBLE_EQ(t.time_at_capacity(1501), 0.010);
  EXPECT_DOUBLE_EQ(t.time_at_capacity(4 * 1500), 0.010);
  EXPECT_DOUBLE_EQ(t.time_at_capacity(4 * 1500 + 1), 0.020);
  EXPECT_DOUBLE_EQ(t.mean_bandwidth_mbps(), 3 * 1500 * 8 / 0.010 / 1e6);
}

TEST(Mahimahi, DelayAndLossComeWithTheFile) {
  const NetTrace t = mahimahi_trace("1\n2\r\n", {25, 0.01});  // a Windows line end is tolerated
  EXPECT_DOUBLE_EQ(t.one_way_delay_s(3.7), 0.025);
  EXPECT_DOUBLE_EQ(t.loss(3.7), 0.01);
  EXPECT_FALSE(t.lossless());
  EXPECT_TRUE(t.constant_delay());
  EXPECT_TRUE(mahimahi_trace("1\n").lossless());
}

TEST(Mahimahi, RefusesMalformedFilesNamingTheLine) {
  expect_error([] { mahimahi_trace(""); }, {"test.up", "empty trace"});
  expect_error([] { mahimahi_trace("1\n\n3\n"); }, {"test.up:2:", "empty line"});
  expect_error([] { mahimahi_trace("1\n2\nabc\n"); }, {"test.up:3:", "'abc'"});
  expect_error([] { mahimahi_trace("1.5\n"); }, {"test.up:1:", "integer"});
  expect_error([] { mahimahi_trace("1\n-3\n"); }, {"test.up:2:", "negative"});
  expect_error([] { mahimahi_trace("5\n7\n3\n"); }, {"test.up:3:", "before the previous", "(7)"});
  expect_error([] { mahimahi_trace("0\n0\n"); }, {"test.up", "period", "> 0"});
  expect_error([] { mahimahi_trace("1\n", {-1, 0}); }, {"test.up", "delay"});
  expect_error([] { mahimahi_trace("1\n", {0, 1.0}); }, {"test.up", "loss"});
}

TEST(Csv, RowsHoldUntilTheNextAndTheLastForTheIntervalBeforeIt) {
  // 8 Mbit/s (1e6 B/s) for [0, 1), an outage for [1, 2), 16 Mbit/s (2e6 B/s) for [2, 3); period 3 s.
  const NetTrace t = csv_trace("0,8,40,0\n1,0,40,0.5\n2,16,100,0\n");
  EXPECT_EQ(t.format(), TraceFormat::csv);
  EXPECT_DOUBLE_EQ(t.period_s(), 3.0);
  EXPECT_DOUBLE_EQ(t.period_capacity_bytes(), 3e6);
  EXPECT_DOUBLE_EQ(t.mean_bandwidth_mbps(), 8.0);
  EXPECT_DOUBLE_EQ(t.capacity_before(0.5), 5e5);
  EXPECT_DOUBLE_EQ(t.capacity_before(1.5), 1e6);
  EXPECT_DOUBLE_EQ(t.capacity_before(2.5), 2e6);
  EXPECT_DOUBLE_EQ(t.capacity_before(3.5), 3.5e6);  // looped
  EXPECT_DOUBLE_EQ(t.time_at_capacity(1e6), 1.0);   // the earliest time, not the outage's end
  EXPECT_DOUBLE_EQ(t.time_at_capacity(1e6 + 2), 2.000001);
  EXPECT_DOUBLE_EQ(t.time_at_capacity(3e6), 3.0);
  EXPECT_DOUBLE_EQ(t.time_at_capacity(3.5e6), 3.5);
  EXPECT_DOUBLE_EQ(t.mean_bandwidth_mbps(0, 2), 4.0);
  EXPECT_DOUBLE_EQ(t.one_way_delay_s(0.2), 0.020);
  EXPECT_DOUBLE_EQ(t.one_way_delay_s(2.2), 0.050);
  EXPECT_DOUBLE_EQ(t.one_way_delay_s(5.2), 0.050);
  EXPECT_DOUBLE_EQ(t.loss(1.5), 0.5);
  EXPECT_FALSE(t.lossless());
  EXPECT_FALSE(t.constant_delay());
}

TEST(Csv, OneRowIsAConstantLink) {
  const NetTrace t = csv_trace("0, 12 , 20, 0\r\n");
  EXPECT_DOUBLE_EQ(t.mean_bandwidth_mbps(17.3, 18.9), 12.0);
  EXPECT_DOUBLE_EQ(t.time_at_capacity(1.5e6 * 10), 10.0);
  EXPECT_TRUE(t.lossless());
}

TEST(Csv, RefusesMalformedFilesNamingTheLine) {
  const auto parse = [](const std::string& text) {
    std::istringstream in(text);
    NetTrace::parse_csv(in, "bad.csv");
  };
  expect_error([&] { parse(""); }, {"bad.csv", "header"});
  expect_error([&] { parse("t_s,bandwidth,rtt_ms,loss\n0,1,1,0\n"); }, {"bad.csv:1:", "header"});
  expect_error([&] { parse("t_s,bandwidth_mbps,rtt_ms,loss,extra\n0,1,1,0\n"); }, {"bad.csv:1:", "header"});
  expect_error([] { csv_trace(""); }, {"test.csv", "no rows"});
  expect_error([] { csv_trace("0,10,20\n"); }, {"test.csv:2:", "3 fields"});
  expect_error([] { csv_trace("0,10,20,0\n1,ten,20,0\n"); }, {"test.csv:3:", "bandwidth_mbps", "'ten'"});
  expect_error([] { csv_trace("0,10,20,0\n1,10,20,\n"); }, {"test.csv:3:", "loss"});
  expect_error([] { csv_trace("0.5,10,20,0\n"); }, {"test.csv:2:", "t_s 0"});
  expect_error([] { csv_trace("0,10,20,0\n2,10,20,0\n1,10,20,0\n"); }, {"test.csv:4:", "does not increase"});
  expect_error([] { csv_trace("0,10,20,0\n0,10,20,0\n"); }, {"test.csv:3:", "does not increase"});
  expect_error([] { csv_trace("0,-1,20,0\n"); }, {"test.csv:2:", "negative bandwidth"});
  expect_error([] { csv_trace("0,10,-20,0\n"); }, {"test.csv:2:", "negative rtt"});
  expect_error([] { csv_trace("0,10,20,1.5\n"); }, {"test.csv:2:", "loss 1.5"});
  expect_error([] { csv_trace("0,10,20,-0.1\n"); }, {"test.csv:2:", "loss -0.1"});
  expect_error([] { csv_trace("0,10,20,0\n\n2,10,20,0\n"); }, {"test.csv:3:", "empty line"});
  expect_error([] { csv_trace("0,10,20,nan\n"); }, {"test.csv:2:", "not a number"});
  expect_error([] { csv_trace("0,0,20,0\n1,0,20,0\n"); }, {"test.csv", "never delivers"});
  expect_error([] { csv_trace("0,10,20,1\n1,0,20,0\n"); }, {"test.csv", "never delivers"});
}

TEST(Csv, MeanBandwidthNeedsAWindow) {
  expect_error([] { csv_trace("0,10,20,0\n").mean_bandwidth_mbps(2, 2); }, {"test.csv", "empty window"});
}

class TraceFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("ee_net_trace_test_" + std::to_string(::getpid()));
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  fs::path file(const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return dir / name;
  }
  fs::path dir;
};

TEST_F(TraceFile, LoadTellsTheFormatsApartByTheHeader) {
  const NetTrace m = NetTrace::load(file("link.up", "1\n2\n"), {10, 0});
  EXPECT_EQ(m.format(), TraceFormat::mahimahi);
  EXPECT_DOUBLE_EQ(m.one_way_delay_s(0), 0.010);
  const NetTrace c = NetTrace::load(file("link.csv", "t_s,bandwidth_mbps,rtt_ms,loss\n0,5,30,0\n"));
  EXPECT_EQ(c.format(), TraceFormat::csv);
  EXPECT_DOUBLE_EQ(c.one_way_delay_s(0), 0.015);
  EXPECT_EQ(c.name(), (dir / "link.csv").string());
}

TEST_F(TraceFile, LoadRefusesMissingFilesAndAMahimahiDelayOnACsv) {
  expect_error([&] { NetTrace::load(dir / "absent.up"); }, {"absent.up", "cannot open"});
  const fs::path c = file("link.csv", "t_s,bandwidth_mbps,rtt_ms,loss\n0,5,30,0\n");
  expect_error([&] { NetTrace::load(c, {10, 0}); }, {"link.csv", "carries its own"});
  expect_error([&] { NetTrace::load(file("bad.up", "1\nx\n")); }, {"bad.up:2:"});
}

TEST(ShippedTraces, EveryOneLoadsAndItsTwoFormsAgree) {
  const fs::path dir = fs::path(EE_SOURCE_DIR) / "sim/traces";
  int pairs = 0;
  for (const char* name : {"wifi-steady", "lte-fading", "3g-hspa", "lte-outages", "step-change"}) {
    for (const char* direction : {"up", "down"}) {
      const fs::path base = dir / (std::string(name) + "." + direction);
      SCOPED_TRACE(base.string());
      EXPECT_LT(fs::file_size(base), 200'000u);
      const NetTrace m = NetTrace::load(base);
      const NetTrace c = NetTrace::load(base.string() + ".csv");
      ASSERT_EQ(m.format(), TraceFormat::mahimahi);
      ASSERT_EQ(c.format(), TraceFormat::csv);
      // The Mahimahi file is the CSV's rate process quantised to opportunities, over its first seconds.
      EXPECT_LE(m.period_s(), c.period_s() + 1e-9);
      EXPECT_NEAR(m.mean_bandwidth_mbps(), c.mean_bandwidth_mbps(0, m.period_s()),
                  0.01 * c.mean_bandwidth_mbps(0, m.period_s()) + 1500 * 8 / m.period_s() / 1e6);
      EXPECT_GT(c.mean_bandwidth_mbps(), 0.5);
      ++pairs;
    }
  }
  EXPECT_EQ(pairs, 10);
}

}  // namespace
}  // namespace ee::sim
