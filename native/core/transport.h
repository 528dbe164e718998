// The platform-neutral transport interface: a rendezvous name, a listener,
// and message-oriented connections that carry frames plus shared-memory
// handles. Linux implements it over SOCK_SEQPACKET Unix sockets with
// SCM_RIGHTS (native/linux/unix_*.cc), Windows over named pipes with
// DuplicateHandle (native/win/pipe_*.cc).
//
// Threading: every backend does its waiting on a dedicated I/O thread of its
// own (epoll / an I/O completion port), never in the libuv pool, and delivers
// every observer callback through JsThread::Post, so observers run on the JS
// thread. Where the binding can watch an fd from the JS thread's own event
// loop (JsThread::WatchFd, POSIX), the Linux backend reads connections there
// instead: a frame is then read, checked and delivered by one thread, without
// waking the I/O thread and then the JS thread for it. Write/Close may be called from the JS
// thread at any time; after Close returns no further callbacks are made for
// that object except OnWriteDone/OnClosed already posted.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "error.h"
#include "event_loop.h"
#include "frame.h"
#include "inbox.h"
#include "notifier.h"
#include "shared_memory.h"

namespace memport {

struct PeerIdentity {
  int64_t pid = -1;  // from the kernel: SO_PEERCRED / GetNamedPipe{Client,Server}ProcessId
  int64_t uid = -1;  // Linux only (-1 on Windows)
  int64_t gid = -1;  // Linux only (-1 on Windows)
};

// A MESSAGE as received: the decoded frame, one validated, owned, unmapped
// SharedMemory per region descriptor and one owned Notifier per notifier
// descriptor (each in descriptor order, same size and mode). Mapping waits
// until the application receives the message.
struct InboundMessage {
  Frame frame;
  std::vector<SharedMemory> regions;
  std::vector<Notifier> notifiers;
  // Set when the message passed a bound (inbox.h): its handles were released
  // unmapped (`regions` and `notifiers` are empty) and the receiver answers
  // NACK with this.
  Error refused;
  // What the message holds against the connection's budget until the
  // application receives it or it is released.
  std::unique_ptr<InboxCharge> charge;
};

class ConnectionObserver {
 public:
  virtual ~ConnectionObserver() = default;
  // A well-formed frame. For kMessage its handles were validated and adopted.
  virtual void OnFrame(InboundMessage message) = 0;
  // The connection is over; called once. code "PEER_CLOSED" for an orderly
  // EOF or a dead peer, "PROTOCOL"/"INVALID_HANDLE" after the backend dropped
  // a misbehaving peer (also one that owes us more than
  // limits.max_owed_control_frames ACK/NACKs by not reading), "CLOSED" after Close().
  virtual void OnClosed(const Error& error) = 0;
  // Completion of Write(write_id): error == nullptr when the whole frame was
  // handed to the kernel. Never called for write_id kUnreportedWrite.
  virtual void OnWriteDone(uint64_t write_id, const Error* error) = 0;
};

// A Write whose completion nobody waits for (control frames: WELCOME, ACK,
// ...): no OnWriteDone is posted for it, which saves a JS-thread hop.
constexpr uint64_t kUnreportedWrite = 0;

class Connection {
 public:
  virtual ~Connection() = default;
  virtual const PeerIdentity& peer() const = 0;
  // False once the kernel says the peer process has exited (Linux: a pidfd
  // from SO_PEERPIDFD, kernel 6.5+; Windows: the process handle opened when
  // the peer was identified), or once this connection is closed. True while
  // it runs, and where the kernel cannot say (older Linux). A PID is never
  // reused while its process runs, so a decision about peer().pid that is
  // followed by true here was about the peer and nobody else.
  virtual bool PeerRunning() const = 0;
  // Listener side, after the admission decision and before WELCOME: fails
  // with PROTOCOL if the client has sent anything yet (a client sends
  // nothing before WELCOME), PEER_CLOSED if it has gone. Reads nothing:
  // whatever the client sent is released unread (and unmapped) by Close.
  virtual Status Admit() = 0;
  // Starts reading (a listener calls it only once WELCOME is sent); the
  // observer must outlive the connection's callbacks. `limits` bound what
  // the peer can make this process hold (inbox.h). A connection that has
  // already ended (a WELCOME it could not write: the client had gone) still
  // reports OnClosed to `observer`, once, so whoever waits for it is told.
  virtual void Start(std::shared_ptr<ConnectionObserver> observer, const PeerLimits& limits = PeerLimits{}) = 0;
  // Writes one frame carrying `regions`, then `notifiers` (frame.regions,
  // the descriptors, are filled in here: sizes and flags, and handle fields
  // that are fd indices on Linux, values duplicated into the peer on
  // Windows). An immediate failure is returned and nothing was sent (on
  // Windows any handle already duplicated into the peer is revoked).
  // Otherwise completion is reported through OnWriteDone.
  virtual Status Write(uint64_t write_id, Frame frame, const std::vector<const SharedMemory*>& regions,
                       const std::vector<const Notifier*>& notifiers = {}) = 0;
  // Write, and on success says whether the whole frame was already handed to
  // the OS when it returned; then no OnWriteDone follows for it (a hop to the
  // JS thread saved).
  virtual Status WriteInline(uint64_t write_id, Frame frame, const std::vector<const SharedMemory*>& regions,
                             bool* completed, const std::vector<const Notifier*>& notifiers = {}) = 0;
  // Idempotent. Pending writes complete with CLOSED; OnClosed("CLOSED") follows.
  virtual void Close() = 0;
};

class ListenerObserver {
 public:
  virtual ~ListenerObserver() = default;
  // A client connected; its identity comes from the kernel. Not yet started.
  virtual void OnConnection(std::unique_ptr<Connection> connection) = 0;
  // Accepting failed for good (the listener is unusable).
  virtual void OnListenerError(const Error& error) = 0;
};

class Listener {
 public:
  virtual ~Listener() = default;
  // The OS-level address: the socket path or the pipe name.
  virtual const std::string& address() const = 0;
  virtual void Close() = 0;
};

// Validates a rendezvous name: 1..64 characters of [A-Za-z0-9._-], not
// starting with '.'. Neutral; both backends use it.
Status ValidateChannelName(const std::string& name);

// Channel names are case-insensitive everywhere (Windows pipe names are), so
// every OS address is built from the name in ASCII lowercase.
std::string CanonicalChannelName(const std::string& name);

// The OS address `name` maps to for the current user (see docs/PROTOCOL.md).
Result<std::string> ChannelAddress(const std::string& name);

// Creates the listener. ALREADY_EXISTS when another live listener has the name.
// `limits` are the bounds its accepted connections will be started with; the
// listener itself uses `fd_reserve` (Linux: a client that would take a
// reserved fd is not accepted).
Result<std::unique_ptr<Listener>> Listen(const std::string& name, std::shared_ptr<JsThread> js,
                                         std::shared_ptr<ListenerObserver> observer,
                                         const PeerLimits& limits = PeerLimits{});

// Connects without blocking the caller: `done` runs on the JS thread with the
// connection (not yet started) or NOT_FOUND / TIMEOUT / ACCESS_DENIED / ....
// `expected_server_pid` > 0 additionally requires the server to be that process.
void Connect(const std::string& name, uint32_t timeout_ms, int64_t expected_server_pid, std::shared_ptr<JsThread> js,
             std::function<void(Result<std::unique_ptr<Connection>>)> done);

}  // namespace memport
