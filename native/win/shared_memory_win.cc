// SharedMemory on Windows: an unnamed, pagefile-backed section.
//
// CreateFileMappingW with a NULL name puts nothing in the object namespace, so
// there is no Global\ or Local\ string to guess or squat. The section gets a
// protected DACL that grants nobody anything: the creator's handle carries the
// rights it was created with, but no handle can later be duplicated to rights
// it did not already have (DuplicateHandle access-checks any increase). The
// one ACE, for OWNER RIGHTS (S-1-3-4), grants READ_CONTROL only and so takes
// away the owner's implicit WRITE_DAC, without which a same-user process could
// rewrite the DACL and then re-duplicate a read-only handle for write.
// See "CreateFileMappingW", "DuplicateHandle" and "SID Strings" on Microsoft Learn.
//
// Received handles arrive as bare numbers that the sender put into our handle
// table (pipe_connection.cc). Such a number may name anything we hold, so
// FromReceived proves what it is before owning it, never closes it when the
// proof fails, and refuses numbers that memport already owns (the
// owned-sections registry in os_win.cc). Handles leave this process with
// exactly the rights of their mode and are revoked from the peer only when
// they provably never reached it.
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <aclapi.h>

#include <cstddef>
#include <cstdio>
#include <string>

#include "../core/shared_memory.h"
#include "ntdll.h"
#include "win_internal.h"

namespace memport {

namespace {

using win::AsHandle;
using win::AsRaw;

constexpr DWORD kReadOnlyAccess = win::kReadOnlySectionAccess;

// Security attributes for every section memport creates: non-inheritable
// (libuv starts children with bInheritHandles=TRUE) and the protected DACL
// described above. Lives for the whole process; built once.
struct SectionSecurity {
  SECURITY_DESCRIPTOR descriptor;
  alignas(DWORD) unsigned char acl_storage[128];
  alignas(DWORD) unsigned char owner_rights_sid[SECURITY_MAX_SID_SIZE];
  SECURITY_ATTRIBUTES attributes;
  bool ok = false;

  SectionSecurity() {
    ACL* acl = reinterpret_cast<ACL*>(acl_storage);
    DWORD sid_size = sizeof owner_rights_sid;
    ok = ::InitializeSecurityDescriptor(&descriptor, SECURITY_DESCRIPTOR_REVISION) &&
         ::InitializeAcl(acl, sizeof acl_storage, ACL_REVISION) &&
         ::CreateWellKnownSid(WinCreatorOwnerRightsSid, /*DomainSid=*/nullptr, owner_rights_sid, &sid_size) &&
         ::AddAccessAllowedAce(acl, ACL_REVISION, READ_CONTROL, owner_rights_sid) &&
         ::SetSecurityDescriptorDacl(&descriptor, /*bDaclPresent=*/TRUE, acl, /*bDaclDefaulted=*/FALSE) &&
         ::SetSecurityDescriptorControl(&descriptor, SE_DACL_PROTECTED, SE_DACL_PROTECTED);
    attributes.nLength = sizeof attributes;
    attributes.lpSecurityDescriptor = &descriptor;
    attributes.bInheritHandle = FALSE;
  }
};

SECURITY_ATTRIBUTES* SectionAttributes() {
  static SectionSecurity security;
  return security.ok ? &security.attributes : nullptr;
}

// Received handle values are 32-bit numbers from the peer (frame.h); the
// caller sign-extends them as Windows does between 32- and 64-bit processes.
// Kernel handles are multiples of 4 well below 2^30 (a handle table has at
// most 2^24 entries); the low two bits are tag bits the kernel ignores, so
// 0x105 would alias 0x104 (Raymond Chen, "Why are kernel HANDLEs always a
// multiple of four?", The Old New Thing, 2005-09-27).
constexpr RawHandle kMaxHandleValue = RawHandle{1} << 30;
// GetCurrentProcess() is -1 (also INVALID_HANDLE_VALUE), GetCurrentThread()
// -2, the token pseudo-handles -4..-6; newer releases use a few more.
constexpr RawHandle kLowestPseudoHandle = -12;

Status CheckHandleValueShape(RawHandle raw) {
  const std::string value = std::to_string(static_cast<long long>(raw));
  if (raw == 0) return MakeError("INVALID_HANDLE", "the peer sent a null handle value");
  if (raw < 0 && raw >= kLowestPseudoHandle) {
    return MakeError("INVALID_HANDLE", "the peer sent a pseudo-handle or INVALID_HANDLE_VALUE (" + value + ")");
  }
  if (raw < 0 || raw >= kMaxHandleValue) {
    return MakeError("INVALID_HANDLE", "the peer sent a handle value out of range (" + value + ")");
  }
  if ((raw & 3) != 0) return MakeError("INVALID_HANDLE", "the peer sent a handle value with tag bits set (" + value + ")");
  return Ok();
}

std::string Hex(unsigned long value) {
  char text[24];
  std::snprintf(text, sizeof text, "0x%lX", value);
  return text;
}

Error NtFailure(win::nt::NTSTATUS status, const char* call, const std::string& what) {
  Error error = MakeError("OS", what + ": " + call + " failed with NTSTATUS " + Hex(static_cast<unsigned long>(status)));
  error.syscall = call;
  error.os_code = static_cast<int64_t>(static_cast<uint32_t>(status));
  return error;
}

// A query this system does not implement (never seen on Windows; possible on
// Wine or other reimplementations): fall back to the trial mapping.
bool NotImplemented(win::nt::NTSTATUS status) {
  return status == win::nt::kStatusNotImplemented || status == win::nt::kStatusInvalidInfoClass;
}

// NtQueryObject for a class whose answer is one UNICODE_STRING followed by
// its characters (ObjectNameInformation, ObjectTypeInformation): the string,
// or the failing status with `*text` untouched.
win::nt::NTSTATUS QueryObjectString(HANDLE handle, ULONG information_class, std::wstring* text) {
  static_assert(offsetof(win::nt::ObjectNameInformation, Name) == 0 &&
                    offsetof(win::nt::ObjectTypeInformation, TypeName) == 0,
                "both answers start with their string");
  alignas(8) unsigned char buffer[1024];
  ULONG returned = 0;
  const win::nt::NTSTATUS status =
      win::nt::Ntdll().query_object(handle, information_class, buffer, sizeof buffer, &returned);
  if (status < 0) return status;
  const auto* string = reinterpret_cast<const win::nt::UnicodeString*>(buffer);
  text->assign(string->Buffer, string->Length / sizeof(wchar_t));
  return status;
}

}  // namespace

namespace win {

// The same protected, owner-only DACL and the same value checks serve every
// kind of object memport shares (sections here, notifier Events in
// notifier_win.cc), so they are defined once.
SECURITY_ATTRIBUTES* ProtectedObjectAttributes() { return SectionAttributes(); }
Status CheckReceivedHandleValue(RawHandle raw) { return CheckHandleValueShape(raw); }
nt::NTSTATUS QueryObjectTypeName(HANDLE handle, std::wstring* type_name) {
  return QueryObjectString(handle, nt::kObjectTypeInformation, type_name);
}

Status VerifySectionByTrialMapping(HANDLE handle, uint64_t size, bool read_only) {
  if (size > SIZE_MAX) return MakeError("UNSUPPORTED", "the region is larger than this process can map");
  // Trial mappings prove what they can; MapViewOfFile neither closes nor
  // changes the handle, whatever it names. What this cannot see: whether a
  // data section is file-backed or reserve-only.
  auto map = [handle](DWORD access, uint64_t bytes) {
    return ::MapViewOfFile(handle, access, /*dwFileOffsetHigh=*/0, /*dwFileOffsetLow=*/0, static_cast<SIZE_T>(bytes));
  };
  // 1. A section we may read: the whole of it (length 0).
  void* view = map(FILE_MAP_READ, 0);
  if (view == nullptr) {
    const DWORD err = ::GetLastError();
    Error error = OsError(err, "MapViewOfFile", "checking a received handle by mapping it");
    error.code = err == ERROR_ACCESS_DENIED ? "ACCESS_DENIED" : "INVALID_HANDLE";
    return error;
  }
  // An image section maps as MEM_IMAGE; only data sections are accepted.
  MEMORY_BASIC_INFORMATION info{};
  const bool data_section = ::VirtualQuery(view, &info, sizeof info) == sizeof info && info.Type == MEM_MAPPED;
  ::UnmapViewOfFile(view);
  if (!data_section) return MakeError("INVALID_HANDLE", "the received section is not a plain data section");
  // 2. At least the declared size (a view longer than the section fails;
  //    Windows and Wine disagree on the error, so none is relied on).
  view = map(FILE_MAP_READ, size);
  if (view == nullptr) {
    return MakeError("INVALID_HANDLE", "the received section is smaller than the declared " + std::to_string(size) +
                                           " bytes");
  }
  ::UnmapViewOfFile(view);
  // 3. Write access exactly as declared.
  void* writable = map(FILE_MAP_WRITE, /*bytes=*/1);
  if (writable != nullptr) ::UnmapViewOfFile(writable);
  if (read_only && writable != nullptr) {
    return MakeError("ACCESS_DENIED", "a region declared read-only arrived with write access");
  }
  if (!read_only && writable == nullptr) {
    return MakeError("ACCESS_DENIED", "a region declared writable arrived without write access");
  }
  return Ok();
}

Status VerifyReceivedSection(HANDLE handle, uint64_t size, bool read_only, bool allow_named) {
  const nt::Functions& ntdll = nt::Ntdll();
  if (ntdll.query_object == nullptr || ntdll.query_section == nullptr) {
    return VerifySectionByTrialMapping(handle, size, read_only);
  }

  // 1. A committed, pagefile-backed section: not an image or a file (whose
  //    contents another process controls, and whose truncation makes reads
  //    fault), not reserve-only (touching an uncommitted page faults), and at
  //    least the declared size. NtQuerySection also checks the object type
  //    (any other object is STATUS_OBJECT_TYPE_MISMATCH), so the type's name
  //    is only asked for to explain a refusal: under Wine each query is a
  //    wineserver round trip. A query never changes the handle; a value that
  //    is not open gives STATUS_INVALID_HANDLE, not an exception (strict
  //    handle checking is opt-in, SetProcessMitigationPolicy, and Node does
  //    not opt in).
  nt::SectionBasicInformation section{};
  SIZE_T section_returned = 0;
  nt::NTSTATUS status =
      ntdll.query_section(handle, nt::kSectionBasicInformation, &section, sizeof section, &section_returned);
  if (NotImplemented(status)) return VerifySectionByTrialMapping(handle, size, read_only);
  if (status == nt::kStatusInvalidHandle) {
    return MakeError("INVALID_HANDLE", "the peer sent a value that is not an open handle in this process");
  }
  if (status == nt::kStatusObjectTypeMismatch) {
    std::wstring type_name = L"object of another type";
    QueryObjectString(handle, nt::kObjectTypeInformation, &type_name);
    return MakeError("INVALID_HANDLE",
                     "the peer sent a handle to a " + WideToUtf8(type_name) + ", not a shared-memory section");
  }
  if (status < 0) return NtFailure(status, "NtQuerySection", "checking a received section's kind and size");
  const ULONG attributes = section.AllocationAttributes;
  if ((attributes & SEC_COMMIT) == 0 || (attributes & (SEC_IMAGE | SEC_FILE | SEC_RESERVE)) != 0) {
    return MakeError("INVALID_HANDLE", "the received section is not committed pagefile-backed memory (attributes " +
                                           Hex(attributes) + ")");
  }
  if (section.MaximumSize.QuadPart < 0 || static_cast<uint64_t>(section.MaximumSize.QuadPart) < size) {
    return MakeError("INVALID_HANDLE", "the received section is " + std::to_string(section.MaximumSize.QuadPart) +
                                           " bytes, smaller than the declared " + std::to_string(size));
  }

  // 2. The rights this handle carries must be those of the declared mode.
  nt::ObjectBasicInformation basic{};
  ULONG returned = 0;
  status = ntdll.query_object(handle, nt::kObjectBasicInformation, &basic, sizeof basic, &returned);
  if (NotImplemented(status)) return VerifySectionByTrialMapping(handle, size, read_only);
  if (status < 0) return NtFailure(status, "NtQueryObject", "checking a received section's rights");
  if ((basic.GrantedAccess & SECTION_MAP_READ) == 0) {
    return MakeError("ACCESS_DENIED", "the received section cannot be mapped for reading");
  }
  const bool writable = (basic.GrantedAccess & SECTION_MAP_WRITE) != 0;
  if (read_only && writable) return MakeError("ACCESS_DENIED", "a region declared read-only arrived with write access");
  if (!read_only && !writable) {
    return MakeError("ACCESS_DENIED", "a region declared writable arrived without write access");
  }

  // 3. Unnamed. A memport sender only ever shares unnamed sections; a named
  //    one is most likely a value naming a section this process already holds
  //    for its own purposes (Node's own node-debug-handler-<pid> mapping is
  //    one), which adopting would hand to the app and close under its owner.
  //    A pushed value cannot be told apart from one that was already here, so
  //    this is the part of "refuse what the receiver already owns" that the
  //    kernel lets us check; SECURITY.md says what remains.
  if (allow_named) return Ok();
  std::wstring name;
  status = QueryObjectString(handle, nt::kObjectNameInformation, &name);
  if (status == nt::kStatusBufferOverflow || status == nt::kStatusInfoLengthMismatch ||
      status == nt::kStatusBufferTooSmall) {
    return MakeError("INVALID_HANDLE", "the received section has a (long) name: memport only accepts unnamed sections");
  }
  if (!NotImplemented(status)) {
    if (status < 0) return NtFailure(status, "NtQueryObject", "checking whether a received section is named");
    if (!name.empty()) {
      return MakeError("INVALID_HANDLE", "the received section is named (" + WideToUtf8(name) +
                                             "): memport only accepts unnamed sections, and this value may name one "
                                             "this process already holds");
    }
  }
  return Ok();
}

Result<RawHandle> DuplicateSectionInto(const SharedMemory& memory, HANDLE process, bool read_only) {
  if (!memory.valid()) return MakeError("CLOSED", "the region is closed");
  if (!read_only && !memory.WriteSharingAllowed()) {
    return MakeError("ACCESS_DENIED", memory.read_only()
                                          ? "a read-only region cannot be shared writable"
                                          : "this region has a read-only twin, so it may only be shared read-only");
  }
  return DuplicateIntoPeer(AsHandle(memory.raw()), process, read_only ? kReadOnlySectionAccess : kWritableSectionAccess,
                           "a section");
}

Result<RawHandle> DuplicateIntoPeer(HANDLE source, HANDLE process, DWORD access, const char* what) {
  HANDLE remote = nullptr;
  if (!::DuplicateHandle(::GetCurrentProcess(), source, process, &remote, access, /*bInheritHandle=*/FALSE,
                         /*dwOptions=*/0)) {
    return LastOsError("DuplicateHandle", std::string("duplicating ") + what + " into the peer");
  }
  const RawHandle value = AsRaw(remote);
  // Cannot happen on Windows (see kMaxHandleValue); checked because the value
  // must survive the trip through a u32 and the receiver's shape check.
  if (!CheckHandleValueShape(value).ok()) {
    RevokeFromProcess(process, value);
    return MakeError("OS", "DuplicateHandle returned a handle value that does not fit the protocol");
  }
  return value;
}

void RevokeFromProcess(HANDLE process, RawHandle remote) {
  // DUPLICATE_CLOSE_SOURCE closes the source handle in the source process
  // whatever else happens ("DuplicateHandle", dwOptions). Windows allows a
  // NULL target process here, but Wine 8 then fails with ERROR_INVALID_HANDLE
  // and closes nothing (tried here), so the copy comes to us and is closed at
  // once. Under the owned-sections lock: a concurrent FromReceived must not
  // adopt that short-lived copy of a section.
  OwnedSections registry;
  HANDLE copy = nullptr;
  ::DuplicateHandle(process, AsHandle(remote), ::GetCurrentProcess(), &copy, /*dwDesiredAccess=*/0,
                    /*bInheritHandle=*/FALSE, DUPLICATE_CLOSE_SOURCE | DUPLICATE_SAME_ACCESS);
  // Closed directly: OsHandle would take the registry lock again.
  if (copy != nullptr) ::CloseHandle(copy);
}

}  // namespace win

// OsHandle::reset closes through platform::CloseRawHandle, which also forgets
// the value in the owned-sections registry under the registry's lock (os_win.cc).
void SharedMemory::Close() { handle_.reset(); }

void Mapping::Unmap(uint8_t* data, uint64_t /*length*/) { ::UnmapViewOfFile(data); }

// Windows has no in-place replacement of a view without a window in which
// the range is free: a retired view keeps the section's pages while parked.
void Mapping::ScrubInPlace() {}

// ...so parked views are capped by what they hold, not only by count.
uint64_t Mapping::MaxParkedBytes() { return uint64_t{1} << 30; }

// Windows has no per-process limit on views comparable to vm.max_map_count.
int64_t Mapping::MaxLive() { return INT64_MAX; }

// Not checked on Windows: read-only views are never reused there.
bool Mapping::MayHavePrivatePages() const { return true; }

Result<MemoryIdentity> SharedMemory::Identity() const {
  return MakeError("UNSUPPORTED", "sections are not identified on Windows; every received region is mapped afresh");
}

Result<SharedMemory> SharedMemory::Create(uint64_t size) {
  if (size == 0 || size > kMaxSize) {
    return MakeError("INVALID_ARGUMENT", "size must be between 1 and 2^47 bytes");
  }
  SECURITY_ATTRIBUTES* attributes = SectionAttributes();
  if (attributes == nullptr) return LastOsError("InitializeSecurityDescriptor", "building a section DACL");
  // SEC_COMMIT (the default) charges the whole size against the commit limit
  // now, so an oversized request fails here with a typed error rather than
  // later with an access violation. Physical pages are still only used on touch.
  HANDLE section = nullptr;
  {
    // Registered before any other thread can learn the value, so a racing
    // FromReceived of the same number refuses it.
    win::OwnedSections registry;
    section = ::CreateFileMappingW(INVALID_HANDLE_VALUE, attributes, PAGE_READWRITE | SEC_COMMIT,
                                   /*dwMaximumSizeHigh=*/static_cast<DWORD>(size >> 32),
                                   /*dwMaximumSizeLow=*/static_cast<DWORD>(size & 0xFFFFFFFFu),
                                   /*lpName=*/nullptr);
    if (section != nullptr) registry.Add(AsRaw(section));
  }
  if (section == nullptr) {
    return LastOsError("CreateFileMappingW", "creating a section of " + std::to_string(size) + " bytes");
  }
  return SharedMemory(OsHandle(AsRaw(section)), size, /*read_only=*/false,
                      std::make_shared<SharingPolicy>());
}

Result<SharedMemory> SharedMemory::DuplicateReadOnly() {
  if (!valid()) return MakeError("CLOSED", "the region is closed");
  HANDLE self = ::GetCurrentProcess();
  HANDLE copy = nullptr;
  BOOL duplicated = FALSE;
  {
    win::OwnedSections registry;
    duplicated = ::DuplicateHandle(self, AsHandle(handle_.get()), self, &copy, kReadOnlyAccess,
                                   /*bInheritHandle=*/FALSE, /*dwOptions=*/0);
    if (duplicated) registry.Add(AsRaw(copy));
  }
  if (!duplicated) return LastOsError("DuplicateHandle", "making a read-only handle to a section");
  SharedMemory twin(OsHandle(AsRaw(copy)), size_, /*read_only=*/true, policy_);
  // Self-check (SECURITY-CHECKLIST Windows 9): the read-only handle must not
  // be re-duplicable with write access. If the OS allowed it (a section made
  // without memport's DACL, say), the "read-only" twin would be a lie: refuse.
  HANDLE probe = nullptr;
  if (::DuplicateHandle(self, copy, self, &probe, FILE_MAP_READ | FILE_MAP_WRITE, /*bInheritHandle=*/FALSE, 0)) {
    ::CloseHandle(probe);
    return MakeError("ACCESS_DENIED", "the OS would let a read-only handle to this section be re-duplicated for "
                                      "write, so no read-only twin can be made");
  }
  if (policy_) policy_->read_only_twin_exists = true;
  return twin;
}

Result<SharedMemory> SharedMemory::DuplicateInProcess() const {
  if (!valid()) return MakeError("CLOSED", "the region is closed");
  HANDLE self = ::GetCurrentProcess();
  HANDLE copy = nullptr;
  BOOL duplicated = FALSE;
  {
    win::OwnedSections registry;
    // DUPLICATE_SAME_ACCESS: exactly this handle's rights, never more.
    duplicated = ::DuplicateHandle(self, AsHandle(handle_.get()), self, &copy, /*dwDesiredAccess=*/0,
                                   /*bInheritHandle=*/FALSE, DUPLICATE_SAME_ACCESS);
    if (duplicated) registry.Add(AsRaw(copy));
  }
  if (!duplicated) return LastOsError("DuplicateHandle", "duplicating a section handle for another thread");
  return Twin(OsHandle(AsRaw(copy)));
}

Result<SharedMemory> SharedMemory::FromReceived(RawHandle raw, uint64_t size, bool read_only, bool /*from_transport*/) {
  if (size == 0 || size > kMaxSize) return MakeError("INVALID_HANDLE", "the declared region size is out of range");
  Status shape = CheckHandleValueShape(raw);
  if (!shape.ok()) return shape.error();
  // Held until the value is adopted, so the registry check, the validation and
  // the adoption are one step for every other SharedMemory. Nothing below
  // closes a handle (platform::CloseRawHandle takes this lock too).
  win::OwnedSections registry;
  if (registry.Contains(raw)) {
    return MakeError("INVALID_HANDLE", "the peer sent the value of a handle memport already owns in this process");
  }
  Status verified = win::VerifyReceivedSection(AsHandle(raw), size, read_only);
  if (!verified.ok()) return verified.error();
  // The sender chose the inherit flag when it duplicated the value in; memport's
  // own handles are never inheritable (libuv starts every child with
  // bInheritHandles=TRUE), so neither is an adopted one.
  if (!::SetHandleInformation(AsHandle(raw), HANDLE_FLAG_INHERIT, 0)) {
    return LastOsError("SetHandleInformation", "making a received section non-inheritable");
  }
  registry.Add(raw);
  // A received region starts a sharing policy of its own: no read-only twin
  // of it exists here, and a writable one was given write access on purpose.
  return SharedMemory(OsHandle(raw), size, read_only, std::make_shared<SharingPolicy>());
}

Result<SharedMemory> SharedMemory::FromReceivedNamed(RawHandle raw, uint64_t size, bool read_only) {
  if (size == 0 || size > kMaxSize) return MakeError("INVALID_HANDLE", "the declared region size is out of range");
  Status shape = CheckHandleValueShape(raw);
  if (!shape.ok()) return shape.error();
  // The pushed value cannot be told from one this process already held (Node's
  // node-debug-handler section, a region of our own, an openNamed one), and a
  // named section is allowed here, so the value itself is never adopted nor
  // closed: a handle of our own to whatever it names is made and checked, and
  // the sender closes the pushed value once this message is settled (ACK or
  // NACK). At worst a lying peer makes us map memory we already held.
  // DUPLICATE_SAME_ACCESS: never more rights than the pushed handle has.
  HANDLE self = ::GetCurrentProcess();
  HANDLE copy = nullptr;
  {
    win::OwnedSections registry;
    if (!::DuplicateHandle(self, AsHandle(raw), self, &copy, /*dwDesiredAccess=*/0, /*bInheritHandle=*/FALSE,
                           DUPLICATE_SAME_ACCESS)) {
      return MakeError("INVALID_HANDLE", "the peer sent a value that is not an open handle in this process");
    }
    registry.Add(AsRaw(copy));
  }
  OsHandle owned(AsRaw(copy));  // closed (and forgotten by the registry) on every refusal below
  Status verified = win::VerifyReceivedSection(copy, size, read_only, /*allow_named=*/true);
  if (!verified.ok()) return verified.error();
  SharedMemory memory(std::move(owned), size, read_only, std::make_shared<SharingPolicy>());
  memory.named_ = true;
  return memory;
}

Result<uint32_t> SharedMemory::DuplicateIntoProcess(int64_t pid, bool read_only) const {
  if (!valid()) return MakeError("CLOSED", "the region is closed");
  if (pid <= 0 || pid > 0xFFFFFFFFll) return MakeError("INVALID_ARGUMENT", "pid must be a positive process id");
  // Checked before opening the process so a refused request makes no system call.
  if (!read_only && !WriteSharingAllowed()) {
    return MakeError("ACCESS_DENIED", read_only_ ? "a read-only region cannot be shared writable"
                                                 : "this region has a read-only twin, so it may only be shared read-only");
  }
  HANDLE process = ::OpenProcess(PROCESS_DUP_HANDLE, /*bInheritHandle=*/FALSE, static_cast<DWORD>(pid));
  if (process == nullptr) {
    // OpenProcess reports a process id that nobody has as ERROR_INVALID_PARAMETER.
    if (::GetLastError() == ERROR_INVALID_PARAMETER) {
      return MakeError("NOT_FOUND", "no process with id " + std::to_string(pid));
    }
    return LastOsError("OpenProcess", "opening process " + std::to_string(pid) + " to give it a handle");
  }
  OsHandle owned_process(AsRaw(process));
  Result<RawHandle> remote = win::DuplicateSectionInto(*this, process, read_only);
  if (!remote.ok()) return remote.error();
  // A read-only copy of a writable section now exists elsewhere: from here
  // on, as after toReadOnly(), no writable handle to it may be given out.
  if (read_only && !read_only_ && policy_) policy_->read_only_twin_exists = true;
  return static_cast<uint32_t>(remote.value());
}

Result<std::shared_ptr<Mapping>> SharedMemory::Map() const {
  if (!valid()) return MakeError("CLOSED", "the region is closed");
  if (size_ > SIZE_MAX) return MakeError("UNSUPPORTED", "the region is larger than this process can map");
  // Read-only handles get a copy-on-write view: a JS write creates a private
  // page instead of an access violation, and never reaches the section.
  const DWORD access = read_only_ ? FILE_MAP_COPY : (FILE_MAP_READ | FILE_MAP_WRITE);
  void* data = ::MapViewOfFile(AsHandle(handle_.get()), access, /*dwFileOffsetHigh=*/0,
                               /*dwFileOffsetLow=*/0, static_cast<SIZE_T>(size_));
  if (data == nullptr) {
    return LastOsError("MapViewOfFile", "mapping a section of " + std::to_string(size_) + " bytes");
  }
  return std::make_shared<Mapping>(static_cast<uint8_t*>(data), size_);
}

bool SharedMemory::WriteSharingAllowed() const {
  if (read_only_ || !valid()) return false;
  return !(policy_ && policy_->read_only_twin_exists);
}

Result<std::vector<SharedMemory::EscalationAttempt>> SharedMemory::TryWriteEscalation() const {
  if (!valid()) return MakeError("CLOSED", "the region is closed");
  HANDLE section = AsHandle(handle_.get());
  HANDLE self = ::GetCurrentProcess();
  std::vector<EscalationAttempt> attempts;

  // A writable view through this handle.
  void* view = ::MapViewOfFile(section, FILE_MAP_WRITE, 0, 0, 0);
  if (view != nullptr) ::UnmapViewOfFile(view);
  attempts.push_back({"map-view-write", view != nullptr});

  // Re-duplicating the handle with write access (refused by the DACL).
  auto duplicate_with = [&](DWORD access) {
    HANDLE copy = nullptr;
    if (!::DuplicateHandle(self, section, self, &copy, access, /*bInheritHandle=*/FALSE, 0)) return false;
    ::CloseHandle(copy);
    return true;
  };
  attempts.push_back({"duplicate-write", duplicate_with(FILE_MAP_READ | FILE_MAP_WRITE)});
  // Taking WRITE_DAC, the owner's implicit right, to rewrite the DACL. The
  // OWNER RIGHTS ACE removes it on Windows; Wine does not model that ACE.
  attempts.push_back({"duplicate-write-dac", duplicate_with(WRITE_DAC)});

  // Raising the protection of a read view.
  bool raised = false;
  view = ::MapViewOfFile(section, FILE_MAP_READ, 0, 0, 0);
  if (view != nullptr) {
    DWORD old = 0;
    raised = ::VirtualProtect(view, 1, PAGE_READWRITE, &old) != FALSE;
    ::UnmapViewOfFile(view);
  }
  attempts.push_back({"virtual-protect-write", raised});
  return attempts;
}

}  // namespace memport
