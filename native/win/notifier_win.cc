// Notifier on Windows: an unnamed auto-reset Event. Notify is SetEvent (set
// twice before anyone waits, it is still set once: notifications coalesce);
// consuming is a zero-timeout wait, which resets an auto-reset Event.
//
// Waiting never blocks the JS thread: the system thread pool waits
// (RegisterWaitForSingleObject, WT_EXECUTEONLYONCE) and posts the report to
// the JS thread. Its wait consumes the notification (that is what waiting on
// an auto-reset Event does), so the callback keeps it in `pending`, and
// TryConsume hands it out: a notification the pool took while nobody was
// waiting any more is not lost.
//
// The Event gets memport's protected DACL (see shared_memory_win.cc): a
// handle given out with SYNCHRONIZE | EVENT_MODIFY_STATE cannot be
// re-duplicated to more (WRITE_DAC, say). A received value may name anything
// in our handle table, so FromReceived proves it is an Event with exactly
// those rights before owning it, and never closes it otherwise.
// See "CreateEventW", "RegisterWaitForSingleObject", "UnregisterWaitEx",
// "Synchronization Object Security and Access Rights" on Microsoft Learn.
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <cstdio>
#include <string>

#include "../core/notifier.h"
#include "ntdll.h"
#include "win_internal.h"

namespace memport {

struct Notifier::WatchState {
  // A notification the pool wait consumed and JS has not taken yet.
  std::atomic<bool> pending{false};
  // The current registration's callback has run (WT_EXECUTEONLYONCE: it will
  // not run again, but the registration must still be unregistered).
  std::atomic<bool> fired{false};
  HANDLE wait = nullptr;  // JS thread only
  // Read by the callback; changed only while no registration exists.
  std::shared_ptr<JsThread> js;
  std::function<void()> on_ready;

  // On a pool thread, once per registration.
  static VOID CALLBACK OnSignaled(PVOID context, BOOLEAN timed_out) {
    if (timed_out) return;  // INFINITE: never
    auto* state = static_cast<WatchState*>(context);
    state->pending.store(true);
    state->fired.store(true);
    state->js->Post(state->on_ready);
  }

  // JS thread. UnregisterWaitEx with INVALID_HANDLE_VALUE returns once a
  // callback already running has returned (it only sets two flags and posts),
  // so the state it points to may change or go afterwards.
  void Unregister() {
    if (wait == nullptr) return;
    ::UnregisterWaitEx(wait, /*CompletionEvent=*/INVALID_HANDLE_VALUE);
    wait = nullptr;
  }
};

namespace {

using win::AsHandle;
using win::AsRaw;

std::string Hex(unsigned long value) {
  char text[24];
  std::snprintf(text, sizeof text, "0x%lX", value);
  return text;
}

}  // namespace

Notifier::Notifier() = default;
Notifier::Notifier(OsHandle handle) : handle_(std::move(handle)), watch_(std::make_unique<WatchState>()) {}
Notifier::Notifier(Notifier&&) noexcept = default;
Notifier& Notifier::operator=(Notifier&& other) noexcept {
  if (this != &other) {
    Close();
    handle_ = std::move(other.handle_);
    watch_ = std::move(other.watch_);
  }
  return *this;
}
Notifier::~Notifier() { Close(); }

Result<Notifier> Notifier::Create() {
  SECURITY_ATTRIBUTES* attributes = win::ProtectedObjectAttributes();
  if (attributes == nullptr) return LastOsError("InitializeSecurityDescriptor", "building a notifier's DACL");
  const RawHandle event = OpenRegistered([attributes] {
    return AsRaw(::CreateEventW(attributes, /*bManualReset=*/FALSE, /*bInitialState=*/FALSE, /*lpName=*/nullptr));
  });
  if (!platform::IsValidHandle(event)) return LastOsError("CreateEventW", "creating a notifier");
  return Notifier(OsHandle(event));
}

Result<Notifier> Notifier::FromReceived(RawHandle raw, bool /*from_transport*/) {
  Status shape = win::CheckReceivedHandleValue(raw);
  if (!shape.ok()) return shape.error();
  // Held until the value is adopted: nothing below closes a handle.
  OwnedHandles registry;
  if (registry.Contains(raw)) {
    return MakeError("ALREADY_EXISTS", "handle " + std::to_string(raw) + " already belongs to a live memport object "
                                       "in this process, and one handle must have one owner; use that object");
  }
  const win::nt::Functions& ntdll = win::nt::Ntdll();
  if (ntdll.query_object == nullptr) {
    return MakeError("UNSUPPORTED", "this system has no NtQueryObject, so a received notifier cannot be checked");
  }
  // 1. An Event. A value that names nothing is STATUS_INVALID_HANDLE, not an
  //    exception (strict handle checking is opt-in and Node does not opt in).
  std::wstring type_name;
  win::nt::NTSTATUS status = win::QueryObjectTypeName(AsHandle(raw), &type_name);
  if (status == win::nt::kStatusInvalidHandle) {
    return MakeError("INVALID_HANDLE", "the value is not an open handle in this process");
  }
  if (status < 0) {
    Error error = MakeError("OS", "checking a received notifier: NtQueryObject failed with NTSTATUS " +
                                      Hex(static_cast<unsigned long>(status)));
    error.syscall = "NtQueryObject";
    error.os_code = static_cast<int64_t>(static_cast<uint32_t>(status));
    return error;
  }
  if (type_name != L"Event") {
    return MakeError("INVALID_HANDLE", "the received handle is a " + win::WideToUtf8(type_name) +
                                           ", not a notifier (an Event)");
  }
  // 2. Exactly the rights a notifier is shared with: enough to wait and to
  //    notify, nothing more (no WRITE_DAC, no EVENT_QUERY_STATE, ...).
  win::nt::ObjectBasicInformation basic{};
  ULONG returned = 0;
  status = ntdll.query_object(AsHandle(raw), win::nt::kObjectBasicInformation, &basic, sizeof basic, &returned);
  if (status < 0) {
    Error error = MakeError("OS", "checking a received notifier's rights: NtQueryObject failed with NTSTATUS " +
                                      Hex(static_cast<unsigned long>(status)));
    error.syscall = "NtQueryObject";
    error.os_code = static_cast<int64_t>(static_cast<uint32_t>(status));
    return error;
  }
  if (basic.GrantedAccess != win::kNotifierShareAccess) {
    return MakeError("ACCESS_DENIED", "the received Event has rights " + Hex(basic.GrantedAccess) + ", not exactly " +
                                          Hex(win::kNotifierShareAccess) +
                                          " (SYNCHRONIZE | EVENT_MODIFY_STATE) as a shared notifier has");
  }
  // Never inheritable, like every handle memport owns.
  if (!::SetHandleInformation(AsHandle(raw), HANDLE_FLAG_INHERIT, 0)) {
    return LastOsError("SetHandleInformation", "making a received notifier non-inheritable");
  }
  registry.Add(raw);
  return Notifier(OsHandle(raw));
}

Status Notifier::Notify() const {
  if (!valid()) return MakeError("CLOSED", "the notifier is closed");
  if (!::SetEvent(AsHandle(raw()))) return LastOsError("SetEvent", "notifying");
  return Ok();
}

Result<bool> Notifier::TryConsume() {
  if (!valid()) return MakeError("CLOSED", "the notifier is closed");
  if (watch_->pending.exchange(false)) return true;
  const DWORD result = ::WaitForSingleObject(AsHandle(raw()), /*dwMilliseconds=*/0);
  if (result == WAIT_OBJECT_0) return true;
  if (result == WAIT_TIMEOUT) return false;
  return LastOsError("WaitForSingleObject", "taking a notification");
}

Status Notifier::Watch(std::shared_ptr<JsThread> js, std::function<void()> on_ready) {
  if (!valid()) return MakeError("CLOSED", "the notifier is closed");
  WatchState& state = *watch_;
  if (state.wait != nullptr && !state.fired.load()) return Ok();  // still waiting
  state.Unregister();
  state.js = std::move(js);
  state.on_ready = std::move(on_ready);
  state.fired.store(false);
  HANDLE wait = nullptr;
  if (!::RegisterWaitForSingleObject(&wait, AsHandle(raw()), &WatchState::OnSignaled, &state, INFINITE,
                                     WT_EXECUTEONLYONCE)) {
    return LastOsError("RegisterWaitForSingleObject", "waiting for a notification");
  }
  state.wait = wait;
  return Ok();
}

Result<Notifier> Notifier::DuplicateInProcess() const {
  if (!valid()) return MakeError("CLOSED", "the notifier is closed");
  HANDLE self = ::GetCurrentProcess();
  // DUPLICATE_SAME_ACCESS: exactly this handle's rights, never more.
  const RawHandle copy = OpenRegistered([this, self] {
    HANDLE out = nullptr;
    return ::DuplicateHandle(self, AsHandle(raw()), self, &out, 0, FALSE, DUPLICATE_SAME_ACCESS) ? AsRaw(out) : AsRaw(nullptr);
  });
  if (!platform::IsValidHandle(copy)) return LastOsError("DuplicateHandle", "duplicating a notifier for another thread");
  return Notifier(OsHandle(copy));
}

void Notifier::StopWatching() {
  if (watch_) watch_->Unregister();
}

void Notifier::Close() {
  StopWatching();
  handle_.reset();
}

Result<uint32_t> Notifier::DuplicateIntoProcess(int64_t pid) const {
  if (!valid()) return MakeError("CLOSED", "the notifier is closed");
  if (pid <= 0 || pid > 0xFFFFFFFFll) return MakeError("INVALID_ARGUMENT", "pid must be a positive process id");
  HANDLE process = ::OpenProcess(PROCESS_DUP_HANDLE, /*bInheritHandle=*/FALSE, static_cast<DWORD>(pid));
  if (process == nullptr) {
    if (::GetLastError() == ERROR_INVALID_PARAMETER) return MakeError("NOT_FOUND", "no process with id " + std::to_string(pid));
    return LastOsError("OpenProcess", "opening process " + std::to_string(pid) + " to give it a notifier");
  }
  OsHandle owned_process(AsRaw(process));
  Result<RawHandle> remote = win::DuplicateNotifierInto(*this, process);
  if (!remote.ok()) return remote.error();
  return static_cast<uint32_t>(remote.value());
}

Result<RawHandle> Notifier::DuplicateUnowned(uint32_t access) const {
  if (!valid()) return MakeError("CLOSED", "the notifier is closed");
  HANDLE self = ::GetCurrentProcess();
  HANDLE copy = nullptr;
  if (!::DuplicateHandle(self, AsHandle(raw()), self, &copy, access != 0 ? access : win::kNotifierShareAccess,
                         /*bInheritHandle=*/FALSE, /*dwOptions=*/0)) {
    return LastOsError("DuplicateHandle", "duplicating a notifier's Event");
  }
  return AsRaw(copy);
}

Status Notifier::CloseUnowned(RawHandle raw) {
  Status shape = win::CheckReceivedHandleValue(raw);
  if (!shape.ok()) return shape.error();
  if (!::CloseHandle(AsHandle(raw))) return LastOsError("CloseHandle", "closing an unowned handle");
  return Ok();
}

namespace win {

Result<RawHandle> DuplicateNotifierInto(const Notifier& notifier, HANDLE process) {
  if (!notifier.valid()) return MakeError("CLOSED", "the notifier is closed");
  return DuplicateIntoPeer(AsHandle(notifier.raw()), process, kNotifierShareAccess, "a notifier");
}

}  // namespace win
}  // namespace memport
