// The raw values of every shared-memory handle (Linux fd, Windows section
// HANDLE) held by a live SharedMemory in this process, across all threads and
// worker environments (they share one fd/handle table). A value in here must
// never be adopted a second time: two owners of one number means the second
// close() closes whatever the OS has meanwhile given that number to.
//
// Constructing an OwnedHandles object takes the registry's lock until it is
// destroyed, so "check, validate, adopt" and "close, forget" are each one step.
// platform::CloseRawHandle forgets a value under the same lock as it closes it,
// which also covers SharedMemory's defaulted move-assignment (it closes the
// overwritten handle through OsHandle::reset, not through Close()). Code that
// creates or duplicates a handle registers it under the lock too, before any
// other thread can learn the number.
#pragma once

#include <mutex>
#include <unordered_set>

#include "os_handle.h"

namespace memport {

class OwnedHandles {
 public:
  OwnedHandles() : lock_(State().mutex) {}
  OwnedHandles(const OwnedHandles&) = delete;
  OwnedHandles& operator=(const OwnedHandles&) = delete;

  bool Contains(RawHandle raw) const { return State().values.count(raw) != 0; }
  void Add(RawHandle raw) { State().values.insert(raw); }
  void Remove(RawHandle raw) { State().values.erase(raw); }

 private:
  struct Registry {
    std::mutex mutex;
    std::unordered_set<RawHandle> values;
  };
  // Never destroyed: handles may be closed from static destructors and from
  // threads still running at exit.
  static Registry& State() {
    static Registry* registry = new Registry();
    return *registry;
  }

  std::lock_guard<std::mutex> lock_;
};

// Runs `open` (a system call that returns a new handle, or an invalid one)
// under the registry's lock and registers what it returns, so no other thread
// can adopt the number between its creation and its registration.
template <typename Open>
RawHandle OpenRegistered(Open open) {
  OwnedHandles registry;
  const RawHandle raw = static_cast<RawHandle>(open());
  if (platform::IsValidHandle(raw)) registry.Add(raw);
  return raw;
}

}  // namespace memport
