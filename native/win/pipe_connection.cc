// Windows: a connection's OS half (its state machine is ConnectionCore,
// native/core/connection_core.h). Frames are pipe messages; a region travels as a
// handle value DuplicateHandle put into the peer's table, revoked
// (DUPLICATE_CLOSE_SOURCE) if the frame provably was not written. Received
// values are validated before anything maps or closes them.
#include "pipe_connection.h"

#include <cstring>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "../core/connection_core.h"
#include "../core/frame.h"
#include "../core/inbox.h"
#include "../core/shared_memory.h"
#include "io_service.h"
#include "pipe_security.h"
#include "win_internal.h"

namespace memport {

namespace {

using win::AsHandle;
using win::AsRaw;
using win::Get;

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
  WriteOp(std::shared_ptr<IoTarget> target, WriteToken token, uint32_t seq, std::vector<uint8_t> bytes,
          std::unique_ptr<PeerHandles> handles)
      : IoOp(std::move(target)), token(token), seq(seq), bytes(std::move(bytes)), handles(std::move(handles)) {}
  const WriteToken token;
  const uint32_t seq;  // the MESSAGE's number, which its ACK/NACK names
  const std::vector<uint8_t> bytes;
  std::unique_ptr<PeerHandles> handles;
  bool reported = false;  // WriteFile completed inline and the core was told then
};

Error PeerClosedError() { return MakeError("PEER_CLOSED", "the peer closed the connection"); }

Error WriteError(DWORD err) {
  if (IsPeerGone(err)) return PeerClosedError();
  if (err == ERROR_OPERATION_ABORTED) return MakeError("CLOSED", "the connection is closed");
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

// The OS half of one connection (ConnectionCore, connection_core.h), shared
// between the binding's owner (JS thread) and the operations in flight (I/O
// thread). Every member is guarded by the core's mutex_.
class PipeState : public ConnectionCore, public IoTarget {
 public:
  PipeState(OsHandle pipe, OsHandle peer_process, const PeerIdentity& peer, std::shared_ptr<JsThread> js)
      : ConnectionCore(peer, std::move(js)), pipe_(std::move(pipe)), peer_process_(std::move(peer_process)) {}

  void OnIoComplete(std::unique_ptr<IoOp> op, DWORD bytes, DWORD error) override {
    if (auto* write = dynamic_cast<WriteOp*>(op.get())) {
      CompleteWrite(write, bytes, error);
    } else {
      CompleteRead(bytes, error);
    }
    // `op` (and with it the revocation decision made above) goes here.
  }

 protected:
  bool OsPeerRunningLocked() const override {
    return peer_process_.valid() && ::WaitForSingleObject(Get(peer_process_), 0) == WAIT_TIMEOUT;
  }

  Status OsAdmitLocked() override {
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

  uint64_t OsProcessHandleLimit(const PeerLimits& /*limits*/) const override { return kProcessHandleLimit; }

  void OsStartReadingLocked() override {
    read_buffer_.resize(kWaitingReadSize);
    IssueReadLocked();
  }

  // Descriptor i names the value DuplicateHandle put into the peer's table.
  // Every completion packet arrives on the I/O thread, also for a write that
  // completed inline (which is reported to the core at once).
  Status OsSendLocked(WriteToken token, Frame frame, const std::vector<const SharedMemory*>& regions,
                      const std::vector<const Notifier*>& notifiers) override {
    // Revokes every value duplicated so far on any early return below.
    auto handles = std::make_unique<PeerHandles>(Get(peer_process_));
    for (size_t i = 0; i < regions.size(); ++i) {
      const SharedMemory& region = *regions[i];
      Result<RawHandle> remote = win::DuplicateSectionInto(region, Get(peer_process_), region.read_only());
      if (!remote.ok()) {
        named_writing_.erase(frame.seq);
        // Duplicating into a process that just died fails before the pipe
        // reports the break: say what happened, not ACCESS_DENIED.
        if (::WaitForSingleObject(Get(peer_process_), 0) == WAIT_OBJECT_0) return PeerClosedError();
        return remote.error();
      }
      if (region.named()) {
        handles->AddNamed(remote.value());
        named_writing_.insert(frame.seq);
      } else {
        handles->Add(remote.value());
      }
      frame.regions[i].handle = static_cast<uint32_t>(static_cast<uintptr_t>(remote.value()));
    }
    for (size_t i = 0; i < notifiers.size(); ++i) {
      // SYNCHRONIZE | EVENT_MODIFY_STATE only: the peer can wait and signal,
      // nothing else (win_internal.h kNotifierShareAccess).
      Result<RawHandle> remote = win::DuplicateNotifierInto(*notifiers[i], Get(peer_process_));
      if (!remote.ok()) {
        named_writing_.erase(frame.seq);
        if (::WaitForSingleObject(Get(peer_process_), 0) == WAIT_OBJECT_0) return PeerClosedError();
        return remote.error();
      }
      handles->Add(remote.value());
      frame.regions[regions.size() + i].handle = static_cast<uint32_t>(static_cast<uintptr_t>(remote.value()));
    }
    Result<std::vector<uint8_t>> encoded = EncodeFrame(frame);
    if (!encoded.ok()) {
      named_writing_.erase(frame.seq);
      return encoded.error();
    }

    auto op = std::make_unique<WriteOp>(std::static_pointer_cast<PipeState>(shared_from_this()), token, frame.seq,
                                        encoded.take(), std::move(handles));
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
    ++outstanding_;
    WriteOp* issued = op.release();
    if (done) {
      issued->reported = true;
      FinishWriteLocked(token, nullptr);
    }
    return Ok();
  }

  // Ends the OS side: I/O in flight is cancelled and the pipe closed now, so
  // the peer sees EOF at once. The peer's process handle stays until every
  // write has completed, because revoking needs it.
  void OsEndLocked() override {
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

  // A connection closed before it was started (a client refused, or dropped
  // for sending before WELCOME) was never read. Unlike fds queued on a Linux
  // socket, section handles a client duplicated into us are in our table
  // already, named in the messages waiting in the pipe: read those messages
  // now (no read was ever issued, so the buffer is ours) and close every
  // value that validates as a section, unmapped and undelivered. A value
  // that fails validation is left alone, as always (it may name anything).
  void OsDiscardUnreadLocked() override {
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
      AdoptHandles(&message, ValuesOf(message.frame), /*owned=*/nullptr, /*accept_named=*/false);
      // the adopted ones close with `message`
    }
  }

 private:
  // The handle values a frame's descriptors name here: a u32 on the wire,
  // sign-extended like a 32-bit process's handle.
  static std::vector<RawHandle> ValuesOf(const Frame& frame) {
    std::vector<RawHandle> values;
    for (const RegionDescriptor& descriptor : frame.regions) {
      values.push_back(static_cast<RawHandle>(static_cast<int32_t>(descriptor.handle)));
    }
    return values;
  }

  void IssueReadLocked() {
    auto op = std::make_unique<ReadOp>(std::static_pointer_cast<PipeState>(shared_from_this()));
    if (!::ReadFile(Get(pipe_), read_buffer_.data(), static_cast<DWORD>(read_buffer_.size()),
                    /*lpNumberOfBytesRead=*/nullptr, op->overlapped())) {
      const DWORD err = ::GetLastError();
      // ERROR_MORE_DATA is a warning status: a completion packet is queued
      // for it as for success, and the handler treats it as a violation.
      if (err != ERROR_IO_PENDING && err != ERROR_MORE_DATA) {
        EndLocked(ReadError(err));
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
      if (!closed_locked() && bytes <= large->size()) {
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
        failure = AdoptHandles(&message, ValuesOf(message.frame), /*owned=*/nullptr, limits().accept_named_regions);
        if (failure.code.empty()) Charge(message);  // validated, never mapped; over a bound, released and refused
      } else {
        failure = frame.error();
      }
    }

    std::lock_guard<std::mutex> lock(mutex_);
    --outstanding_;
    if (closed_locked()) {
      ReleaseHandlesIfIdleLocked();
      return;  // `message` and the regions it adopted are released here.
    }
    if (error != ERROR_SUCCESS) {
      EndLocked(ReadError(error));
      return;
    }
    if (!failure.code.empty()) {
      EndLocked(failure);
      return;
    }
    if (message.frame.type == FrameType::kAck || message.frame.type == FrameType::kNack) {
      SettleNamedLocked(message.frame.seq);
    }
    DeliverFrameLocked(std::move(message));
    IssueReadLocked();
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
    if (close_reason_locked().code == "CLOSED" || !peer_process_.valid()) return;
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
      } else if (closed_locked()) {
        ForgetNamedLocked(std::move(named));
      } else {
        named_in_peer_[op->seq] = std::move(named);
      }
    }
    --outstanding_;
    if (!op->reported) {
      if (error == ERROR_SUCCESS) {
        FinishWriteLocked(op->token, nullptr);
      } else {
        const Error failed = WriteError(error);
        FinishWriteLocked(op->token, &failed);
      }
    }
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

  void ReleaseHandlesIfIdleLocked() {
    if (closed_locked() && outstanding_ == 0) peer_process_.reset();
  }

  OsHandle pipe_;
  OsHandle peer_process_;                // PROCESS_DUP_HANDLE, opened when the peer was identified
  size_t outstanding_ = 0;               // operations the kernel still holds
  std::vector<uint8_t> read_buffer_;     // written by the kernel while a read is pending
  // Named regions' values pushed into the peer (PeerHandles::AddNamed), by
  // MESSAGE seq: being written, written and awaiting ACK/NACK, answered
  // before the write's completion arrived.
  std::unordered_set<uint32_t> named_writing_;
  std::unordered_map<uint32_t, std::vector<RawHandle>> named_in_peer_;
  std::unordered_set<uint32_t> named_settled_early_;
};

}  // namespace

std::unique_ptr<Connection> NewPipeConnection(OsHandle pipe, OsHandle peer_process, const PeerIdentity& peer,
                                              std::shared_ptr<JsThread> js) {
  return ConnectionCore::Own(std::make_shared<PipeState>(std::move(pipe), std::move(peer_process), peer, std::move(js)));
}

}  // namespace memport
