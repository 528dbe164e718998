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
#include <pwd.h>
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
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "../core/connect.h"
#include "../core/named.h"
#include "../core/transport.h"

namespace memport {

namespace {

constexpr int kBacklog = 128;
// How long a listener out of fds waits before trying to accept again.
constexpr std::chrono::milliseconds kAcceptRetryDelay{100};

// ---------------------------------------------------------------------------
// The private directory and the socket path a name maps to.

// A directory that is ours alone: owned by the effective uid, no group or
// other access (the XDG runtime-dir rule).
bool IsPrivateDirectory(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::geteuid() && (st.st_mode & 077) == 0;
}

// The user's home, if no other user can create entries in it (owned by us,
// not group/other-writable): then nobody else can plant <home>/.cache/memport.
std::string PlantProofHome() {
  std::string home;
  const char* env = std::getenv("HOME");
  if (env != nullptr && env[0] == '/') {
    home = env;
  } else {
    passwd entry{};
    passwd* found = nullptr;
    std::vector<char> buffer(16384);
    if (::getpwuid_r(::geteuid(), &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr &&
        found->pw_dir != nullptr && found->pw_dir[0] == '/') {
      home = found->pw_dir;
    }
  }
  struct stat st;
  // stat, not lstat: a home reached through a symlink (/home -> /usr/home) is usual.
  if (home.empty() || ::stat(home.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() ||
      (st.st_mode & 022) != 0) {
    return "";
  }
  return home;
}

// Where this user's sockets live (docs/PROTOCOL.md, "Path"), the first that applies:
//  1. $XDG_RUNTIME_DIR/memport, when that variable names a private directory of ours;
//  2. /run/user/<euid>/memport, when that is one (logind's runtime directory,
//     for sessions without the variable: sudo, cron, some ssh setups);
//  3. <home>/.cache/memport, when no other user can write to the home;
//  4. /tmp/memport-<euid> only when none of those exists. In the shared,
//     sticky /tmp another user can plant that path first, and the victim
//     cannot remove it: listen/connect then fail with ACCESS_DENIED saying to
//     set XDG_RUNTIME_DIR, which is the way out (never a silent join).
std::string SocketDirectory() {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  if (runtime != nullptr && runtime[0] == '/' && IsPrivateDirectory(runtime)) return std::string(runtime) + "/memport";
  const std::string run_user = "/run/user/" + std::to_string(::geteuid());
  if (IsPrivateDirectory(run_user)) return run_user + "/memport";
  const std::string home = PlantProofHome();
  if (!home.empty()) return home + "/.cache/memport";
  return "/tmp/memport-" + std::to_string(::geteuid());
}

bool InSharedTmp(const std::string& dir) { return dir == "/tmp/memport-" + std::to_string(::geteuid()); }

// What the user can do about a directory that is not private (planted by
// another user, or with loose permissions).
std::string PlantedAdvice(const std::string& dir) {
  if (InSharedTmp(dir)) {
    return "; another user may have created it first in the shared /tmp, where you cannot remove it: set "
           "XDG_RUNTIME_DIR to a private directory of yours (mode 0700), or make your home directory usable "
           "(memport then uses ~/.cache/memport)";
  }
  return "; move it aside (mv " + dir + " " + dir + ".planted) and memport creates its own";
}

// Creates the directory if needed (with its parent, for ~/.cache) and opens
// it. The open (O_PATH | O_DIRECTORY | O_NOFOLLOW) refuses a symlink or a
// file; fstat on the open directory then checks that it is owned by us with
// no access for anyone else. A directory someone else planted is refused
// rather than used. The fd names the checked directory even if the path
// changes later, and reaches it when the path is too long for a socket
// address (SocketAddress).
Result<OsHandle> OpenPrivateDirectory(const std::string& dir, bool create) {
  if (create) {
    static const std::string kInCache = "/.cache/memport";
    if (dir.size() > kInCache.size() && dir.compare(dir.size() - kInCache.size(), kInCache.size(), kInCache) == 0) {
      ::mkdir(dir.substr(0, dir.size() - std::strlen("/memport")).c_str(), 0700);  // ~/.cache; an existing one is fine
    }
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return LastOsError("mkdir", "creating the private socket directory " + dir);
    }
  }
  OsHandle fd(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return MakeError("NOT_FOUND", "no memport listener exists for this user (" + dir + " is missing)");
    if (errno == ENOTDIR || errno == ELOOP) {
      return MakeError("ACCESS_DENIED", dir + " is not a directory (a file or a symlink)" + PlantedAdvice(dir));
    }
    return LastOsError("open", "opening the private socket directory " + dir);
  }
  struct stat st;
  if (::fstat(static_cast<int>(fd.get()), &st) != 0) return LastOsError("fstat", "checking " + dir);
  if (st.st_uid != ::geteuid()) return MakeError("ACCESS_DENIED", dir + " is owned by another user" + PlantedAdvice(dir));
  if ((st.st_mode & 077) != 0) return MakeError("ACCESS_DENIED", dir + " is accessible to other users; run: chmod 700 " + dir);
  return fd;
}

// The address of `base` in the directory `dir_fd` (path `dir`): the path
// itself when it fits sun_path (108 bytes), else /proc/self/fd/<dir_fd>/<base>,
// which the kernel resolves through the open directory, so a long $HOME
// still works (the fd must stay open across bind/connect).
Result<sockaddr_un> SocketAddress(int dir_fd, const std::string& dir, const std::string& base) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string path = dir + "/" + base;
  if (path.size() >= sizeof addr.sun_path) path = "/proc/self/fd/" + std::to_string(dir_fd) + "/" + base;
  if (path.size() >= sizeof addr.sun_path) {
    return MakeError("INVALID_ARGUMENT", "the socket path " + dir + "/" + base + " is too long for a Unix socket; set a shorter XDG_RUNTIME_DIR");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// ---------------------------------------------------------------------------
// Who owns a name.
//
// A listener holds two locks on <name>.lock: an exclusive flock, which makes
// a second listener ALREADY_EXISTS (and is shared with forked children), and
// a POSIX record lock (F_SETLK, write, whole file), which the kernel reports
// with the holder's PID (F_GETLK). A client compares that PID with the
// listener's SO_PEERCRED PID, so a process that unlinked a live listener's
// socket and bound its own at the path is refused without the client knowing
// any PID in advance.
//
// POSIX record locks belong to a process, and closing *any* fd of the file in
// that process drops them all (fcntl(2)). So this process never closes an fd
// of a lock file it holds: it remembers the locked inodes and looks them up
// before opening one (an fd it opened on one anyway, through a rename race,
// is kept until the lock goes).
class HeldNameLocks {
 public:
  static HeldNameLocks& Get() {
    static HeldNameLocks* instance = new HeldNameLocks();  // lives for the process
    return *instance;
  }
  std::mutex mutex;
  // Under `mutex`.
  bool Holds(const struct stat& st) const { return held_.count({st.st_dev, st.st_ino}) != 0; }
  void Add(const struct stat& st) { held_[{st.st_dev, st.st_ino}]; }
  void KeepStray(const struct stat& st, OsHandle fd) { held_[{st.st_dev, st.st_ino}].push_back(std::move(fd)); }
  // Forgets a lock before its fd closes (the strays close with it).
  void Release(OsHandle& lock) {
    struct stat st;
    std::lock_guard<std::mutex> guard(mutex);
    if (lock.valid() && ::fstat(static_cast<int>(lock.get()), &st) == 0) held_.erase({st.st_dev, st.st_ino});
    lock.reset();
  }

 private:
  std::map<std::pair<dev_t, ino_t>, std::vector<OsHandle>> held_;
};

// The locks a listener holds on its name, released (and forgotten by
// HeldNameLocks first) when this goes.
class NameLock {
 public:
  NameLock() = default;
  explicit NameLock(OsHandle fd) : fd_(std::move(fd)) {}
  NameLock(NameLock&&) noexcept = default;
  NameLock& operator=(NameLock&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::move(other.fd_);
    }
    return *this;
  }
  ~NameLock() { reset(); }
  void reset() {
    if (fd_.valid()) HeldNameLocks::Get().Release(fd_);
  }

 private:
  OsHandle fd_;
};

// Takes both locks on `<dir>/<name>.lock`; ALREADY_EXISTS if anyone (this
// process included) holds either.
Result<NameLock> LockName(int dir_fd, const std::string& lock_base, const std::string& name) {
  const auto in_use = [&name] { return MakeError("ALREADY_EXISTS", "the channel name '" + name + "' is already in use by a live listener"); };
  HeldNameLocks& held = HeldNameLocks::Get();
  std::lock_guard<std::mutex> guard(held.mutex);
  struct stat st;
  if (::fstatat(dir_fd, lock_base.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && held.Holds(st)) return in_use();
  OsHandle lock(::openat(dir_fd, lock_base.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!lock.valid()) return LastOsError("open", "opening the lock for channel '" + name + "'");
  const int fd = static_cast<int>(lock.get());
  if (::fstat(fd, &st) != 0) return LastOsError("fstat", "checking the lock for channel '" + name + "'");
  if (held.Holds(st)) {
    held.KeepStray(st, std::move(lock));
    return in_use();
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return in_use();
    return LastOsError("flock", "locking channel '" + name + "'");
  }
  struct flock record{};
  record.l_type = F_WRLCK;
  record.l_whence = SEEK_SET;  // l_start = l_len = 0: the whole file
  if (::fcntl(fd, F_SETLK, &record) != 0) {
    if (errno == EAGAIN || errno == EACCES) return in_use();
    return LastOsError("fcntl(F_SETLK)", "locking channel '" + name + "'");
  }
  held.Add(st);
  return NameLock(std::move(lock));
}

// The PID of the process holding the name's record lock: 0 when nobody holds
// it (no lock file, or no live listener), -1 when the holder is not visible
// from this PID namespace.
Result<int64_t> NameLockHolder(int dir_fd, const std::string& lock_base) {
  HeldNameLocks& held = HeldNameLocks::Get();
  std::lock_guard<std::mutex> guard(held.mutex);
  struct stat st;
  if (::fstatat(dir_fd, lock_base.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return int64_t{0};
    return LastOsError("fstatat", "finding the lock file " + lock_base);
  }
  if (held.Holds(st)) return static_cast<int64_t>(::getpid());
  OsHandle lock(::openat(dir_fd, lock_base.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!lock.valid()) {
    if (errno == ENOENT) return int64_t{0};
    return LastOsError("open", "opening the lock file " + lock_base);
  }
  if (::fstat(static_cast<int>(lock.get()), &st) != 0) return LastOsError("fstat", "checking the lock file " + lock_base);
  if (held.Holds(st)) {
    held.KeepStray(st, std::move(lock));
    return static_cast<int64_t>(::getpid());
  }
  struct flock probe{};
  probe.l_type = F_WRLCK;  // conflicts with any lock, so any holder is reported
  probe.l_whence = SEEK_SET;
  if (::fcntl(static_cast<int>(lock.get()), F_GETLK, &probe) != 0) {
    return LastOsError("fcntl(F_GETLK)", "asking who holds " + lock_base);
  }
  if (probe.l_type == F_UNLCK) return int64_t{0};
  return probe.l_pid > 0 ? static_cast<int64_t>(probe.l_pid) : int64_t{-1};
}

// Refuses a listener (PID `server_pid`, from SO_PEERCRED) that is not the
// live owner of the name: some other process holds the name's lock, so this
// one bound its socket at the path behind the owner's back. A name nobody
// holds the lock of has no owner to protect (a listener that does not take
// the record lock, or none at all): the uid check has already passed.
Status CheckListenerOwnsName(int dir_fd, const std::string& lock_base, const std::string& name, int64_t server_pid) {
  Result<int64_t> holder = NameLockHolder(dir_fd, lock_base);
  if (!holder.ok()) return holder.error();
  if (holder.value() == 0 || holder.value() == server_pid) return Ok();
  if (holder.value() < 0 || server_pid <= 0) {
    return MakeError("ACCESS_DENIED", "cannot tell whether the listener of '" + name +
                                          "' owns the name: its owner or the listener is in another PID namespace");
  }
  return MakeError("ACCESS_DENIED", "the name '" + name + "' is owned by process " + std::to_string(holder.value()) +
                                        ", but its socket is served by process " + std::to_string(server_pid) +
                                        ", which does not own it (another process replaced the listener's socket); "
                                        "refusing to talk to it");
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
  virtual void OnEvents(uint32_t ready) = 0;  // on the I/O thread; Readiness bits
};

// epoll's event bits as the neutral Readiness bits the connection reads.
uint32_t FromEpoll(uint32_t events) {
  return ((events & EPOLLIN) ? kReadable : 0u) | ((events & EPOLLOUT) ? kWritable : 0u) |
         ((events & (EPOLLHUP | EPOLLRDHUP)) ? kHungUp : 0u) | ((events & EPOLLERR) ? kFailed : 0u);
}

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
        if (target) target->OnEvents(FromEpoll(events[i].events));
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

std::unique_ptr<Connection> MakeConnection(std::shared_ptr<UnixConnection> impl) {
  return std::make_unique<ConnectionHandle>(std::move(impl));
}

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
      if (!FdReserveKept(fd, fd_reserve_)) continue;
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
    lock_.reset();  // closing the fd drops both locks
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

namespace {

// A listener reached: the socket is connected, nothing was sent or read.
class UnixReached : public ReachedListener {
 public:
  UnixReached(OsHandle socket, PeerIdentity peer, int dir_fd, std::string lock_base, std::string name)
      : socket_(std::move(socket)), peer_(peer), dir_fd_(dir_fd), lock_base_(std::move(lock_base)), name_(std::move(name)) {}

  const PeerIdentity& server() const override { return peer_; }

  Status CheckOwnsName() override { return CheckListenerOwnsName(dir_fd_, lock_base_, name_, peer_.pid); }

  // The directory is private, so only we (or root) can have bound there;
  // the kernel's word is checked anyway before trusting the peer with anything.
  Status CheckUser() override {
    if (peer_.uid == static_cast<int64_t>(::geteuid()) || peer_.uid == 0) return Ok();
    return MakeError("ACCESS_DENIED", "the listener runs as another user");
  }

  Status CheckStillServing() override {
    if (PeerProcessState(static_cast<int>(socket_.get())) != PeerProcess::kExited) return Ok();
    return MakeError("PEER_CLOSED", "the listener (process " + std::to_string(peer_.pid) + ") exited while connecting");
  }

  Result<std::unique_ptr<Connection>> Open(std::shared_ptr<JsThread> js) override {
    return MakeConnection(std::make_shared<UnixConnection>(std::move(socket_), peer_, std::move(js)));
  }

 private:
  OsHandle socket_;
  PeerIdentity peer_;
  int dir_fd_;  // owned by the UnixConnectSteps, which outlive this
  std::string lock_base_;
  std::string name_;
};

class UnixConnectSteps : public ConnectSteps {
 public:
  UnixConnectSteps(OsHandle dir_fd, sockaddr_un address, std::string base, std::string name)
      : dir_fd_(std::move(dir_fd)), address_(address), base_(std::move(base)), name_(std::move(name)) {}

  Result<Reach> TryOnce() override {
    OsHandle socket(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!socket.valid()) return LastOsError("socket", "creating a socket");
    Reach reach;
    if (::connect(static_cast<int>(socket.get()), reinterpret_cast<const sockaddr*>(&address_), sizeof address_) == 0) {
      Result<PeerIdentity> peer = PeerCredentials(static_cast<int>(socket.get()));
      if (!peer.ok()) return peer.error();
      reach.reached = std::make_unique<UnixReached>(std::move(socket), peer.value(), static_cast<int>(dir_fd_.get()),
                                                    base_ + ".lock", name_);
      return reach;
    }
    const int err = errno;
    if (err == ENOENT || err == ECONNREFUSED) {
      reach.absent = true;
    } else if (err == EAGAIN || err == EINTR) {
      reach.busy = true;  // the listener's backlog is full
    } else {
      return OsError(err, "connect", "connecting to '" + name_ + "'");
    }
    return reach;
  }

  void WaitWhileBusy(std::chrono::milliseconds left) override {
    std::this_thread::sleep_for(std::min(left, std::chrono::milliseconds(2)));
  }

 private:
  OsHandle dir_fd_;
  sockaddr_un address_;
  std::string base_;
  std::string name_;
};

}  // namespace

Result<std::unique_ptr<ConnectSteps>> BeginConnect(const std::string& name) {
  Result<std::string> path = ChannelAddress(name);
  if (!path.ok()) return path.error();
  const std::string dir = SocketDirectory();
  Result<OsHandle> dir_fd = OpenPrivateDirectory(dir, /*create=*/false);
  if (!dir_fd.ok()) return dir_fd.error();
  const std::string base = CanonicalChannelName(name);
  Result<sockaddr_un> address = SocketAddress(static_cast<int>(dir_fd.value().get()), dir, base + ".sock");
  if (!address.ok()) return address.error();
  return std::unique_ptr<ConnectSteps>(new UnixConnectSteps(dir_fd.take(), address.value(), base, name));
}

}  // namespace memport
