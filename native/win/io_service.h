// Windows: the I/O completion port and its one thread, which every pipe's
// overlapped operations complete on (ConnectNamedPipe, ReadFile, WriteFile).
// Nothing on it blocks, so a silent peer stalls nobody. Every operation holds
// a strong reference to the state that issued it, so that state, and the
// OVERLAPPED inside the operation, outlive the kernel's use of them.
#pragma once

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "../core/error.h"
#include "../core/os_handle.h"
#include "win_internal.h"

namespace memport {


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
    if (::CreateIoCompletionPort(handle, win::Get(port_), /*CompletionKey=*/0, /*NumberOfConcurrentThreads=*/0) ==
        nullptr) {
      return LastOsError("CreateIoCompletionPort", "registering a pipe with the I/O thread");
    }
    return Ok();
  }

  // Queues a completion for an operation that finished synchronously without
  // queueing one itself (ConnectNamedPipe's ERROR_PIPE_CONNECTED), so that
  // every completion is handled on the I/O thread in one place.
  bool PostCompletion(IoOp* op) {
    return ::PostQueuedCompletionStatus(win::Get(port_), /*dwNumberOfBytesTransferred=*/0, /*dwCompletionKey=*/0,
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
    if (!::ResetEvent(win::Get(read_now_event_))) return ::GetLastError();
    OVERLAPPED overlapped{};
    // The event's low bit set: no completion packet is queued to the port.
    overlapped.hEvent = reinterpret_cast<HANDLE>(reinterpret_cast<uintptr_t>(win::Get(read_now_event_)) | 1);
    if (!::ReadFile(pipe, buffer, size, nullptr, &overlapped)) {
      const DWORD err = ::GetLastError();
      if (err != ERROR_IO_PENDING) return err;
      if (::WaitForSingleObject(win::Get(read_now_event_), 1000) != WAIT_OBJECT_0) {
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
    port_.reset(win::AsRaw(port));
    read_now_event_.reset(win::AsRaw(::CreateEventW(/*lpEventAttributes=*/nullptr, /*bManualReset=*/TRUE,
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
      const BOOL ok = ::GetQueuedCompletionStatus(win::Get(port_), &bytes, &key, &overlapped, INFINITE);
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

}  // namespace memport
