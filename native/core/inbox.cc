#include "inbox.h"

#include <string>

namespace memport {

namespace {

std::string Bytes(uint64_t n) {
  if (n >= (uint64_t{1} << 30) && n % (uint64_t{1} << 30) == 0) return std::to_string(n >> 30) + " GiB";
  if (n >= (uint64_t{1} << 20) && n % (uint64_t{1} << 20) == 0) return std::to_string(n >> 20) + " MiB";
  return std::to_string(n) + " bytes";
}

Error Over(const std::string& what, const std::string& option) {
  return MakeError("OUT_OF_MEMORY", "the receiver holds too much that it has not received yet: " + what +
                                        "; the sender should wait for earlier messages to be received" +
                                        (option.empty() ? "" : ", or the receiver raise limits." + option));
}

}  // namespace

InboxCharge::~InboxCharge() { account_->Refund(data_, handles_, region_bytes_); }

Result<std::unique_ptr<InboxCharge>> InboxAccount::Charge(const Frame& frame) {
  const uint64_t data = frame.data.size();
  const uint64_t handles = frame.regions.size();
  uint64_t region_bytes = 0;
  for (const RegionDescriptor& d : frame.regions) region_bytes += d.size;  // <= 64 * 2^47: no overflow

  std::lock_guard<std::mutex> lock(mutex_);
  if (data_ + data > limits_.max_pending_data_bytes) {
    return Over(Bytes(data_) + " of data plus " + Bytes(data) + " would pass " + Bytes(limits_.max_pending_data_bytes),
                "maxPendingDataBytes");
  }
  if (handles_ + handles > limits_.max_pending_handles) {
    return Over(std::to_string(handles_) + " handles plus " + std::to_string(handles) + " would pass " +
                    std::to_string(limits_.max_pending_handles),
                "maxPendingHandles");
  }
  // One message is always let into an empty inbox, so a region larger than
  // the bound can still be sent to a receiver that keeps up.
  if (region_bytes_ > 0 && region_bytes_ + region_bytes > limits_.max_pending_region_bytes) {
    return Over(Bytes(region_bytes_) + " of regions plus " + Bytes(region_bytes) + " would pass " +
                    Bytes(limits_.max_pending_region_bytes),
                "maxPendingRegionBytes");
  }
  // Process-wide, and this peer process's share of it (a quarter).
  ProcessTotals& totals = Totals();
  {
    std::lock_guard<std::mutex> process_lock(totals.mutex);
    Held& peer = totals.per_peer[peer_pid_];
    const uint64_t peer_handle_share = process_handle_limit_ / 4;
    const uint64_t peer_data_share = kMaxProcessPendingDataBytes / 4;
    Error over;
    if (totals.all.handles + handles > process_handle_limit_) {
      over = Over("the process's connections together hold " + std::to_string(totals.all.handles) +
                      " handles of unreceived messages (at most " + std::to_string(process_handle_limit_) +
                      ", from the fd limit)",
                  "");
    } else if (peer.handles + handles > peer_handle_share) {
      over = Over("the sending process's connections hold " + std::to_string(peer.handles) +
                      " handles of unreceived messages (one process may hold at most " +
                      std::to_string(peer_handle_share) + ")",
                  "");
    } else if (totals.all.data + data > kMaxProcessPendingDataBytes) {
      over = Over("the process's connections together hold " + Bytes(totals.all.data) + " of unreceived data (at most " +
                      Bytes(kMaxProcessPendingDataBytes) + ")",
                  "");
    } else if (peer.data + data > peer_data_share) {
      over = Over("the sending process's connections hold " + Bytes(peer.data) +
                      " of unreceived data (one process may hold at most " + Bytes(peer_data_share) + ")",
                  "");
    }
    if (!over.code.empty()) {
      if (peer.handles == 0 && peer.data == 0) totals.per_peer.erase(peer_pid_);
      return over;
    }
    totals.all.handles += handles;
    totals.all.data += data;
    peer.handles += handles;
    peer.data += data;
  }
  data_ += data;
  handles_ += handles;
  region_bytes_ += region_bytes;
  return std::make_unique<InboxCharge>(shared_from_this(), data, handles, region_bytes);
}

void InboxAccount::Refund(uint64_t data, uint64_t handles, uint64_t region_bytes) {
  {
    ProcessTotals& totals = Totals();
    std::lock_guard<std::mutex> process_lock(totals.mutex);
    totals.all.handles -= handles;
    totals.all.data -= data;
    Held& peer = totals.per_peer[peer_pid_];
    peer.handles -= handles;
    peer.data -= data;
    if (peer.handles == 0 && peer.data == 0) totals.per_peer.erase(peer_pid_);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  data_ -= data;
  handles_ -= handles;
  region_bytes_ -= region_bytes;
}

InboxAccount::ProcessTotals& InboxAccount::Totals() {
  static ProcessTotals* totals = new ProcessTotals();  // never destroyed: refunds may run at exit
  return *totals;
}

}  // namespace memport
