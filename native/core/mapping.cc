// Mapping's platform-neutral half: retiring and parking (shared_memory.h says
// why a closed region's address range outlives its last buffer for a while).
#include <chrono>
#include <deque>
#include <mutex>
#include <vector>

#include "shared_memory.h"

namespace memport {

// Parked ranges, oldest first. Released when a cap is reached, and otherwise
// once their grace has run out, by whichever comes first of the next park and
// the JS side's timer (Mapping::ReleaseDue, scheduled after every close()).
// No thread of its own: a background thread contending for this lock made
// Wine's threading runtime allocate handles at unpredictable moments.
class ParkedRanges {
 public:
  static ParkedRanges& Get() {
    static ParkedRanges* instance = new ParkedRanges();
    return *instance;
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
      PopDueLocked(&due);
    }
    Unmap(due);
  }

  size_t ReleaseDue() {
    std::vector<Range> due;
    size_t left = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      PopDueLocked(&due);
      left = ranges_.size();
    }
    Unmap(due);
    return left;
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

  void PopDueLocked(std::vector<Range>* due) {
    const Clock::time_point now = Clock::now();
    while (!ranges_.empty() && ranges_.front().until <= now) due->push_back(PopLocked());
  }

  static void Unmap(const std::vector<Range>& ranges) {
    for (const Range& range : ranges) {
      Mapping::Unmap(range.data, range.length);
      Mapping::Unmapped();
    }
  }

  std::mutex mutex_;
  std::deque<Range> ranges_;  // in parking order, so also in order of `until`
  uint64_t bytes_ = 0;
};

Mapping::~Mapping() {
  if (data_ == nullptr || length_ == 0) {
    Unmapped();
  } else if (retired_.load()) {
    // Nothing holds the mapping any more, so a kept one can be scrubbed now too.
    if (!scrubbed_) ScrubInPlace();
    retired_alive_.fetch_sub(1);
    ParkedRanges::Get().Park(data_, length_);
  } else {
    Unmap(data_, length_);
    Unmapped();
  }
}

void Mapping::Retire() {
  if (data_ == nullptr || length_ == 0 || retired_.exchange(true)) return;
  retired_alive_.fetch_add(1);
  ScrubInPlace();
  scrubbed_ = true;
}

void Mapping::ParkWhenReleased() {
  if (data_ == nullptr || length_ == 0 || retired_.exchange(true)) return;
  retired_alive_.fetch_add(1);
}

bool Mapping::ReleaseDue() { return ParkedRanges::Get().ReleaseDue() > 0 || retired_alive_.load() > 0; }

size_t Mapping::UnparkAll() { return ParkedRanges::Get().UnparkAll(); }
size_t Mapping::Parked() { return ParkedRanges::Get().Count(); }

}  // namespace memport
