// The two native-API queries the receiver uses to check a handle value before
// adopting it: NtQueryObject (what kind of object, with which rights) and
// NtQuerySection (how the section was created, and how big it is). Both are
// documented on Microsoft Learn ("NtQueryObject", "ZwQuerySection" in the
// WDK) but have no import library in mingw-w64's default set, so they are
// resolved from ntdll.dll at run time; a missing export is reported as
// nullptr and the caller falls back to a weaker check it can still make.
//
// Own names in a namespace, not <winternl.h>: its declarations differ between
// the Windows SDK and mingw-w64.
#pragma once

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

namespace memport {
namespace win {
namespace nt {

using NTSTATUS = LONG;

constexpr NTSTATUS kStatusSuccess = 0;
constexpr NTSTATUS kStatusInvalidHandle = static_cast<NTSTATUS>(0xC0000008);
constexpr NTSTATUS kStatusNotImplemented = static_cast<NTSTATUS>(0xC0000002);
constexpr NTSTATUS kStatusInvalidInfoClass = static_cast<NTSTATUS>(0xC0000003);
constexpr NTSTATUS kStatusObjectTypeMismatch = static_cast<NTSTATUS>(0xC0000024);
constexpr NTSTATUS kStatusInfoLengthMismatch = static_cast<NTSTATUS>(0xC0000004);
constexpr NTSTATUS kStatusBufferOverflow = static_cast<NTSTATUS>(0x80000005);
constexpr NTSTATUS kStatusBufferTooSmall = static_cast<NTSTATUS>(0xC0000023);

// OBJECT_INFORMATION_CLASS
constexpr ULONG kObjectBasicInformation = 0;
constexpr ULONG kObjectNameInformation = 1;
constexpr ULONG kObjectTypeInformation = 2;
// SECTION_INFORMATION_CLASS
constexpr ULONG kSectionBasicInformation = 0;

// PUBLIC_OBJECT_BASIC_INFORMATION
struct ObjectBasicInformation {
  ULONG Attributes;
  ACCESS_MASK GrantedAccess;
  ULONG HandleCount;
  ULONG PointerCount;
  ULONG Reserved[10];
};

// UNICODE_STRING
struct UnicodeString {
  USHORT Length;  // bytes, without a terminator
  USHORT MaximumLength;
  PWSTR Buffer;
};

// OBJECT_NAME_INFORMATION; the name's characters follow it in the caller's buffer.
struct ObjectNameInformation {
  UnicodeString Name;
};

// The head of PUBLIC_OBJECT_TYPE_INFORMATION; the type name's characters
// follow it in the caller's buffer.
struct ObjectTypeInformation {
  UnicodeString TypeName;
  ULONG Reserved[22];
};

// SECTION_BASIC_INFORMATION
struct SectionBasicInformation {
  PVOID BaseAddress;
  ULONG AllocationAttributes;  // SEC_COMMIT, SEC_IMAGE, SEC_FILE, SEC_RESERVE, ...
  LARGE_INTEGER MaximumSize;
};

using NtQueryObjectFn = NTSTATUS(NTAPI*)(HANDLE handle, ULONG information_class, PVOID information,
                                         ULONG information_length, PULONG return_length);
using NtQuerySectionFn = NTSTATUS(NTAPI*)(HANDLE section, ULONG information_class, PVOID information,
                                          SIZE_T information_length, PSIZE_T return_length);

struct Functions {
  NtQueryObjectFn query_object = nullptr;
  NtQuerySectionFn query_section = nullptr;
};

// Resolved once per process; ntdll.dll is mapped into every process and never unloaded.
inline const Functions& Ntdll() {
  static const Functions functions = [] {
    Functions f;
    HMODULE ntdll = ::GetModuleHandleW(L"ntdll.dll");
    if (ntdll != nullptr) {
      // Through void* so that -Wcast-function-type accepts the FARPROC conversion.
      f.query_object = reinterpret_cast<NtQueryObjectFn>(
          reinterpret_cast<void*>(::GetProcAddress(ntdll, "NtQueryObject")));
      f.query_section = reinterpret_cast<NtQuerySectionFn>(
          reinterpret_cast<void*>(::GetProcAddress(ntdll, "NtQuerySection")));
    }
    return f;
  }();
  return functions;
}

}  // namespace nt
}  // namespace win
}  // namespace memport
