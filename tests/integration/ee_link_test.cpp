// ee-link as a process between a loopback echo server and a client: the rate and delay it delivers match
// its trace (CSV and Mahimahi) within a tolerance, loss costs what the model says, back-pressure bounds the
// backlog without costing rate, and it fails cleanly on bad input. Bounded time: about 15 s in all.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace ee {
namespace {

namespace fs = std::filesystem;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Echoes every connection's bytes back until the client closes its side.
class EchoServer {
 public:
  EchoServer() : acceptor_(io_, {asio::ip::address_v4::loopback(), 0}) {
    thread_ = std::thread([this] {
      for (;;) {
        tcp::socket s(io_);
        boost::system::error_code ec;
        acceptor_.accept(s, ec);
        if (ec) return;
        std::lock_guard lock(mutex_);
        connections_.emplace_back([s = std::move(s)]() mutable {
          std::vector<char> buf(64 * 1024);
          boost::system::error_code ec;
          for (;;) {
            const std::size_t n = s.read_some(asio::buffer(buf), ec);
            if (ec) break;
            asio::write(s, asio::buffer(buf.data(), n), ec);
            if (ec) break;
          }
          s.shutdown(tcp::socket::shutdown_send, ec);
        });
      }
    });
  }
  ~EchoServer() {
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);  // wakes the blocking accept
    thread_.join();
    for (auto& t : connections_) t.join();
  }
  unsigned short port() const { return acceptor_.local_endpoint().port(); }

 private:
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<std::thread> connections_;
};

// ee-link as a child process; its listening port is read from the first line it prints.
class EeLink {
 public:
  EeLink(const std::vector<std::string>& args, const fs::path& dir)
      : err_(dir / "ee-link.err"), stats_(dir / "stats.json") {
    std::vector<std::string> argv = {EE_LINK_BIN, "--listen", "127.0.0.1:0", "--stats-json", stats_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      std::FILE* err = std::fopen(err_.c_str(), "w");
      if (err) ::dup2(::fileno(err), STDERR_FILENO);
      ::close(out[0]);
      std::vector<char*> cargv;
      for (auto& a : argv) cargv.push_back(a.data());
      cargv.push_back(nullptr);
      ::execv(cargv[0], cargv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    stdout_ = ::fdopen(out[0], "r");
    char line[512] = {};
    if (std::fgets(line, sizeof line, stdout_) == nullptr ||
        std::sscanf(line, "ee-link listening on 127.0.0.1:%hu", &port_) != 1)
      ADD_FAILURE() << "ee-link did not start: '" << line << "'\n" << stderr_text();
  }
  ~EeLink() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (stdout_) std::fclose(stdout_);
  }
  unsigned short port() const { return port_; }
  void signal(int sig) const { ::kill(pid_, sig); }
  // SIGTERM, then its exit status and the counters it wrote.
  nlohmann::json stop() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status << "\n"
                                                               << stderr_text();
    std::ifstream in(stats_);
    return in ? nlohmann::json::parse(in) : nlohmann::json{};
  }
  std::string stderr_text() const {
    std::ifstream in(err_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  fs::path err_, stats_;
  pid_t pid_ = -1;
  std::FILE* stdout_ = nullptr;
  unsigned short port_ = 0;
};

tcp::socket connect(asio::io_context& io, unsigned short port) {
  tcp::socket s(io);
  s.connect({asio::ip::address_v4::loopback(), port});
  s.set_option(tcp::no_delay(true));
  return s;
}

// Median round trip of a small message through the link and the echo server.
double median_rtt_s(unsigned short port, std::size_t bytes = 100, int rounds = 7) {
  asio::io_context io;
  tcp::socket s = connect(io, port);
  std::vector<char> msg(bytes, 'r'), back(bytes);
  std::vector<double> rtts;
  for (int i = 0; i < rounds; ++i) {
    const auto t0 = Clock::now();
    asio::write(s, asio::buffer(msg));
    asio::read(s, asio::buffer(back));
    rtts.push_back(seconds_since(t0));
    EXPECT_EQ(back, msg);
  }
  std::sort(rtts.begin(), rtts.end());
  return rtts[rtts.size() / 2];
}

struct Bulk {
  double rate_mbps = 0;    // bytes after the first read over the time they took to come back
  double last_byte_s = 0;  // from the start of sending to the last byte echoed
};

// Sends `bytes` of a pattern and reads the echo concurrently; checks the echo is the pattern.
Bulk echo_bulk(unsigned short port, std::size_t bytes) {
  asio::io_context io;
  tcp::socket s = connect(io, port);
  std::vector<unsigned char> data(bytes);
  for (std::size_t i = 0; i < bytes; ++i) data[i] = static_cast<unsigned char>(i * 31 % 251);
  std::vector<unsigned char> got(bytes);
  Bulk b;
  const auto t0 = Clock::now();
  std::thread reader([&] {
    std::size_t have = 0, first = 0;
    double t_first = 0;
    boost::system::error_code ec;
    while (have < bytes) {
      const std::size_t n = s.read_some(asio::buffer(got.data() + have, bytes - have), ec);
      if (ec) break;
      if (have == 0) {
        t_first = seconds_since(t0);
        first = n;
      }
      have += n;
    }
    b.last_byte_s = seconds_since(t0);
    EXPECT_EQ(have, bytes);
    b.rate_mbps = static_cast<double>(have - first) * 8 / (b.last_byte_s - t_first) / 1e6;
  });
  asio::write(s, asio::buffer(data));
  reader.join();
  EXPECT_TRUE(got == data) << "the echoed stream differs from what was sent";
  return b;
}

class EeLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("ee_link_test_" + std::to_string(::getpid()));
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  std::string file(const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  }
  std::string upstream() const { return "127.0.0.1:" + std::to_string(echo.port()); }
  fs::path dir;
  EchoServer echo;
};

TEST_F(EeLinkTest, CsvTraceRateAndDelay) {
  const std::string trace = file("16mbit.csv", "t_s,bandwidth_mbps,rtt_ms,loss\n0,16,40,0\n");
  EeLink link({"--upstream", upstream(), "--uplink", trace}, dir);
  // 100 bytes each way at 2 MB/s add 0.1 ms to the 2 x 20 ms of propagation.
  const double rtt = median_rtt_s(link.port());
  std::printf("[ measured ] CSV 16 Mbit/s, RTT 40 ms: small-message RTT %.2f ms\n", rtt * 1e3);
  EXPECT_NEAR(rtt, 0.0401, 0.005);
  const Bulk b = echo_bulk(link.port(), 4'000'000);
  std::printf(
      "[ measured ] CSV 16 Mbit/s: 4 MB echoed at %.3f Mbit/s, last byte after %.3f s (model %.3f s)\n",
      b.rate_mbps, b.last_byte_s, 4e6 / 2e6 + 0.040);
  EXPECT_NEAR(b.rate_mbps, 16.0, 16.0 * 0.15);
  EXPECT_NEAR(b.last_byte_s, 4e6 / 2e6 + 0.040, (4e6 / 2e6 + 0.040) * 0.15);
  link.signal(SIGUSR1);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_NE(link.stderr_text().find("uplink"), std::string::npos) << "SIGUSR1 printed no counters";
  const nlohmann::json stats = link.stop();
  EXPECT_EQ(stats["uplink"]["bytes"], 4'000'000u + 7 * 100);
  EXPECT_EQ(stats["downlink"]["bytes"], 4'000'000u + 7 * 100);
  EXPECT_EQ(stats["connections"], 2);
}

TEST_F(EeLinkTest, MahimahiTraceRateAndDelay) {
  // Opportunities at 1, 2, 2 ms, looping every 2 ms: 3 x 1500 bytes per 2 ms, 18 Mbit/s.
  const std::string trace = file("18mbit.up", "1\n2\n2\n");
  EeLink link({"--upstream", upstream(), "--uplink", trace, "--delay-ms", "15"}, dir);
  // 2 x 15 ms, plus up to 1 ms each way waiting for an opportunity.
  const double rtt = median_rtt_s(link.port());
  std::printf("[ measured ] Mahimahi 18 Mbit/s, 15 ms each way: small-message RTT %.2f ms\n", rtt * 1e3);
  EXPECT_GE(rtt, 0.030 - 0.001);
  EXPECT_LE(rtt, 0.032 + 0.005);
  const Bulk b = echo_bulk(link.port(), 3'000'000);
  std::printf("[ measured ] Mahimahi 18 Mbit/s: 3 MB echoed at %.3f Mbit/s\n", b.rate_mbps);
  EXPECT_NEAR(b.rate_mbps, 18.0, 18.0 * 0.15);
  link.stop();
}

TEST_F(EeLinkTest, LossDelaysTheStreamByOneRoundTripPerLostPacket) {
  const std::string up = file("lossy.csv", "t_s,bandwidth_mbps,rtt_ms,loss\n0,16,40,0.02\n");
  const std::string down = file("clean.csv", "t_s,bandwidth_mbps,rtt_ms,loss\n0,16,40,0\n");
  EeLink link({"--upstream", upstream(), "--uplink", up, "--downlink", down}, dir);
  const std::size_t bytes = 1'000'000;
  const Bulk b = echo_bulk(link.port(), bytes);
  const nlohmann::json stats = link.stop();
  const double lost = stats["uplink"]["lost"].get<double>(),
               packets = stats["uplink"]["packets"].get<double>();
  EXPECT_EQ(stats["downlink"]["lost"], 0);
  // About 700 packets at 2 %, resends drawn again: ~14 lost.
  EXPECT_GE(lost, 3);
  EXPECT_LE(lost, 30);
  // Each loss idles the link for a round trip and sends the packet twice.
  const double model = bytes / 2e6 + lost * (0.040 + 1500 / 2e6) + 0.040;
  std::printf("[ measured ] 2 %% loss: %.0f of %.0f packets lost, last byte after %.3f s (model %.3f s)\n",
              lost, packets, b.last_byte_s, model);
  EXPECT_NEAR(b.last_byte_s, model, model * 0.15);
}

TEST_F(EeLinkTest, BackPressureBoundsTheBacklogWithoutCostingRate) {
  const std::string trace = file("4mbit.csv", "t_s,bandwidth_mbps,rtt_ms,loss\n0,4,10,0\n");
  EeLink link({"--upstream", upstream(), "--uplink", trace, "--queue-bytes", "65536"}, dir);
  const Bulk b = echo_bulk(link.port(), 500'000);
  const nlohmann::json stats = link.stop();
  std::printf("[ measured ] 4 Mbit/s, 64 KiB queue: %.3f Mbit/s, max backlog %.0f bytes\n", b.rate_mbps,
              stats["uplink"]["max_backlog_bytes"].get<double>());
  EXPECT_NEAR(b.rate_mbps, 4.0, 4.0 * 0.15);
  // One read (64 KiB) may land on top of a backlog just under the limit.
  EXPECT_LE(stats["uplink"]["max_backlog_bytes"].get<double>(), 65536 + 65536);
}

TEST_F(EeLinkTest, ClosesIdleConnectionsAndOnesUpstreamRefuses) {
  const std::string trace = file("fast.csv", "t_s,bandwidth_mbps,rtt_ms,loss\n0,100,0,0\n");
  {
    EeLink link({"--upstream", upstream(), "--uplink", trace, "--idle-timeout-s", "0.3"}, dir);
    asio::io_context io;
    tcp::socket s = connect(io, link.port());
    const auto t0 = Clock::now();
    char c;
    boost::system::error_code ec;
    s.read_some(asio::buffer(&c, 1), ec);
    EXPECT_EQ(ec, asio::error::eof);
    EXPECT_GE(seconds_since(t0), 0.25);
    EXPECT_LT(seconds_since(t0), 5.0);
    link.stop();
  }
  // Nothing listens on the port a closed acceptor had.
  unsigned short dead;
  {
    asio::io_context io;
    tcp::acceptor a(io, {asio::ip::address_v4::loopback(), 0});
    dead = a.local_endpoint().port();
  }
  EeLink link({"--upstream", "127.0.0.1:" + std::to_string(dead), "--uplink", trace}, dir);
  asio::io_context io;
  tcp::socket s = connect(io, link.port());
  char c;
  boost::system::error_code ec;
  s.read_some(asio::buffer(&c, 1), ec);
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
  link.stop();
  EXPECT_NE(link.stderr_text().find("cannot connect to upstream"), std::string::npos);
}

TEST_F(EeLinkTest, FailsCleanlyOnBadInput) {
  const std::string bin = EE_LINK_BIN;
  const std::string bad = file("bad.up", "1\n3\n2\n");
  const std::string err = (dir / "err.txt").string();
  EXPECT_EQ(std::system((bin + " --help > /dev/null").c_str()), 0);
  EXPECT_NE(std::system((bin + " --uplink " + bad + " 2> /dev/null").c_str()), 0) << "no --upstream";
  EXPECT_NE(std::system((bin + " --upstream 127.0.0.1:1 --uplink " + bad + " 2> " + err).c_str()), 0);
  std::ifstream in(err);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("bad.up:3:"), std::string::npos) << text;
  const std::string good = file("ok.csv", "t_s,bandwidth_mbps,rtt_ms,loss\n0,1,1,0\n");
  EXPECT_NE(std::system((bin + " --upstream localhost:80 --uplink " + good + " 2> /dev/null").c_str()), 0)
      << "a host name, not a numeric address";
  EXPECT_NE(
      std::system((bin + " --upstream 127.0.0.1:1 --uplink " + good + " --delay-ms 5 2> /dev/null").c_str()),
      0)
      << "a Mahimahi delay with a CSV trace";
}

}  // namespace
}  // namespace ee
