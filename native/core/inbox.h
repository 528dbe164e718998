// What a peer may make this process hold for it: messages that arrived but
// that the application has not received yet (their data bytes, handles and
// region sizes), and control frames owed to a peer that does not read.
// Platform-neutral; both backends charge every MESSAGE here before they hand
// it on (docs/PROTOCOL.md section 3, SECURITY.md "Resource limits").
//
// Why a budget and not only the window: the window bounds the number of
// unreceived messages (256), but one message may carry 128 KiB of data and
// 64 handles, so 256 of them are 32 MiB and 16,384 fds, which is more than a
// process can give to one peer and stay healthy.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "error.h"
#include "frame.h"

namespace memport {

// Bounds for one connection; the defaults are documented in SECURITY.md and
// exported by the addon (defaultLimits), which src/limits.ts publishes as
// DEFAULT_LIMITS (and passes every field explicitly).
struct PeerLimits {
  // Unreceived messages' data, in bytes (raw; parsed only when received).
  uint64_t max_pending_data_bytes = uint64_t{4} << 20;
  // Unreceived messages' handles (fds on Linux, section handles on Windows).
  uint64_t max_pending_handles = 1024;
  // Unreceived messages' regions, total declared size in bytes (never mapped
  // before the application receives them; this bounds what that would map).
  uint64_t max_pending_region_bytes = uint64_t{64} << 30;
  // ACK/NACK frames waiting for a peer that does not read; past this the peer
  // is dropped. An honest peer is owed at most one per message of its window.
  uint64_t max_owed_control_frames = 1024;
  // Linux: fds that peers' handles may never take, so the application's own
  // SharedRegion.create and new connections keep working.
  uint64_t fd_reserve = 256;
  // Take regions the peer flagged named (frame.h kRegionNamed): shared memory
  // with none of memport's own guarantees (SECURITY.md, "Named shared
  // memory"). Off by default: such a message is released and answered NACK
  // UNSUPPORTED (NamedRegionRefusedMessage).
  bool accept_named_regions = false;
};

class InboxAccount;

// What one unreceived message holds against its connection's budget (and the
// process's); given back when destroyed: when the application receives the
// message, or when it is released unreceived.
class InboxCharge {
 public:
  InboxCharge(std::shared_ptr<InboxAccount> account, uint64_t data, uint64_t handles, uint64_t region_bytes)
      : account_(std::move(account)), data_(data), handles_(handles), region_bytes_(region_bytes) {}
  InboxCharge(const InboxCharge&) = delete;
  InboxCharge& operator=(const InboxCharge&) = delete;
  ~InboxCharge();

 private:
  std::shared_ptr<InboxAccount> account_;
  uint64_t data_;
  uint64_t handles_;
  uint64_t region_bytes_;
};

class InboxAccount : public std::enable_shared_from_this<InboxAccount> {
 public:
  // `process_handle_limit`: handles all connections of this process together
  // may hold in unreceived messages (the backend derives it from the OS).
  // `peer_pid`: the peer process, which together with its other connections
  // may hold at most a quarter of each process-wide budget, so one process
  // cannot starve the others.
  InboxAccount(PeerLimits limits, uint64_t process_handle_limit, int64_t peer_pid)
      : limits_(limits), process_handle_limit_(process_handle_limit), peer_pid_(peer_pid) {}

  const PeerLimits& limits() const { return limits_; }

  // Charges a decoded MESSAGE, or says which bound it would pass
  // (OUT_OF_MEMORY, with the option to raise): the caller then releases its
  // handles unmapped and answers NACK. Thread-safe.
  Result<std::unique_ptr<InboxCharge>> Charge(const Frame& frame);

  // Cap on data bytes held in unreceived messages by all connections of this
  // process, whatever a connection's own limits say.
  static constexpr uint64_t kMaxProcessPendingDataBytes = uint64_t{256} << 20;

 private:
  friend class InboxCharge;
  void Refund(uint64_t data, uint64_t handles, uint64_t region_bytes);

  // What every connection of this process holds, in all and per peer process.
  struct Held {
    uint64_t handles = 0;
    uint64_t data = 0;
  };
  struct ProcessTotals {
    std::mutex mutex;
    Held all;
    std::unordered_map<int64_t, Held> per_peer;
  };
  static ProcessTotals& Totals();

  const PeerLimits limits_;
  const uint64_t process_handle_limit_;
  const int64_t peer_pid_;
  std::mutex mutex_;
  uint64_t data_ = 0;
  uint64_t handles_ = 0;
  uint64_t region_bytes_ = 0;
};

}  // namespace memport
