// What the transport contract test (transport_contract_test.cc) needs from
// the OS and the transport interface does not give: starting and killing a
// copy of the test program, a raw client that writes bytes no memport peer
// would, and a count of the handles memport makes. One implementation per
// OS (contract_os_linux.cc, contract_os_win.cc); run-contract-test.sh links
// the one that goes with the backend, so the test cases hold no OS code.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace contract_os {

// "linux" or "win32": printed in the output, never branched on by a case.
extern const char* const kPlatform;

int64_t CurrentPid();

// A copy of this program started with `args` (argv[1]...), inheriting no
// handle of ours beyond the standard ones.
class Child {
 public:
  virtual ~Child() = default;
  virtual int64_t pid() const = 0;
  // Ends the process at once (SIGKILL / TerminateProcess).
  virtual void Kill() = 0;
  // Waits up to `timeout_ms` for the process to end; its exit code, or -1 if
  // it is still running (then it is killed when this object goes).
  virtual int WaitExit(int timeout_ms) = 0;
};
std::unique_ptr<Child> SpawnSelf(const std::vector<std::string>& args);

// A client of the listener `name` that speaks no protocol: it writes whole
// messages of raw bytes and never reads.
class RawClient {
 public:
  virtual ~RawClient() = default;
  virtual bool Send(const std::vector<uint8_t>& bytes) = 0;
};
// nullptr when the listener cannot be reached.
std::unique_ptr<RawClient> RawConnect(const std::string& name);

// The handles of the kinds memport holds, counted exactly: open fds on Linux;
// sections, files (pipes) and processes by object type on Windows. Equal
// before and after a case when nothing leaked.
std::string HandleCensus();

// A line on stdout, flushed at once.
void PrintLine(const std::string& line);

}  // namespace contract_os
