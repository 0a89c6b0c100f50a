#pragma once
// FrameChannel: the frames of one connection, for a daemon session written in Boost.Beast's idiom. The
// session (held by a std::shared_ptr, its handlers bound to shared_from_this()) owns the channel; the
// stream's executor is the session's strand, and every call into the channel and every completion out of
// it happens there, so the channel holds no lock. On top of async_read_frame / async_write_frame it adds:
// - a deadline on every read and every write: when one passes, the channel closes the connection and the
//   pending and all later operations complete with frame_errc::timeout;
// - a send queue with exactly one write in flight and a bound: send() beyond the bound is refused at once
//   (frame_errc::queue_full, nothing queued), so the session can stop reading until its frames drain, or
//   answer Overloaded, instead of buffering without limit for a peer that does not read.
//
// Stream is any Asio byte stream with lowest_layer(): tcp::socket, ssl::stream<tcp::socket>,
// local::stream_protocol::socket. The channel does no TLS handshake or shutdown; the session runs those on
// stream() (under its own deadline) before the first frame and after the last.
//
// A session, sketched:
//   void do_read() { channel_.async_read(beast::bind_front_handler(&Session::on_read, shared_from_this())); }
//   void on_read(error_code ec, std::span<const uint8_t> frame) {
//     if (ec) return;                      // timeout, eof, bad frame: the session ends
//     auto reply = handle(frame);          // frame is valid until the next async_read
//     channel_.send(reply, [self = shared_from_this()](error_code ec) { self->on_sent(ec); });
//     if (!channel_.full()) do_read();     // else on_sent resumes reading
//   }
#include <array>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cassert>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

#include "common/net/framing.hpp"

namespace ee::net {

struct ChannelOptions {
  // The frame limit in both directions; set_max_frame() changes it once the handshake has agreed on one.
  std::size_t max_frame = 0;
  // From async_read's call to its frame's last byte, so it also bounds how long a connection may sit idle
  // with a read pending.
  std::chrono::steady_clock::duration read_timeout{};
  // From a frame's first byte written to its last (a frame waiting behind another is not yet timed).
  std::chrono::steady_clock::duration write_timeout{};
  // Frames queued for sending, the one being written included.
  std::size_t max_queued = 0;
};

template <class Stream>
class FrameChannel {
 public:
  using executor_type = typename Stream::executor_type;
  // Shared so that a frame stays alive while it is written, whatever the session does with its copy.
  using Frame = std::shared_ptr<const std::vector<uint8_t>>;
  using SendHandler = std::function<void(boost::system::error_code)>;

  // Constructs the stream from stream_args (e.g. a connected socket, or a socket and an ssl::context).
  // Throws std::invalid_argument if an option is zero.
  template <class... StreamArgs>
  explicit FrameChannel(const ChannelOptions& options, StreamArgs&&... stream_args)
      : impl_(std::make_shared<Impl>(options, std::forward<StreamArgs>(stream_args)...)) {}
  // Closes the connection. Like every other member, runs on the channel's executor (a session is destroyed
  // in its last handler) or once nothing runs it any more.
  ~FrameChannel() { close(); }
  FrameChannel(const FrameChannel&) = delete;
  FrameChannel& operator=(const FrameChannel&) = delete;

  Stream& stream() { return impl_->stream; }
  executor_type get_executor() { return impl_->stream.get_executor(); }
  std::size_t max_frame() const { return impl_->options.max_frame; }
  void set_max_frame(std::size_t max_frame) { impl_->options.max_frame = Impl::checked_max_frame(max_frame); }

  // Reads the next frame. Completes with (error_code, std::span<const uint8_t> payload); the payload lives in
  // the channel and is valid until the next async_read. One read at a time.
  template <class CompletionToken>
  auto async_read(CompletionToken&& token) {
    return boost::asio::async_compose<CompletionToken,
                                      void(boost::system::error_code, std::span<const uint8_t>)>(
        ReadOp{impl_}, token, impl_->stream);
  }

  // Queues `frame` behind those already queued. Returns an error and queues nothing if the channel is
  // closed (why it closed), the frame is empty or over max_frame, or the queue holds max_queued frames
  // (frame_errc::queue_full). Otherwise `done` (may be empty) is called once, on the channel's executor, when
  // the frame has been written ({}) or can no longer be (the error that closed the channel).
  boost::system::error_code send(Frame frame, SendHandler done) {
    Impl& c = *impl_;
    if (c.closed) return c.closed;
    LengthPrefix prefix;
    if (auto ec = make_prefix(frame ? frame->size() : 0, c.options.max_frame, prefix)) return ec;
    if (c.queue.size() >= c.options.max_queued) return frame_errc::queue_full;
    c.queue.push_back({std::move(frame), prefix, std::move(done)});
    if (c.queue.size() == 1) Impl::write_front(impl_);
    return {};
  }

  std::size_t queued() const { return impl_->queue.size(); }
  bool full() const { return impl_->queue.size() >= impl_->options.max_queued; }
  bool is_open() const { return !impl_->closed; }
  // Why the channel closed: frame_errc::timeout, operation_aborted (close()), or the write error that
  // closed it; empty while open. A read error (eof, a bad frame) does not close it: the session decides.
  boost::system::error_code close_reason() const { return impl_->closed; }

  // Closes the connection; pending operations complete with operation_aborted. Idempotent.
  void close() { impl_->close(boost::asio::error::operation_aborted); }

 private:
  struct Deadline {
    boost::asio::steady_timer timer;
    unsigned armed = 0;  // bumped by every arm and disarm: a wait that fires with a stale number does nothing
  };
  struct Outgoing {
    Frame frame;
    LengthPrefix prefix;
    SendHandler done;
  };

  // Shared with the operations in flight, which keep the stream and the frames being written alive even
  // if the channel is destroyed before they complete.
  struct Impl : std::enable_shared_from_this<Impl> {
    Stream stream;
    ChannelOptions options;
    Deadline read_deadline, write_deadline;
    std::vector<uint8_t> in;
    bool reading = false;
    // The front frame is being written. A deque: push_back leaves the front (and its prefix) where it is.
    std::deque<Outgoing> queue;
    boost::system::error_code closed;

    template <class... StreamArgs>
    explicit Impl(const ChannelOptions& o, StreamArgs&&... stream_args)
        : stream(std::forward<StreamArgs>(stream_args)...),
          options(checked(o)),
          read_deadline{boost::asio::steady_timer(stream.get_executor())},
          write_deadline{boost::asio::steady_timer(stream.get_executor())} {}

    static std::size_t checked_max_frame(std::size_t max_frame) {
      if (max_frame == 0) throw std::invalid_argument("FrameChannel: max_frame must be > 0");
      return max_frame;
    }
    static ChannelOptions checked(const ChannelOptions& o) {
      checked_max_frame(o.max_frame);
      using std::chrono::steady_clock;
      if (o.read_timeout <= steady_clock::duration::zero() ||
          o.write_timeout <= steady_clock::duration::zero())
        throw std::invalid_argument("FrameChannel: read_timeout and write_timeout must be > 0");
      if (o.max_queued == 0) throw std::invalid_argument("FrameChannel: max_queued must be > 0");
      return o;
    }

    void arm(Deadline& d, std::chrono::steady_clock::duration timeout) {
      d.timer.expires_after(timeout);
      d.timer.async_wait(
          [weak = this->weak_from_this(), &d, armed = ++d.armed](boost::system::error_code ec) {
            const auto self = weak.lock();
            if (ec || !self || d.armed != armed) return;
            self->close(frame_errc::timeout);
          });
    }
    void disarm(Deadline& d) {
      ++d.armed;
      d.timer.cancel();
    }

    void close(boost::system::error_code why) {
      if (closed) return;
      closed = why;
      disarm(read_deadline);
      disarm(write_deadline);
      // Pending operations complete with an error, which they report as `closed`; a write in flight then
      // fails the frames queued behind it.
      boost::system::error_code ignored;
      stream.lowest_layer().close(ignored);
    }

    static void write_front(const std::shared_ptr<Impl>& self) {
      Outgoing& out = self->queue.front();
      self->arm(self->write_deadline, self->options.write_timeout);
      boost::asio::async_write(self->stream,
                               std::array<boost::asio::const_buffer, 2>{boost::asio::buffer(out.prefix),
                                                                        boost::asio::buffer(*out.frame)},
                               [self](boost::system::error_code ec, std::size_t) { self->on_write(ec); });
    }

    void on_write(boost::system::error_code ec) {
      disarm(write_deadline);
      if (closed) ec = closed;
      if (ec) {
        // The stream is mid-frame: nothing more can be sent on it.
        close(ec);
        std::deque<Outgoing> failed;
        failed.swap(queue);
        for (auto& f : failed)
          if (f.done) f.done(ec);
        return;
      }
      SendHandler done = std::move(queue.front().done);
      queue.pop_front();
      if (!queue.empty()) write_front(this->shared_from_this());
      if (done) done({});
    }
  };

  struct ReadOp {
    std::shared_ptr<Impl> impl;
    enum { starting, reading, refusing } state = starting;

    template <class Self>
    void operator()(Self& self, boost::system::error_code ec = {}, std::size_t = 0) {
      Impl& c = *impl;
      switch (state) {
        case starting:
          if (c.closed) {
            // Completing inside the initiating call would break Asio's guarantee; go through the executor.
            state = refusing;
            boost::asio::post(c.stream.get_executor(), std::move(self));
            return;
          }
          assert(!c.reading && "FrameChannel: one async_read at a time");
          c.reading = true;
          state = reading;
          c.arm(c.read_deadline, c.options.read_timeout);
          async_read_frame(c.stream, c.in, c.options.max_frame, std::move(self));
          return;
        case reading:
          c.reading = false;
          c.disarm(c.read_deadline);
          if (c.closed) ec = c.closed;
          self.complete(ec, ec ? std::span<const uint8_t>{} : std::span<const uint8_t>(c.in));
          return;
        case refusing:
          self.complete(c.closed, std::span<const uint8_t>{});
          return;
      }
    }
  };

  std::shared_ptr<Impl> impl_;
};

}  // namespace ee::net
