// Linux: the private socket directory, name ownership and peer identity
// (socket_security.h).
#include "socket_security.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

namespace memport {

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

void NameLock::reset() {
  if (fd_.valid()) HeldNameLocks::Get().Release(fd_);
}

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

}  // namespace memport
