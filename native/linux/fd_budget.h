// Linux: the process's file descriptors, so that peers' handles never take
// its last ones (fd_budget.cc), and the per-thread read buffer.
#pragma once

#include <cstdint>
#include <vector>

namespace memport {

// RLIMIT_NOFILE's soft limit (2^20 when unlimited).
uint64_t FdLimit();
// Handles that all connections together may hold in unreceived messages.
uint64_t ProcessHandleLimit(uint64_t reserve);
// Open fds in this process; -1 when they cannot be counted.
int64_t CountOpenFds();
// Whether taking fds up to number `highest` left at least `reserve` fds free.
bool FdReserveKept(int highest, uint64_t reserve);
// One frame's buffer per reading thread, not per connection.
std::vector<uint8_t>& ReadBuffer();

}  // namespace memport
