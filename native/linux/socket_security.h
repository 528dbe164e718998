// Linux: who may reach a name, and who is at the other end. The private
// socket directory a name lives in, the lock that says which process owns a
// name, and the peer's identity as the kernel reports it
// (socket_security.cc). The listener, connect() and the connection use these.
#pragma once

#include <sys/un.h>

#include <cstdint>
#include <string>

#include "../core/error.h"
#include "../core/os_handle.h"
#include "../core/transport.h"

namespace memport {

// The directory this user's sockets live in: $XDG_RUNTIME_DIR, else
// /run/user/<uid>, else ~/.cache/memport, else /tmp (SECURITY.md).
std::string SocketDirectory();
// Opens `dir` (creating it 0700 if asked) and refuses one that is not ours alone.
Result<OsHandle> OpenPrivateDirectory(const std::string& dir, bool create);
// The address of `<dir>/<base>`, refusing a path too long for sun_path.
Result<sockaddr_un> SocketAddress(int dir_fd, const std::string& dir, const std::string& base);

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
  void reset();

 private:
  OsHandle fd_;
};

// Takes both locks on `<dir>/<name>.lock`; ALREADY_EXISTS if anyone (this
// process included) holds either.
Result<NameLock> LockName(int dir_fd, const std::string& lock_base, const std::string& name);
// The PID of the process holding the name's record lock: 0 when nobody holds
// it, -1 when the holder is not visible from this PID namespace.
Result<int64_t> NameLockHolder(int dir_fd, const std::string& lock_base);
// Refuses a listener (`server_pid`, from SO_PEERCRED) that is not the live owner of the name.
Status CheckListenerOwnsName(int dir_fd, const std::string& lock_base, const std::string& name, int64_t server_pid);

// The kernel's word on the process at the other end of a Unix socket.
Result<PeerIdentity> PeerCredentials(int fd);

// Whether the process at the other end of `fd` is still running, asked
// through its pidfd, which names that process and no other: it becomes
// readable once the process has exited. Kernels before 6.5 cannot say.
enum class PeerProcess { kRunning, kExited, kUnknown };

PeerProcess PeerProcessState(int fd);

}  // namespace memport
