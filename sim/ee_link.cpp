// ee-link: a userspace link emulator for TCP, in the manner of Mahimahi's mm-link. It listens on a local
// port, connects every accepted connection to an upstream host:port, and relays the bytes each way through
// a network trace: a byte leaves the emulated bottleneck at the trace's delivery opportunities (or CSV
// rate), reaches the far side a propagation delay later, and a lost packet is late by its resend (see
// sim/link_queue.hpp). Client to upstream is the uplink, upstream to client the downlink; all connections
// share one link per direction, whose clock starts at the first accepted connection.
//
// Each connection is two TCP legs on loopback; the emulated link sits between them. Back-pressure stands in
// for a drop-tail queue: when the bottleneck's backlog passes --queue-bytes, ee-link stops reading from the
// sending socket until it drains, so the sender's own TCP stalls instead of data being dropped.
#include <CLI/CLI.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <deque>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "sim/link_queue.hpp"
#include "sim/net_trace.hpp"

namespace {

using namespace ee;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

constexpr std::size_t kReadBytes = 64 * 1024;

struct Options {
  std::string listen = "127.0.0.1:0", upstream, uplink, downlink, stats_json;
  double delay_ms = 0, uplink_loss = 0, downlink_loss = 0, loss_recovery_ms = -1;
  std::size_t queue_bytes = 1 << 20;
  double idle_timeout_s = 300;
  std::uint64_t seed = 1;
};

// One direction of the emulated link, shared by every connection.
struct Direction {
  Direction(std::string n, sim::NetTrace t, const sim::LinkOptions& o)
      : name(std::move(n)), trace(std::move(t)), queue(trace, o) {}
  Direction(const Direction&) = delete;
  Direction& operator=(const Direction&) = delete;

  std::string name;
  sim::NetTrace trace;
  sim::LinkQueue queue;
  std::uint64_t bytes = 0, packets = 0, lost = 0;  // bytes written to the far side; packets into the link
  double max_backlog = 0;

  nlohmann::json stats() const {
    return {{"trace", trace.name()},
            {"bytes", bytes},
            {"packets", packets},
            {"lost", lost},
            {"max_backlog_bytes", max_backlog}};
  }
};

struct Link {
  Link(const Options& o, sim::NetTrace up_trace, sim::NetTrace down_trace)
      : options(o),
        up("uplink", std::move(up_trace), {o.loss_recovery_ms < 0 ? -1 : o.loss_recovery_ms / 1000, o.seed}),
        down("downlink", std::move(down_trace),
             {o.loss_recovery_ms < 0 ? -1 : o.loss_recovery_ms / 1000, o.seed + 1}) {}

  // Trace time: 0 at the first accepted connection.
  void start_clock() {
    if (!start) start = Clock::now();
  }
  double now_s() const { return std::chrono::duration<double>(Clock::now() - *start).count(); }
  Clock::time_point at(double s) const {
    return *start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }

  const Options& options;
  Direction up, down;
  std::optional<Clock::time_point> start;
  std::uint64_t connections = 0, open = 0;
};

// Bytes one way through a connection: read from `from`, written to `to` when the link delivers them.
struct Pipe {
  Pipe(tcp::socket& f, tcp::socket& t, Direction& d)
      : from(f),
        to(t),
        dir(d),
        read_buf(kReadBytes),
        release_timer(f.get_executor()),
        resume_timer(f.get_executor()) {}

  tcp::socket& from;
  tcp::socket& to;
  Direction& dir;
  std::vector<std::uint8_t> read_buf;
  std::deque<std::vector<std::uint8_t>> chunks;  // read and not yet written, the first from `head`
  std::size_t head = 0, buffered = 0;
  std::deque<std::pair<double, std::size_t>> due;  // (arrival time, bytes) of packets still on the link
  std::size_t ready = 0;                           // arrived, not yet written
  bool reading = false, writing = false, eof = false, shut = false, release_armed = false,
       resume_armed = false;
  asio::steady_timer release_timer, resume_timer;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Link& link, tcp::socket client)
      : link_(link),
        client_(std::move(client)),
        upstream_(client_.get_executor()),
        up_(client_, upstream_, link.up),
        down_(upstream_, client_, link.down),
        idle_(client_.get_executor()) {
    ++link_.connections;
    ++link_.open;
  }

  void start(const tcp::endpoint& upstream) {
    upstream_.async_connect(upstream, [self = shared_from_this(), upstream](error_code ec) {
      if (self->closed_) return;
      if (ec) {
        std::fprintf(stderr, "ee-link: cannot connect to upstream %s:%u: %s\n",
                     upstream.address().to_string().c_str(), upstream.port(), ec.message().c_str());
        self->close();
        return;
      }
      error_code ignored;
      self->upstream_.set_option(tcp::no_delay(true), ignored);
      self->touch();
      self->read(self->up_);
      self->read(self->down_);
      self->arm_idle();
    });
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    --link_.open;
    error_code ignored;
    for (Pipe* p : {&up_, &down_}) {
      p->release_timer.cancel();
      p->resume_timer.cancel();
    }
    idle_.cancel();
    client_.close(ignored);
    upstream_.close(ignored);
  }

 private:
  std::size_t limit() const { return link_.options.queue_bytes; }

  void read(Pipe& p) {
    if (closed_ || p.reading || p.eof) return;
    const double now = link_.now_s();
    if (p.dir.queue.backlog_bytes(now) >= static_cast<double>(limit())) {
      if (!p.resume_armed) {
        p.resume_armed = true;
        p.resume_timer.expires_at(link_.at(p.dir.queue.backlog_drained_to_s(static_cast<double>(limit()))));
        p.resume_timer.async_wait([self = shared_from_this(), &p](error_code ec) {
          p.resume_armed = false;
          if (!ec) self->read(p);
        });
      }
      return;
    }
    if (p.ready >= limit()) return;  // the far side is not taking what arrived; its write resumes us
    p.reading = true;
    p.from.async_read_some(
        asio::buffer(p.read_buf),
        [self = shared_from_this(), &p](error_code ec, std::size_t n) { self->on_read(p, ec, n); });
  }

  void on_read(Pipe& p, error_code ec, std::size_t n) {
    p.reading = false;
    if (closed_) return;
    if (ec == asio::error::eof) {
      p.eof = true;
      finish_if_drained(p);
      return;
    }
    if (ec) return close();
    touch();
    const double now = link_.now_s();
    p.chunks.emplace_back(p.read_buf.begin(), p.read_buf.begin() + static_cast<std::ptrdiff_t>(n));
    p.buffered += n;
    for (std::size_t off = 0; off < n; off += sim::kMahimahiPacketBytes) {
      const std::size_t size = std::min<std::size_t>(sim::kMahimahiPacketBytes, n - off);
      const sim::Transfer t = p.dir.queue.send(now, size);
      p.dir.packets += t.packets;
      p.dir.lost += t.lost;
      p.due.emplace_back(t.arrived_s, size);
    }
    p.dir.max_backlog = std::max(p.dir.max_backlog, p.dir.queue.backlog_bytes(now));
    arm_release(p);
    read(p);
  }

  void arm_release(Pipe& p) {
    if (p.release_armed || p.due.empty() || closed_) return;
    p.release_armed = true;
    p.release_timer.expires_at(link_.at(p.due.front().first));
    p.release_timer.async_wait([self = shared_from_this(), &p](error_code ec) {
      p.release_armed = false;
      if (!ec && !self->closed_) self->release(p);
    });
  }

  void release(Pipe& p) {
    // A microsecond of slack: the timer's time point and the clock's seconds round differently.
    const double now = link_.now_s() + 1e-6;
    while (!p.due.empty() && p.due.front().first <= now) {
      p.ready += p.due.front().second;
      p.due.pop_front();
    }
    write(p);
    arm_release(p);
  }

  void write(Pipe& p) {
    if (closed_ || p.writing || p.ready == 0) return;
    std::vector<asio::const_buffer> buffers;
    std::size_t left = p.ready, off = p.head;
    for (const auto& c : p.chunks) {
      if (left == 0 || buffers.size() == 64) break;
      const std::size_t take = std::min(left, c.size() - off);
      buffers.emplace_back(c.data() + off, take);
      left -= take;
      off = 0;
    }
    p.writing = true;
    asio::async_write(p.to, buffers, [self = shared_from_this(), &p](error_code ec, std::size_t n) {
      self->on_write(p, ec, n);
    });
  }

  void on_write(Pipe& p, error_code ec, std::size_t n) {
    p.writing = false;
    if (closed_) return;
    if (ec) return close();
    touch();
    p.ready -= n;
    p.buffered -= n;
    p.dir.bytes += n;
    p.head += n;
    while (!p.chunks.empty() && p.head >= p.chunks.front().size()) {
      p.head -= p.chunks.front().size();
      p.chunks.pop_front();
    }
    write(p);
    read(p);
    finish_if_drained(p);
  }

  // The sender closed its side and everything it sent is through: pass the close on.
  void finish_if_drained(Pipe& p) {
    if (!p.eof || p.buffered > 0 || p.shut) return;
    p.shut = true;
    error_code ignored;
    p.to.shutdown(tcp::socket::shutdown_send, ignored);
    if (up_.shut && down_.shut) close();
  }

  void touch() { last_activity_ = Clock::now(); }

  // Closes a connection nothing has crossed for the idle timeout; bytes held on the link (an outage) count
  // as activity.
  void arm_idle() {
    if (link_.options.idle_timeout_s <= 0 || closed_) return;
    const auto timeout = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(link_.options.idle_timeout_s));
    idle_.expires_at(last_activity_ + timeout);
    idle_.async_wait([self = shared_from_this(), timeout](error_code ec) {
      if (ec || self->closed_) return;
      if (self->up_.buffered > 0 || self->down_.buffered > 0) self->touch();
      if (Clock::now() - self->last_activity_ >= timeout) {
        std::fprintf(stderr, "ee-link: closing a connection idle for %.0f s\n",
                     self->link_.options.idle_timeout_s);
        return self->close();
      }
      self->arm_idle();
    });
  }

  Link& link_;
  tcp::socket client_, upstream_;
  Pipe up_, down_;
  asio::steady_timer idle_;
  Clock::time_point last_activity_ = Clock::now();
  bool closed_ = false;
};

class Server {
 public:
  Server(asio::io_context& io, Link& link, const tcp::endpoint& listen, const tcp::endpoint& upstream)
      : link_(link), acceptor_(io, listen), upstream_(upstream), signals_(io, SIGINT, SIGTERM, SIGUSR1) {}

  tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

  void start() {
    accept();
    wait_signal();
  }

  void print_stats() const {
    const auto line = [](const Direction& d) {
      std::fprintf(stderr, "  %-8s %llu bytes relayed, %llu packets, %llu lost, max backlog %.0f bytes\n",
                   d.name.c_str(), static_cast<unsigned long long>(d.bytes),
                   static_cast<unsigned long long>(d.packets), static_cast<unsigned long long>(d.lost),
                   d.max_backlog);
    };
    std::fprintf(stderr, "ee-link: %.3f s on the link clock, %llu connections (%llu open)\n",
                 link_.start ? link_.now_s() : 0.0, static_cast<unsigned long long>(link_.connections),
                 static_cast<unsigned long long>(link_.open));
    line(link_.up);
    line(link_.down);
  }

  nlohmann::json stats() const {
    return {{"clock_s", link_.start ? link_.now_s() : 0.0},
            {"connections", link_.connections},
            {"uplink", link_.up.stats()},
            {"downlink", link_.down.stats()}};
  }

 private:
  void accept() {
    acceptor_.async_accept([this](error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (ec) {
        std::fprintf(stderr, "ee-link: accept: %s\n", ec.message().c_str());
      } else {
        error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        link_.start_clock();
        auto c = std::make_shared<Connection>(link_, std::move(socket));
        std::erase_if(connections_, [](const auto& w) { return w.expired(); });
        connections_.push_back(c);
        c->start(upstream_);
      }
      accept();
    });
  }

  void wait_signal() {
    signals_.async_wait([this](error_code ec, int sig) {
      if (ec) return;
      print_stats();
      if (sig == SIGUSR1) return wait_signal();
      error_code ignored;
      acceptor_.close(ignored);
      for (const auto& w : connections_)
        if (auto c = w.lock()) c->close();
    });
  }

  Link& link_;
  tcp::acceptor acceptor_;
  tcp::endpoint upstream_;
  asio::signal_set signals_;
  std::vector<std::weak_ptr<Connection>> connections_;
};

// "host:port" with a numeric address ("[::1]:port" for IPv6): no name lookups.
tcp::endpoint parse_endpoint(const std::string& text, const char* what) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size())
    throw std::invalid_argument(std::string(what) + " '" + text + "' is not host:port");
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec)
    throw std::invalid_argument(std::string(what) + " '" + text + "': '" + host +
                                "' is not a numeric IP address");
  std::size_t used = 0;
  unsigned long port = 0;
  try {
    port = std::stoul(text.substr(colon + 1), &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() - colon - 1 || port > 65535)
    throw std::invalid_argument(std::string(what) + " '" + text + "': bad port");
  return {address, static_cast<unsigned short>(port)};
}

std::string describe(const sim::NetTrace& t) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "mean %.2f Mbit/s over a %.3f s period, one-way delay %.1f ms at t=0",
                t.mean_bandwidth_mbps(), t.period_s(), t.one_way_delay_s(0) * 1000);
  return buf;
}

int run(const Options& o) {
  const tcp::endpoint listen = parse_endpoint(o.listen, "--listen");
  const tcp::endpoint upstream = parse_endpoint(o.upstream, "--upstream");
  Link link(o, sim::NetTrace::load(o.uplink, {o.delay_ms, o.uplink_loss}),
            sim::NetTrace::load(o.downlink.empty() ? o.uplink : o.downlink, {o.delay_ms, o.downlink_loss}));
  asio::io_context io;
  Server server(io, link, listen, upstream);
  const tcp::endpoint bound = server.local_endpoint();
  std::printf("ee-link listening on %s:%u, upstream %s:%u\n  uplink   %s: %s\n  downlink %s: %s\n",
              bound.address().to_string().c_str(), bound.port(), upstream.address().to_string().c_str(),
              upstream.port(), link.up.trace.name().c_str(), describe(link.up.trace).c_str(),
              link.down.trace.name().c_str(), describe(link.down.trace).c_str());
  std::fflush(stdout);
  server.start();
  io.run();
  if (!o.stats_json.empty()) {
    std::ofstream out(o.stats_json);
    out << server.stats().dump(2) << "\n";
    if (!out) throw std::runtime_error("cannot write " + o.stats_json);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "ee-link: a userspace link emulator for TCP (like Mahimahi's mm-link). Relays every connection it\n"
      "accepts to --upstream and applies a network trace each way: the trace's delivery opportunities "
      "(Mahimahi)\n"
      "or rate (CSV t_s,bandwidth_mbps,rtt_ms,loss), a one-way propagation delay, and loss (a lost packet "
      "is\n"
      "resent one round trip later; nothing behind it is delivered before it). SIGUSR1 prints the counters,\n"
      "SIGINT/SIGTERM print them and exit."};
  Options o;
  app.add_option("--listen", o.listen, "address:port to accept on (port 0: any free one, printed on stdout)")
      ->capture_default_str();
  app.add_option("--upstream", o.upstream, "address:port each accepted connection is relayed to")->required();
  app.add_option("--uplink", o.uplink, "trace for client -> upstream (Mahimahi or CSV)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--downlink", o.downlink, "trace for upstream -> client (default: the uplink's)")
      ->check(CLI::ExistingFile);
  app.add_option("--delay-ms", o.delay_ms, "one-way propagation delay each way, for Mahimahi traces")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--uplink-loss", o.uplink_loss, "uplink packet loss probability, for a Mahimahi trace")
      ->check(CLI::Range(0.0, 0.999))
      ->capture_default_str();
  app.add_option("--downlink-loss", o.downlink_loss, "downlink packet loss probability, for a Mahimahi trace")
      ->check(CLI::Range(0.0, 0.999))
      ->capture_default_str();
  app.add_option("--loss-recovery-ms", o.loss_recovery_ms,
                 "time from a lost packet leaving the bottleneck to its resend (default, -1: one round trip)")
      ->capture_default_str();
  app.add_option("--queue-bytes", o.queue_bytes,
                 "bottleneck backlog above which ee-link stops reading from the sender, per direction")
      ->check(CLI::Range(std::size_t{1500}, std::size_t{1} << 32))
      ->capture_default_str();
  app.add_option("--idle-timeout-s", o.idle_timeout_s, "close a connection idle this long (0: never)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--seed", o.seed, "loss draws (the downlink uses seed + 1)")->capture_default_str();
  app.add_option("--stats-json", o.stats_json, "write the counters as JSON to this file at exit");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ee-link: error: %s\n", e.what());
    return 1;
  }
}
