// The Linux transport: SOCK_SEQPACKET Unix sockets in a private directory,
// regions passed as fds with SCM_RIGHTS, peers identified by SO_PEERCRED.
//
// Why these choices (docs/SECURITY.md has the full list):
//  - SEQPACKET keeps message boundaries, so fds always arrive with their frame.
//  - Path sockets in a 0700 directory we own, never the abstract namespace
//    (abstract sockets have no permissions: any user could connect).
//  - A lock file held for the listener's whole life makes "is the old socket
//    stale?" an exact question instead of a connect() race.
//  - recvmsg always offers room for the maximum fd count, uses
//    MSG_CMSG_CLOEXEC, takes ownership of every fd at once, and drops the
//    connection on MSG_CTRUNC / MSG_TRUNC.
//
// Threading: one epoll thread per process waits for every listening socket,
// and for connections where the binding cannot watch fds itself; results
// reach the JS thread through JsThread::Post. Connections are otherwise read
// on the JS thread (JsThread::WatchFd): one wake-up per frame instead of two.
//
// This file: the listener and Listen(); the rest of the backend is
// socket_security (directory, name lock, peer identity), io_thread (epoll),
// unix_connection, unix_connect (connect()'s OS steps), fd_budget.
#include <errno.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <mutex>
#include <string>

#include "../core/handover.h"
#include "../core/transport.h"
#include "fd_budget.h"
#include "io_thread.h"
#include "socket_security.h"
#include "unix_connection.h"

namespace memport {

namespace {

constexpr int kBacklog = 128;
// How long a listener out of fds waits before trying to accept again.
constexpr std::chrono::milliseconds kAcceptRetryDelay{100};

// ---------------------------------------------------------------------------
// The listener.

class UnixListener : public Pollable, public std::enable_shared_from_this<UnixListener> {
 public:
  UnixListener(OsHandle socket, NameLock lock, std::string path, std::string lock_path, std::shared_ptr<JsThread> js,
               std::shared_ptr<ListenerObserver> observer, uint64_t fd_reserve)
      : fd_reserve_(fd_reserve),
        socket_(std::move(socket)),
        lock_(std::move(lock)),
        path_(std::move(path)),
        lock_path_(std::move(lock_path)),
        js_(std::move(js)),
        observer_(std::move(observer)),
        handover_(std::make_shared<ConnectionHandover>(js_, observer_)) {}

  const std::string& path() const { return path_; }

  void OnEvents(uint32_t /*events*/) override {
    std::lock_guard<std::mutex> lock(mutex_);
    while (!closed_) {
      const int fd = ::accept4(static_cast<int>(socket_.get()), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          // No fd (or memory) to accept with: the client stays in the backlog
          // and the socket stays readable, so look again a little later
          // instead of spinning on it.
          IoThread::Get().PauseThenWatch(static_cast<int>(socket_.get()), EPOLLIN, kAcceptRetryDelay);
          return;
        }
        Error error = LastOsError("accept4", "accepting a connection");
        std::shared_ptr<ListenerObserver> observer = observer_;
        js_->Post([observer, error] { observer->OnListenerError(error); });
        return;
      }
      OsHandle conn(fd);
      // A client may not take the fds the process keeps for itself: it is
      // closed unheard (it sees the connection end before any WELCOME).
      if (!FdReserveKept(fd, fd_reserve_)) continue;
      Result<PeerIdentity> peer = PeerCredentials(fd);
      if (!peer.ok()) continue;  // the client is already gone
      handover_->Deliver(NewUnixConnection(std::move(conn), peer.value(), js_));
    }
  }

  void Close() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;
    closed_ = true;
    IoThread::Get().Remove(static_cast<int>(socket_.get()));
    // Unlink while we still hold the lock, so no other listener's fresh files are removed.
    ::unlink(path_.c_str());
    ::unlink(lock_path_.c_str());
    socket_.reset();
    lock_.reset();  // closing the fd drops both locks
    handover_->Close();  // accepted clients not handed over yet learn at once
  }

 private:
  const uint64_t fd_reserve_;  // the listener's limits.fdReserve, kept at accept
  std::mutex mutex_;
  OsHandle socket_;
  NameLock lock_;
  std::string path_;
  std::string lock_path_;
  std::shared_ptr<JsThread> js_;
  std::shared_ptr<ListenerObserver> observer_;
  const std::shared_ptr<ConnectionHandover> handover_;
  bool closed_ = false;
};

class ListenerHandle : public Listener {
 public:
  explicit ListenerHandle(std::shared_ptr<UnixListener> impl) : impl_(std::move(impl)) {}
  ~ListenerHandle() override { impl_->Close(); }
  const std::string& address() const override { return impl_->path(); }
  void Close() override { impl_->Close(); }

 private:
  std::shared_ptr<UnixListener> impl_;
};

}  // namespace

// ---------------------------------------------------------------------------

Result<std::string> ChannelAddress(const std::string& name) {
  Status valid = ValidateChannelName(name);
  if (!valid.ok()) return valid.error();
  return SocketDirectory() + "/" + CanonicalChannelName(name) + ".sock";
}

Result<std::unique_ptr<Listener>> Listen(const std::string& name, std::shared_ptr<JsThread> js,
                                         std::shared_ptr<ListenerObserver> observer, const PeerLimits& limits) {
  Result<std::string> path = ChannelAddress(name);
  if (!path.ok()) return path.error();
  const std::string dir = SocketDirectory();
  Result<OsHandle> dir_fd = OpenPrivateDirectory(dir, /*create=*/true);
  if (!dir_fd.ok()) return dir_fd.error();
  const int dfd = static_cast<int>(dir_fd.value().get());
  const std::string base = CanonicalChannelName(name);
  Result<sockaddr_un> addr = SocketAddress(dfd, dir, base + ".sock");
  if (!addr.ok()) return addr.error();

  // Whoever holds this lock owns the name; a crashed owner's lock is released
  // by the kernel, which is what makes its leftover socket file safe to remove.
  const std::string lock_path = dir + "/" + base + ".lock";
  Result<NameLock> locked = LockName(dfd, base + ".lock", name);
  if (!locked.ok()) {
    Error error = locked.error();
    // Name the holder where the kernel tells (F_GETLK), so the user knows which process to stop.
    Result<int64_t> holder = error.code == "ALREADY_EXISTS" ? NameLockHolder(dfd, base + ".lock") : Result<int64_t>(int64_t{0});
    if (holder.ok() && holder.value() > 0) {
      error.message += holder.value() == static_cast<int64_t>(::getpid()) ? " (this process)"
                                                                         : " (process " + std::to_string(holder.value()) + ")";
    }
    return error;
  }
  NameLock lock = locked.take();
  ::unlinkat(dfd, (base + ".sock").c_str(), 0);  // stale socket of a listener that died

  OsHandle socket(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!socket.valid()) return LastOsError("socket", "creating a listening socket");
  const sockaddr_un& a = addr.value();
  if (::bind(static_cast<int>(socket.get()), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    return LastOsError("bind", "binding " + path.value());
  }
  if (::listen(static_cast<int>(socket.get()), kBacklog) != 0) {
    Error failed = LastOsError("listen", "listening on " + path.value());
    ::unlinkat(dfd, (base + ".sock").c_str(), 0);
    return failed;
  }
  const int fd = static_cast<int>(socket.get());
  auto impl = std::make_shared<UnixListener>(std::move(socket), std::move(lock), path.value(), lock_path, std::move(js),
                                             std::move(observer), limits.fd_reserve);
  Status added = IoThread::Get().Add(fd, EPOLLIN, impl);
  if (!added.ok()) {
    impl->Close();
    return added.error();
  }
  return std::unique_ptr<Listener>(new ListenerHandle(std::move(impl)));
}

}  // namespace memport
