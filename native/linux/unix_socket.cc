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
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "../core/transport.h"

namespace memport {

namespace {

constexpr int kBacklog = 128;
// How long a listener out of fds waits before trying to accept again.
constexpr std::chrono::milliseconds kAcceptRetryDelay{100};

// ---------------------------------------------------------------------------
// The private directory and the socket path a name maps to.

std::string SocketDirectory() {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  if (runtime != nullptr && runtime[0] == '/') {
    struct stat st;
    // Only a runtime dir that really is ours and private (as the XDG spec requires).
    if (::lstat(runtime, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::geteuid() && (st.st_mode & 077) == 0) {
      return std::string(runtime) + "/memport";
    }
  }
  return "/tmp/memport-" + std::to_string(::geteuid());
}

// Creates the directory if needed and checks it is a real directory, owned by
// us, with no access for anyone else. A directory someone else planted (or a
// symlink to one) is refused rather than used.
Status EnsurePrivateDirectory(const std::string& dir, bool create) {
  if (create && ::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return LastOsError("mkdir", "creating the private socket directory " + dir);
  }
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return MakeError("NOT_FOUND", "no memport listener exists for this user (" + dir + " is missing)");
    return LastOsError("lstat", "checking the private socket directory " + dir);
  }
  if (!S_ISDIR(st.st_mode)) return MakeError("ACCESS_DENIED", dir + " is not a directory (possibly planted by another user); remove it");
  if (st.st_uid != ::geteuid()) return MakeError("ACCESS_DENIED", dir + " is owned by another user; remove it or set XDG_RUNTIME_DIR");
  if ((st.st_mode & 077) != 0) return MakeError("ACCESS_DENIED", dir + " is accessible to other users; run: chmod 700 " + dir);
  return Ok();
}

Result<sockaddr_un> SocketAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return MakeError("INVALID_ARGUMENT", "the socket path " + path + " is too long for a Unix socket; set a shorter XDG_RUNTIME_DIR");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

Result<PeerIdentity> PeerCredentials(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return LastOsError("getsockopt(SO_PEERCRED)", "identifying the peer");
  }
  PeerIdentity peer;
  peer.pid = cred.pid;
  peer.uid = cred.uid;
  peer.gid = cred.gid;
  return peer;
}

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77  // Linux 6.5; older C library headers lack it
#endif

// Whether the process at the other end of `fd` is still running, asked
// through its pidfd, which names that process and no other: it becomes
// readable once the process has exited. Kernels before 6.5 cannot say.
enum class PeerProcess { kRunning, kExited, kUnknown };

PeerProcess PeerProcessState(int fd) {
  int pidfd = -1;
  socklen_t len = sizeof pidfd;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) != 0) {
    // ESRCH / EINVAL: a kernel that makes no pidfd for a process already
    // reaped. ENOPROTOOPT: older than 6.5. EMFILE and the like: cannot ask.
    return errno == ESRCH || errno == EINVAL ? PeerProcess::kExited : PeerProcess::kUnknown;
  }
  OsHandle owned(pidfd);  // the kernel makes pidfds close-on-exec
  pollfd watch{pidfd, POLLIN, 0};
  const int ready = ::poll(&watch, 1, /*timeout=*/0);
  if (ready < 0) return PeerProcess::kUnknown;
  return ready > 0 ? PeerProcess::kExited : PeerProcess::kRunning;
}

// ---------------------------------------------------------------------------
// File descriptors: peers' handles never take the process's last ones.

uint64_t FdLimit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return uint64_t{1} << 20;
  return static_cast<uint64_t>(limit.rlim_cur);
}

// Handles that all connections together may hold in unreceived messages: half
// of what the fd limit leaves after the reserve.
uint64_t ProcessHandleLimit(uint64_t reserve) {
  const uint64_t limit = FdLimit();
  reserve = std::min(reserve, limit / 4);
  return limit > reserve ? (limit - reserve) / 2 : 0;
}

// Open fds in this process, counted in /proc/self/fd; -1 when they cannot be
// counted (no fd left to open the directory with, for one).
int64_t CountOpenFds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int64_t count = 0;
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count - 1;  // the directory's own fd
}

// Whether taking fds up to number `highest` left at least `reserve` fds free
// (at most a quarter of the limit: a process run with a tiny limit still
// serves). The kernel hands out the lowest free numbers, so while `highest`
// is in the lower half of the table there is room; only then are fds counted.
bool FdReserveKept(int highest, uint64_t reserve) {
  const uint64_t limit = FdLimit();
  reserve = std::min(reserve, limit / 4);
  if (static_cast<uint64_t>(highest) < limit / 2) return true;
  const int64_t open = CountOpenFds();
  return open >= 0 && static_cast<uint64_t>(open) + reserve <= limit;
}

// One frame's buffer per reading thread (the JS thread, the epoll thread, a
// worker's JS thread), not per connection: an idle connection then costs a
// few hundred bytes instead of the largest frame.
std::vector<uint8_t>& ReadBuffer() {
  thread_local std::vector<uint8_t> buffer(kMaxFrameSize + 1);
  return buffer;
}

// ---------------------------------------------------------------------------
// The epoll thread.

class Pollable {
 public:
  virtual ~Pollable() = default;
  virtual void OnEvents(uint32_t events) = 0;  // on the I/O thread
};

class IoThread {
 public:
  static IoThread& Get() {
    static IoThread* instance = new IoThread();  // lives for the process; never joined at exit
    return *instance;
  }

  Status Add(int fd, uint32_t events, std::shared_ptr<Pollable> target) {
    const uint64_t key = next_key_++;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      targets_[key] = {fd, std::move(target)};
    }
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = key;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      Error e = LastOsError("epoll_ctl", "watching a socket");
      std::lock_guard<std::mutex> lock(mutex_);
      targets_.erase(key);
      return e;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    keys_[fd] = key;
    return Ok();
  }

  void Modify(int fd, uint32_t events) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = keys_.find(fd);
    if (it == keys_.end()) return;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = it->second;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev);
  }

  // Stops watching `fd` for `delay`, then watches it for `events` again (if it
  // is still registered by then). Called on the I/O thread. For a condition that level-triggered epoll
  // would report in a tight loop, such as a backlog no fd is free to accept.
  void PauseThenWatch(int fd, uint32_t events, std::chrono::milliseconds delay) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = keys_.find(fd);
    if (it == keys_.end()) return;
    epoll_event ev{};
    ev.data.u64 = it->second;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev);
    paused_.push_back({std::chrono::steady_clock::now() + delay, it->second, events});
  }

  // After Remove returns, no new event for `fd` is dispatched; one already
  // being dispatched may still finish (targets guard with their own state).
  void Remove(int fd) {
    std::shared_ptr<Pollable> dropped;  // destroyed outside the lock
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = keys_.find(fd);
    if (it == keys_.end()) return;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
    auto target = targets_.find(it->second);
    if (target != targets_.end()) {
      dropped = std::move(target->second.second);
      targets_.erase(target);
    }
    keys_.erase(it);
  }

 private:
  IoThread() : epoll_(::epoll_create1(EPOLL_CLOEXEC)) {
    std::thread([this] { Run(); }).detach();
  }

  void Run() {
    epoll_event events[64];
    for (;;) {
      const int n = ::epoll_wait(epoll_.get(), events, 64, ResumePaused());
      if (n < 0) {
        if (errno == EINTR) continue;
        return;
      }
      for (int i = 0; i < n; ++i) {
        std::shared_ptr<Pollable> target;
        {
          std::lock_guard<std::mutex> lock(mutex_);
          auto it = targets_.find(events[i].data.u64);
          if (it != targets_.end()) target = it->second.second;
        }
        if (target) target->OnEvents(events[i].events);
      }
    }
  }

  // Re-arms every paused target whose time has come (keyed by registration,
  // so an fd number reused since is never re-armed by mistake); returns the
  // epoll_wait timeout until the next one, or -1.
  int ResumePaused() {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    int timeout = -1;
    for (size_t i = 0; i < paused_.size();) {
      const Paused& p = paused_[i];
      if (p.until <= now) {
        auto target = targets_.find(p.key);
        if (target != targets_.end()) {
          epoll_event ev{};
          ev.events = p.events;
          ev.data.u64 = p.key;
          ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, target->second.first, &ev);
        }
        paused_[i] = paused_.back();
        paused_.pop_back();
        continue;
      }
      const auto ms = std::chrono::ceil<std::chrono::milliseconds>(p.until - now).count();
      if (timeout < 0 || ms < timeout) timeout = static_cast<int>(ms);
      ++i;
    }
    return timeout;
  }

  struct Paused {
    std::chrono::steady_clock::time_point until;
    uint64_t key;
    uint32_t events;
  };

  OsHandle epoll_;
  std::vector<Paused> paused_;
  std::atomic<uint64_t> next_key_{1};
  std::mutex mutex_;
  std::unordered_map<uint64_t, std::pair<int, std::shared_ptr<Pollable>>> targets_;
  std::unordered_map<int, uint64_t> keys_;
};

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
    if (closed_) return;
    observer_ = std::move(observer);
    limits_ = limits;
    account_ = std::make_shared<InboxAccount>(limits, ProcessHandleLimit(limits.fd_reserve), peer_.pid);
    std::weak_ptr<UnixConnection> weak = shared_from_this();
    watch_ = js_->WatchFd(static_cast<int>(fd_.get()), [weak](uint32_t events, Deliveries& deliveries) {
      if (std::shared_ptr<UnixConnection> self = weak.lock()) self->OnJsThreadEvents(events, deliveries);
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
      frame.regions[i].flags = region->read_only() ? kRegionReadOnly : 0;
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
    FailLocked(MakeError("CLOSED", "the connection was closed"));
  }

  void OnEvents(uint32_t events) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;
    if (events & EPOLLOUT) FlushLocked();
    if (!closed_ && (events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))) ReadLocked();
  }

  // The same, called by the JS thread's loop: what would be posted to the JS
  // thread is handed back in `deliveries` instead, to be called once the lock
  // is released.
  void OnJsThreadEvents(uint32_t events, Deliveries& deliveries) {
    std::lock_guard<std::mutex> lock(mutex_);
    deliveries_ = &deliveries;
    if (!closed_) {
      if (events & EPOLLOUT) FlushLocked();
      if (!closed_ && (events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))) ReadLocked();
    }
    deliveries_ = nullptr;
  }

 private:
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
      for (size_t i = 0; i < fds.size(); ++i) {
        const RegionDescriptor& d = message.frame.regions[i];
        if (d.handle != i) {
          FailLocked(MakeError("PROTOCOL", "region descriptor " + std::to_string(i) + " names fd index " +
                                               std::to_string(d.handle)));
          return;
        }
        Result<SharedMemory> adopted = SharedMemory::FromReceived(fds[i].get(), d.size, d.read_only(), /*from_transport=*/true);
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

  bool PeerHungUp() const {
    pollfd p{static_cast<int>(fd_.get()), POLLRDHUP, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
  }

  // Ends the connection once: pending writes fail, the observer hears why.
  void FailLocked(const Error& error) {
    if (closed_) return;
    closed_ = true;
    close_code_ = error.code == "CLOSED" ? "CLOSED" : "PEER_CLOSED";
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

std::unique_ptr<Connection> MakeConnection(std::shared_ptr<UnixConnection> impl) {
  return std::make_unique<ConnectionHandle>(std::move(impl));
}

// ---------------------------------------------------------------------------
// The listener.

class UnixListener : public Pollable, public std::enable_shared_from_this<UnixListener> {
 public:
  UnixListener(OsHandle socket, OsHandle lock, std::string path, std::string lock_path, std::shared_ptr<JsThread> js,
               std::shared_ptr<ListenerObserver> observer)
      : socket_(std::move(socket)),
        lock_(std::move(lock)),
        path_(std::move(path)),
        lock_path_(std::move(lock_path)),
        js_(std::move(js)),
        observer_(std::move(observer)) {}

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
      if (!FdReserveKept(fd, PeerLimits{}.fd_reserve)) continue;
      Result<PeerIdentity> peer = PeerCredentials(fd);
      if (!peer.ok()) continue;  // the client is already gone
      auto connection = std::make_shared<UnixConnection>(std::move(conn), peer.value(), js_);
      std::shared_ptr<ListenerObserver> observer = observer_;
      js_->Post([observer, connection] { observer->OnConnection(MakeConnection(connection)); });
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
    lock_.reset();
  }

 private:
  std::mutex mutex_;
  OsHandle socket_;
  OsHandle lock_;
  std::string path_;
  std::string lock_path_;
  std::shared_ptr<JsThread> js_;
  std::shared_ptr<ListenerObserver> observer_;
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
                                         std::shared_ptr<ListenerObserver> observer) {
  Result<std::string> path = ChannelAddress(name);
  if (!path.ok()) return path.error();
  const std::string dir = SocketDirectory();
  Status private_dir = EnsurePrivateDirectory(dir, /*create=*/true);
  if (!private_dir.ok()) return private_dir.error();
  Result<sockaddr_un> addr = SocketAddress(path.value());
  if (!addr.ok()) return addr.error();

  // Whoever holds this lock owns the name; a crashed owner's lock is released
  // by the kernel, which is what makes its leftover socket file safe to remove.
  const std::string lock_path = dir + "/" + CanonicalChannelName(name) + ".lock";
  OsHandle lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!lock.valid()) return LastOsError("open", "opening the lock for channel '" + name + "'");
  if (::flock(static_cast<int>(lock.get()), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return MakeError("ALREADY_EXISTS", "the channel name '" + name + "' is already in use by a live listener");
    }
    return LastOsError("flock", "locking channel '" + name + "'");
  }
  ::unlink(path.value().c_str());  // stale socket of a listener that died

  OsHandle socket(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!socket.valid()) return LastOsError("socket", "creating a listening socket");
  const sockaddr_un& a = addr.value();
  if (::bind(static_cast<int>(socket.get()), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    return LastOsError("bind", "binding " + path.value());
  }
  if (::listen(static_cast<int>(socket.get()), kBacklog) != 0) {
    ::unlink(path.value().c_str());
    return LastOsError("listen", "listening on " + path.value());
  }
  const int fd = static_cast<int>(socket.get());
  auto impl = std::make_shared<UnixListener>(std::move(socket), std::move(lock), path.value(), lock_path, std::move(js),
                                             std::move(observer));
  Status added = IoThread::Get().Add(fd, EPOLLIN, impl);
  if (!added.ok()) {
    impl->Close();
    return added.error();
  }
  return std::unique_ptr<Listener>(new ListenerHandle(std::move(impl)));
}

void Connect(const std::string& name, uint32_t timeout_ms, int64_t expected_server_pid, std::shared_ptr<JsThread> js,
             std::function<void(Result<std::unique_ptr<Connection>>)> done) {
  // connect(2) on a Unix socket only waits when the listener's backlog is
  // full; that wait (bounded by the timeout) happens on a short-lived thread.
  std::thread([name, timeout_ms, expected_server_pid, js, done = std::move(done)]() mutable {
    auto finish = [&](Result<std::unique_ptr<Connection>> result) {
      auto shared = std::make_shared<Result<std::unique_ptr<Connection>>>(std::move(result));
      js->Post([done = std::move(done), shared]() mutable { done(std::move(*shared)); });
    };
    Result<std::string> path = ChannelAddress(name);
    if (!path.ok()) return finish(path.error());
    Status private_dir = EnsurePrivateDirectory(SocketDirectory(), /*create=*/false);
    if (!private_dir.ok()) return finish(private_dir.error());
    Result<sockaddr_un> addr = SocketAddress(path.value());
    if (!addr.ok()) return finish(addr.error());

    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      OsHandle socket(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      if (!socket.valid()) return finish(LastOsError("socket", "creating a socket"));
      const sockaddr_un& a = addr.value();
      if (::connect(static_cast<int>(socket.get()), reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0) {
        Result<PeerIdentity> peer = PeerCredentials(static_cast<int>(socket.get()));
        if (!peer.ok()) return finish(peer.error());
        // The directory is private, so only we (or root) can have bound there;
        // check the kernel's word anyway before trusting the peer with anything.
        if (peer.value().uid != static_cast<int64_t>(::geteuid()) && peer.value().uid != 0) {
          return finish(MakeError("ACCESS_DENIED", "the listener runs as another user"));
        }
        if (expected_server_pid > 0 && peer.value().pid != expected_server_pid) {
          return finish(MakeError("ACCESS_DENIED", "the listener is process " + std::to_string(peer.value().pid) +
                                                       ", not the expected " + std::to_string(expected_server_pid)));
        }
        // The PID matched; while that process still runs, the PID is its
        // alone, so the match was about the listener and not a process that
        // inherited the number.
        if (expected_server_pid > 0 &&
            PeerProcessState(static_cast<int>(socket.get())) == PeerProcess::kExited) {
          return finish(MakeError("PEER_CLOSED", "the listener (process " + std::to_string(expected_server_pid) +
                                                     ") exited while connecting"));
        }
        return finish(MakeConnection(std::make_shared<UnixConnection>(std::move(socket), peer.value(), js)));
      }
      const int err = errno;
      if (err == ENOENT || err == ECONNREFUSED) {
        return finish(MakeError("NOT_FOUND", "no listener named '" + name + "' (" + path.value() + ")"));
      }
      if (err != EAGAIN && err != EINTR) return finish(OsError(err, "connect", "connecting to '" + name + "'"));
      if (std::chrono::steady_clock::now() >= deadline) {
        return finish(MakeError("TIMEOUT", "the listener '" + name + "' did not accept within " +
                                               std::to_string(timeout_ms) + " ms"));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }).detach();
}

}  // namespace memport
