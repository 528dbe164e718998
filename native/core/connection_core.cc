#include "connection_core.h"

#include <string>
#include <utility>

#include "named.h"

namespace memport {

ConnectionCore::ConnectionCore(const PeerIdentity& peer, std::shared_ptr<JsThread> js)
    : js_(std::move(js)), peer_(peer), user_closed_(std::make_shared<std::atomic<bool>>(false)) {}

bool ConnectionCore::PeerRunning() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return !closed_ && OsPeerRunningLocked();
}

Status ConnectionCore::Admit() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_) return close_reason_;
  return OsAdmitLocked();
}

void ConnectionCore::Start(std::shared_ptr<ConnectionObserver> observer, const PeerLimits& limits) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (started_) return;
  started_ = true;
  if (closed_) {
    // Ended before it started (the WELCOME could not be written: the client
    // had gone). Whoever waits on `observer` is still told, once.
    Error why = close_reason_;
    Deliver([observer, why] { observer->OnClosed(why); });
    return;
  }
  observer_ = std::move(observer);
  limits_ = limits;
  account_ = std::make_shared<InboxAccount>(limits, OsProcessHandleLimit(limits), peer_.pid);
  OsStartReadingLocked();
}

Status ConnectionCore::Write(uint64_t write_id, Frame frame, const std::vector<const SharedMemory*>& regions,
                             const std::vector<const Notifier*>& notifiers, bool* completed) {
  if (completed != nullptr) *completed = false;
  const size_t handles = regions.size() + notifiers.size();
  if (handles > kMaxRegionsPerFrame) {
    return MakeError("INVALID_ARGUMENT",
                     "at most " + std::to_string(kMaxRegionsPerFrame) + " handles (regions and notifiers) per message");
  }
  if (!frame.regions.empty() && frame.regions.size() != handles) {
    return MakeError("INVALID_ARGUMENT", "the frame declares a different number of handles than were given");
  }
  frame.regions.resize(handles);
  for (size_t i = 0; i < regions.size(); ++i) {
    const SharedMemory* region = regions[i];
    if (region == nullptr || !region->valid()) return MakeError("CLOSED", "a region in the message is closed");
    frame.regions[i].size = region->size();
    frame.regions[i].flags = (region->read_only() ? kRegionReadOnly : 0) | (region->named() ? kRegionNamed : 0);
  }
  for (size_t i = 0; i < notifiers.size(); ++i) {
    const Notifier* notifier = notifiers[i];
    if (notifier == nullptr || !notifier->valid()) return MakeError("CLOSED", "a notifier in the message is closed");
    RegionDescriptor& descriptor = frame.regions[regions.size() + i];
    descriptor.size = 0;
    descriptor.flags = kDescriptorNotifier;
  }
  // A stream reader's members are the last regions and notifiers given.
  const size_t stream_regions = kStreamRegions * frame.streams;
  const size_t stream_notifiers = kStreamNotifiers * frame.streams;
  if (stream_regions > regions.size() || stream_notifiers > notifiers.size()) {
    return MakeError("INVALID_ARGUMENT", "a stream reader takes two regions and two notifiers");
  }
  for (size_t i = regions.size() - stream_regions; i < regions.size(); ++i) frame.regions[i].flags |= kDescriptorStream;
  for (size_t i = handles - stream_notifiers; i < handles; ++i) frame.regions[i].flags |= kDescriptorStream;

  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_) return close_reason_;
  const WriteToken token = ++next_token_;
  writes_.emplace(token, WriteRecord{write_id, /*owed=*/false});
  // A write the OS takes before OsSendLocked returns is reported through
  // *completed, not posted: one hop to the JS thread saved.
  inline_token_ = (completed != nullptr && write_id != kUnreportedWrite) ? token : 0;
  inline_done_ = false;
  Status sent = OsSendLocked(token, std::move(frame), regions, notifiers);
  inline_token_ = 0;
  if (!sent.ok()) {
    writes_.erase(token);
    return sent;
  }
  if (completed != nullptr) *completed = inline_done_;
  if (write_id == kUnreportedWrite) {
    auto waiting = writes_.find(token);
    if (waiting != writes_.end()) {
      // ACKs and NACKs pile up only for a peer that sends and never reads.
      waiting->second.owed = true;
      if (++owed_control_ > limits_.max_owed_control_frames) {
        EndLocked(MakeError("PROTOCOL", "the peer does not read: more than " +
                                            std::to_string(limits_.max_owed_control_frames) +
                                            " acknowledgements are waiting for it (limits.maxOwedControlFrames)"));
      }
    }
  }
  return Ok();  // if the connection ended meanwhile, OnWriteDone/OnClosed say why
}

void ConnectionCore::Close() {
  user_closed_->store(true);
  std::lock_guard<std::mutex> lock(mutex_);
  if (!started_ && !closed_) OsDiscardUnreadLocked();
  EndLocked(MakeError("CLOSED", "the connection was closed"));
}

void ConnectionCore::EndLocked(const Error& why) {
  if (closed_) return;
  closed_ = true;
  // The same reason on every backend (test/native/transport_contract_test.cc,
  // "close reasons"): CLOSED, PEER_CLOSED, or what the peer was dropped for
  // (PROTOCOL, INVALID_HANDLE, ...).
  close_reason_ = MakeError(why.code, why.code == "CLOSED" ? "the connection is closed"
                                                            : "the connection was lost: " + why.message);
  OsEndLocked();
  owed_control_ = 0;
  std::map<WriteToken, WriteRecord> failed;
  failed.swap(writes_);
  std::shared_ptr<ConnectionObserver> observer = observer_;
  if (observer) {
    for (const auto& write : failed) {
      if (write.second.write_id == kUnreportedWrite) continue;
      Deliver([observer, id = write.second.write_id, error = close_reason_] { observer->OnWriteDone(id, &error); });
    }
    Deliver([observer, why] { observer->OnClosed(why); });
  }
  // Nothing is reported after OnClosed; dropping the observer here lets the
  // JS side (whose callbacks it holds) be collected.
  observer_.reset();
}

void ConnectionCore::FinishWriteLocked(WriteToken token, const Error* error) {
  auto found = writes_.find(token);
  if (found == writes_.end()) return;
  const WriteRecord write = found->second;
  writes_.erase(found);
  if (write.owed) --owed_control_;
  if (error == nullptr && token == inline_token_) {
    inline_done_ = true;  // Write() reports it
    return;
  }
  std::shared_ptr<ConnectionObserver> observer = observer_;
  if (!observer || write.write_id == kUnreportedWrite) return;
  if (error == nullptr) {
    Deliver([observer, id = write.write_id] { observer->OnWriteDone(id, nullptr); });
  } else {
    Deliver([observer, id = write.write_id, copy = *error] { observer->OnWriteDone(id, &copy); });
  }
}

void ConnectionCore::Charge(InboundMessage& message) {
  if (message.frame.type != FrameType::kMessage || !message.refused.code.empty()) return;
  // A refusal releases every handle the message brought, unused.
  auto refuse = [&message](Error why) {
    message.regions.clear();
    message.notifiers.clear();
    message.refused = std::move(why);
  };
  Status reserved = OsReserveFor(message);
  if (!reserved.ok()) return refuse(reserved.error());
  Result<std::unique_ptr<InboxCharge>> charge = account_->Charge(message.frame);
  if (!charge.ok()) return refuse(charge.error());
  message.charge = charge.take();
}

void ConnectionCore::DeliverFrameLocked(InboundMessage message) {
  std::shared_ptr<ConnectionObserver> observer = observer_;
  if (!observer) return;
  auto shared = std::make_shared<InboundMessage>(std::move(message));
  Deliver([observer, user_closed = user_closed_, shared] {
    if (user_closed->load()) return;
    observer->OnFrame(std::move(*shared));
  });
}

// Inside a backend's JS-thread callback observer calls are made once it
// returns; anywhere else (an I/O thread, or Write/Close called from JS, which
// must not be re-entered) they are posted.
void ConnectionCore::Deliver(std::function<void()> task) {
  if (deliveries_ != nullptr) {
    deliveries_->push_back(std::move(task));
  } else {
    js_->Post(std::move(task));
  }
}

Error ConnectionCore::AdoptHandles(InboundMessage* message, const std::vector<RawHandle>& raws,
                                   std::vector<OsHandle>* owned, bool accept_named) {
  const std::vector<RegionDescriptor>& descriptors = message->frame.regions;
  bool named = false;
  for (const RegionDescriptor& descriptor : descriptors) named = named || descriptor.named();
  const bool refuse = named && !accept_named;
  for (size_t i = 0; i < descriptors.size(); ++i) {
    const RegionDescriptor& descriptor = descriptors[i];
    if (refuse && descriptor.named()) continue;
    Error why;
    if (descriptor.notifier()) {
      Result<Notifier> notifier = Notifier::FromReceived(raws[i], /*from_transport=*/true);
      if (notifier.ok()) {
        message->notifiers.push_back(notifier.take());
      } else {
        why = notifier.error();
      }
    } else {
      Result<SharedMemory> region =
          descriptor.named() ? SharedMemory::FromReceivedNamed(raws[i], descriptor.size, descriptor.read_only())
                             : SharedMemory::FromReceived(raws[i], descriptor.size, descriptor.read_only(),
                                                          /*from_transport=*/true);
      if (region.ok()) {
        message->regions.push_back(region.take());
      } else {
        why = region.error();
      }
    }
    if (!why.code.empty()) {
      // Closes the ones proven ours; `owned` closes the rest.
      message->regions.clear();
      message->notifiers.clear();
      return MakeError(why.code == "ACCESS_DENIED" ? "ACCESS_DENIED" : "INVALID_HANDLE",
                       (descriptor.notifier() ? "notifier " : "region ") + std::to_string(i) + " of message " +
                           std::to_string(message->frame.seq) + ": " + why.message);
    }
    if (owned != nullptr) (*owned)[i].release();  // now owned by the SharedMemory or Notifier
  }
  if (refuse) {
    message->regions.clear();
    message->notifiers.clear();
    message->refused = MakeError("UNSUPPORTED", NamedRegionRefusedMessage());
  }
  return Error{};
}

namespace {

// The binding holds a unique_ptr<Connection>; the I/O side holds the core
// through shared pointers, so the handed-out object is a thin owner.
class OwnedConnection : public Connection {
 public:
  explicit OwnedConnection(std::shared_ptr<ConnectionCore> core) : core_(std::move(core)) {}
  // Dropping the object closes the connection, reporting like Close().
  ~OwnedConnection() override { core_->Close(); }
  const PeerIdentity& peer() const override { return core_->peer(); }
  bool PeerRunning() const override { return core_->PeerRunning(); }
  Status Admit() override { return core_->Admit(); }
  void Start(std::shared_ptr<ConnectionObserver> observer, const PeerLimits& limits) override {
    core_->Start(std::move(observer), limits);
  }
  Status Write(uint64_t write_id, Frame frame, const std::vector<const SharedMemory*>& regions,
               const std::vector<const Notifier*>& notifiers) override {
    return core_->Write(write_id, std::move(frame), regions, notifiers, /*completed=*/nullptr);
  }
  Status WriteInline(uint64_t write_id, Frame frame, const std::vector<const SharedMemory*>& regions, bool* completed,
                     const std::vector<const Notifier*>& notifiers) override {
    return core_->Write(write_id, std::move(frame), regions, notifiers, completed);
  }
  void Close() override { core_->Close(); }

 private:
  std::shared_ptr<ConnectionCore> core_;
};

}  // namespace

std::unique_ptr<Connection> ConnectionCore::Own(std::shared_ptr<ConnectionCore> core) {
  return std::make_unique<OwnedConnection>(std::move(core));
}

}  // namespace memport
