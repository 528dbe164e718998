// Windows: who may open a pipe, who owns a name, and who is at the other
// end (pipe_security.cc). The pipe's protected DACL; the owner file a
// listener holds; the peer's process, opened at once and checked.
#pragma once

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <memory>
#include <string>
#include <vector>

#include "../core/error.h"
#include "../core/os_handle.h"
#include "win_internal.h"

namespace memport {

// ---------------------------------------------------------------------------
// Security: who may open the pipe, and who owns it.

// A self-relative-free security descriptor for every instance of one pipe:
// owner = the current user (explicitly, because an elevated token's default
// owner is BUILTIN\Administrators, which the client's owner check would
// reject), and a protected DACL that grants FILE_ALL_ACCESS to that user and
// to SYSTEM (S-1-5-18) and to nobody else. FILE_ALL_ACCESS includes
// FILE_CREATE_PIPE_INSTANCE, which only the owner's listeners need.
class PipeSecurity {
 public:
  static Result<std::unique_ptr<PipeSecurity>> Build() {
    std::unique_ptr<PipeSecurity> security(new PipeSecurity());
    Result<std::vector<uint8_t>> user = win::CurrentUserSid();
    if (!user.ok()) return user.error();
    security->user_sid_ = user.take();
    DWORD system_size = sizeof security->system_sid_;
    if (!::CreateWellKnownSid(WinLocalSystemSid, /*DomainSid=*/nullptr, security->system_sid_, &system_size)) {
      return LastOsError("CreateWellKnownSid", "building the pipe's DACL");
    }
    PSID user_sid = security->user_sid_.data();
    PSID system_sid = security->system_sid_;
    const DWORD acl_size = sizeof(ACL) + 2 * (sizeof(ACCESS_ALLOWED_ACE) - sizeof(DWORD)) + ::GetLengthSid(user_sid) +
                           ::GetLengthSid(system_sid);
    // DWORD elements: an ACL must be DWORD-aligned.
    security->acl_.resize((acl_size + sizeof(DWORD) - 1) / sizeof(DWORD));
    ACL* acl = reinterpret_cast<ACL*>(security->acl_.data());
    SECURITY_DESCRIPTOR* descriptor = &security->descriptor_;
    if (!::InitializeAcl(acl, acl_size, ACL_REVISION) ||
        !::AddAccessAllowedAce(acl, ACL_REVISION, FILE_ALL_ACCESS, user_sid) ||
        !::AddAccessAllowedAce(acl, ACL_REVISION, FILE_ALL_ACCESS, system_sid) ||
        !::InitializeSecurityDescriptor(descriptor, SECURITY_DESCRIPTOR_REVISION) ||
        !::SetSecurityDescriptorOwner(descriptor, user_sid, /*bOwnerDefaulted=*/FALSE) ||
        !::SetSecurityDescriptorDacl(descriptor, /*bDaclPresent=*/TRUE, acl, /*bDaclDefaulted=*/FALSE) ||
        // Protected: no ACE is inherited from the pipe file system's root.
        !::SetSecurityDescriptorControl(descriptor, SE_DACL_PROTECTED, SE_DACL_PROTECTED)) {
      return LastOsError("InitializeAcl", "building the pipe's DACL");
    }
    security->attributes_.nLength = sizeof security->attributes_;
    security->attributes_.lpSecurityDescriptor = descriptor;
    // libuv starts every child with bInheritHandles=TRUE.
    security->attributes_.bInheritHandle = FALSE;
    return security;
  }

  SECURITY_ATTRIBUTES* attributes() { return &attributes_; }

 private:
  PipeSecurity() = default;

  // The descriptor points into these members, so the object never moves.
  std::vector<uint8_t> user_sid_;
  alignas(DWORD) unsigned char system_sid_[SECURITY_MAX_SID_SIZE];
  std::vector<DWORD> acl_;
  SECURITY_DESCRIPTOR descriptor_;
  SECURITY_ATTRIBUTES attributes_;
};

// Refuses a pipe whose owner is not this user.
Status VerifyPipeOwner(HANDLE pipe);
// Whether a pipe error means the other end has gone.
bool IsPeerGone(DWORD err);
// Opens the peer's process (PROCESS_DUP_HANDLE) and checks that it still runs
// and is still the pipe's other end; `who` names it in errors.
Result<OsHandle> OpenPeerProcess(HANDLE pipe, ULONG pid, const std::string& who);

// %LOCALAPPDATA%\memport\<name>.owner.
Result<std::wstring> OwnerFilePath(const std::string& name, bool create_directory);
// Creates and holds the name's owner file; ALREADY_EXISTS while another listener holds it.
Result<OsHandle> ClaimName(const std::string& name);
// The PID in the name's owner file: 0 when there is none or it is being written.
Result<unsigned long long> ReadNameOwner(const std::string& name);
// Refuses a pipe instance served by a process other than the name's owner.
Status CheckServerOwnsName(const std::string& name, ULONG server_pid);

}  // namespace memport
