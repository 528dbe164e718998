// The one structured error shape the native layer reports. TypeScript turns it
// into a MemportError in exactly one place (src/errors.ts: toMemportError).
#pragma once

#include <cstdint>
#include <string>
#include <utility>

namespace memport {

struct Error {
  std::string code;     // a MemportError code, e.g. "ACCESS_DENIED", "OS"
  std::string message;  // what happened and, where it helps, what to do next
  std::string syscall;  // the OS call that failed; empty when none did
  int64_t os_code = 0;  // errno or GetLastError(); 0 when no OS call failed
};

// An error that did not come from the OS (bad argument, policy refusal).
inline Error MakeError(std::string code, std::string message) {
  return Error{std::move(code), std::move(message), {}, 0};
}

// Builds an Error from the calling thread's last OS error (errno or
// GetLastError()), classifying it into a MemportError code. Implemented per OS.
Error LastOsError(const char* syscall, const std::string& context);
// Same, for an explicit OS error number.
Error OsError(int64_t os_code, const char* syscall, const std::string& context);

// A value or an Error. Small on purpose: the binding only needs ok/value/error.
template <typename T>
class Result {
 public:
  Result(T value) : ok_(true), value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : ok_(false), error_(std::move(error)) {}  // NOLINT
  bool ok() const { return ok_; }
  T& value() { return value_; }
  T take() { return std::move(value_); }
  const Error& error() const { return error_; }

 private:
  bool ok_;
  T value_{};
  Error error_{};
};

// Result for operations with no value.
struct Unit {};
using Status = Result<Unit>;
inline Status Ok() { return Status(Unit{}); }

}  // namespace memport
