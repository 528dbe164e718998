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
//
// This file: the listener, Listen() and ChannelAddress(); the rest of the
// backend is io_service.h (the completion port), pipe_security (DACL, owner
// file, peer process), pipe_connection, pipe_connect (connect()'s OS steps).
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../core/handover.h"
#include "../core/transport.h"
#include "io_service.h"
#include "pipe_connection.h"
#include "pipe_security.h"
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
        handover_(std::make_shared<ConnectionHandover>(js_, observer_)) {}

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
    // Every accepted client still on its way to the JS thread: its pipe
    // instance keeps the name alive too. (Also after the listener failed.)
    handover_->Close();
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
    handover_->Deliver(NewPipeConnection(std::move(op->pipe), process.take(), peer, js_));
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
        js_->Post([observer = observer_, error = std::make_shared<Error>(last)] { observer->OnListenerError(*error); });
    }
  }

  const std::string address_;
  const std::wstring wide_address_;
  const std::unique_ptr<PipeSecurity> security_;
  IoService* const io_;
  const std::shared_ptr<JsThread> js_;
  const std::shared_ptr<ListenerObserver> observer_;
  const std::shared_ptr<ConnectionHandover> handover_;

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

}  // namespace memport
