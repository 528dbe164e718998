// The connection state machine, written once for every backend: the write
// bookkeeping (completion reports, writes that complete inline, control
// frames owed to a peer that does not read), the close policy and the close
// reasons, the region descriptors of an outgoing frame, adopting a received
// frame's regions all-or-none, charging it to the inbox budget, and
// delivering observer calls. A backend derives from ConnectionCore and
// implements only what differs by OS (the Os*Locked hooks): sending a frame
// with its handles, reading frames with theirs, shutting the OS side down,
// the peer's liveness and the I/O thread or loop watch.
//
// Locking: one mutex per connection (mutex_), held by the core around every
// hook call; a backend's own I/O callbacks take it too before they call
// anything *Locked. Observer calls never run under it: they are posted to the
// JS thread, or, while a backend runs on the JS thread with `deliveries_` set
// (JsThread::WatchFd), queued there and made once it returns.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <map>
#include <vector>

#include "error.h"
#include "frame.h"
#include "inbox.h"
#include "notifier.h"
#include "os_handle.h"
#include "shared_memory.h"
#include "transport.h"

namespace memport {

// One write in flight, named by the core; a backend hands it back to
// FinishWriteLocked when the OS took the frame (or failed to).
using WriteToken = uint64_t;

class ConnectionCore : public std::enable_shared_from_this<ConnectionCore> {
 public:
  ConnectionCore(const PeerIdentity& peer, std::shared_ptr<JsThread> js);
  virtual ~ConnectionCore() = default;
  ConnectionCore(const ConnectionCore&) = delete;
  ConnectionCore& operator=(const ConnectionCore&) = delete;

  // The Connection interface (transport.h), for every backend.
  const PeerIdentity& peer() const { return peer_; }
  bool PeerRunning() const;
  Status Admit();
  void Start(std::shared_ptr<ConnectionObserver> observer, const PeerLimits& limits);
  // `completed` may be null: then every completion is reported through
  // OnWriteDone. Otherwise *completed says whether the OS took the whole
  // frame before this returned (then no OnWriteDone follows).
  Status Write(uint64_t write_id, Frame frame, const std::vector<const SharedMemory*>& regions,
               const std::vector<const Notifier*>& notifiers, bool* completed);
  // Close() from the JS thread (or the owner's destructor): frames posted
  // but not yet delivered are dropped (transport.h: nothing after Close
  // returns but the OnWriteDone/OnClosed already posted).
  void Close();

  // The owner the binding holds: closes the connection when dropped, while
  // I/O callbacks keep the core itself alive through shared pointers.
  static std::unique_ptr<Connection> Own(std::shared_ptr<ConnectionCore> core);

  // Validates and takes ownership of every handle `message`'s frame names
  // (regions and notifiers), or of none. raws[i] is the handle descriptor i
  // names here. `owned` (Linux: fds that arrived with the frame are ours from
  // the start) holds them: each adopted one is released into its
  // SharedMemory or Notifier, the rest close with `owned`. Without it
  // (Windows: a value may name anything in our table) a value that fails
  // validation, and every one after it, is left untouched, and the handles
  // already adopted (proven ours) are closed.
  // A region flagged named is adopted as a duplicate (FromReceivedNamed),
  // and only when `accept_named`; without it the message is refused (NACK
  // UNSUPPORTED): its named values are never touched, its other handles are
  // released unmapped. Returns the error the peer is dropped for (code
  // empty: none): ACCESS_DENIED for a handle with other rights than
  // declared, INVALID_HANDLE for anything else.
  static Error AdoptHandles(InboundMessage* message, const std::vector<RawHandle>& raws,
                            std::vector<OsHandle>* owned, bool accept_named);

 protected:
  // --- Implemented by a backend; called with mutex_ held. ---
  // Whether the OS says the peer process still runs (true where it cannot say).
  virtual bool OsPeerRunningLocked() const = 0;
  // Admit()'s check (transport.h): nothing sent before WELCOME, peer still here.
  virtual Status OsAdmitLocked() = 0;
  // Handles all of this process's connections may hold in unreceived messages.
  virtual uint64_t OsProcessHandleLimit(const PeerLimits& limits) const = 0;
  // Starts reading; a failure ends the connection (EndLocked).
  virtual void OsStartReadingLocked() = 0;
  // Sends `frame` (its descriptors' size and flags filled in, regions first,
  // then notifiers; the handle fields are the backend's) carrying `regions`
  // and `notifiers`. Reports the outcome with
  // FinishWriteLocked(token, ...), from inside this call when the OS took
  // the frame at once, else later. An error returned means nothing was sent
  // (no FinishWriteLocked follows).
  virtual Status OsSendLocked(WriteToken token, Frame frame, const std::vector<const SharedMemory*>& regions,
                              const std::vector<const Notifier*>& notifiers) = 0;
  // The connection ended: release the OS side (stop watching, cancel or drop
  // queued I/O, shut down) so the peer sees the end at once.
  virtual void OsEndLocked() = 0;
  // Close() on a connection never started (a refused client): release what
  // the client queued meanwhile, unmapped and undelivered.
  virtual void OsDiscardUnreadLocked() = 0;
  // Before a MESSAGE is charged to the budget: a bound only the OS knows
  // (Linux: the fd reserve). An error refuses the message (NACK).
  virtual Status OsReserveFor(const InboundMessage& /*message*/) { return Ok(); }

  // --- Offered to backends. ---
  // Ends the connection once: the OS side is released, writes still in
  // flight (and every later call) fail with the reason it ended, and the
  // observer hears `why` in OnClosed, once.
  void EndLocked(const Error& why);
  // The OS took write `token` (error == nullptr) or failed it. Unknown
  // tokens (already failed by EndLocked) are ignored.
  void FinishWriteLocked(WriteToken token, const Error* error);
  // Charges a validated MESSAGE to the budget, or releases its handles
  // (never mapped) and marks it refused, to be answered with NACK. No lock
  // needed: the account is set before reading starts and locks itself.
  void Charge(InboundMessage& message);
  // Hands a frame to the observer.
  void DeliverFrameLocked(InboundMessage message);

  bool closed_locked() const { return closed_; }
  const PeerLimits& limits() const { return limits_; }
  // What every call fails with once the connection has ended.
  const Error& close_reason_locked() const { return close_reason_; }

  mutable std::mutex mutex_;
  // Set by a backend while it runs on the JS thread (JsThread::WatchFd):
  // observer calls are queued here instead of posted.
  Deliveries* deliveries_ = nullptr;
  const std::shared_ptr<JsThread> js_;

 private:
  struct WriteRecord {
    uint64_t write_id;
    bool owed;  // a control frame the OS has not taken yet (owed_control_)
  };

  void Deliver(std::function<void()> task);

  const PeerIdentity peer_;
  const std::shared_ptr<std::atomic<bool>> user_closed_;
  std::shared_ptr<ConnectionObserver> observer_;
  PeerLimits limits_;
  std::shared_ptr<InboxAccount> account_;
  bool started_ = false;
  bool closed_ = false;
  Error close_reason_;
  std::map<WriteToken, WriteRecord> writes_;  // in flight, not yet reported; failed in write order
  WriteToken next_token_ = 0;
  WriteToken inline_token_ = 0;  // the write Write() is sending now, if its caller reports it
  bool inline_done_ = false;
  uint64_t owed_control_ = 0;
};

}  // namespace memport
