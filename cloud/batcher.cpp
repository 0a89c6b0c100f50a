#include "cloud/batcher.hpp"

#include <algorithm>
#include <array>

namespace ee::cloud {

Batcher::Batcher(std::shared_ptr<const model::MultiExitModel> model, BatcherOptions options, Metrics& metrics)
    : model_(std::move(model)), options_(options), metrics_(metrics), ws_(options.exec) {
  executor_ = std::thread([this] { run(); });
}

Batcher::~Batcher() {
  drain();
  executor_.join();
}

Batcher::Admit Batcher::submit(const wire::Activation& activation, Clock::time_point received, Reply reply) {
  runtime::Sample sample = runtime::Sample::from(activation, received);
  const std::array<const wire::Activation*, 1> one{&activation};
  std::lock_guard lock(mutex_);
  if (draining_) return Admit::shutting_down;
  if (queued_ >= options_.max_queue) return Admit::overloaded;
  const uint64_t ticket = next_ticket_++;
  sample.request_id = ticket;
  tickets_.emplace(ticket, Ticket{activation.request_id(), received, std::move(reply)});
  ++queued_;
  metrics_.pending.set(queued_);
  waiting_[activation.split_layer()].push_back(
      Waiting{runtime::Batch::decode(one, std::span(&sample, 1)), received});
  wake_.notify_one();
  return Admit::accepted;
}

void Batcher::drain() {
  std::lock_guard lock(mutex_);
  draining_ = true;
  wake_.notify_one();
}

int Batcher::queued() const {
  std::lock_guard lock(mutex_);
  return queued_;
}

int Batcher::due_depth(Clock::time_point now, Clock::time_point& wake) const {
  int due = -1;
  Clock::time_point due_oldest = Clock::time_point::max();
  for (const auto& [depth, list] : waiting_) {
    if (list.empty()) continue;
    Clock::time_point oldest = Clock::time_point::max();
    for (const Waiting& w : list) oldest = std::min(oldest, w.received);
    const bool ready = draining_ || static_cast<int>(list.size()) >= options_.max_batch ||
                       now - oldest >= options_.max_queue_delay;
    if (!ready) {
      wake = std::min(wake, oldest + options_.max_queue_delay);
    } else if (oldest < due_oldest) {  // without re-batching, the depth whose oldest waited longest
      due = depth;
      due_oldest = oldest;
    }
  }
  // With re-batching a wave starts at the shallowest waiting depth and collects the others on its way.
  if (due >= 0 && options_.rebatch) {
    for (const auto& [depth, list] : waiting_) {
      if (!list.empty()) return depth;
    }
  }
  return due;
}

void Batcher::admit_waiting(int depth, int room, Clock::time_point now, runtime::Batch& batch,
                            std::vector<uint64_t>& expired) {
  const auto it = waiting_.find(depth);
  if (it == waiting_.end() || room <= 0) return;
  std::vector<Waiting>& list = it->second;
  auto deadline = [](const Waiting& w) { return w.rows.sample(0).deadline; };
  std::stable_sort(list.begin(), list.end(),
                   [&](const Waiting& a, const Waiting& b) { return deadline(a) < deadline(b); });
  const auto layer =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(layer_seconds_));
  std::vector<runtime::Batch> taken;
  std::size_t used = 0;
  for (; used < list.size() && static_cast<int>(taken.size()) < room; ++used) {
    Waiting& w = list[used];
    if (deadline(w) != Clock::time_point::max() && now + layer > deadline(w)) {
      expired.push_back(w.rows.sample(0).request_id);
    } else {
      metrics_.queue_seconds.observe(std::chrono::duration<double>(now - w.received).count());
      taken.push_back(std::move(w.rows));
    }
  }
  list.erase(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(used));
  if (list.empty()) waiting_.erase(it);
  batch.append(taken);
}

void Batcher::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    Clock::time_point wake = Clock::time_point::max();
    const int depth = due_depth(Clock::now(), wake);
    if (depth < 0) {
      if (draining_ && waiting_.empty()) return;
      if (wake == Clock::time_point::max()) {
        wake_.wait(lock);
      } else {
        wake_.wait_until(lock, wake);
      }
      continue;
    }
    runtime::Batch batch;
    std::vector<uint64_t> expired;
    admit_waiting(depth, options_.max_batch, Clock::now(), batch, expired);
    lock.unlock();
    for (uint64_t t : expired) fail(t, wire::Status::deadline_exceeded, "the deadline passed in the queue");
    run_wave(batch);
    lock.lock();
  }
}

void Batcher::run_wave(runtime::Batch& batch) {
  std::vector<runtime::Answer> answered;
  while (!batch.empty()) {
    drop_expired(batch, Clock::now());
    if (batch.empty()) return;
    const int layer = batch.depth() + 1;
    const int size = batch.size();
    const auto start = Clock::now();
    try {
      runtime::step(*model_, batch, ws_, answered);
    } catch (const std::exception& e) {
      // A failed layer (out of memory, a model error) fails its batch, not the process.
      for (const runtime::Sample& s : batch.samples()) fail(s.request_id, wire::Status::internal, e.what());
      batch = runtime::Batch();
      return;
    }
    const auto end = Clock::now();
    const double seconds = std::chrono::duration<double>(end - start).count();
    metrics_.executions(layer).inc();
    metrics_.layer_samples(layer).inc(static_cast<uint64_t>(size));
    metrics_.batch_size.observe(size);
    metrics_.compute_seconds.observe(seconds);
    for (runtime::Answer& a : answered) {
      if (a.exit.layer < model_->num_layers()) metrics_.cloud_exits(a.exit.layer).inc();
      answer(std::move(a), end);
    }
    answered.clear();
    std::vector<uint64_t> expired;
    {
      std::lock_guard lock(mutex_);
      layer_seconds_ = seconds;
      if (options_.rebatch && !batch.empty())
        admit_waiting(batch.depth(), options_.max_batch - batch.size(), end, batch, expired);
    }
    for (uint64_t t : expired) fail(t, wire::Status::deadline_exceeded, "the deadline passed in the queue");
  }
}

void Batcher::drop_expired(runtime::Batch& batch, Clock::time_point now) {
  const auto layer =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(layer_seconds_));
  std::vector<int> late;
  for (int b = 0; b < batch.size(); ++b) {
    const Clock::time_point d = batch.sample(b).deadline;
    if (d != Clock::time_point::max() && now + layer > d) late.push_back(b);
  }
  if (late.empty()) return;
  for (const runtime::Sample& s : batch.take(late).samples())
    fail(s.request_id, wire::Status::deadline_exceeded, "the deadline passed between layers");
}

Batcher::Ticket Batcher::take_ticket(uint64_t ticket) {
  std::lock_guard lock(mutex_);
  auto node = tickets_.extract(ticket);
  --queued_;
  metrics_.pending.set(queued_);
  return std::move(node.mapped());
}

void Batcher::answer(runtime::Answer&& a, Clock::time_point now) {
  Ticket t = take_ticket(a.sample.request_id);
  wire::Result r;
  r.request_id = t.request_id;
  r.label = a.exit.confidence.label;
  r.probabilities = std::move(a.exit.probabilities);
  r.exit_layer = a.exit.layer;
  r.final_label = a.final_label;
  r.cloud_compute = std::chrono::duration_cast<std::chrono::microseconds>(now - t.received);
  metrics_.requests(wire::Status::ok).inc();
  metrics_.request_seconds.observe(std::chrono::duration<double>(now - t.received).count());
  t.reply(std::move(r));
}

void Batcher::fail(uint64_t ticket, wire::Status status, const std::string& why) {
  Ticket t = take_ticket(ticket);
  wire::Result r;
  r.request_id = t.request_id;
  r.status = status;
  r.error = why;
  r.cloud_compute = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t.received);
  metrics_.requests(status).inc();
  t.reply(std::move(r));
}

}  // namespace ee::cloud
