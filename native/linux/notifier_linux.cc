// Notifier on Linux: an eventfd. Notify adds 1 to its counter, TryConsume
// reads (and so zeroes) it, and the JS thread's event loop watches it for
// readability (JsThread::WatchFd): nothing waits on the JS thread or in the
// libuv pool. See eventfd(2).
//
// A shared eventfd is one open file description in both processes, so its
// file status flags are shared too: a peer could clear O_NONBLOCK at any
// time. Reads therefore pass RWF_NOWAIT (preadv2, which eventfd honours since
// Linux 5.11: it sets FMODE_NOWAIT). Writes try pwritev2 with RWF_NOWAIT once
// per process: eventfd refuses it for writes (EOPNOTSUPP, still on 6.18), and
// then every notify is a plain write guarded by O_NONBLOCK, without the failing
// call first. Reads fall back the same way on kernels before 5.11.
#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>

#include "../core/notifier.h"
#include "../core/owned_handles.h"

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008  // Linux 4.14
#endif

namespace memport {

namespace {

constexpr long kAnonInodeFsMagic = 0x09041934;  // ANON_INODE_FS_MAGIC, <linux/magic.h>

// What /proc/self/fdinfo/<fd> says about an eventfd, or false if it is not one
// (only eventfd's show_fdinfo prints "eventfd-count:").
bool ReadEventfdInfo(int fd, bool* semaphore) {
  const std::string path = "/proc/self/fdinfo/" + std::to_string(fd);
  FILE* file = std::fopen(path.c_str(), "re");
  if (file == nullptr) return false;
  bool is_eventfd = false;
  *semaphore = false;
  char line[256];
  while (std::fgets(line, sizeof line, file) != nullptr) {
    if (std::strncmp(line, "eventfd-count:", 14) == 0) is_eventfd = true;
    unsigned value = 0;
    if (std::sscanf(line, "eventfd-semaphore: %u", &value) == 1) *semaphore = value != 0;
  }
  std::fclose(file);
  return is_eventfd;
}

}  // namespace

struct Notifier::WatchState {
  std::unique_ptr<FdWatch> watch;
};

Notifier::Notifier() = default;
Notifier::Notifier(OsHandle handle) : handle_(std::move(handle)), watch_(std::make_unique<WatchState>()) {}
Notifier::Notifier(Notifier&&) noexcept = default;
Notifier& Notifier::operator=(Notifier&& other) noexcept {
  if (this != &other) {
    Close();
    handle_ = std::move(other.handle_);
    watch_ = std::move(other.watch_);
  }
  return *this;
}
Notifier::~Notifier() { Close(); }

Result<Notifier> Notifier::Create() {
  const RawHandle fd = OpenRegistered([] { return ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); });
  if (fd < 0) return LastOsError("eventfd", "creating a notifier");
  return Notifier(OsHandle(fd));
}

Result<Notifier> Notifier::FromReceived(RawHandle raw, bool from_transport) {
  if (raw < 0 || raw > INT32_MAX) return MakeError("INVALID_HANDLE", "not a file descriptor");
  const int fd = static_cast<int>(raw);
  // Held until the fd is adopted: "not owned yet" and "owned now" are one step.
  OwnedHandles registry;
  if (!from_transport && registry.Contains(raw)) {
    return MakeError("ALREADY_EXISTS", "fd " + std::to_string(raw) + " already belongs to a live memport object in "
                                       "this process, and one handle must have one owner; use that object");
  }
  // 1. An anonymous inode (not a file, pipe or socket) ...
  struct statfs fs;
  if (::fstatfs(fd, &fs) != 0) return LastOsError("fstatfs", "checking a received notifier");
  char link[64] = {0};
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(path.c_str(), link, sizeof link - 1);
  const std::string target = n > 0 ? std::string(link, static_cast<size_t>(n)) : std::string();
  if (fs.f_type != kAnonInodeFsMagic || target != "anon_inode:[eventfd]") {
    return MakeError("INVALID_HANDLE", "the received fd is not a notifier (an eventfd) but " +
                                           (target.empty() ? std::string("something else") : target));
  }
  // 2. ... that is an eventfd, counting (a semaphore-mode eventfd would hand
  //    out one wake per notify instead of coalescing them).
  bool semaphore = false;
  if (!ReadEventfdInfo(fd, &semaphore)) {
    return MakeError("INVALID_HANDLE", "the received fd is not a notifier (no eventfd state in /proc/self/fdinfo)");
  }
  if (semaphore) return MakeError("INVALID_HANDLE", "the received eventfd is in semaphore mode: notifications would not coalesce");
  // 3. Readable and writable (eventfd(2) always opens O_RDWR; a reopened one may not be).
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return LastOsError("fcntl(F_GETFL)", "checking a received notifier");
  if ((flags & O_ACCMODE) != O_RDWR) {
    return MakeError("ACCESS_DENIED", "the received eventfd is not open for both reading and writing");
  }
  if (!from_transport) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  registry.Add(raw);
  return Notifier(OsHandle(raw));
}

Status Notifier::Notify() const {
  if (!valid()) return MakeError("CLOSED", "the notifier is closed");
  // Whether this kernel refused RWF_NOWAIT on an eventfd write: asked once.
  static std::atomic<bool> nowait_refused{false};
  uint64_t one = 1;
  iovec iov{&one, sizeof one};
  ssize_t n = -1;
  bool plain_write = nowait_refused.load(std::memory_order_relaxed);
  if (!plain_write) {
    n = ::pwritev2(static_cast<int>(raw()), &iov, 1, -1, RWF_NOWAIT);
    plain_write = n < 0 && errno == EOPNOTSUPP;
    if (plain_write) nowait_refused.store(true, std::memory_order_relaxed);
  }
  if (plain_write) {
    // Only a non-blocking fd may be written with a plain write.
    if ((::fcntl(static_cast<int>(raw()), F_GETFL) & O_NONBLOCK) == 0) {
      return MakeError("UNSUPPORTED", "this kernel cannot write an eventfd without blocking unless it is O_NONBLOCK");
    }
    n = ::write(static_cast<int>(raw()), &one, sizeof one);
  }
  // EAGAIN: the counter is at its maximum, so a notification is pending already.
  if (n < 0 && errno != EAGAIN) return LastOsError("write", "notifying");
  return Ok();
}

Result<bool> Notifier::TryConsume() {
  if (!valid()) return MakeError("CLOSED", "the notifier is closed");
  uint64_t count = 0;
  iovec iov{&count, sizeof count};
  ssize_t n = ::preadv2(static_cast<int>(raw()), &iov, 1, -1, RWF_NOWAIT);
  if (n < 0 && errno == EOPNOTSUPP) {
    if ((::fcntl(static_cast<int>(raw()), F_GETFL) & O_NONBLOCK) == 0) {
      return MakeError("UNSUPPORTED", "this kernel cannot read an eventfd without blocking unless it is O_NONBLOCK");
    }
    n = ::read(static_cast<int>(raw()), &count, sizeof count);
  }
  if (n < 0) {
    if (errno == EAGAIN) return false;
    return LastOsError("read", "taking a notification");
  }
  return n == static_cast<ssize_t>(sizeof count) && count > 0;
}

Status Notifier::Watch(std::shared_ptr<JsThread> js, std::function<void()> on_ready) {
  if (!valid()) return MakeError("CLOSED", "the notifier is closed");
  if (watch_->watch) return Ok();
  watch_->watch = js->WatchFd(static_cast<int>(raw()), [on_ready = std::move(on_ready)](uint32_t /*ready*/,
                                                                                         Deliveries& deliveries) {
    // Readable, or in error (never for an eventfd): either way TryConsume says.
    deliveries.push_back(on_ready);
  });
  if (!watch_->watch) {
    return MakeError("UNSUPPORTED", "this Node.js environment cannot watch a notifier from its event loop "
                                    "(it is shutting down, or Node-API async contexts are unavailable)");
  }
  return Ok();
}

void Notifier::StopWatching() {
  if (watch_) watch_->watch.reset();
}

void Notifier::Close() {
  StopWatching();
  handle_.reset();
}

Result<uint32_t> Notifier::DuplicateIntoProcess(int64_t /*pid*/) const {
  return MakeError("UNSUPPORTED", "duplicateInto is Windows-only: on Linux a notifier's fd travels over a "
                                  "connection (SCM_RIGHTS)");
}

Result<Notifier> Notifier::DuplicateInProcess() const {
  if (!valid()) return MakeError("CLOSED", "the notifier is closed");
  const RawHandle fd = OpenRegistered([this] { return ::fcntl(static_cast<int>(raw()), F_DUPFD_CLOEXEC, 0); });
  if (fd < 0) return LastOsError("fcntl(F_DUPFD_CLOEXEC)", "duplicating a notifier's fd for another thread");
  return Notifier(OsHandle(fd));
}

Result<RawHandle> Notifier::DuplicateUnowned(uint32_t /*access*/) const {
  if (!valid()) return MakeError("CLOSED", "the notifier is closed");
  const int copy = ::fcntl(static_cast<int>(raw()), F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return LastOsError("fcntl(F_DUPFD_CLOEXEC)", "duplicating a notifier's fd");
  return static_cast<RawHandle>(copy);
}

Status Notifier::CloseUnowned(RawHandle raw) {
  if (raw < 0 || raw > INT32_MAX) return MakeError("INVALID_HANDLE", "not a file descriptor");
  // Linux releases the fd even when close() fails with EINTR: never retried.
  if (::close(static_cast<int>(raw)) != 0 && errno == EBADF) return LastOsError("close", "closing an unowned fd");
  return Ok();
}

}  // namespace memport
