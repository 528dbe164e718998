// The "JS thread" of the native tests (transport_contract_test.cc,
// win_transport_test.cc): a queue of tasks that the test's main thread runs.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>

#include "../../native/core/transport.h"

namespace memport {

class PumpedJsThread : public JsThread {
 public:
  void Post(std::function<void()> task) override {
    std::lock_guard<std::mutex> lock(mutex_);
    tasks_.push_back(std::move(task));
    ready_.notify_one();
  }

  // Runs tasks until done() holds or `timeout_ms` pass; returns done().
  bool PumpUntil(const std::function<bool()>& done, int timeout_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      if (done()) return true;
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        if (!ready_.wait_until(lock, deadline, [&] { return !tasks_.empty(); })) return done();
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  // Runs whatever is queued now, for about `ms`.
  void PumpFor(int ms) {
    PumpUntil([] { return false; }, ms);
  }

  // Tasks waiting to run (posted, not yet run).
  size_t Queued() {
    std::lock_guard<std::mutex> lock(mutex_);
    return tasks_.size();
  }

  // Runs every task queued now (and what they queue), without waiting.
  void Drain() {
    for (;;) {
      std::function<void()> task;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> tasks_;
};

}  // namespace memport
