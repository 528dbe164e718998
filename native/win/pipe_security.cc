// Windows: pipe security, name ownership, peer identity (pipe_security.h).
#include "pipe_security.h"

#include <aclapi.h>

#include <cstring>

#include "../core/transport.h"

namespace memport {

using win::AsHandle;
using win::AsRaw;
using win::Get;

// The pipe's owner must be our own user: otherwise someone else created the
// name first (a squatter), and must not learn anything from us.
Status VerifyPipeOwner(HANDLE pipe) {
  PSID owner = nullptr;
  PSECURITY_DESCRIPTOR descriptor = nullptr;
  const DWORD err = ::GetSecurityInfo(pipe, SE_KERNEL_OBJECT, OWNER_SECURITY_INFORMATION, &owner,
                                      /*ppsidGroup=*/nullptr, /*ppDacl=*/nullptr, /*ppSacl=*/nullptr, &descriptor);
  if (err != ERROR_SUCCESS) return OsError(err, "GetSecurityInfo", "checking who owns the pipe");
  std::unique_ptr<void, win::LocalFreeDeleter> owned_descriptor(descriptor);
  Result<std::vector<uint8_t>> user = win::CurrentUserSid();
  if (!user.ok()) return user.error();
  if (owner == nullptr || !::IsValidSid(owner) || !::EqualSid(owner, user.value().data())) {
    Result<std::wstring> owner_text = owner != nullptr && ::IsValidSid(owner) ? win::SidToString(owner)
                                                                               : Result<std::wstring>(L"(none)");
    return MakeError("ACCESS_DENIED", "the pipe is owned by another user (possible squatter): owner " +
                                          win::WideToUtf8(owner_text.ok() ? owner_text.value() : L"?"));
  }
  return Ok();
}

// The other end of the pipe is gone (closed, or its process died).
bool IsPeerGone(DWORD err) {
  return err == ERROR_BROKEN_PIPE || err == ERROR_PIPE_NOT_CONNECTED || err == ERROR_NO_DATA;
}

// Opens the process at the other end of `pipe`, whose PID the pipe reported
// (GetNamedPipe{Client,Server}ProcessId), for the connection to keep. The PID
// is only the number the pipe recorded when that end was opened, and the end
// may since be held by another process (inherited, duplicated). So:
// - the process must still be running: an exited one is not who answers, and
//   while the process object lingers (someone holds a handle to it) OpenProcess
//   succeeds on it all the same;
// - the pipe must still be connected after OpenProcess: had the peer died and
//   its number gone to a newcomer before we opened it, its end would have
//   closed with it (unless it had handed its end to another process first).
// Our handle then keeps the number from being reused while the connection lives.
Result<OsHandle> OpenPeerProcess(HANDLE pipe, ULONG pid, const std::string& who) {
  const std::string named = who + " (process " + std::to_string(pid) + ")";
  // SYNCHRONIZE: lets a failed duplicate tell a dead peer from a refusal.
  HANDLE process = ::OpenProcess(PROCESS_DUP_HANDLE | SYNCHRONIZE, /*bInheritHandle=*/FALSE, pid);
  const auto exited = [&named] { return MakeError("PEER_CLOSED", named + " has exited"); };
  if (process == nullptr) {
    // OpenProcess reports a process ID that nobody has as ERROR_INVALID_PARAMETER.
    if (::GetLastError() == ERROR_INVALID_PARAMETER) return exited();
    return LastOsError("OpenProcess", "opening " + named);
  }
  OsHandle owned(AsRaw(process));
  if (::WaitForSingleObject(process, 0) != WAIT_TIMEOUT) return exited();
  DWORD available = 0;
  if (!::PeekNamedPipe(pipe, /*lpBuffer=*/nullptr, 0, /*lpBytesRead=*/nullptr, &available,
                       /*lpBytesLeftThisMessage=*/nullptr)) {
    const DWORD err = ::GetLastError();
    if (IsPeerGone(err)) return MakeError("PEER_CLOSED", named + " left while being identified");
    return OsError(err, "PeekNamedPipe", "checking that " + named + " is still connected");
  }
  return owned;
}

// ---------------------------------------------------------------------------
// Who owns a name.
//
// Any process of our user may create another instance of a live listener's
// pipe (the DACL gives us full control of it), and a client may then reach
// that instance. So a listener holds %LOCALAPPDATA%\memport\<name>.owner
// open for its whole life, holding its PID: shared for reading only (nobody
// can open it for writing or delete it meanwhile) and FILE_FLAG_DELETE_ON_CLOSE
// (it goes with the listener, also when the process dies). A client compares
// that PID with GetNamedPipeServerProcessId and refuses an instance served by
// another process. A name without the file has no live memport owner.

Result<std::wstring> OwnerFilePath(const std::string& name, bool create_directory) {
  wchar_t buffer[MAX_PATH + 1];
  DWORD n = ::GetEnvironmentVariableW(L"LOCALAPPDATA", buffer, MAX_PATH);
  if (n == 0 || n >= MAX_PATH) n = ::GetTempPathW(MAX_PATH, buffer);
  if (n == 0 || n >= MAX_PATH) return LastOsError("GetTempPathW", "finding a per-user directory for channel names");
  std::wstring dir(buffer, n);
  if (!dir.empty() && (dir.back() == L'\\' || dir.back() == L'/')) dir.pop_back();
  dir += L"\\memport";
  if (create_directory && !::CreateDirectoryW(dir.c_str(), /*lpSecurityAttributes=*/nullptr) &&
      ::GetLastError() != ERROR_ALREADY_EXISTS) {
    return LastOsError("CreateDirectoryW", "creating " + win::WideToUtf8(dir));
  }
  return dir + L"\\" + win::Utf8ToWide(CanonicalChannelName(name)) + L".owner";
}

// Creates and holds the name's owner file; ALREADY_EXISTS while another
// listener holds it (a guarantee Wine keeps too, unlike FILE_FLAG_FIRST_PIPE_INSTANCE).
Result<OsHandle> ClaimName(const std::string& name) {
  Result<std::wstring> path = OwnerFilePath(name, /*create_directory=*/true);
  if (!path.ok()) return path.error();
  HANDLE file = ::CreateFileW(path.value().c_str(), GENERIC_READ | GENERIC_WRITE | DELETE, FILE_SHARE_READ,
                              /*lpSecurityAttributes=*/nullptr,  // not inheritable
                              CREATE_ALWAYS, FILE_ATTRIBUTE_TEMPORARY | FILE_FLAG_DELETE_ON_CLOSE,
                              /*hTemplateFile=*/nullptr);
  if (file == INVALID_HANDLE_VALUE) {
    const DWORD err = ::GetLastError();
    if (err == ERROR_SHARING_VIOLATION || err == ERROR_ACCESS_DENIED) {
      Result<unsigned long long> owner = ReadNameOwner(name);
      const std::string holder = owner.ok() && owner.value() != 0
                                     ? owner.value() == ::GetCurrentProcessId() ? " (this process)" : " (process " + std::to_string(owner.value()) + ")"
                                     : "";
      Error error = MakeError("ALREADY_EXISTS", "the channel name '" + name + "' is in use by another listener" + holder);
      error.syscall = "CreateFileW";
      error.os_code = err;
      return error;
    }
    return OsError(err, "CreateFileW", "claiming channel '" + name + "'");
  }
  OsHandle owned(AsRaw(file));
  const std::string pid = std::to_string(::GetCurrentProcessId());
  DWORD written = 0;
  if (!::WriteFile(file, pid.data(), static_cast<DWORD>(pid.size()), &written, /*lpOverlapped=*/nullptr) ||
      written != pid.size()) {
    return LastOsError("WriteFile", "claiming channel '" + name + "'");
  }
  return owned;
}

// The PID written in the name's owner file: 0 when there is no owner file or
// it is still being written. ACCESS_DENIED when it cannot be read.
Result<unsigned long long> ReadNameOwner(const std::string& name) {
  Result<std::wstring> path = OwnerFilePath(name, /*create_directory=*/false);
  if (!path.ok()) return path.error();
  HANDLE file = ::CreateFileW(path.value().c_str(), GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                              /*lpSecurityAttributes=*/nullptr, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL,
                              /*hTemplateFile=*/nullptr);
  if (file == INVALID_HANDLE_VALUE) {
    const DWORD err = ::GetLastError();
    // No owner file: no live memport listener owns the name.
    if (err == ERROR_FILE_NOT_FOUND || err == ERROR_PATH_NOT_FOUND) return 0ull;
    // Not readable: a same-user process could change the file's DACL (share
    // modes do not cover WRITE_DAC) to hide the owner, so this is a refusal,
    // never "no owner". (A file being deleted as its owner closes also reads
    // as access denied; that listener is going away anyway.)
    if (err == ERROR_ACCESS_DENIED) {
      return MakeError("ACCESS_DENIED", "cannot read who owns the name '" + name + "' (its owner file is not readable); refusing to talk to its listener");
    }
    return OsError(err, "CreateFileW", "reading who owns channel '" + name + "'");
  }
  OsHandle owned(AsRaw(file));
  char text[24] = {};
  DWORD read = 0;
  if (!::ReadFile(file, text, sizeof text - 1, &read, /*lpOverlapped=*/nullptr)) {
    return LastOsError("ReadFile", "reading who owns channel '" + name + "'");
  }
  unsigned long long owner = 0;
  for (DWORD i = 0; i < read && text[i] >= '0' && text[i] <= '9' && owner < 0xffffffffull; ++i) owner = owner * 10 + (text[i] - '0');
  return owner;
}

// Refuses a pipe instance served by a process other than the one holding the
// name's owner file.
Status CheckServerOwnsName(const std::string& name, ULONG server_pid) {
  Result<unsigned long long> read = ReadNameOwner(name);
  if (!read.ok()) return read.error();
  const unsigned long long owner = read.value();
  if (owner == 0 || owner == server_pid) return Ok();  // 0: no owner, or its owner is still writing it
  return MakeError("ACCESS_DENIED", "the name '" + name + "' is owned by process " + std::to_string(owner) +
                                        ", but the pipe instance reached is served by process " + std::to_string(server_pid) +
                                        ", which does not own it (another process created an instance of the "
                                        "listener's pipe); refusing to talk to it");
}

}  // namespace memport
