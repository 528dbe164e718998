#include "received_mappings.h"

namespace memport {

namespace {

// Gives the pages back now if anything besides us still refers to the
// mapping (a detached buffer V8 has not collected yet); otherwise dropping
// the last reference unmaps it.
void Release(std::shared_ptr<Mapping>& mapping) {
  if (mapping && mapping.use_count() > 1) mapping->Retire();
  mapping.reset();
}

}  // namespace

ReceivedMappings::Lease::~Lease() {
  if (--entry_->users > 0) return;
  entry_->idle_since = Clock::now();
  if (entry_->evicted) Release(entry_->mapping);
}

ReceivedMappings::~ReceivedMappings() {
  while (!entries_.empty()) Evict(entries_.begin());
}

void ReceivedMappings::Evict(std::list<std::shared_ptr<Entry>>::iterator it) {
  std::shared_ptr<Entry> entry = *it;
  entries_.erase(it);
  bytes_ -= entry->size;
  entry->evicted = true;
  if (entry->users == 0) Release(entry->mapping);
}

// Evicts idle entries, least recently used first, until `slots` more entries
// and `bytes` more bytes fit. False if entries in use leave no room.
bool ReceivedMappings::MakeRoom(size_t slots, uint64_t bytes) {
  auto fits = [&] { return entries_.size() + slots <= max_entries_ && bytes_ + bytes <= max_bytes_; };
  auto it = entries_.end();
  while (!fits() && it != entries_.begin()) {
    auto victim = std::prev(it);
    if ((*victim)->users == 0) {
      Evict(victim);
    } else {
      it = victim;
    }
  }
  return fits();
}

Result<ReceivedMappings::Acquired> ReceivedMappings::Acquire(const SharedMemory& memory) {
  Trim(kIdleMs);
  Result<MemoryIdentity> identity = memory.Identity();
  if (!identity.ok()) {
    Result<std::shared_ptr<Mapping>> fresh = memory.Map();
    if (!fresh.ok()) return fresh.error();
    return Acquired{fresh.take(), nullptr};
  }
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    Entry& e = **it;
    if (!(e.identity == identity.value()) || e.size != memory.size() || e.read_only != memory.read_only()) continue;
    // A read-only mapping is private copy-on-write: pages a region wrote into
    // would hide the shared bytes, and two open regions must not see each
    // other's private writes. Reuse it only when idle and clean.
    if (e.read_only && (e.users > 0 || e.mapping->MayHavePrivatePages())) {
      if (e.users == 0) Evict(it);
      break;
    }
    ++hits_;
    ++e.users;
    std::shared_ptr<Entry> entry = *it;
    entries_.splice(entries_.begin(), entries_, it);
    return Acquired{entry->mapping, std::make_unique<Lease>(entry)};
  }
  ++misses_;
  // Kept mappings count against the mapping budget; give them up before
  // refusing a region for want of one.
  if (Mapping::Live() >= Mapping::MaxLive()) Trim(0);
  Result<std::shared_ptr<Mapping>> fresh = memory.Map();
  if (!fresh.ok()) return fresh.error();
  const bool identity_taken = [&] {
    for (const auto& e : entries_) {
      if (e->identity == identity.value() && e->size == memory.size() && e->read_only == memory.read_only()) return true;
    }
    return false;
  }();
  if (identity_taken || memory.size() > max_bytes_ || !MakeRoom(1, memory.size())) return Acquired{fresh.take(), nullptr};
  auto entry = std::make_shared<Entry>();
  entry->identity = identity.value();
  entry->size = memory.size();
  entry->read_only = memory.read_only();
  entry->mapping = fresh.take();
  entry->users = 1;
  entries_.push_front(entry);
  bytes_ += entry->size;
  return Acquired{entry->mapping, std::make_unique<Lease>(entry)};
}

bool ReceivedMappings::Trim(int64_t idle_ms) {
  const Clock::time_point cutoff = Clock::now() - std::chrono::milliseconds(idle_ms);
  bool idle_left = false;
  for (auto it = entries_.begin(); it != entries_.end();) {
    auto next = std::next(it);
    if ((*it)->users == 0) {
      if ((*it)->idle_since <= cutoff) Evict(it);
      else idle_left = true;
    }
    it = next;
  }
  return idle_left;
}

void ReceivedMappings::SetLimits(size_t max_entries, uint64_t max_bytes) {
  max_entries_ = max_entries;
  max_bytes_ = max_bytes;
  MakeRoom(0, 0);
}

ReceivedMappings::Stats ReceivedMappings::stats() const {
  Stats s;
  s.entries = entries_.size();
  s.bytes = bytes_;
  s.hits = hits_;
  s.misses = misses_;
  return s;
}

}  // namespace memport
