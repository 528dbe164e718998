// Mapping's platform-neutral half: retiring and parking (shared_memory.h says
// why a closed region's address range outlives its last buffer for a while).
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "shared_memory.h"

namespace memport {

// Parked ranges, oldest first, unmapped by one background thread as their
// grace runs out (so an idle process does not keep them), or at once when a
// cap is reached. Lives for the process; the thread is never joined.
class ParkedRanges {
 public:
  static ParkedRanges& Get() {
    static ParkedRanges* instance = new ParkedRanges();
    return *instance;
  }

  // Started with the addon (Mapping::StartParking), not on first use: the
  // thread and its wait objects are then part of every handle baseline.
  ParkedRanges() {
    std::unique_lock<std::mutex> lock(mutex_);
    std::thread([this] { Run(); }).detach();
    // Returns once the thread has waited with a deadline, which is when some
    // runtimes (mingw's winpthreads) make their wait objects.
    started_.wait(lock, [this] { return running_; });
  }

  void Park(uint8_t* data, uint64_t length) {
    std::vector<Range> due;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ranges_.push_back({data, length, Clock::now() + std::chrono::milliseconds(Mapping::kRetiredGraceMs)});
      bytes_ += length;
      while (!ranges_.empty() && (ranges_.size() > Mapping::kMaxParked || bytes_ > Mapping::MaxParkedBytes())) {
        due.push_back(PopLocked());
      }
    }
    wake_.notify_one();
    Unmap(due);
  }

  size_t UnparkAll() {
    std::vector<Range> due;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (!ranges_.empty()) due.push_back(PopLocked());
    }
    Unmap(due);
    return due.size();
  }

  size_t Count() {
    std::lock_guard<std::mutex> lock(mutex_);
    return ranges_.size();
  }

 private:
  using Clock = std::chrono::steady_clock;
  struct Range {
    uint8_t* data;
    uint64_t length;
    Clock::time_point until;
  };

  Range PopLocked() {
    Range range = ranges_.front();
    ranges_.pop_front();
    bytes_ -= range.length;
    return range;
  }

  static void Unmap(const std::vector<Range>& ranges) {
    for (const Range& range : ranges) {
      Mapping::Unmap(range.data, range.length);
      Mapping::Unmapped();
    }
  }

  void Run() {
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait_until(lock, Clock::now() + std::chrono::milliseconds(1));
    running_ = true;
    started_.notify_one();
    for (;;) {
      if (ranges_.empty()) {
        wake_.wait(lock);
        continue;
      }
      if (Clock::now() < ranges_.front().until) {
        wake_.wait_until(lock, ranges_.front().until);
        continue;
      }
      std::vector<Range> due;
      while (!ranges_.empty() && Clock::now() >= ranges_.front().until) due.push_back(PopLocked());
      lock.unlock();
      Unmap(due);
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable started_;
  bool running_ = false;
  std::deque<Range> ranges_;  // in parking order, so also in order of `until`
  uint64_t bytes_ = 0;
};

Mapping::~Mapping() {
  if (data_ == nullptr || length_ == 0) {
    Unmapped();
  } else if (retired_.load()) {
    ParkedRanges::Get().Park(data_, length_);
  } else {
    Unmap(data_, length_);
    Unmapped();
  }
}

void Mapping::Retire() {
  if (data_ == nullptr || length_ == 0 || retired_.exchange(true)) return;
  ScrubInPlace();
}

void Mapping::StartParking() { ParkedRanges::Get(); }
size_t Mapping::UnparkAll() { return ParkedRanges::Get().UnparkAll(); }
size_t Mapping::Parked() { return ParkedRanges::Get().Count(); }

}  // namespace memport
