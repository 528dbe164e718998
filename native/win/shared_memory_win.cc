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
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <aclapi.h>

#include <string>

#include "../core/shared_memory.h"

namespace memport {

namespace {

HANDLE AsHandle(RawHandle raw) { return reinterpret_cast<HANDLE>(raw); }
RawHandle AsRaw(HANDLE h) { return reinterpret_cast<RawHandle>(h); }

constexpr DWORD kReadOnlyAccess = FILE_MAP_READ | SECTION_QUERY;

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

}  // namespace

void SharedMemory::Close() { handle_.reset(); }

Mapping::~Mapping() {
  if (data_ != nullptr) ::UnmapViewOfFile(data_);
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
  HANDLE section = ::CreateFileMappingW(INVALID_HANDLE_VALUE, attributes, PAGE_READWRITE | SEC_COMMIT,
                                        /*dwMaximumSizeHigh=*/static_cast<DWORD>(size >> 32),
                                        /*dwMaximumSizeLow=*/static_cast<DWORD>(size & 0xFFFFFFFFu),
                                        /*lpName=*/nullptr);
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
  if (!::DuplicateHandle(self, AsHandle(handle_.get()), self, &copy, kReadOnlyAccess,
                         /*bInheritHandle=*/FALSE, /*dwOptions=*/0)) {
    return LastOsError("DuplicateHandle", "making a read-only handle to a section");
  }
  if (policy_) policy_->read_only_twin_exists = true;
  return SharedMemory(OsHandle(AsRaw(copy)), size_, /*read_only=*/true, policy_);
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
