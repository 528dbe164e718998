// Windows: connect()'s OS steps (native/core/connect.h drives them): open
// the pipe, waiting while every instance is taken, then the checks on the
// process serving it.
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <chrono>
#include <memory>
#include <string>

#include "../core/connect.h"
#include "io_service.h"
#include "pipe_connection.h"
#include "pipe_security.h"
#include "win_internal.h"

namespace memport {

namespace {

using win::AsHandle;
using win::AsRaw;
using win::Get;

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
    return NewPipeConnection(std::move(pipe_), std::move(server_process_), peer_, std::move(js));
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

Result<std::unique_ptr<ConnectSteps>> BeginConnect(const std::string& name) {
  Result<std::string> address = ChannelAddress(name);
  if (!address.ok()) return address.error();
  Result<IoService*> io = IoService::Instance();
  if (!io.ok()) return io.error();
  return std::unique_ptr<ConnectSteps>(new PipeConnectSteps(name, win::Utf8ToWide(address.value()), io.value()));
}

}  // namespace memport
