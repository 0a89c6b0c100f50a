#pragma once
// The cloud's scheduler: requests that arrive at any split layer wait by depth; a batch leaves when one
// depth holds max_batch requests or its oldest has waited max_queue_delay (Triton's two knobs). A batch
// then runs as a wave, one layer at a time: at every depth it reaches it takes in the requests waiting
// there (up to max_batch), so samples that arrived after layer 1 and after layer 3 share the batch from
// layer 3 on (E3's re-batching), and after every exit head the samples whose own rule fires leave.
// Earliest deadline first; a request that cannot meet its deadline is answered DeadlineExceeded without
// being computed; a full queue refuses at once (the edge then continues locally), so memory is bounded.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cloud/metrics.hpp"
#include "common/model/multi_exit_model.hpp"
#include "common/model/workspace.hpp"
#include "common/runtime/batch.hpp"
#include "common/runtime/early_exit.hpp"
#include "common/wire/codec.hpp"

namespace ee::cloud {

using runtime::Clock;

struct BatcherOptions {
  int max_batch = 32;
  std::chrono::microseconds max_queue_delay{500};
  int max_queue = 1024;  // requests waiting or running; more are refused
  // Requests that arrived at different split layers share batches from the deepest common layer on;
  // false keeps one queue per split layer, each batch running alone to the end (the ablation baseline).
  bool rebatch = true;
  model::ExecOptions exec;
};

// Called once per accepted request, on the batcher's thread: must not block (post to the session).
using Reply = std::function<void(wire::Result)>;

class Batcher {
 public:
  Batcher(std::shared_ptr<const model::MultiExitModel> model, BatcherOptions options, Metrics& metrics);
  ~Batcher();  // drains, then joins the executor
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  enum class Admit { accepted, overloaded, shutting_down };
  // Queues a decoded request (decoded into rows here, on the caller's thread). Not accepted: no reply
  // will come; the caller answers Overloaded or Shutdown itself.
  Admit submit(const wire::Activation& activation, Clock::time_point received, Reply reply);
  // Stops admitting, answers everything queued (computed as usual), then returns.
  void drain();
  int queued() const;  // waiting or running

 private:
  struct Ticket {
    uint64_t request_id;  // the edge's id (the batch's Sample::request_id is the ticket number)
    Clock::time_point received;
    Reply reply;
  };
  struct Waiting {
    runtime::Batch rows;  // one sample
    Clock::time_point received;
  };

  void run();
  // Runs one batch layer by layer until every sample is answered.
  void run_wave(runtime::Batch& batch);
  // Under mutex_: the depth a wave should start from now, or -1 when none is due before `wake`.
  int due_depth(Clock::time_point now, Clock::time_point& wake) const;
  // Under mutex_: moves up to `room` requests waiting at `depth` into `batch`, earliest deadline first;
  // requests that can no longer meet their deadline are moved to `expired` instead.
  void admit_waiting(int depth, int room, Clock::time_point now, runtime::Batch& batch,
                     std::vector<uint64_t>& expired);
  void answer(runtime::Answer&& a, Clock::time_point now);
  void fail(uint64_t ticket, wire::Status status, const std::string& why);
  Ticket take_ticket(uint64_t ticket);
  // Samples already past the point where one more layer could answer them.
  void drop_expired(runtime::Batch& batch, Clock::time_point now);

  std::shared_ptr<const model::MultiExitModel> model_;
  BatcherOptions options_;
  Metrics& metrics_;
  model::Workspace ws_;  // the executor's

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::map<int, std::vector<Waiting>> waiting_;  // by depth
  std::unordered_map<uint64_t, Ticket> tickets_;
  uint64_t next_ticket_ = 1;
  int queued_ = 0;
  bool draining_ = false;
  // Seconds one layer took at the last step: what a request needs at least before it can be answered.
  double layer_seconds_ = 0;
  std::thread executor_;
};

}  // namespace ee::cloud
