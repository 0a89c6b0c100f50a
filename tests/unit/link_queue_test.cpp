// One direction of an emulated link: delivery times of known payloads against hand-computed cases for both
// trace forms, FIFO sharing of opportunities, in-order arrival, loss recovery, and determinism for a seed.
#include "sim/link_queue.hpp"

#include <gtest/gtest.h>

#include "tests/unit/trace_text.hpp"

namespace ee::sim {
namespace {

using ee::testing::csv_trace;
using ee::testing::mahimahi_trace;

TEST(LinkQueue, MahimahiSendsShareAHalfUsedOpportunityAndWasteIdleOnes) {
  // Opportunities at 1, 2, 2 ms, looping every 2 ms (3, 4, 4, 5, 6, 6, ...): 18 Mbit/s; 10 ms each way.
  const NetTrace t = mahimahi_trace("1\n2\n2\n", {10, 0});
  LinkQueue q(t);
  // 4000 bytes: opportunities 0, 1 and the first 1000 bytes of 2 (at 2 ms).
  Transfer a = q.send(0, 4000);
  EXPECT_EQ(a.packets, 3u);
  EXPECT_DOUBLE_EQ(a.departed_s, 0.002);
  EXPECT_DOUBLE_EQ(a.arrived_s, 0.012);
  EXPECT_DOUBLE_EQ(a.seconds(), 0.012);
  // At 1.5 ms the link is still busy: 500 bytes go in what is left of opportunity 2, 500 in the next (3 ms).
  Transfer b = q.send(0.0015, 1000);
  EXPECT_DOUBLE_EQ(b.departed_s, 0.003);
  EXPECT_DOUBLE_EQ(b.arrived_s, 0.013);
  // At 10 ms the link has been idle since 3 ms; an opportunity at exactly 10 ms is usable.
  Transfer c = q.send(0.010, 1);
  EXPECT_DOUBLE_EQ(c.departed_s, 0.010);
  EXPECT_DOUBLE_EQ(c.arrived_s, 0.020);
}

TEST(LinkQueue, CsvTransferWaitsOutAnOutageAndTakesTheDelayWhereItLeaves) {
  // 8 Mbit/s with 40 ms RTT for [0, 1), an outage for [1, 2), 16 Mbit/s with 100 ms RTT after.
  const NetTrace t = csv_trace("0,8,40,0\n1,0,40,0\n2,16,100,0\n");
  // 1.5 MB at 0.5 s: 0.5 MB by 1 s, nothing until 2 s, the last 1 MB at 2 MB/s by 2.5 s; then 50 ms.
  const Transfer x = transfer(t, 0.5, 1'500'000);
  EXPECT_EQ(x.packets, 1000u);
  EXPECT_NEAR(x.departed_s, 2.5, 1e-9);
  EXPECT_NEAR(x.arrived_s, 2.55, 1e-9);
  EXPECT_NEAR(x.seconds(), 2.05, 1e-9);
}

TEST(LinkQueue, ByteStreamArrivesInOrderWhenTheDelayDrops) {
  // 12 Mbit/s (1.5 MB/s) throughout; RTT 200 ms until 1 s, then 0.
  const NetTrace t = csv_trace("0,12,200,0\n1,12,0,0\n");
  // Two packets at 0.998 s leave at 0.999 s (100 ms to go) and 1.000 s (no delay): the second cannot
  // overtake the first in a TCP stream, so the send is complete when the first arrives.
  const Transfer x = transfer(t, 0.998, 3000);
  EXPECT_NEAR(x.departed_s, 1.0, 1e-9);
  EXPECT_NEAR(x.arrived_s, 1.099, 1e-9);
}

TEST(LinkQueue, ALostPacketIsResentOneRoundTripLater) {
  // 12 Mbit/s, 20 ms RTT; every packet leaving before 0.5 s is lost, none after.
  const NetTrace t = csv_trace("0,12,20,1\n0.5,12,20,0\n");
  // A packet takes 1 ms. Sent at 0.4 s it leaves at 0.401, 0.422, 0.443, 0.464, 0.485 (lost each time:
  // 1 ms on the link plus 20 ms until the sender knows) and at 0.506, delivered 10 ms later.
  const Transfer x = transfer(t, 0.4, 1500);
  EXPECT_EQ(x.lost, 5u);
  EXPECT_NEAR(x.departed_s, 0.506, 1e-9);
  EXPECT_NEAR(x.arrived_s, 0.516, 1e-9);
  // A configured recovery time replaces the round trip: 0.401, 0.452, then 0.503 gets through.
  const Transfer y = transfer(t, 0.4, 1500, {.loss_recovery_s = 0.05});
  EXPECT_EQ(y.lost, 2u);
  EXPECT_NEAR(y.departed_s, 0.503, 1e-9);
}

TEST(LinkQueue, LossDrawsAreDeterministicForASeedAndHaveTheTracesRate) {
  const NetTrace t = mahimahi_trace("1\n", {5, 0.1});
  const auto run = [&](std::uint64_t seed) {
    LinkQueue q(t, {.seed = seed});
    std::vector<double> arrivals;
    std::uint64_t lost = 0;
    for (int i = 0; i < 200; ++i) {
      const Transfer x = q.send(0.05 * i, 15'000);
      arrivals.push_back(x.arrived_s);
      lost += x.lost;
    }
    return std::make_pair(arrivals, lost);
  };
  const auto [a, lost_a] = run(7);
  EXPECT_EQ(run(7).first, a);
  EXPECT_NE(run(8).first, a);
  // 2000 packets at 10 %, and every resend is drawn again: lost / (lost + 2000) = 0.1, so about 222.
  EXPECT_GT(lost_a, 160u);
  EXPECT_LT(lost_a, 290u);
}

TEST(LinkQueue, TransferIsPureAndEqualsAFreshQueue) {
  const NetTrace t = csv_trace("0,10,40,0.05\n1,2,80,0.2\n");
  const Transfer x = transfer(t, 0.7, 200'000, {.seed = 3});
  const Transfer y = transfer(t, 0.7, 200'000, {.seed = 3});
  EXPECT_EQ(x.arrived_s, y.arrived_s);
  EXPECT_EQ(x.lost, y.lost);
  LinkQueue q(t, {.seed = 3});
  EXPECT_EQ(q.send(0.7, 200'000).arrived_s, x.arrived_s);
  // A busy queue delays the same payload; the idle-link function does not see the earlier send.
  LinkQueue busy(t, {.seed = 3});
  busy.send(0.6, 100'000);
  EXPECT_GT(busy.send(0.7, 200'000).arrived_s, x.arrived_s);
}

TEST(LinkQueue, BacklogDrainsAtTheTracesRate) {
  const NetTrace t = mahimahi_trace("1\n");  // one opportunity a millisecond
  LinkQueue q(t);
  q.send(0, 15'000);
  EXPECT_DOUBLE_EQ(q.backlog_bytes(0), 15'000);
  EXPECT_DOUBLE_EQ(q.backlog_bytes(0.0055), 7'500);  // opportunities 1..5 ms have gone
  EXPECT_DOUBLE_EQ(q.backlog_bytes(0.5), 0);
  EXPECT_DOUBLE_EQ(q.backlog_drained_to_s(3000), 0.008);  // the 8th opportunity carries byte 12000
}

TEST(LinkQueue, MahimahiAndCsvOfTheSameRateAgree) {
  const NetTrace m = mahimahi_trace("1\n");  // 12 Mbit/s
  const NetTrace c = csv_trace("0,12,0,0\n");
  for (double at : {0.0, 0.0004, 1.25}) {
    const double dm = transfer(m, at, 1'000'000).seconds(), dc = transfer(c, at, 1'000'000).seconds();
    EXPECT_NEAR(dm, dc, 0.001) << "at " << at;  // at most one opportunity apart
    EXPECT_NEAR(dc, 1e6 / 1.5e6, 1e-9);
  }
}

TEST(LinkQueue, RefusesTimeGoingBackwards) {
  const NetTrace t = mahimahi_trace("1\n");
  LinkQueue q(t);
  EXPECT_THROW(q.send(-1, 10), NetTraceError);
  q.send(2, 10);
  EXPECT_THROW(q.send(1, 10), NetTraceError);
  EXPECT_EQ(q.send(2, 0).arrived_s, 2);
}

}  // namespace
}  // namespace ee::sim
