// Linux: a connection's OS half (its state machine is ConnectionCore,
// native/core/connection_core.h). Frames and their fds go out with sendmsg (a region's
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

#include "../core/connection_core.h"
#include "../core/frame.h"
#include "../core/inbox.h"
#include "../core/shared_memory.h"
#include "fd_budget.h"
#include "io_thread.h"
#include "socket_security.h"

namespace memport {

namespace {

// ---------------------------------------------------------------------------
// A connection: the OS half of ConnectionCore (connection_core.h).

struct PendingWrite {
  WriteToken token;
  std::vector<uint8_t> bytes;
  std::vector<OsHandle> fds;  // our own duplicates: the region may be closed before the write happens
  // The regions' own fds, for a write sent before OsSendLocked returns (the
  // regions cannot be closed meanwhile); duplicated into `fds` only if the
  // write has to wait in the queue.
  std::vector<int> borrowed;
};

class UnixConnection : public ConnectionCore, public Pollable {
 public:
  UnixConnection(OsHandle fd, const PeerIdentity& peer, std::shared_ptr<JsThread> js)
      : ConnectionCore(peer, std::move(js)), fd_(std::move(fd)) {}

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

 protected:
  bool OsPeerRunningLocked() const override {
    return PeerProcessState(static_cast<int>(fd_.get())) != PeerProcess::kExited;
  }

  Status OsAdmitLocked() override {
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

  uint64_t OsProcessHandleLimit(const PeerLimits& limits) const override {
    return ProcessHandleLimit(limits.fd_reserve);
  }

  void OsStartReadingLocked() override {
    std::weak_ptr<UnixConnection> weak = std::static_pointer_cast<UnixConnection>(shared_from_this());
    watch_ = js_->WatchFd(static_cast<int>(fd_.get()), [weak](uint32_t ready, Deliveries& deliveries) {
      if (std::shared_ptr<UnixConnection> self = weak.lock()) self->OnJsThreadEvents(ready, deliveries);
    });
    if (watch_) return;
    Status added = IoThread::Get().Add(static_cast<int>(fd_.get()), EPOLLIN | EPOLLRDHUP,
                                       std::static_pointer_cast<UnixConnection>(shared_from_this()));
    if (!added.ok()) EndLocked(added.error());
  }

  // Descriptor i names the i-th fd of the message's SCM_RIGHTS. Sent at once
  // if nothing waits before it, else queued until the socket is writable.
  Status OsSendLocked(WriteToken token, Frame frame, const std::vector<const SharedMemory*>& regions,
                      const std::vector<const Notifier*>& notifiers) override {
    PendingWrite write{token, {}, {}, {}};
    for (const SharedMemory* region : regions) write.borrowed.push_back(static_cast<int>(region->raw()));
    for (const Notifier* notifier : notifiers) write.borrowed.push_back(static_cast<int>(notifier->raw()));
    for (size_t i = 0; i < frame.regions.size(); ++i) frame.regions[i].handle = static_cast<uint32_t>(i);
    Result<std::vector<uint8_t>> encoded = EncodeFrame(frame);
    if (!encoded.ok()) return encoded.error();
    write.bytes = encoded.take();
    const bool send_now = queue_.empty();
    if (!send_now) {
      Status held = HoldFds(write);
      if (!held.ok()) return held;
    }
    queue_.push_back(std::move(write));
    if (!send_now) return Ok();
    FlushLocked();
    // Not sent yet (the socket is full): it waits in the queue, so it needs
    // fds of its own. A failure here leaves it unsent: take it back.
    if (!closed_locked() && !queue_.empty() && queue_.front().token == token && !queue_.front().borrowed.empty()) {
      Status held = HoldFds(queue_.front());
      if (!held.ok()) {
        queue_.pop_front();
        SetWantWriteLocked(false);
        return held;
      }
    }
    return Ok();
  }

  void OsEndLocked() override {
    if (watch_) {
      watch_.reset();  // stops watching before the fd closes
    } else {
      IoThread::Get().Remove(static_cast<int>(fd_.get()));
    }
    ::shutdown(static_cast<int>(fd_.get()), SHUT_RDWR);
    fd_.reset();
    queue_.clear();  // the core fails every write still in it
  }

  // A connection closed before it was started (a refused client) was never
  // read. What the client queued meanwhile is discarded first, unparsed:
  // recv without a control buffer makes the kernel close the fds a frame
  // carried without installing them here (MSG_CTRUNC). Closing with frames
  // still queued would make the kernel report ECONNRESET to the client, which
  // then could not read the REJECT written just before. Bounded: the
  // socket's receive buffer holds few frames.
  void OsDiscardUnreadLocked() override {
    uint8_t scratch[256];
    for (int i = 0; i < 4096; ++i) {
      if (::recv(static_cast<int>(fd_.get()), scratch, sizeof scratch, MSG_DONTWAIT | MSG_TRUNC) <= 0) return;
    }
  }

  // The fd reserve: a message whose fds took one of the numbers kept free
  // for the application is refused (its fds released unmapped).
  Status OsReserveFor(const InboundMessage& message) override {
    int highest = -1;
    for (const SharedMemory& region : message.regions) highest = std::max(highest, static_cast<int>(region.raw()));
    for (const Notifier& notifier : message.notifiers) highest = std::max(highest, static_cast<int>(notifier.raw()));
    if (highest >= 0 && !FdReserveKept(highest, limits().fd_reserve)) {
      return MakeError("OUT_OF_MEMORY", "the receiver is close to its fd limit (it keeps " +
                                            std::to_string(limits().fd_reserve) +
                                            " fds free for itself); receive earlier messages first");
    }
    return Ok();
  }

 private:
  // Writes what waits if the socket takes it, then reads what arrived.
  void OnReadyLocked(uint32_t ready) {
    if (closed_locked()) return;
    if (ready & kWritable) FlushLocked();
    if (!closed_locked() && (ready & (kReadable | kHungUp | kFailed))) ReadLocked();
  }

  // Sends queued frames until the socket is full or the queue is empty.
  void FlushLocked() {
    while (!queue_.empty() && !closed_locked()) {
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
        EndLocked(gone ? MakeError("PEER_CLOSED", "the peer closed the connection")
                       : LastOsError("sendmsg", "sending a message"));
        return;
      }
      const WriteToken token = w.token;
      queue_.pop_front();  // the kernel holds its own references to the fds now
      FinishWriteLocked(token, nullptr);
    }
    if (!closed_locked()) SetWantWriteLocked(false);
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
        EndLocked(errno == ECONNRESET ? MakeError("PEER_CLOSED", "the peer closed the connection")
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
        EndLocked(PeerHungUp() ? MakeError("PEER_CLOSED", "the peer closed the connection")
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
          DeliverFrameLocked(std::move(message));  // `fds` that did arrive are closed on the way out
          continue;
        }
      }
      if (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) {
        EndLocked(MakeError("PROTOCOL", (msg.msg_flags & MSG_CTRUNC) ? "the peer sent more fds than a frame may carry"
                                                                     : "the peer sent a frame over the size cap"));
        return;
      }
      if (foreign_control) {
        EndLocked(MakeError("PROTOCOL", "the peer sent unexpected ancillary data"));
        return;
      }
      Result<Frame> decoded = DecodeFrame(buffer.data(), static_cast<size_t>(n));
      if (!decoded.ok()) {
        EndLocked(decoded.error());
        return;
      }
      InboundMessage message;
      message.frame = decoded.take();
      if (fds.size() != message.frame.regions.size()) {
        EndLocked(MakeError("PROTOCOL", "the frame declares " + std::to_string(message.frame.regions.size()) +
                                            " handles but " + std::to_string(fds.size()) + " fds arrived"));
        return;
      }
      std::vector<RawHandle> raws;
      for (size_t i = 0; i < fds.size(); ++i) {
        if (message.frame.regions[i].handle != i) {
          EndLocked(MakeError("PROTOCOL", "descriptor " + std::to_string(i) + " names fd index " +
                                              std::to_string(message.frame.regions[i].handle)));
          return;
        }
        raws.push_back(fds[i].get());
      }
      // A region flagged named may be unsealed POSIX shared memory (when
      // opted in); every other region is held to the sealed-memfd rule, and
      // a notifier must be an eventfd.
      Error failure = AdoptHandles(&message, raws, &fds, limits().accept_named_regions);
      if (!failure.code.empty()) {
        EndLocked(failure);  // `fds` still owned are closed on return
        return;
      }
      Charge(message);
      DeliverFrameLocked(std::move(message));
    }
  }

  bool PeerHungUp() const {
    pollfd p{static_cast<int>(fd_.get()), POLLRDHUP, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
  }

  OsHandle fd_;
  std::deque<PendingWrite> queue_;
  std::unique_ptr<FdWatch> watch_;  // set when read on the JS thread
  bool want_write_ = false;
};

}  // namespace

std::unique_ptr<Connection> NewUnixConnection(OsHandle socket, const PeerIdentity& peer, std::shared_ptr<JsThread> js) {
  return ConnectionCore::Own(std::make_shared<UnixConnection>(std::move(socket), peer, std::move(js)));
}

}  // namespace memport
