// Named sections (CreateFileMappingW / OpenFileMappingW with a name), for
// talking to programs that already use names: the classic "first process /
// second process" pattern, telemetry mappings, .NET MemoryMappedFile. Only
// reached through SharedRegion.openNamed/createNamed; memport itself never
// names memory (SECURITY.md, "Named shared memory").
//
// What a name costs, and what is done about it here:
// - Squatting: CreateFileMappingW on an existing name silently opens it and
//   reports ERROR_ALREADY_EXISTS; that handle is closed at once and the call
//   refused (ALREADY_EXISTS), so memport never uses an object it did not make
//   when asked to create one.
// - Other object types under the name (an Event, a Mutex): Windows answers
//   ERROR_INVALID_HANDLE; reported as such, nothing is opened.
// - Size: taken from the section itself (NtQuerySection, or VirtualQuery of a
//   view where the handle may not query), never from the caller alone, so no
//   view ever reaches past the section. Sections cannot shrink, so there is
//   no SIGBUS-like risk here once mapped.
// - Handles are non-inheritable and registered as memport-owned like every
//   other section memport holds (so a peer naming the value is refused).
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <cstring>
#include <string>

#include "../core/named.h"
#include "../core/shared_memory.h"
#include "ntdll.h"
#include "win_internal.h"

namespace memport {

namespace {

using win::AsHandle;
using win::AsRaw;

bool IsGlobal(const std::string& name) { return name.rfind("Global\\", 0) == 0; }

// What the section is, from the section itself: its size, or a refusal for
// kinds whose pages may fault when touched. Falls back to the size of a whole
// view where this handle may not query the section (no SECTION_QUERY).
Result<uint64_t> SectionSize(HANDLE section, const std::string& name) {
  const win::nt::Functions& ntdll = win::nt::Ntdll();
  if (ntdll.query_section != nullptr) {
    win::nt::SectionBasicInformation info{};
    SIZE_T returned = 0;
    const win::nt::NTSTATUS status =
        ntdll.query_section(section, win::nt::kSectionBasicInformation, &info, sizeof info, &returned);
    if (status >= 0) {
      const ULONG attributes = info.AllocationAttributes;
      if ((attributes & SEC_IMAGE) != 0) {
        return MakeError("INVALID_HANDLE", QuotedName(name) + " is an executable image section, not shared memory");
      }
      // Touching a page its creator never committed raises an access violation.
      if ((attributes & SEC_RESERVE) != 0) {
        return MakeError("UNSUPPORTED", QuotedName(name) + " is a reserve-only (SEC_RESERVE) section: its pages exist only "
                                        "once its creator commits them, and touching another would crash this process");
      }
      if (info.MaximumSize.QuadPart <= 0) return MakeError("INVALID_ARGUMENT", QuotedName(name) + " is empty");
      return static_cast<uint64_t>(info.MaximumSize.QuadPart);
    }
  }
  // A whole view is the section's size, rounded up to pages.
  void* view = ::MapViewOfFile(section, FILE_MAP_READ, 0, 0, /*dwNumberOfBytesToMap=*/0);
  if (view == nullptr) return LastOsError("MapViewOfFile", "finding the size of " + QuotedName(name));
  MEMORY_BASIC_INFORMATION info{};
  const SIZE_T got = ::VirtualQuery(view, &info, sizeof info);
  ::UnmapViewOfFile(view);
  if (got != sizeof info || info.Type != MEM_MAPPED) {
    return MakeError("INVALID_HANDLE", QuotedName(name) + " is not a plain data section");
  }
  return static_cast<uint64_t>(info.RegionSize);
}

// A typed error for a failed open or create by name, saying what to do next.
Error NameFailure(DWORD err, const char* call, const std::string& name, bool creating, bool read_only) {
  Error error = OsError(err, call, (creating ? "creating " : "opening ") + QuotedName(name));
  switch (err) {
    case ERROR_FILE_NOT_FOUND:
      error.message = "no file mapping is named " + QuotedName(name);
      break;
    case ERROR_INVALID_HANDLE:
      // The name is taken by an Event, Mutex, Semaphore, ... (all kernel
      // objects share one namespace).
      error.code = creating ? "ALREADY_EXISTS" : "INVALID_HANDLE";
      error.message = QuotedName(name) + " is the name of an object of another type (an event, mutex, ...), not a file mapping";
      break;
    case ERROR_ACCESS_DENIED:
      if (creating && IsGlobal(name)) {
        error.message = "creating " + QuotedName(name) + " was refused: a Global\\ name needs the SeCreateGlobalPrivilege "
                        "privilege (services and administrators have it), or the name is taken by an object you may "
                        "not open; use a Local\\ name";
      } else if (creating) {
        error.message = QuotedName(name) + " is taken by an object you may not open";
      } else {
        error.message = NamedAccessRefusedMessage(name, read_only);
      }
      break;
    case ERROR_PATH_NOT_FOUND:
    case ERROR_BAD_PATHNAME:
    case ERROR_INVALID_NAME:
      error.code = "INVALID_ARGUMENT";
      break;
    default:
      break;
  }
  return error;
}

}  // namespace

Result<SharedMemory> SharedMemory::OpenNamed(const std::string& name, bool read_only, uint64_t size) {
  if (size > kMaxSize) return MakeError("INVALID_ARGUMENT", "size must be at most 2^47 bytes");
  const std::wstring wide = win::Utf8ToWide(name);
  const DWORD map_access = read_only ? FILE_MAP_READ : (FILE_MAP_READ | FILE_MAP_WRITE);
  HANDLE section = nullptr;
  {
    win::OwnedSections registry;
    // SECTION_QUERY lets NtQuerySection report the size; a DACL that grants
    // only the map rights is tried again without it.
    section = ::OpenFileMappingW(map_access | SECTION_QUERY, /*bInheritHandle=*/FALSE, wide.c_str());
    if (section == nullptr && ::GetLastError() == ERROR_ACCESS_DENIED) {
      section = ::OpenFileMappingW(map_access, /*bInheritHandle=*/FALSE, wide.c_str());
    }
    if (section != nullptr) registry.Add(AsRaw(section));
  }
  if (section == nullptr) return NameFailure(::GetLastError(), "OpenFileMappingW", name, /*creating=*/false, read_only);
  OsHandle handle(AsRaw(section));
  Result<uint64_t> actual = SectionSize(section, name);
  if (!actual.ok()) return actual.error();
  return FromNamedObject(std::move(handle), name, actual.value(), size, read_only);
}

Result<SharedMemory> SharedMemory::CreateNamed(const std::string& name, uint64_t size, bool read_only) {
  if (size == 0 || size > kMaxSize) return MakeError("INVALID_ARGUMENT", "size must be between 1 and 2^47 bytes");
  const std::wstring wide = win::Utf8ToWide(name);
  // The default DACL of this process's token (this user, SYSTEM,
  // administrators): the point of a name is that other processes open it.
  // Not inheritable: libuv starts every child with bInheritHandles=TRUE.
  SECURITY_ATTRIBUTES attributes{sizeof attributes, /*lpSecurityDescriptor=*/nullptr, /*bInheritHandle=*/FALSE};
  HANDLE section = nullptr;
  DWORD err = ERROR_SUCCESS;
  {
    win::OwnedSections registry;
    section = ::CreateFileMappingW(INVALID_HANDLE_VALUE, &attributes, PAGE_READWRITE | SEC_COMMIT,
                                   /*dwMaximumSizeHigh=*/static_cast<DWORD>(size >> 32),
                                   /*dwMaximumSizeLow=*/static_cast<DWORD>(size & 0xFFFFFFFFu), wide.c_str());
    err = ::GetLastError();
    if (section != nullptr && err == ERROR_ALREADY_EXISTS) {
      // Somebody else's object, opened silently by the OS: never used.
      ::CloseHandle(section);
      return MakeError("ALREADY_EXISTS", NamedExistsMessage(name));
    }
    if (section != nullptr) registry.Add(AsRaw(section));
  }
  if (section == nullptr) return NameFailure(err, "CreateFileMappingW", name, /*creating=*/true, read_only);
  OsHandle handle(AsRaw(section));
  if (read_only) {
    // This process keeps a read-only handle only; the section stays writable
    // for whoever opens it by name.
    HANDLE self = ::GetCurrentProcess();
    HANDLE copy = nullptr;
    {
      win::OwnedSections registry;
      if (::DuplicateHandle(self, section, self, &copy, win::kReadOnlySectionAccess, /*bInheritHandle=*/FALSE, 0)) {
        registry.Add(AsRaw(copy));
      }
    }
    if (copy == nullptr) return LastOsError("DuplicateHandle", "making a read-only handle to " + QuotedName(name));
    handle = OsHandle(AsRaw(copy));  // closes the writable one
  }
  SharedMemory memory(std::move(handle), size, read_only, std::make_shared<SharingPolicy>());
  memory.named_ = true;
  return memory;
}

Status SharedMemory::UnlinkNamed(const std::string& name) {
  return MakeError("UNSUPPORTED", "Windows has no unlink for " + QuotedName(name) +
                                      ": a named section's name goes away with the last handle to it, so close "
                                      "every region opened by that name (in every process)");
}

// Sections never shrink (a file-backed one's file cannot be truncated below a
// mapped section), so copying through the mapping is always safe here.
Status SharedMemory::ReadAt(const Mapping& mapping, uint64_t offset, uint8_t* out, uint64_t length) const {
  if (length != 0) std::memcpy(out, mapping.data() + offset, length);
  return Ok();
}

Status SharedMemory::WriteAt(const Mapping& mapping, uint64_t offset, const uint8_t* in, uint64_t length) const {
  if (length != 0) std::memmove(mapping.data() + offset, in, length);
  return Ok();
}

}  // namespace memport
