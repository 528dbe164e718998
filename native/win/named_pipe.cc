// The transport on Windows (native/core/transport.h): message-mode named pipes
// carry frames, and section handles travel by DuplicateHandle straight into
// the peer's handle table, their values written into the frame.
//
// Who is on the other end. A channel name maps to a pipe name that contains
// the user's SID, and the pipe gets a protected DACL for that user and SYSTEM
// only (the default DACL lets Everyone and Anonymous read). The listener
// learns a client's PID from the pipe (GetNamedPipeClientProcessId), never from
// the payload, and opens the process at once, keeping that handle for the
// connection, so a recycled PID cannot redirect our handles. A client checks
// the server before it sends anything: the pipe's owner must be its own user
// (a squatter of another user fails here), and optionally the server PID. It
// opens with SECURITY_IDENTIFICATION so that a squatting server cannot
// impersonate it. See "Named Pipe Security and Access Rights",
// "CreateNamedPipeW" and "Impersonation Levels" on Microsoft Learn.
//
// Threads. One I/O thread per process waits on an I/O completion port for
// every pipe (overlapped ConnectNamedPipe/ReadFile/WriteFile); nothing on it
// blocks, so a silent peer stalls nobody. Connect's blocking waits run on a
// short-lived thread of their own. Observers are only ever called through
// JsThread::Post. Every overlapped operation holds a strong reference to the
// state that issued it, so that state, and the OVERLAPPED inside the
// operation, outlive the kernel's use of them even after Close().
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <aclapi.h>

#include <atomic>
#include <cstring>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "../core/frame.h"
#include "../core/named.h"
#include "../core/os_handle.h"
#include "../core/shared_memory.h"
#include "../core/connect.h"
#include "../core/transport.h"
#include "win_internal.h"

namespace memport {

namespace {

using win::AsHandle;
using win::AsRaw;
using win::Get;

// Pipe buffers: a hint to the kernel, which grows them as needed; 64 KiB holds
// a typical frame (a few regions and some JSON) in one go.
constexpr DWORD kPipeBufferSize = 64 * 1024;
// Listening instances kept open at once. One suffices for correctness; a few
// let a burst of clients connect without waiting on ERROR_PIPE_BUSY.
constexpr size_t kListenBacklog = 4;
// Handles all connections together may hold in unreceived messages. Windows
// has no small per-process handle limit (about 16 million), so this only
// keeps one process's table reasonable.
constexpr uint64_t kProcessHandleLimit = 65536;
// A waiting read's buffer: most frames fit (a few regions and some JSON); a
// longer one is read on from the pipe into the I/O thread's one buffer of the
// largest frame, so an idle connection does not hold 132 KiB.
constexpr DWORD kWaitingReadSize = 4096;
// At most this many unread messages are read to release their handles when a
// connection that was never started is closed (the pipe holds few anyway).
constexpr int kMaxDiscardedMessages = 1024;

// ---------------------------------------------------------------------------
// The I/O completion port and its thread.

class IoOp;

// Whatever issued an overlapped operation. Called on the I/O thread.
class IoTarget {
 public:
  virtual ~IoTarget() = default;
  virtual void OnIoComplete(std::unique_ptr<IoOp> op, DWORD bytes, DWORD error) = 0;
};

// An OVERLAPPED that knows the operation it belongs to. The port hands back
// the OVERLAPPED*; a static_cast down to this struct recovers the operation.
struct TaggedOverlapped : OVERLAPPED {
  IoOp* op;
};

// One overlapped operation in flight. While the kernel may still write to the
// OVERLAPPED, the operation is owned by nobody but "the port": whoever issues
// it releases its unique_ptr, and the I/O thread takes ownership back when the
// completion arrives.
class IoOp {
 public:
  explicit IoOp(std::shared_ptr<IoTarget> target) : target_(std::move(target)) {
    ::ZeroMemory(&overlapped_, sizeof overlapped_);
    overlapped_.op = this;
  }
  IoOp(const IoOp&) = delete;
  IoOp& operator=(const IoOp&) = delete;
  virtual ~IoOp() = default;

  OVERLAPPED* overlapped() { return &overlapped_; }
  static IoOp* FromOverlapped(OVERLAPPED* overlapped) { return static_cast<TaggedOverlapped*>(overlapped)->op; }
  const std::shared_ptr<IoTarget>& target() const { return target_; }

 private:
  TaggedOverlapped overlapped_;
  // Keeps the issuer (and its handles and buffers) alive until completion.
  std::shared_ptr<IoTarget> target_;
};

class IoService {
 public:
  // The process-wide service, started on first use. It is never destroyed:
  // the thread may still be delivering completions while static destructors
  // run at exit, and Node never unloads an addon.
  static Result<IoService*> Instance() {
    static IoService* const service = new IoService();
    if (!service->start_error_.code.empty()) return service->start_error_;
    return service;
  }

  // Routes the handle's completions to this port. Permanent for the handle.
  Status Associate(HANDLE handle) {
    if (::CreateIoCompletionPort(handle, Get(port_), /*CompletionKey=*/0, /*NumberOfConcurrentThreads=*/0) ==
        nullptr) {
      return LastOsError("CreateIoCompletionPort", "registering a pipe with the I/O thread");
    }
    return Ok();
  }

  // Queues a completion for an operation that finished synchronously without
  // queueing one itself (ConnectNamedPipe's ERROR_PIPE_CONNECTED), so that
  // every completion is handled on the I/O thread in one place.
  bool PostCompletion(IoOp* op) {
    return ::PostQueuedCompletionStatus(Get(port_), /*dwNumberOfBytesTransferred=*/0, /*dwCompletionKey=*/0,
                                        op->overlapped()) != FALSE;
  }

  // Reads what is in the pipe now, bypassing the port: for data known to be
  // there (the rest of a message, or a message PeekNamedPipe saw), so it
  // completes at once; gives up after a second. Returns the read's error.
  // One event, made with the port and kept for the life of the process, serves
  // every such read (serialised): an event per read would churn the handle
  // table, and a handle that comes and goes looks, from outside, like one of
  // ours being closed (the adversarial handle sweep checks exactly that).
  DWORD ReadNow(HANDLE pipe, uint8_t* buffer, DWORD size, DWORD* got) {
    *got = 0;
    std::lock_guard<std::mutex> lock(read_now_mutex_);
    if (!::ResetEvent(Get(read_now_event_))) return ::GetLastError();
    OVERLAPPED overlapped{};
    // The event's low bit set: no completion packet is queued to the port.
    overlapped.hEvent = reinterpret_cast<HANDLE>(reinterpret_cast<uintptr_t>(Get(read_now_event_)) | 1);
    if (!::ReadFile(pipe, buffer, size, nullptr, &overlapped)) {
      const DWORD err = ::GetLastError();
      if (err != ERROR_IO_PENDING) return err;
      if (::WaitForSingleObject(Get(read_now_event_), 1000) != WAIT_OBJECT_0) {
        ::CancelIoEx(pipe, &overlapped);
        ::GetOverlappedResult(pipe, &overlapped, got, TRUE);
        return ERROR_OPERATION_ABORTED;
      }
    }
    if (!::GetOverlappedResult(pipe, &overlapped, got, FALSE)) return ::GetLastError();
    return ERROR_SUCCESS;
  }

 private:
  IoService() {
    HANDLE port = ::CreateIoCompletionPort(INVALID_HANDLE_VALUE, /*ExistingCompletionPort=*/nullptr,
                                           /*CompletionKey=*/0, /*NumberOfConcurrentThreads=*/1);
    if (port == nullptr) {
      start_error_ = LastOsError("CreateIoCompletionPort", "starting memport's I/O thread");
      return;
    }
    port_.reset(AsRaw(port));
    read_now_event_.reset(AsRaw(::CreateEventW(/*lpEventAttributes=*/nullptr, /*bManualReset=*/TRUE,
                                                /*bInitialState=*/FALSE, /*lpName=*/nullptr)));
    if (!read_now_event_.valid()) {
      start_error_ = LastOsError("CreateEventW", "starting memport's I/O thread");
      return;
    }
    try {
      std::thread([this] { Run(); }).detach();
    } catch (const std::system_error& e) {
      start_error_ = MakeError("OUT_OF_MEMORY", std::string("starting memport's I/O thread failed: ") + e.what());
    }
  }

  void Run() {
    for (;;) {
      DWORD bytes = 0;
      ULONG_PTR key = 0;
      OVERLAPPED* overlapped = nullptr;
      const BOOL ok = ::GetQueuedCompletionStatus(Get(port_), &bytes, &key, &overlapped, INFINITE);
      const DWORD error = ok ? ERROR_SUCCESS : ::GetLastError();
      // No packet: only if the port itself failed, which it cannot while we
      // hold it. Nothing to do but try again.
      if (overlapped == nullptr) continue;
      std::unique_ptr<IoOp> op(IoOp::FromOverlapped(overlapped));
      std::shared_ptr<IoTarget> target = op->target();
      target->OnIoComplete(std::move(op), bytes, error);
    }
  }

  OsHandle port_;
  OsHandle read_now_event_;
  std::mutex read_now_mutex_;
  Error start_error_;
};

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

Result<unsigned long long> ReadNameOwner(const std::string& name);

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

// ---------------------------------------------------------------------------
// Connections.

// Handle values duplicated into the peer for one frame. Until Keep() is
// called (the frame was provably written, or at least partly read), they are
// revoked on destruction: DUPLICATE_CLOSE_SOURCE from the peer's table. After
// delivery never: the peer may already use or have reused those values.
class PeerHandles {
 public:
  explicit PeerHandles(HANDLE process) : process_(process) {}
  PeerHandles(const PeerHandles&) = delete;
  PeerHandles& operator=(const PeerHandles&) = delete;
  ~PeerHandles() {
    for (RawHandle value : values_) win::RevokeFromProcess(process_, value);
  }
  void Add(RawHandle value) { values_.push_back(value); }
  // A named region's value: revoked like the others if the frame never left,
  // but once it did, the receiver only duplicates it (it cannot tell a pushed
  // value from one it held already, so it never closes it), and the sender
  // closes it when the message is settled (PipeState::SettleNamedLocked).
  void AddNamed(RawHandle value) {
    values_.push_back(value);
    named_.push_back(value);
  }
  void Keep() { values_.clear(); }
  std::vector<RawHandle> TakeNamed() { return std::move(named_); }

 private:
  HANDLE process_;  // owned by the connection, which outlives every write
  std::vector<RawHandle> values_;
  std::vector<RawHandle> named_;
};

class ReadOp : public IoOp {
 public:
  using IoOp::IoOp;
};

class WriteOp : public IoOp {
 public:
  WriteOp(std::shared_ptr<IoTarget> target, uint64_t write_id, uint32_t seq, std::vector<uint8_t> bytes,
          std::unique_ptr<PeerHandles> handles)
      : IoOp(std::move(target)), write_id(write_id), seq(seq), bytes(std::move(bytes)), handles(std::move(handles)) {}
  const uint64_t write_id;
  const uint32_t seq;  // the MESSAGE's number, which its ACK/NACK names
  const std::vector<uint8_t> bytes;
  std::unique_ptr<PeerHandles> handles;
  bool owed = false;  // a control frame still waiting for the peer to read (counted in owed_control_)
};

Error ClosedError() { return MakeError("CLOSED", "the connection is closed"); }
Error PeerClosedError() { return MakeError("PEER_CLOSED", "the peer closed the connection"); }

Error WriteError(DWORD err) {
  if (IsPeerGone(err)) return PeerClosedError();
  if (err == ERROR_OPERATION_ABORTED) return ClosedError();
  return OsError(err, "WriteFile", "sending a message to the peer");
}

Error ReadError(DWORD err) {
  if (IsPeerGone(err)) return PeerClosedError();
  if (err == ERROR_MORE_DATA) {
    return MakeError("PROTOCOL", "malformed frame from peer: a message longer than the " +
                                     std::to_string(kMaxFrameSize) + "-byte cap");
  }
  return OsError(err, "ReadFile", "reading from the peer");
}

// The state of one connection, shared between the Connection object (JS
// thread) and the operations in flight (I/O thread). Every member below the
// mutex is guarded by it.
class PipeState : public IoTarget, public std::enable_shared_from_this<PipeState> {
 public:
  PipeState(OsHandle pipe, OsHandle peer_process, PeerIdentity peer, std::shared_ptr<JsThread> js)
      : peer_(peer),
        js_(std::move(js)),
        user_closed_(std::make_shared<std::atomic<bool>>(false)),
        pipe_(std::move(pipe)),
        peer_process_(std::move(peer_process)) {}

  const PeerIdentity& peer() const { return peer_; }

  bool PeerRunning() {
    std::lock_guard<std::mutex> lock(mutex_);
    return !closed_ && peer_process_.valid() && ::WaitForSingleObject(Get(peer_process_), 0) == WAIT_TIMEOUT;
  }

  Status Admit() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return close_reason_;
    DWORD available = 0;
    if (!::PeekNamedPipe(Get(pipe_), /*lpBuffer=*/nullptr, 0, /*lpBytesRead=*/nullptr, &available,
                         /*lpBytesLeftThisMessage=*/nullptr)) {
      const DWORD err = ::GetLastError();
      if (IsPeerGone(err)) return MakeError("PEER_CLOSED", "the client left before it was admitted");
      return OsError(err, "PeekNamedPipe", "checking the client before admitting it");
    }
    if (available > 0) return MakeError("PROTOCOL", "the client sent a frame before it was admitted (before WELCOME)");
    return Ok();
  }

  void Start(std::shared_ptr<ConnectionObserver> observer, const PeerLimits& limits) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (started_) return;
    if (closed_) {
      // Ended before it started (the WELCOME could not be written): say so.
      Error why = close_reason_;
      js_->Post([observer, why] { observer->OnClosed(why); });
      return;
    }
    started_ = true;
    observer_ = std::move(observer);
    limits_ = limits;
    account_ = std::make_shared<InboxAccount>(limits, kProcessHandleLimit, peer_.pid);
    read_buffer_.resize(kWaitingReadSize);
    IssueReadLocked();
  }

  // `*completed` (may be null: then every completion is posted): the pipe
  // took the whole frame before WriteFile returned, so the caller reports it
  // and no OnWriteDone follows (the completion packet still arrives and only
  // frees the operation).
  Status Write(uint64_t write_id, Frame frame, const std::vector<const SharedMemory*>& regions, bool* completed) {
    if (completed != nullptr) *completed = false;
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return close_reason_;
    if (regions.size() > kMaxRegionsPerFrame) {
      return MakeError("INVALID_ARGUMENT", "at most " + std::to_string(kMaxRegionsPerFrame) + " regions per message");
    }
    if (!frame.regions.empty() && frame.regions.size() != regions.size()) {
      return MakeError("INVALID_ARGUMENT", "the frame declares a different number of regions than were given");
    }
    frame.regions.resize(regions.size());

    // Revokes every value duplicated so far on any early return below.
    auto handles = std::make_unique<PeerHandles>(Get(peer_process_));
    for (size_t i = 0; i < regions.size(); ++i) {
      const SharedMemory* region = regions[i];
      if (region == nullptr || !region->valid()) {
        named_writing_.erase(frame.seq);
        return MakeError("CLOSED", "a region in the message is closed");
      }
      Result<RawHandle> remote = win::DuplicateSectionInto(*region, Get(peer_process_), region->read_only());
      if (!remote.ok()) {
        named_writing_.erase(frame.seq);
        // Duplicating into a process that just died fails before the pipe
        // reports the break: say what happened, not ACCESS_DENIED.
        if (::WaitForSingleObject(Get(peer_process_), 0) == WAIT_OBJECT_0) return PeerClosedError();
        return remote.error();
      }
      if (region->named()) {
        handles->AddNamed(remote.value());
        named_writing_.insert(frame.seq);
      } else {
        handles->Add(remote.value());
      }
      RegionDescriptor& descriptor = frame.regions[i];
      descriptor.size = region->size();
      descriptor.flags = (region->read_only() ? kRegionReadOnly : 0) | (region->named() ? kRegionNamed : 0);
      descriptor.handle = static_cast<uint32_t>(static_cast<uintptr_t>(remote.value()));
    }
    Result<std::vector<uint8_t>> encoded = EncodeFrame(frame);
    if (!encoded.ok()) {
      named_writing_.erase(frame.seq);
      return encoded.error();
    }

    auto op = std::make_unique<WriteOp>(shared_from_this(), write_id, frame.seq, encoded.take(), std::move(handles));
    const BOOL done = ::WriteFile(Get(pipe_), op->bytes.data(), static_cast<DWORD>(op->bytes.size()),
                                  /*lpNumberOfBytesWritten=*/nullptr, op->overlapped());
    if (!done) {
      const DWORD err = ::GetLastError();
      // Any other failure queues no completion and wrote nothing; destroying
      // `op` revokes the handles.
      if (err != ERROR_IO_PENDING) {
        named_writing_.erase(frame.seq);
        return WriteError(err);
      }
    }
    // Completed or pending: either way one completion packet will arrive.
    // A write that completed here is reported by the caller, not posted.
    if (done && completed != nullptr && write_id != kUnreportedWrite) {
      *completed = true;
    } else {
      pending_writes_.insert(op.get());
    }
    ++outstanding_;
    WriteOp* issued = op.release();
    if (!done && write_id == kUnreportedWrite) {
      // ACKs and NACKs pile up only for a peer that sends and never reads.
      issued->owed = true;
      if (++owed_control_ > limits_.max_owed_control_frames) {
        ShutdownLocked(MakeError("PROTOCOL", "the peer does not read: more than " +
                                                 std::to_string(limits_.max_owed_control_frames) +
                                                 " acknowledgements are waiting for it (limits.maxOwedControlFrames)"));
      }
    }
    return Ok();
  }

  // Close() from the JS thread: report CLOSED, and suppress frames already
  // posted but not yet delivered (transport.h: nothing after Close returns).
  void CloseByUser() {
    user_closed_->store(true);
    std::lock_guard<std::mutex> lock(mutex_);
    if (!started_ && !closed_) DiscardUnreadLocked();
    ShutdownLocked(ClosedError());
  }

  void OnIoComplete(std::unique_ptr<IoOp> op, DWORD bytes, DWORD error) override {
    if (auto* write = dynamic_cast<WriteOp*>(op.get())) {
      CompleteWrite(write, bytes, error);
    } else {
      CompleteRead(bytes, error);
    }
    // `op` (and with it the revocation decision made above) goes here.
  }

 private:
  void IssueReadLocked() {
    auto op = std::make_unique<ReadOp>(shared_from_this());
    if (!::ReadFile(Get(pipe_), read_buffer_.data(), static_cast<DWORD>(read_buffer_.size()),
                    /*lpNumberOfBytesRead=*/nullptr, op->overlapped())) {
      const DWORD err = ::GetLastError();
      // ERROR_MORE_DATA is a warning status: a completion packet is queued
      // for it as for success, and the handler treats it as a violation.
      if (err != ERROR_IO_PENDING && err != ERROR_MORE_DATA) {
        ShutdownLocked(ReadError(err));
        return;
      }
    }
    ++outstanding_;
    op.release();
  }

  void CompleteRead(DWORD bytes, DWORD error) {
    // Only the I/O thread reads (one thread: kernel32's port has one).
    static std::vector<uint8_t>* const large = new std::vector<uint8_t>(kMaxFrameSize);
    const uint8_t* frame_bytes = read_buffer_.data();
    size_t frame_length = bytes;
    if (error == ERROR_MORE_DATA) {
      // Longer than the waiting buffer: the rest of the message is in the
      // pipe already. More than the largest frame is still a violation.
      std::lock_guard<std::mutex> lock(mutex_);
      if (!closed_ && bytes <= large->size()) {
        std::memcpy(large->data(), read_buffer_.data(), bytes);
        DWORD rest = 0;
        error = ReadNowLocked(large->data() + bytes, static_cast<DWORD>(large->size() - bytes), &rest);
        frame_bytes = large->data();
        frame_length = static_cast<size_t>(bytes) + rest;
      }
    }
    // Decoding and adopting happen outside the lock: only this thread touches
    // the buffers while no read is pending.
    InboundMessage message;
    Error failure;  // code empty: none
    if (error == ERROR_SUCCESS) {
      Result<Frame> frame = DecodeFrame(frame_bytes, frame_length);
      if (frame.ok()) {
        message.frame = frame.take();
        failure = AdoptRegions(&message, limits_.accept_named_regions);
        if (failure.code.empty() && message.frame.type == FrameType::kMessage && message.refused.code.empty()) {
          // Validated, never mapped; over a bound, released at once and refused.
          Result<std::unique_ptr<InboxCharge>> charge = account_->Charge(message.frame);
          if (charge.ok()) {
            message.charge = charge.take();
          } else {
            message.regions.clear();
            message.refused = charge.error();
          }
        }
      } else {
        failure = frame.error();
      }
    }

    std::lock_guard<std::mutex> lock(mutex_);
    --outstanding_;
    if (closed_) {
      ReleaseHandlesIfIdleLocked();
      return;  // `message` and the regions it adopted are released here.
    }
    if (error != ERROR_SUCCESS) {
      ShutdownLocked(ReadError(error));
      return;
    }
    if (!failure.code.empty()) {
      ShutdownLocked(failure);
      return;
    }
    if (message.frame.type == FrameType::kAck || message.frame.type == FrameType::kNack) {
      SettleNamedLocked(message.frame.seq);
    }
    auto shared = std::make_shared<InboundMessage>(std::move(message));
    js_->Post([observer = observer_, user_closed = user_closed_, shared] {
      if (user_closed->load()) return;
      observer->OnFrame(std::move(*shared));
    });
    IssueReadLocked();
  }

  // Validates and takes ownership of every handle the frame names, or of
  // none: on the first failure the ones already adopted are closed (they were
  // proven to be our sections), and the failing value and all after it are
  // left untouched, because they may name anything in our handle table.
  // A region flagged named is never adopted: a duplicate of it is
  // (FromReceivedNamed), and only with `accept_named`; without it the message
  // is refused (NACK UNSUPPORTED), its unnamed regions adopted and released,
  // its named values left for the sender to close.
  static Error AdoptRegions(InboundMessage* message, bool accept_named) {
    bool named = false;
    for (const RegionDescriptor& descriptor : message->frame.regions) named = named || descriptor.named();
    const bool refuse = named && !accept_named;
    for (size_t i = 0; i < message->frame.regions.size(); ++i) {
      const RegionDescriptor& descriptor = message->frame.regions[i];
      if (refuse && descriptor.named()) continue;
      // A u32 on the wire, sign-extended like a 32-bit process's handle.
      const RawHandle raw = static_cast<RawHandle>(static_cast<int32_t>(descriptor.handle));
      Result<SharedMemory> region = descriptor.named()
                                        ? SharedMemory::FromReceivedNamed(raw, descriptor.size, descriptor.read_only())
                                        : SharedMemory::FromReceived(raw, descriptor.size, descriptor.read_only());
      if (!region.ok()) {
        message->regions.clear();
        return MakeError("INVALID_HANDLE", "region " + std::to_string(i) + " of message " +
                                               std::to_string(message->frame.seq) + ": " + region.error().message);
      }
      message->regions.push_back(region.take());
    }
    if (refuse) {
      message->regions.clear();
      message->refused = MakeError("UNSUPPORTED", NamedRegionRefusedMessage());
    }
    return Error{};
  }

  // MESSAGE `seq` was answered (ACK or NACK): the receiver holds its own
  // duplicate of every named region in it, or refused them, so the values
  // pushed for them are closed in its table now. An answer that overtook
  // the write's own completion is remembered until it lands.
  void SettleNamedLocked(uint32_t seq) {
    auto pushed = named_in_peer_.find(seq);
    if (pushed != named_in_peer_.end()) {
      for (RawHandle value : pushed->second) win::RevokeFromProcess(Get(peer_process_), value);
      named_in_peer_.erase(pushed);
    } else if (named_writing_.count(seq) != 0) {
      named_settled_early_.insert(seq);
    }
  }

  // The connection ended with named values still unanswered. If the peer
  // ended it (EOF, broken pipe, a violation), it reads no more frames, so it
  // will never duplicate them: they are closed. If this side closed it, the
  // peer may still read the frame from the pipe and duplicate the value, and
  // closing it first would let that number name something else there by
  // then: the values are left (held by the peer until it exits; SECURITY.md).
  void ForgetNamedLocked(std::vector<RawHandle> values) {
    if (close_reason_.code == "CLOSED" || !peer_process_.valid()) return;
    for (RawHandle value : values) win::RevokeFromProcess(Get(peer_process_), value);
  }

  void CompleteWrite(WriteOp* op, DWORD bytes, DWORD error) {
    // Written, or at least partly taken by the reader: the values may be in
    // use over there, so they stay. Failed with nothing written (cancelled by
    // Close, or the pipe broke first): they never reached the peer's code.
    const bool written = error == ERROR_SUCCESS || bytes != 0;
    std::vector<RawHandle> named;
    if (written) {
      op->handles->Keep();
      named = op->handles->TakeNamed();
    }
    op->handles.reset();  // revokes now, while peer_process_ is certainly open

    std::lock_guard<std::mutex> lock(mutex_);
    if (named_writing_.erase(op->seq) != 0 && !named.empty()) {
      if (named_settled_early_.erase(op->seq) != 0) {
        for (RawHandle value : named) win::RevokeFromProcess(Get(peer_process_), value);
      } else if (closed_) {
        ForgetNamedLocked(std::move(named));
      } else {
        named_in_peer_[op->seq] = std::move(named);
      }
    }
    --outstanding_;
    if (op->owed) --owed_control_;
    const bool unreported = pending_writes_.erase(op) != 0;
    if (unreported && observer_ && op->write_id != kUnreportedWrite) {
      std::shared_ptr<Error> result;
      if (error != ERROR_SUCCESS) result = std::make_shared<Error>(WriteError(error));
      js_->Post([observer = observer_, write_id = op->write_id, result] {
        observer->OnWriteDone(write_id, result.get());
      });
    }
    ReleaseHandlesIfIdleLocked();
  }

  // Ends the connection once: pending writes and then OnClosed get `reason`,
  // I/O in flight is cancelled, and the pipe is closed now so the peer sees
  // EOF at once. The peer's process handle stays until every write has
  // completed, because revoking needs it.
  void ShutdownLocked(const Error& reason) {
    if (closed_) return;
    closed_ = true;
    close_reason_ = reason;
    if (observer_) {
      for (WriteOp* op : pending_writes_) {
        if (op->write_id == kUnreportedWrite) continue;
        auto error = std::make_shared<Error>(reason);
        js_->Post([observer = observer_, write_id = op->write_id, error] {
          observer->OnWriteDone(write_id, error.get());
        });
      }
      auto error = std::make_shared<Error>(reason);
      js_->Post([observer = observer_, error] { observer->OnClosed(*error); });
    }
    // Nothing is reported after OnClosed; dropping the observer here lets the
    // JS side (whose callbacks it holds) be collected.
    observer_.reset();
    pending_writes_.clear();
    for (auto& pushed : named_in_peer_) ForgetNamedLocked(std::move(pushed.second));
    named_in_peer_.clear();
    named_settled_early_.clear();
    // Closing the handle alone would also abort our I/O; cancelling first
    // makes the completions (ERROR_OPERATION_ABORTED) explicit. Their packets
    // still reach the port: the file object lives until its I/O completes.
    if (outstanding_ > 0) ::CancelIoEx(Get(pipe_), /*lpOverlapped=*/nullptr);
    pipe_.reset();
    ReleaseHandlesIfIdleLocked();
  }

  // The rest of a message, or a message PeekNamedPipe saw: read at once,
  // bypassing the port (IoService::ReadNow).
  DWORD ReadNowLocked(uint8_t* buffer, DWORD size, DWORD* got) {
    *got = 0;
    Result<IoService*> io = IoService::Instance();
    if (!io.ok()) return ERROR_NOT_READY;
    return io.value()->ReadNow(Get(pipe_), buffer, size, got);
  }

  // A connection closed before it was started (a client refused, or dropped
  // for sending before WELCOME) was never read. Unlike fds queued on a Linux
  // socket, section handles a client duplicated into us are in our table
  // already, named in the messages waiting in the pipe: read those messages
  // now (no read was ever issued, so the buffer is ours) and close every
  // value that validates as a section, unmapped and undelivered. A value
  // that fails validation is left alone, as always (it may name anything).
  void DiscardUnreadLocked() {
    std::vector<uint8_t> buffer(kMaxFrameSize);
    for (int i = 0; i < kMaxDiscardedMessages; ++i) {
      DWORD available = 0;
      if (!::PeekNamedPipe(Get(pipe_), nullptr, 0, nullptr, &available, nullptr) || available == 0) return;
      DWORD bytes = 0;
      if (ReadNowLocked(buffer.data(), static_cast<DWORD>(buffer.size()), &bytes) != ERROR_SUCCESS) return;
      Result<Frame> frame = DecodeFrame(buffer.data(), bytes);
      if (!frame.ok()) return;
      InboundMessage message;
      message.frame = frame.take();
      AdoptRegions(&message, /*accept_named=*/false);  // the adopted ones close with `message`
    }
  }

  void ReleaseHandlesIfIdleLocked() {
    if (closed_ && outstanding_ == 0) peer_process_.reset();
  }

  const PeerIdentity peer_;
  const std::shared_ptr<JsThread> js_;
  const std::shared_ptr<std::atomic<bool>> user_closed_;

  std::mutex mutex_;
  OsHandle pipe_;
  OsHandle peer_process_;  // PROCESS_DUP_HANDLE, opened when the peer was identified
  std::shared_ptr<ConnectionObserver> observer_;
  bool started_ = false;
  bool closed_ = false;
  Error close_reason_;                         // what Write returns once closed
  size_t outstanding_ = 0;                     // operations the kernel still holds
  std::unordered_set<WriteOp*> pending_writes_;  // in flight and not yet reported
  std::vector<uint8_t> read_buffer_;           // written by the kernel while a read is pending
  PeerLimits limits_;
  std::shared_ptr<InboxAccount> account_;
  uint64_t owed_control_ = 0;                  // control frames written but not yet taken by the peer
  // Named regions' values pushed into the peer (PeerHandles::AddNamed), by
  // MESSAGE seq: being written, written and awaiting ACK/NACK, answered
  // before the write's completion arrived.
  std::unordered_set<uint32_t> named_writing_;
  std::unordered_map<uint32_t, std::vector<RawHandle>> named_in_peer_;
  std::unordered_set<uint32_t> named_settled_early_;
};

class PipeConnection : public Connection {
 public:
  explicit PipeConnection(std::shared_ptr<PipeState> state) : state_(std::move(state)) {}
  // Dropping the object closes the connection, reporting like Close().
  ~PipeConnection() override { state_->CloseByUser(); }

  const PeerIdentity& peer() const override { return state_->peer(); }
  bool PeerRunning() const override { return state_->PeerRunning(); }
  Status Admit() override { return state_->Admit(); }
  void Start(std::shared_ptr<ConnectionObserver> observer, const PeerLimits& limits) override {
    state_->Start(std::move(observer), limits);
  }
  Status Write(uint64_t write_id, Frame frame, const std::vector<const SharedMemory*>& regions) override {
    return state_->Write(write_id, std::move(frame), regions, /*completed=*/nullptr);
  }
  Status WriteInline(uint64_t write_id, Frame frame, const std::vector<const SharedMemory*>& regions,
                     bool* completed) override {
    return state_->Write(write_id, std::move(frame), regions, completed);
  }
  void Close() override { state_->CloseByUser(); }

 private:
  std::shared_ptr<PipeState> state_;
};

// ---------------------------------------------------------------------------
// Listening.

// A listening instance waiting in ConnectNamedPipe. Owns its pipe handle
// until a client arrives and the handle moves into a connection.
class AcceptOp : public IoOp {
 public:
  AcceptOp(std::shared_ptr<IoTarget> target, OsHandle pipe) : IoOp(std::move(target)), pipe(std::move(pipe)) {}
  OsHandle pipe;
};

class ListenerState : public IoTarget, public std::enable_shared_from_this<ListenerState> {
 public:
  ListenerState(std::string address, std::unique_ptr<PipeSecurity> security, IoService* io,
                std::shared_ptr<JsThread> js, std::shared_ptr<ListenerObserver> observer)
      : address_(std::move(address)),
        wide_address_(win::Utf8ToWide(address_)),
        security_(std::move(security)),
        io_(io),
        js_(std::move(js)),
        observer_(std::move(observer)),
        closed_flag_(std::make_shared<std::atomic<bool>>(false)) {}

  const std::string& address() const { return address_; }

  // The first instance. FILE_FLAG_FIRST_PIPE_INSTANCE makes creation fail if
  // the name exists at all, whoever made it: we never silently join (or
  // start serving clients of) someone else's pipe.
  Status ListenFirst() {
    // Wine 8 ignores FILE_FLAG_FIRST_PIPE_INSTANCE (tried here: a second
    // "first" instance of a live name succeeds, in-process and across
    // processes). Ask first whether the name exists, without connecting to
    // it; racy, so only an extra line of defence, the flag below being the
    // guarantee on Windows. WaitNamedPipeW only fails with
    // ERROR_FILE_NOT_FOUND when no instance of the name exists.
    const BOOL available = ::WaitNamedPipeW(wide_address_.c_str(), /*nTimeOut=*/1);
    const DWORD err = available ? ERROR_SUCCESS : ::GetLastError();
    if (err != ERROR_FILE_NOT_FOUND) {
      Error error = NameInUse(err);
      error.syscall = "WaitNamedPipeW";
      return error;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    Status first = AddInstanceLocked(/*first=*/true);
    if (!first.ok()) return first;
    // The rest of the backlog is a convenience: failing here is not fatal,
    // and every accepted client tops the backlog up again.
    while (pending_.size() < kListenBacklog && AddInstanceLocked(/*first=*/false).ok()) {
    }
    return Ok();
  }

  void Close() {
    closed_flag_->store(true);
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;
    closed_ = true;
    // Close every listening instance now, so the name is free when Close
    // returns; the aborted ConnectNamedPipe completions free the operations.
    for (AcceptOp* op : pending_) {
      ::CancelIoEx(Get(op->pipe), op->overlapped());
      op->pipe.reset();
    }
  }

  void OnIoComplete(std::unique_ptr<IoOp> base, DWORD bytes, DWORD error) override {
    std::unique_ptr<AcceptOp> op(static_cast<AcceptOp*>(base.release()));
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.erase(op.get());
    if (closed_) return;  // the instance (if still open) closes with `op`

    // Replace the instance before handing this one over, so the name is
    // never without a listening instance that we own (otherwise another
    // process could re-create it with its own DACL).
    TopUpLocked();
    if (closed_) return;

    if (error != ERROR_SUCCESS && error != ERROR_PIPE_CONNECTED) {
      // ERROR_NO_DATA: the client connected and left already. Either way this
      // instance is done; the replacement is listening.
      return;
    }
    ULONG pid = 0;
    if (!::GetNamedPipeClientProcessId(Get(op->pipe), &pid) || pid == 0) return;  // drop this client
    // Opened now and kept for the connection: a PID can be reused once the
    // process is gone, a process handle cannot.
    Result<OsHandle> process = OpenPeerProcess(Get(op->pipe), pid, "the client");
    if (!process.ok()) return;  // drop this client (gone, or a more privileged process), keep listening
    PeerIdentity peer;
    peer.pid = static_cast<int64_t>(pid);
    auto state = std::make_shared<PipeState>(std::move(op->pipe), process.take(), peer, js_);
    auto connection = std::make_shared<std::unique_ptr<Connection>>(new PipeConnection(std::move(state)));
    js_->Post([observer = observer_, closed = closed_flag_, connection] {
      // Dropped (and so closed) if the listener was closed meanwhile.
      if (closed->load()) return;
      observer->OnConnection(std::move(*connection));
    });
  }

 private:
  static Error NameInUse(DWORD err) {
    Error error = MakeError("ALREADY_EXISTS", "the channel name is in use by another listener");
    error.syscall = "CreateNamedPipeW";
    error.os_code = err;
    return error;
  }

  Status AddInstanceLocked(bool first) {
    const DWORD open_mode =
        PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | (first ? static_cast<DWORD>(FILE_FLAG_FIRST_PIPE_INSTANCE) : 0);
    HANDLE pipe = ::CreateNamedPipeW(
        wide_address_.c_str(), open_mode,
        // Message mode keeps each frame one unit; remote (SMB) clients are refused.
        PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS, PIPE_UNLIMITED_INSTANCES,
        /*nOutBufferSize=*/kPipeBufferSize, /*nInBufferSize=*/kPipeBufferSize, /*nDefaultTimeOut=*/0,
        security_->attributes());
    if (pipe == INVALID_HANDLE_VALUE) {
      const DWORD err = ::GetLastError();
      if (first && (err == ERROR_ACCESS_DENIED || err == ERROR_PIPE_BUSY || err == ERROR_ALREADY_EXISTS)) {
        return NameInUse(err);
      }
      return OsError(err, "CreateNamedPipeW", "creating a listening pipe instance");
    }
    auto op = std::make_unique<AcceptOp>(shared_from_this(), OsHandle(AsRaw(pipe)));
    Status associated = io_->Associate(pipe);
    if (!associated.ok()) return associated.error();
    for (int attempt = 0;; ++attempt) {
      if (::ConnectNamedPipe(pipe, op->overlapped())) break;  // completed; a packet is queued
      const DWORD err = ::GetLastError();
      if (err == ERROR_IO_PENDING) break;
      if (err == ERROR_PIPE_CONNECTED) {
        // A client slipped in between create and connect. This completes
        // synchronously with an error status, so no packet is queued: post
        // one, so that the client takes the usual path.
        if (!io_->PostCompletion(op.get())) return LastOsError("PostQueuedCompletionStatus", "accepting a client");
        break;
      }
      if (err == ERROR_NO_DATA && attempt < 3) {
        // A client connected and left before we got here: reset the instance
        // (keeping it, and so the name) and listen again.
        ::DisconnectNamedPipe(pipe);
        continue;
      }
      return OsError(err, "ConnectNamedPipe", "waiting for a client");
    }
    pending_.insert(op.get());
    op.release();
    return Ok();
  }

  // Keeps kListenBacklog instances listening. If none is left and none can
  // be made, the listener is unusable: report it once and stop.
  void TopUpLocked() {
    Error last;
    while (pending_.size() < kListenBacklog) {
      Status added = AddInstanceLocked(/*first=*/false);
      if (!added.ok()) {
        last = added.error();
        break;
      }
    }
    if (pending_.empty()) {
      closed_ = true;
      closed_flag_->store(true);
      js_->Post([observer = observer_, error = std::make_shared<Error>(last)] { observer->OnListenerError(*error); });
    }
  }

  const std::string address_;
  const std::wstring wide_address_;
  const std::unique_ptr<PipeSecurity> security_;
  IoService* const io_;
  const std::shared_ptr<JsThread> js_;
  const std::shared_ptr<ListenerObserver> observer_;
  const std::shared_ptr<std::atomic<bool>> closed_flag_;

  std::mutex mutex_;
  bool closed_ = false;
  std::unordered_set<AcceptOp*> pending_;  // listening instances, owned by the port until they complete
};

class PipeListener : public Listener {
 public:
  PipeListener(std::shared_ptr<ListenerState> state, OsHandle owner_file)
      : state_(std::move(state)), owner_file_(std::move(owner_file)) {}
  ~PipeListener() override { Close(); }
  const std::string& address() const override { return state_->address(); }
  void Close() override {
    state_->Close();
    owner_file_.reset();  // deleted on close: the name has no owner any more
  }

 private:
  std::shared_ptr<ListenerState> state_;
  OsHandle owner_file_;  // ClaimName
};

// ---------------------------------------------------------------------------
// Connecting (on a short-lived thread of its own: CreateFileW and
// WaitNamedPipeW block).

// A listener reached: the pipe is open, nothing was sent or read.
class PipeReached : public ReachedListener {
 public:
  PipeReached(OsHandle pipe, ULONG server_pid, std::string name, IoService* io)
      : pipe_(std::move(pipe)), server_pid_(server_pid), name_(std::move(name)), io_(io) {
    peer_.pid = static_cast<int64_t>(server_pid);
  }

  const PeerIdentity& server() const override { return peer_; }

  Status CheckOwnsName() override { return CheckServerOwnsName(name_, server_pid_); }

  Status CheckUser() override { return VerifyPipeOwner(Get(pipe_)); }

  // Opened now and held for the connection (it is also what DuplicateHandle
  // needs); OpenPeerProcess refuses a process that has exited or a pipe no
  // longer connected to it.
  Status CheckStillServing() override {
    Result<OsHandle> process = OpenPeerProcess(Get(pipe_), server_pid_, "the listener");
    if (!process.ok()) return process.error();
    server_process_ = process.take();
    return Ok();
  }

  Result<std::unique_ptr<Connection>> Open(std::shared_ptr<JsThread> js) override {
    DWORD mode = PIPE_READMODE_MESSAGE;
    if (!::SetNamedPipeHandleState(Get(pipe_), &mode, /*lpMaxCollectionCount=*/nullptr,
                                   /*lpCollectDataTimeout=*/nullptr)) {
      return LastOsError("SetNamedPipeHandleState", "switching the pipe to message mode");
    }
    Status associated = io_->Associate(Get(pipe_));
    if (!associated.ok()) return associated.error();
    auto state = std::make_shared<PipeState>(std::move(pipe_), std::move(server_process_), peer_, std::move(js));
    return std::unique_ptr<Connection>(new PipeConnection(std::move(state)));
  }

 private:
  OsHandle pipe_;
  ULONG server_pid_;
  PeerIdentity peer_;
  std::string name_;
  IoService* io_;
  OsHandle server_process_;
};

class PipeConnectSteps : public ConnectSteps {
 public:
  PipeConnectSteps(std::string name, std::wstring address, IoService* io)
      : name_(std::move(name)), address_(std::move(address)), io_(io) {}

  Result<Reach> TryOnce() override {
    // lpSecurityAttributes=NULL only means "not inheritable" for an open.
    // SECURITY_IDENTIFICATION: the server may learn who we are, but not act as us.
    HANDLE handle = ::CreateFileW(address_.c_str(), GENERIC_READ | GENERIC_WRITE, /*dwShareMode=*/0,
                                  /*lpSecurityAttributes=*/nullptr, OPEN_EXISTING,
                                  FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION,
                                  /*hTemplateFile=*/nullptr);
    Reach reach;
    if (handle != INVALID_HANDLE_VALUE) {
      OsHandle pipe(AsRaw(handle));
      ULONG server_pid = 0;
      if (!::GetNamedPipeServerProcessId(handle, &server_pid)) {
        return LastOsError("GetNamedPipeServerProcessId", "identifying the listener of '" + name_ + "'");
      }
      reach.reached = std::make_unique<PipeReached>(std::move(pipe), server_pid, name_, io_);
      return reach;
    }
    const DWORD err = ::GetLastError();
    if (err == ERROR_FILE_NOT_FOUND) {
      reach.absent = true;
    } else if (err == ERROR_PIPE_BUSY) {
      reach.busy = true;  // every instance is taken
    } else if (err == ERROR_ACCESS_DENIED) {
      return OsError(err, "CreateFileW", "connecting to '" + name_ + "' (the pipe's DACL refuses us: another user's?)");
    } else {
      return OsError(err, "CreateFileW", "connecting to '" + name_ + "'");
    }
    return reach;
  }

  // Until an instance is free; ERROR_SEM_TIMEOUT and every other answer
  // (including "gone": the next TryOnce says so) go back to the driver.
  void WaitWhileBusy(std::chrono::milliseconds left) override {
    // nTimeOut=0 would mean "the pipe's default", so never pass 0.
    ::WaitNamedPipeW(address_.c_str(), static_cast<DWORD>(left.count() > 1 ? left.count() : 1));
  }

 private:
  std::string name_;
  std::wstring address_;
  IoService* io_;
};

}  // namespace

Result<std::string> ChannelAddress(const std::string& name) {
  Status valid = ValidateChannelName(name);
  if (!valid.ok()) return valid.error();
  Result<std::vector<uint8_t>> sid = win::CurrentUserSid();
  if (!sid.ok()) return sid.error();
  Result<std::wstring> sid_text = win::SidToString(sid.value().data());
  if (!sid_text.ok()) return sid_text.error();
  return "\\\\.\\pipe\\memport-" + win::WideToUtf8(sid_text.value()) + "-" + CanonicalChannelName(name);
}

Result<std::unique_ptr<Listener>> Listen(const std::string& name, std::shared_ptr<JsThread> js,
                                         std::shared_ptr<ListenerObserver> observer,
                                         const PeerLimits& /*limits: no fd table to keep a reserve in*/) {
  Result<std::string> address = ChannelAddress(name);
  if (!address.ok()) return address.error();
  Result<IoService*> io = IoService::Instance();
  if (!io.ok()) return io.error();
  Result<std::unique_ptr<PipeSecurity>> security = PipeSecurity::Build();
  if (!security.ok()) return security.error();
  Result<OsHandle> owner_file = ClaimName(name);
  if (!owner_file.ok()) return owner_file.error();
  auto state = std::make_shared<ListenerState>(address.take(), security.take(), io.value(), std::move(js),
                                               std::move(observer));
  Status first = state->ListenFirst();
  if (!first.ok()) {
    Error error = first.error();
    if (error.code == "ALREADY_EXISTS") error.message = "the channel name '" + name + "' is in use by another listener";
    state->Close();
    return error;
  }
  return std::unique_ptr<Listener>(new PipeListener(std::move(state), owner_file.take()));
}

Result<std::unique_ptr<ConnectSteps>> BeginConnect(const std::string& name) {
  Result<std::string> address = ChannelAddress(name);
  if (!address.ok()) return address.error();
  Result<IoService*> io = IoService::Instance();
  if (!io.ok()) return io.error();
  return std::unique_ptr<ConnectSteps>(new PipeConnectSteps(name, win::Utf8ToWide(address.value()), io.value()));
}

}  // namespace memport
