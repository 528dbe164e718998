// Mappings of received regions, kept after the region is closed so that the
// same memory received again is not mapped afresh. Mapping is not the cheap
// part of a transfer: every fresh mapping takes its page faults again as it
// is read and its page tables are torn down when it goes, which for a region
// sent over and over costs about as much as copying it would.
//
// One per environment, used on the JS thread only (no lock). Bounded by entry
// count and bytes; an entry nobody has used for a while is retired, so memory
// the sender has since freed is not kept alive for long. Windows has no
// identity for sections yet (SharedMemory::Identity), so nothing is kept there.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>

#include "core/shared_memory.h"

namespace memport {

class ReceivedMappings {
 public:
  struct Entry;

  // Held by a received region while it is open. Dropping it (close, or the
  // region being collected) makes the mapping idle in the cache, or retires
  // it if the cache has evicted it meanwhile.
  class Lease {
   public:
    explicit Lease(std::shared_ptr<Entry> entry) : entry_(std::move(entry)) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();

   private:
    std::shared_ptr<Entry> entry_;
  };

  struct Acquired {
    std::shared_ptr<Mapping> mapping;
    std::unique_ptr<Lease> lease;  // null: not cached, the region owns the mapping alone
  };

  struct Stats {
    size_t entries = 0;
    uint64_t bytes = 0;
    uint64_t hits = 0;
    uint64_t misses = 0;
  };

  // Defaults: enough for a few large regions sent back and forth, few enough
  // VMAs not to matter next to Mapping::MaxLive().
  static constexpr size_t kDefaultMaxEntries = 64;
  static constexpr uint64_t kDefaultMaxBytes = uint64_t{2} << 30;
  static constexpr int64_t kIdleMs = 2000;

  ReceivedMappings() = default;
  ReceivedMappings(const ReceivedMappings&) = delete;
  ReceivedMappings& operator=(const ReceivedMappings&) = delete;
  ~ReceivedMappings();

  // The mapping for a region just received (validated by FromReceived): the
  // kept one if this memory, size and mode were mapped before and reusing it
  // is safe, otherwise a fresh one, kept when the limits allow.
  Result<Acquired> Acquire(const SharedMemory& memory);

  // Retires entries idle for at least `idle_ms`. True while idle entries remain.
  bool Trim(int64_t idle_ms);

  void SetLimits(size_t max_entries, uint64_t max_bytes);
  Stats stats() const;

 private:
  using Clock = std::chrono::steady_clock;
  void Evict(std::list<std::shared_ptr<Entry>>::iterator it);
  bool MakeRoom(size_t slots, uint64_t bytes);

  std::list<std::shared_ptr<Entry>> entries_;  // most recently used first
  size_t max_entries_ = kDefaultMaxEntries;
  uint64_t max_bytes_ = kDefaultMaxBytes;
  uint64_t bytes_ = 0;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
};

struct ReceivedMappings::Entry {
  MemoryIdentity identity;
  uint64_t size = 0;
  bool read_only = false;
  std::shared_ptr<Mapping> mapping;
  int users = 0;
  bool evicted = false;
  std::chrono::steady_clock::time_point idle_since;
};

}  // namespace memport
