// OsHandle: a POSIX fd or a Win32 HANDLE owned by exactly one object.
// The raw value is kept as an integer so that this header needs no OS headers;
// each backend defines what "valid" and "close" mean for it.
#pragma once

#include <cstdint>

namespace memport {

using RawHandle = intptr_t;

namespace platform {
// Defined in native/linux or native/win.
bool IsValidHandle(RawHandle raw);
void CloseRawHandle(RawHandle raw);
extern const RawHandle kInvalidHandle;
}  // namespace platform

class OsHandle {
 public:
  OsHandle() : raw_(platform::kInvalidHandle) {}
  explicit OsHandle(RawHandle raw) : raw_(raw) {}
  OsHandle(const OsHandle&) = delete;
  OsHandle& operator=(const OsHandle&) = delete;
  OsHandle(OsHandle&& other) noexcept : raw_(other.release()) {}
  OsHandle& operator=(OsHandle&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  ~OsHandle() { reset(); }

  bool valid() const { return platform::IsValidHandle(raw_); }
  RawHandle get() const { return raw_; }

  // Gives up ownership; the caller now closes the handle.
  RawHandle release() {
    RawHandle raw = raw_;
    raw_ = platform::kInvalidHandle;
    return raw;
  }

  void reset(RawHandle raw = platform::kInvalidHandle) {
    if (platform::IsValidHandle(raw_)) platform::CloseRawHandle(raw_);
    raw_ = raw;
  }

 private:
  RawHandle raw_;
};

}  // namespace memport
