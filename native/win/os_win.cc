// Windows definitions of the OS-level helpers the core declares: what a valid
// HANDLE is, how it is closed, and how GetLastError() becomes a memport Error.
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <sddl.h>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "../core/connect.h"
#include "../core/error.h"
#include "../core/loop_watch.h"
#include "../core/os_handle.h"
#include "../core/shared_memory.h"
#include "win_internal.h"

namespace memport {
namespace platform {

// Functions that fail return NULL or INVALID_HANDLE_VALUE depending on the API;
// neither is ever owned.
const RawHandle kInvalidHandle = 0;

bool IsValidHandle(RawHandle raw) {
  return raw != 0 && raw != reinterpret_cast<RawHandle>(INVALID_HANDLE_VALUE);
}

// Closing and forgetting happen under the owned-sections lock, so FromReceived
// never sees a value that is closed but still registered, or registered after
// it was reused for something else.
void CloseRawHandle(RawHandle raw) {
  win::OwnedSections registry;
  ::CloseHandle(reinterpret_cast<HANDLE>(raw));
  registry.Remove(raw);
}

}  // namespace platform

namespace win {

Result<std::vector<uint8_t>> CurrentUserSid() {
  HANDLE token_raw = nullptr;
  if (!::OpenProcessToken(::GetCurrentProcess(), TOKEN_QUERY, &token_raw)) {
    return LastOsError("OpenProcessToken", "finding the current user");
  }
  OsHandle token(AsRaw(token_raw));
  DWORD needed = 0;
  // The first call only reports the size (and fails with ERROR_INSUFFICIENT_BUFFER).
  ::GetTokenInformation(token_raw, TokenUser, /*TokenInformation=*/nullptr, 0, &needed);
  if (needed == 0) return LastOsError("GetTokenInformation", "finding the current user");
  // DWORD elements keep TOKEN_USER (and the SID after it) aligned.
  std::vector<DWORD> buffer((needed + sizeof(DWORD) - 1) / sizeof(DWORD));
  if (!::GetTokenInformation(token_raw, TokenUser, buffer.data(), needed, &needed)) {
    return LastOsError("GetTokenInformation", "finding the current user");
  }
  PSID sid = reinterpret_cast<TOKEN_USER*>(buffer.data())->User.Sid;
  if (!::IsValidSid(sid)) return MakeError("OS", "the process token has an invalid user SID");
  const auto* bytes = static_cast<const uint8_t*>(sid);
  return std::vector<uint8_t>(bytes, bytes + ::GetLengthSid(sid));
}

Result<std::wstring> SidToString(const void* sid) {
  wchar_t* text = nullptr;
  if (!::ConvertSidToStringSidW(const_cast<PSID>(sid), &text)) {
    return LastOsError("ConvertSidToStringSidW", "formatting a SID");
  }
  std::unique_ptr<wchar_t, LocalFreeDeleter> owned(text);
  return std::wstring(text);
}

std::string WideToUtf8(const std::wstring& wide) {
  if (wide.empty()) return {};
  const int length = ::WideCharToMultiByte(CP_UTF8, /*dwFlags=*/0, wide.data(), static_cast<int>(wide.size()),
                                           /*lpMultiByteStr=*/nullptr, 0, /*lpDefaultChar=*/nullptr,
                                           /*lpUsedDefaultChar=*/nullptr);
  std::string out(static_cast<size_t>(length > 0 ? length : 0), '\0');
  if (length > 0) {
    ::WideCharToMultiByte(CP_UTF8, 0, wide.data(), static_cast<int>(wide.size()), &out[0], length, nullptr, nullptr);
  }
  return out;
}

std::wstring Utf8ToWide(const std::string& utf8) {
  if (utf8.empty()) return {};
  const int length = ::MultiByteToWideChar(CP_UTF8, /*dwFlags=*/0, utf8.data(), static_cast<int>(utf8.size()),
                                           /*lpWideCharStr=*/nullptr, 0);
  std::wstring out(static_cast<size_t>(length > 0 ? length : 0), L'\0');
  if (length > 0) ::MultiByteToWideChar(CP_UTF8, 0, utf8.data(), static_cast<int>(utf8.size()), &out[0], length);
  return out;
}

}  // namespace win

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
    // The other end of a pipe went away (closed, or its process died).
    case ERROR_BROKEN_PIPE:
    case ERROR_NO_DATA:
    case ERROR_PIPE_NOT_CONNECTED:
      return "PEER_CLOSED";
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

// A plain Win32 thread, not std::thread: under Wine, mingw's winpthreads
// (behind std::thread) was seen to start a thread with a null state when
// dozens are created and exit at once (an access violation in
// execute_native_thread_routine), which CreateThread does not do.
Status StartDetachedThread(std::function<void()> task) {
  auto* work = new std::function<void()>(std::move(task));
  HANDLE thread = ::CreateThread(
      /*lpThreadAttributes=*/nullptr, /*dwStackSize=*/0,
      [](void* param) -> DWORD {
        std::unique_ptr<std::function<void()>> run(static_cast<std::function<void()>*>(param));
        (*run)();
        return 0;
      },
      work, /*dwCreationFlags=*/0, /*lpThreadId=*/nullptr);
  if (thread == nullptr) {
    delete work;
    return LastOsError("CreateThread", "starting a thread");
  }
  ::CloseHandle(thread);  // detached: it ends by itself
  return Ok();
}

// Named pipes cannot be polled: connections complete their I/O on the
// completion port's thread (io_service.h), never on the JS thread's loop.
std::unique_ptr<LoopFdWatcher> NewLoopFdWatcher(void* /*uv_loop*/) { return nullptr; }

}  // namespace memport
