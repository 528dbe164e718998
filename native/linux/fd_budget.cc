#include "fd_budget.h"

#include <dirent.h>
#include <sys/resource.h>

#include <algorithm>

#include "../core/frame.h"

namespace memport {

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

}  // namespace memport
