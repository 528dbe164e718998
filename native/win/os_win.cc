// Windows definitions of the OS-level helpers the core declares: what a valid
// HANDLE is, how it is closed, and how GetLastError() becomes a memport Error.
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <string>

#include "../core/error.h"
#include "../core/os_handle.h"
#include "../core/shared_memory.h"

namespace memport {
namespace platform {

// Functions that fail return NULL or INVALID_HANDLE_VALUE depending on the API;
// neither is ever owned.
const RawHandle kInvalidHandle = 0;

bool IsValidHandle(RawHandle raw) {
  return raw != 0 && raw != reinterpret_cast<RawHandle>(INVALID_HANDLE_VALUE);
}

void CloseRawHandle(RawHandle raw) { ::CloseHandle(reinterpret_cast<HANDLE>(raw)); }

}  // namespace platform

namespace {

const char* ClassifyWin32Error(DWORD err) {
  switch (err) {
    case ERROR_ACCESS_DENIED:
    case ERROR_PRIVILEGE_NOT_HELD:
      return "ACCESS_DENIED";
    case ERROR_INVALID_HANDLE:
      return "INVALID_HANDLE";
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
    case ERROR_COMMITMENT_LIMIT:
    case ERROR_NO_SYSTEM_RESOURCES:
    case ERROR_DISK_FULL:
      return "OUT_OF_MEMORY";
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
      return "NOT_FOUND";
    case ERROR_ALREADY_EXISTS:
    case ERROR_FILE_EXISTS:
      return "ALREADY_EXISTS";
    case ERROR_SEM_TIMEOUT:
    case WAIT_TIMEOUT:
      return "TIMEOUT";
    case ERROR_NOT_SUPPORTED:
    case ERROR_CALL_NOT_IMPLEMENTED:
      return "UNSUPPORTED";
    default:
      return "OS";
  }
}

std::string FormatWin32Message(DWORD err) {
  char* text = nullptr;
  DWORD len = ::FormatMessageA(
      FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
      /*lpSource=*/nullptr, err, /*dwLanguageId=*/0, reinterpret_cast<char*>(&text),
      /*nSize=*/0, /*Arguments=*/nullptr);
  std::string message = len != 0 && text != nullptr ? std::string(text, len) : "error " + std::to_string(err);
  if (text != nullptr) ::LocalFree(text);
  while (!message.empty() && (message.back() == '\n' || message.back() == '\r' || message.back() == ' ')) {
    message.pop_back();
  }
  return message;
}

}  // namespace

Error OsError(int64_t os_code, const char* syscall, const std::string& context) {
  const DWORD err = static_cast<DWORD>(os_code);
  std::string message = context + ": " + syscall + " failed: " + FormatWin32Message(err);
  return Error{ClassifyWin32Error(err), message, syscall, os_code};
}

Error LastOsError(const char* syscall, const std::string& context) {
  return OsError(::GetLastError(), syscall, context);
}

Result<HandleCensus> CountOpenHandles() {
  DWORD count = 0;
  if (!::GetProcessHandleCount(::GetCurrentProcess(), &count)) {
    return LastOsError("GetProcessHandleCount", "counting open handles");
  }
  if (count != 0) return HandleCensus{static_cast<int64_t>(count), /*exact=*/true};
  // Wine answers 0. It hands out the lowest free slot, so the value of a fresh
  // handle rises by 4 for every handle leaked since the last probe.
  HANDLE probe = ::CreateEventW(/*lpEventAttributes=*/nullptr, /*bManualReset=*/TRUE,
                                /*bInitialState=*/FALSE, /*lpName=*/nullptr);
  if (probe == nullptr) return LastOsError("CreateEventW", "probing the handle table");
  const int64_t slot = static_cast<int64_t>(reinterpret_cast<intptr_t>(probe));
  ::CloseHandle(probe);
  return HandleCensus{slot, /*exact=*/false};
}

}  // namespace memport
