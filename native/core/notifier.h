// The platform-neutral notifier: an auto-reset, coalescing wake-up signal
// that can be shared between processes by handle (issue 11, "Streams").
// Linux implements it with an eventfd (native/linux/notifier_linux.cc),
// Windows with an unnamed auto-reset Event (native/win/notifier_win.cc).
//
// Semantics every backend keeps:
// - Notify() makes one notification pending; more before it is consumed
//   coalesce into that one (eventfd counter / Event state).
// - TryConsume() takes the pending notification, if any, without waiting.
// - Watch() reports on the JS thread (through JsThread) that a notification
//   may be pending; the JS side then calls TryConsume. Nothing waits on the
//   JS thread or in the libuv pool: Linux watches the eventfd from the JS
//   thread's own event loop (JsThread::WatchFd), Windows has the system
//   thread pool wait (RegisterWaitForSingleObject) and posts back.
// - A notification is never lost: one consumed by the Windows pool wait while
//   nobody was waiting any more is kept, and TryConsume returns it next.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>

#include "error.h"
#include "os_handle.h"
#include "event_loop.h"

namespace memport {

class Notifier {
 public:
  Notifier();
  Notifier(Notifier&&) noexcept;
  Notifier& operator=(Notifier&&) noexcept;
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;
  ~Notifier();  // stops watching, closes the handle

  // A new notifier with nothing pending, registered as owned
  // (core/owned_handles.h). Linux: eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK).
  // Windows: an unnamed auto-reset Event with memport's protected DACL,
  // non-inheritable.
  static Result<Notifier> Create();

  // Adopts a handle that came from a peer (or, for tests, by number) after
  // proving it is a notifier: Linux, an eventfd (not in semaphore mode) open
  // for reading and writing; Windows, an Event handle with exactly
  // kNotifierShareAccess rights (SYNCHRONIZE | EVENT_MODIFY_STATE). A value
  // memport already owns is refused (ALREADY_EXISTS), a handle of another
  // kind with INVALID_HANDLE, wrong rights with ACCESS_DENIED.
  // Takes ownership only on success. On failure `raw` is NOT closed: on
  // Windows it is a bare number that may name anything in our handle table;
  // on Linux the caller decides (a transport closes an fd it received).
  // `from_transport`: Linux, the fd came from memport's own recvmsg (already
  // close-on-exec, and new, so never owned); an adopted one is made CLOEXEC.
  static Result<Notifier> FromReceived(RawHandle raw, bool from_transport = false);

  // Makes a notification pending (coalescing). Never blocks: Linux writes
  // with RWF_NOWAIT, and a counter that is full already has one pending.
  Status Notify() const;

  // Takes the pending notification, if there is one; never blocks (Linux
  // reads with RWF_NOWAIT, so a peer sharing the eventfd that clears
  // O_NONBLOCK or drains it first cannot stall the JS thread).
  Result<bool> TryConsume();

  // JS thread only. Until StopWatching, calls `on_ready` on the JS thread
  // when a notification may be pending (call TryConsume then; it may find
  // none, if a peer sharing the handle took it first). Idempotent while
  // watching. Windows watches once per call: after a report, call Watch
  // again to keep watching (Linux keeps watching; a second call is a no-op).
  Status Watch(std::shared_ptr<JsThread> js, std::function<void()> on_ready);
  // JS thread only. After it returns, no new report is made; one already
  // posted (Windows) may still arrive, so `on_ready` must check its state.
  void StopWatching();

  // Windows: duplicates the Event into process `pid` with exactly
  // kNotifierShareAccess and returns the value valid there (the caller
  // revokes it if it provably never reaches the peer).
  // Linux: UNSUPPORTED (the fd travels with SCM_RIGHTS).
  Result<uint32_t> DuplicateIntoProcess(int64_t pid) const;

  // A second notifier over the same object, owned, for another thread of this
  // process (a worker adopts it through a token): Linux a dup of the eventfd
  // (sharing its open file description), Windows a duplicate with the same rights.
  Result<Notifier> DuplicateInProcess() const;

  // Test hook: a second handle to the same object in this process that
  // memport does NOT own (as if it had just arrived). Linux: a dup of the
  // eventfd. Windows: DuplicateHandle with `access` (0: kNotifierShareAccess).
  Result<RawHandle> DuplicateUnowned(uint32_t access) const;

  // Test hook: closes `raw`, a value memport does not own (the caller checked
  // the registry), and reports whether the OS had it open: a test's proof
  // that a refused value was left open.
  static Status CloseUnowned(RawHandle raw);

  bool valid() const { return handle_.valid(); }
  RawHandle raw() const { return handle_.get(); }
  // Stops watching and closes the handle (idempotent).
  void Close();

 private:
  explicit Notifier(OsHandle handle);

  // Per OS: the watch in progress (Linux an FdWatch; Windows the pool wait and
  // the notification it consumed), heap-held so its address is stable.
  struct WatchState;
  OsHandle handle_;
  std::unique_ptr<WatchState> watch_;
};

}  // namespace memport
