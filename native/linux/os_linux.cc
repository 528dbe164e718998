// Linux definitions of the OS-level helpers the core declares: what a valid
// fd is, how it is closed, and how errno becomes a memport Error.
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <string>
#include <system_error>
#include <thread>

#include "../core/connect.h"
#include "../core/error.h"
#include "../core/os_handle.h"
#include "../core/owned_handles.h"
#include "../core/shared_memory.h"

namespace memport {
namespace platform {

const RawHandle kInvalidHandle = -1;

bool IsValidHandle(RawHandle raw) { return raw >= 0; }

// Closing and forgetting happen under the owned-handles lock, so FromReceived
// never sees an fd that is closed but still registered, or registered after
// its number was reused for something else.
void CloseRawHandle(RawHandle raw) {
  OwnedHandles registry;
  registry.Remove(raw);
  // Linux always releases the fd, even when close() reports EINTR; retrying
  // could close an fd another thread has just been given.
  ::close(static_cast<int>(raw));
}

}  // namespace platform

namespace {

const char* ClassifyErrno(int err) {
  switch (err) {
    case EACCES:
    case EPERM:
      return "ACCESS_DENIED";
    case ENOMEM:
    case ENOSPC:
    case EFBIG:
    case EOVERFLOW:
      return "OUT_OF_MEMORY";
    case ENOENT:
      return "NOT_FOUND";
    case EEXIST:
    case EADDRINUSE:
      return "ALREADY_EXISTS";
    case EBADF:
      return "INVALID_HANDLE";
    case ETIMEDOUT:
      return "TIMEOUT";
    case ENOSYS:
    case EOPNOTSUPP:
      return "UNSUPPORTED";
    default:
      return "OS";
  }
}

}  // namespace

Error OsError(int64_t os_code, const char* syscall, const std::string& context) {
  char buf[256];
  // GNU strerror_r returns the message pointer (not always into buf).
  const char* text = strerror_r(static_cast<int>(os_code), buf, sizeof buf);
  std::string message = context + ": " + syscall + " failed: " + text;
  return Error{ClassifyErrno(static_cast<int>(os_code)), message, syscall, os_code};
}

Error LastOsError(const char* syscall, const std::string& context) {
  return OsError(errno, syscall, context);
}

Result<HandleCensus> CountOpenHandles() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return LastOsError("opendir", "counting open file descriptors");
  int64_t count = 0;
  while (struct dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  // The directory's own fd was open while it was listed.
  return HandleCensus{count - 1, /*exact=*/true};
}

Status StartDetachedThread(std::function<void()> task) {
  try {
    std::thread(std::move(task)).detach();
  } catch (const std::system_error& e) {
    return OsError(e.code().value(), "pthread_create", "starting a thread");
  }
  return Ok();
}

}  // namespace memport
