// Linux: a connection. Frames and their fds go out with sendmsg (a region's
// own fd when the socket takes the frame at once, a duplicate while it waits
// in the queue) and come in with recvmsg, which always offers room for the
// maximum fd count, uses MSG_CMSG_CLOEXEC and takes ownership of every fd at
// once. Read on the JS thread where the binding can watch the fd
// (JsThread::WatchFd): one wake-up per frame instead of two; else by the
// epoll thread (io_thread.h).
#include "unix_connection.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "../core/frame.h"
#include "../core/inbox.h"
#include "../core/named.h"
#include "../core/shared_memory.h"
#include "fd_budget.h"
#include "io_thread.h"
#include "socket_security.h"

namespace memport {

namespace {

// ---------------------------------------------------------------------------
// A connection.

struct PendingWrite {
  uint64_t id;
  std::vector<uint8_t> bytes;
  std::vector<OsHandle> fds;  // our own duplicates: the region may be closed before the write happens
  // The regions' own fds, for a write sent before WriteInline returns (the
  // regions cannot be closed meanwhile); duplicated into `fds` only if the
  // write has to wait in the queue.
  std::vector<int> borrowed;
};

class UnixConnection : public Connection, public Pollable, public std::enable_shared_from_this<UnixConnection> {
 public:
  UnixConnection(OsHandle fd, PeerIdentity peer, std::shared_ptr<JsThread> js)
      : fd_(std::move(fd)), peer_(peer), js_(std::move(js)) {}

  ~UnixConnection() override = default;

  const PeerIdentity& peer() const override { return peer_; }

  bool PeerRunning() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return !closed_ && PeerProcessState(static_cast<int>(fd_.get())) != PeerProcess::kExited;
  }

  Status Admit() override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return MakeError(close_code_, close_message_);
    // Peeks one byte and no ancillary data: fds queued with a frame stay in
    // the kernel (and are released with the socket), never in our table.
    uint8_t byte = 0;
    const ssize_t n = ::recv(static_cast<int>(fd_.get()), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0 || (n == 0 && !PeerHungUp())) {
      return MakeError("PROTOCOL", "the client sent a frame before it was admitted (before WELCOME)");
    }
    if (n == 0) return MakeError("PEER_CLOSED", "the client left before it was admitted");
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Ok();
    return errno == ECONNRESET ? MakeError("PEER_CLOSED", "the client left before it was admitted")
                               : LastOsError("recv", "checking the client before admitting it");
  }

  void Start(std::shared_ptr<ConnectionObserver> observer, const PeerLimits& limits) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) {
      // Ended before it started (the WELCOME could not be written): say so.
      Error why = MakeError(close_code_, close_message_);
      Deliver([observer, why] { observer->OnClosed(why); });
      return;
    }
    observer_ = std::move(observer);
    limits_ = limits;
    account_ = std::make_shared<InboxAccount>(limits, ProcessHandleLimit(limits.fd_reserve), peer_.pid);
    std::weak_ptr<UnixConnection> weak = shared_from_this();
    watch_ = js_->WatchFd(static_cast<int>(fd_.get()), [weak](uint32_t ready, Deliveries& deliveries) {
      if (std::shared_ptr<UnixConnection> self = weak.lock()) self->OnJsThreadEvents(ready, deliveries);
    });
    if (watch_) return;
    Status added = IoThread::Get().Add(static_cast<int>(fd_.get()), EPOLLIN | EPOLLRDHUP, shared_from_this());
    if (!added.ok()) FailLocked(added.error());
  }

  // Completion reported through OnWriteDone, as the interface promises.
  Status Write(uint64_t write_id, Frame frame, const std::vector<const SharedMemory*>& regions) override {
    return WriteInline(write_id, std::move(frame), regions, /*completed=*/nullptr);
  }

  // `completed` may be null: then every completion is posted.
  Status WriteInline(uint64_t write_id, Frame frame, const std::vector<const SharedMemory*>& regions,
                     bool* completed) override {
    if (completed != nullptr) *completed = false;
    PendingWrite write{write_id, {}, {}, {}};
    frame.regions.resize(regions.size());
    for (size_t i = 0; i < regions.size(); ++i) {
      const SharedMemory* region = regions[i];
      if (region == nullptr || !region->valid()) return MakeError("CLOSED", "a region in the message is closed");
      frame.regions[i].size = region->size();
      frame.regions[i].flags = (region->read_only() ? kRegionReadOnly : 0) | (region->named() ? kRegionNamed : 0);
      frame.regions[i].handle = static_cast<uint32_t>(i);
      write.borrowed.push_back(static_cast<int>(region->raw()));
    }
    Result<std::vector<uint8_t>> encoded = EncodeFrame(frame);
    if (!encoded.ok()) return encoded.error();
    write.bytes = encoded.take();

    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return MakeError(close_code_, close_message_);
    const bool send_now = queue_.empty();
    if (!send_now) {
      Status held = HoldFds(write);
      if (!held.ok()) return held;
    }
    if (write_id == kUnreportedWrite && ++owed_control_ > limits_.max_owed_control_frames) {
      // ACKs and NACKs pile up only for a peer that sends and never reads.
      FailLocked(MakeError("PROTOCOL", "the peer does not read: more than " +
                                           std::to_string(limits_.max_owed_control_frames) +
                                           " acknowledgements are waiting for it (limits.maxOwedControlFrames)"));
      return Ok();  // nobody waits for a control frame; OnClosed says why
    }
    queue_.push_back(std::move(write));
    if (send_now) {
      // Sent before FlushLocked returns: reported through *completed, not posted.
      inline_write_ = completed != nullptr ? write_id : kUnreportedWrite;
      FlushLocked();
      if (completed != nullptr) *completed = inline_write_ == kUnreportedWrite && write_id != kUnreportedWrite;
      inline_write_ = kUnreportedWrite;
      // Not sent yet (the socket is full): it waits in the queue, so it needs
      // fds of its own. A failure here leaves it unsent: take it back.
      if (!closed_ && !queue_.empty() && queue_.front().id == write_id && !queue_.front().borrowed.empty()) {
        Status held = HoldFds(queue_.front());
        if (!held.ok()) {
          queue_.pop_front();
          SetWantWriteLocked(false);
          return held;
        }
      }
    }
    return Ok();
  }

  void Close() override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!closed_ && !observer_) DiscardUnreadLocked();
    FailLocked(MakeError("CLOSED", "the connection was closed"));
  }

  void OnEvents(uint32_t ready) override {
    std::lock_guard<std::mutex> lock(mutex_);
    OnReadyLocked(ready);
  }

  // The same, called by the JS thread's loop: what would be posted to the JS
  // thread is handed back in `deliveries` instead, to be called once the lock
  // is released.
  void OnJsThreadEvents(uint32_t ready, Deliveries& deliveries) {
    std::lock_guard<std::mutex> lock(mutex_);
    deliveries_ = &deliveries;
    OnReadyLocked(ready);
    deliveries_ = nullptr;
  }

 private:
  // Writes what waits if the socket takes it, then reads what arrived.
  void OnReadyLocked(uint32_t ready) {
    if (closed_) return;
    if (ready & kWritable) FlushLocked();
    if (!closed_ && (ready & (kReadable | kHungUp | kFailed))) ReadLocked();
  }

  // Sends queued frames until the socket is full or the queue is empty.
  void FlushLocked() {
    while (!queue_.empty() && !closed_) {
      PendingWrite& w = queue_.front();
      iovec iov{w.bytes.data(), w.bytes.size()};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxRegionsPerFrame)];
      const size_t fd_count = w.fds.empty() ? w.borrowed.size() : w.fds.size();
      if (fd_count > 0) {
        const size_t fd_bytes = sizeof(int) * fd_count;
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(fd_bytes);
        cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(fd_bytes);
        int* out = reinterpret_cast<int*>(CMSG_DATA(cmsg));
        for (size_t i = 0; i < fd_count; ++i) out[i] = w.fds.empty() ? w.borrowed[i] : static_cast<int>(w.fds[i].get());
      }
      const ssize_t sent = ::sendmsg(static_cast<int>(fd_.get()), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (sent < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          SetWantWriteLocked(true);
          return;
        }
        if (errno == EINTR) continue;
        const bool gone = errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN;
        FailLocked(gone ? MakeError("PEER_CLOSED", "the peer closed the connection")
                        : LastOsError("sendmsg", "sending a message"));
        return;
      }
      const uint64_t id = w.id;
      if (id == kUnreportedWrite) --owed_control_;
      queue_.pop_front();  // the kernel holds its own references to the fds now
      PostWriteDone(id, nullptr);
    }
    if (!closed_) SetWantWriteLocked(false);
  }

  // Gives a queued write fds of its own in place of the regions' (which may
  // be closed before the write happens).
  static Status HoldFds(PendingWrite& write) {
    for (int fd : write.borrowed) {
      const int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (dup < 0) {
        write.fds.clear();
        return LastOsError("fcntl(F_DUPFD_CLOEXEC)", "holding a region for sending");
      }
      write.fds.emplace_back(dup);
    }
    write.borrowed.clear();
    return Ok();
  }

  // Asks epoll for writability only while frames wait, and only touches epoll
  // when that changes (an epoll_ctl per send was measurable).
  void SetWantWriteLocked(bool want) {
    if (want == want_write_) return;
    want_write_ = want;
    if (watch_) return watch_->WantWritable(want);
    const uint32_t events = EPOLLIN | EPOLLRDHUP | (want ? static_cast<uint32_t>(EPOLLOUT) : 0u);
    IoThread::Get().Modify(static_cast<int>(fd_.get()), events);
  }

  // Reads every frame available now.
  void ReadLocked() {
    for (;;) {
      std::vector<uint8_t>& buffer = ReadBuffer();
      iovec iov{buffer.data(), buffer.size()};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxRegionsPerFrame)];
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      const ssize_t n = ::recvmsg(static_cast<int>(fd_.get()), &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        if (errno == EINTR) continue;
        FailLocked(errno == ECONNRESET ? MakeError("PEER_CLOSED", "the peer closed the connection")
                                       : LastOsError("recvmsg", "receiving a message"));
        return;
      }
      // Take ownership of every fd that arrived, before anything else can fail.
      std::vector<OsHandle> fds;
      bool foreign_control = false;
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
          const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
          const int* in = reinterpret_cast<const int*>(CMSG_DATA(c));
          for (size_t i = 0; i < count; ++i) fds.emplace_back(in[i]);
        } else {
          foreign_control = true;
        }
      }
      if (n == 0 && fds.empty()) {
        // On SOCK_SEQPACKET a zero-length record and end-of-stream both read
        // as 0; only end-of-stream leaves the socket read-hung-up.
        FailLocked(PeerHungUp() ? MakeError("PEER_CLOSED", "the peer closed the connection")
                                : MakeError("PROTOCOL", "the peer sent an empty frame"));
        return;
      }
      if ((msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) == MSG_CTRUNC && !foreign_control) {
        // The control buffer holds a whole frame's worth of fds, so a frame
        // that got fewer fds than it declares lost the rest to this process's
        // full fd table (EMFILE: the kernel closed them). Not the peer's
        // fault: that MESSAGE is refused (NACK), the connection goes on.
        Result<Frame> declared = DecodeFrame(buffer.data(), static_cast<size_t>(n));
        if (declared.ok() && declared.value().type == FrameType::kMessage && fds.size() < declared.value().regions.size()) {
          InboundMessage message;
          message.frame = declared.take();
          message.refused = MakeError("OUT_OF_MEMORY", "the receiver has no free fd for the message's regions (its fd limit is reached); "
                                                       "it was not received: send it again once the receiver has closed some fds");
          PostFrame(std::move(message));  // `fds` that did arrive are closed on the way out
          continue;
        }
      }
      if (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) {
        FailLocked(MakeError("PROTOCOL", (msg.msg_flags & MSG_CTRUNC) ? "the peer sent more fds than a frame may carry"
                                                                      : "the peer sent a frame over the size cap"));
        return;
      }
      if (foreign_control) {
        FailLocked(MakeError("PROTOCOL", "the peer sent unexpected ancillary data"));
        return;
      }
      Result<Frame> decoded = DecodeFrame(buffer.data(), static_cast<size_t>(n));
      if (!decoded.ok()) {
        FailLocked(decoded.error());
        return;
      }
      InboundMessage message;
      message.frame = decoded.take();
      if (fds.size() != message.frame.regions.size()) {
        FailLocked(MakeError("PROTOCOL", "the frame declares " + std::to_string(message.frame.regions.size()) +
                                             " regions but " + std::to_string(fds.size()) + " fds arrived"));
        return;
      }
      bool named = false;
      for (size_t i = 0; i < fds.size(); ++i) {
        const RegionDescriptor& d = message.frame.regions[i];
        if (d.handle != i) {
          FailLocked(MakeError("PROTOCOL", "region descriptor " + std::to_string(i) + " names fd index " +
                                               std::to_string(d.handle)));
          return;
        }
        named = named || d.named();
      }
      if (named && !limits_.accept_named_regions) {
        // Not wanted here: every fd is closed unmapped (`fds` still owns them)
        // and the sender's send() fails with this, saying what to do.
        message.refused = MakeError("UNSUPPORTED", NamedRegionRefusedMessage());
        PostFrame(std::move(message));
        continue;
      }
      for (size_t i = 0; i < fds.size(); ++i) {
        const RegionDescriptor& d = message.frame.regions[i];
        // A region flagged named may be unsealed POSIX shared memory (opted
        // in above); every other region is held to the sealed-memfd rule.
        Result<SharedMemory> adopted =
            d.named() ? SharedMemory::FromReceivedNamed(fds[i].get(), d.size, d.read_only())
                      : SharedMemory::FromReceived(fds[i].get(), d.size, d.read_only(), /*from_transport=*/true);
        if (!adopted.ok()) {
          FailLocked(adopted.error());  // `fds` (still ours) are closed on return
          return;
        }
        fds[i].release();  // now owned by the SharedMemory
        message.regions.push_back(adopted.take());
      }
      if (message.frame.type == FrameType::kMessage) ChargeLocked(message);
      PostFrame(std::move(message));
    }
  }

  // Charges a validated MESSAGE to the budget, or releases its handles (never
  // mapped) and marks it refused, to be answered with NACK.
  void ChargeLocked(InboundMessage& message) {
    int highest = -1;
    for (const SharedMemory& region : message.regions) highest = std::max(highest, static_cast<int>(region.raw()));
    if (highest >= 0 && !FdReserveKept(highest, limits_.fd_reserve)) {
      message.regions.clear();
      message.refused = MakeError("OUT_OF_MEMORY", "the receiver is close to its fd limit (it keeps " +
                                                       std::to_string(limits_.fd_reserve) +
                                                       " fds free for itself); receive earlier messages first");
      return;
    }
    Result<std::unique_ptr<InboxCharge>> charge = account_->Charge(message.frame);
    if (!charge.ok()) {
      message.regions.clear();
      message.refused = charge.error();
      return;
    }
    message.charge = charge.take();
  }

  // A connection closed before it was started (a refused client) was never
  // read. What the client queued meanwhile is discarded first, unparsed:
  // recv without a control buffer makes the kernel close the fds a frame
  // carried without installing them here (MSG_CTRUNC). Closing with frames
  // still queued would make the kernel report ECONNRESET to the client, which
  // then could not read the REJECT written just before (as Windows does in
  // DiscardUnreadLocked). Bounded: the socket's receive buffer holds few frames.
  void DiscardUnreadLocked() {
    uint8_t scratch[256];
    for (int i = 0; i < 4096; ++i) {
      if (::recv(static_cast<int>(fd_.get()), scratch, sizeof scratch, MSG_DONTWAIT | MSG_TRUNC) <= 0) return;
    }
  }

  bool PeerHungUp() const {
    pollfd p{static_cast<int>(fd_.get()), POLLRDHUP, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
  }

  // Ends the connection once: pending writes fail, the observer hears why.
  void FailLocked(const Error& error) {
    if (closed_) return;
    closed_ = true;
    // Writes still waiting, and any after, fail with the reason the
    // connection ended, as OnClosed reports it: CLOSED, PEER_CLOSED, or what
    // the peer was dropped for (PROTOCOL, INVALID_HANDLE, ...). The same on
    // every backend (test/native/transport_contract_test.cc, "close reasons").
    close_code_ = error.code;
    close_message_ = error.code == "CLOSED" ? "the connection is closed" : "the connection was lost: " + error.message;
    if (watch_) {
      watch_.reset();  // stops watching before the fd closes
    } else {
      IoThread::Get().Remove(static_cast<int>(fd_.get()));
    }
    ::shutdown(static_cast<int>(fd_.get()), SHUT_RDWR);
    fd_.reset();
    owed_control_ = 0;
    while (!queue_.empty()) {
      const uint64_t id = queue_.front().id;
      queue_.pop_front();
      Error failed = MakeError(close_code_, close_message_);
      PostWriteDone(id, &failed);
    }
    std::shared_ptr<ConnectionObserver> observer = observer_;
    if (observer) Deliver([observer, error] { observer->OnClosed(error); });
    // Nothing is reported after OnClosed; dropping the observer here lets the
    // JS side (whose callbacks it holds) be collected.
    observer_.reset();
  }

  void PostWriteDone(uint64_t id, const Error* error) {
    if (id != kUnreportedWrite && id == inline_write_ && error == nullptr) {
      inline_write_ = kUnreportedWrite;  // WriteInline reports it
      return;
    }
    std::shared_ptr<ConnectionObserver> observer = observer_;
    if (!observer || id == kUnreportedWrite) return;
    if (error == nullptr) {
      Deliver([observer, id] { observer->OnWriteDone(id, nullptr); });
    } else {
      Error copy = *error;
      Deliver([observer, id, copy] { observer->OnWriteDone(id, &copy); });
    }
  }

  // Inside OnJsThreadEvents observer calls are made when it returns;
  // anywhere else (the I/O thread, or Write/Close called from JS, which must
  // not be re-entered) they are posted.
  void Deliver(std::function<void()> task) {
    if (deliveries_ != nullptr) {
      deliveries_->push_back(std::move(task));
    } else {
      js_->Post(std::move(task));
    }
  }

  void PostFrame(InboundMessage message) {
    std::shared_ptr<ConnectionObserver> observer = observer_;
    if (!observer) return;
    auto shared = std::make_shared<InboundMessage>(std::move(message));
    Deliver([observer, shared] { observer->OnFrame(std::move(*shared)); });
  }

  mutable std::mutex mutex_;
  OsHandle fd_;
  PeerIdentity peer_;
  std::shared_ptr<JsThread> js_;
  std::shared_ptr<ConnectionObserver> observer_;
  std::deque<PendingWrite> queue_;
  std::unique_ptr<FdWatch> watch_;  // set when read on the JS thread
  Deliveries* deliveries_ = nullptr;  // set while OnJsThreadEvents runs
  uint64_t inline_write_ = kUnreportedWrite;  // the write WriteInline is flushing
  PeerLimits limits_;
  std::shared_ptr<InboxAccount> account_;
  uint64_t owed_control_ = 0;  // control frames queued here, not yet taken by the kernel
  bool closed_ = false;
  bool want_write_ = false;
  std::string close_code_;
  std::string close_message_;
};

// The binding holds a unique_ptr<Connection>; the I/O thread needs shared
// ownership of the same object, so the handed-out object is a thin owner.
class ConnectionHandle : public Connection {
 public:
  explicit ConnectionHandle(std::shared_ptr<UnixConnection> impl) : impl_(std::move(impl)) {}
  ~ConnectionHandle() override { impl_->Close(); }
  const PeerIdentity& peer() const override { return impl_->peer(); }
  bool PeerRunning() const override { return impl_->PeerRunning(); }
  Status Admit() override { return impl_->Admit(); }
  void Start(std::shared_ptr<ConnectionObserver> observer, const PeerLimits& limits) override {
    impl_->Start(std::move(observer), limits);
  }
  Status Write(uint64_t id, Frame frame, const std::vector<const SharedMemory*>& regions) override {
    return impl_->Write(id, std::move(frame), regions);
  }
  Status WriteInline(uint64_t id, Frame frame, const std::vector<const SharedMemory*>& regions,
                     bool* completed) override {
    return impl_->WriteInline(id, std::move(frame), regions, completed);
  }
  void Close() override { impl_->Close(); }

 private:
  std::shared_ptr<UnixConnection> impl_;
};

}  // namespace

std::unique_ptr<Connection> NewUnixConnection(OsHandle socket, const PeerIdentity& peer, std::shared_ptr<JsThread> js) {
  return std::make_unique<ConnectionHandle>(std::make_shared<UnixConnection>(std::move(socket), peer, std::move(js)));
}

}  // namespace memport
