// Internals shared by the Windows backend's files (native/win/*.cc) and its
// standalone test (test/native/). Not part of the platform-neutral core: the
// binding never includes this.
#pragma once

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "../core/error.h"
#include "../core/os_handle.h"
#include "../core/owned_handles.h"
#include "../core/notifier.h"
#include "../core/shared_memory.h"

namespace memport {
namespace win {

inline HANDLE AsHandle(RawHandle raw) { return reinterpret_cast<HANDLE>(raw); }
inline RawHandle AsRaw(HANDLE handle) { return reinterpret_cast<RawHandle>(handle); }
inline HANDLE Get(const OsHandle& handle) { return AsHandle(handle.get()); }

// Rights a section handle gets when it leaves this process, and never more:
// the receiver needs to map (read, or read and write) and to query the section
// (NtQuerySection) to validate it. See "File Mapping Security and Access Rights".
constexpr DWORD kReadOnlySectionAccess = FILE_MAP_READ | SECTION_QUERY;
constexpr DWORD kWritableSectionAccess = FILE_MAP_READ | FILE_MAP_WRITE | SECTION_QUERY;

// Frees memory the system allocated with LocalAlloc (security descriptors, SID strings).
struct LocalFreeDeleter {
  void operator()(void* memory) const { ::LocalFree(memory); }
};

// The current process token's user SID, as bytes (TokenUser). Not cached: a
// few system calls per Listen/Connect, and no stale answer after impersonation
// changes are ever possible.
Result<std::vector<uint8_t>> CurrentUserSid();
// "S-1-5-21-..." for a binary SID.
Result<std::wstring> SidToString(const void* sid);

std::string WideToUtf8(const std::wstring& wide);
std::wstring Utf8ToWide(const std::string& utf8);

// The owned-handles registry (core/owned_handles.h) under the name the
// Windows backend has always used: FromReceived refuses those values, so a
// peer that names one of our own handles cannot get us to adopt (and later
// close) it a second time.
using OwnedSections = OwnedHandles;

// Duplicates `memory`'s section handle into `process` with exactly the rights
// of the mode (kReadOnlySectionAccess / kWritableSectionAccess). Writable
// copies require memory.WriteSharingAllowed(). Returns the value valid in the
// target process; the caller is responsible for revoking it if the value never
// reaches that process (RevokeFromProcess).
Result<RawHandle> DuplicateSectionInto(const SharedMemory& memory, HANDLE process, bool read_only);

// Closes `remote`, a handle value in `process`'s table that we put there and
// that provably never reached the peer's code (DUPLICATE_CLOSE_SOURCE).
void RevokeFromProcess(HANDLE process, RawHandle remote);

// The checks FromReceived makes on a value before adopting it, without the
// value-shape and registry checks and without taking ownership. Exposed for
// the native test, which also exercises the fallback used where NtQueryObject
// or NtQuerySection is missing.
// `allow_named`: a named section is accepted (a region the peer flagged
// named, on a connection that opted in); otherwise it is refused.
Status VerifyReceivedSection(HANDLE handle, uint64_t size, bool read_only, bool allow_named = false);
Status VerifySectionByTrialMapping(HANDLE handle, uint64_t size, bool read_only);

// Rights a notifier's Event gets when it leaves this process, and exactly
// what a received one must have: wait on it and set it, nothing more.
constexpr DWORD kNotifierShareAccess = SYNCHRONIZE | EVENT_MODIFY_STATE;

// Duplicates `notifier`'s Event into `process` with kNotifierShareAccess;
// returns the value valid there. The caller revokes it (RevokeFromProcess)
// if the value provably never reaches that process.
Result<RawHandle> DuplicateNotifierInto(const Notifier& notifier, HANDLE process);

// Non-inheritable security attributes with the protected DACL every object
// memport creates gets (shared_memory_win.cc explains it): no handle to the
// object can later be duplicated to rights it did not already have. nullptr
// if the descriptor could not be built.
SECURITY_ATTRIBUTES* ProtectedObjectAttributes();

// The shape checks a received 32-bit handle value must pass before any call
// is made with it: not 0, not a pseudo-handle, in range, no tag bits.
Status CheckReceivedHandleValue(RawHandle raw);

// Duplicates `source` (ours) into `process` with exactly `access`, and
// checks the value it gets there can travel in a descriptor (revoking it
// otherwise). `what` names the object in errors ("a section").
Result<RawHandle> DuplicateIntoPeer(HANDLE source, HANDLE process, DWORD access, const char* what);

// NtQueryObject(ObjectTypeInformation): "Section", "Event", "File", ...
// Returns the NTSTATUS (negative on failure, `*type_name` then untouched).
LONG QueryObjectTypeName(HANDLE handle, std::wstring* type_name);

}  // namespace win
}  // namespace memport
