// The JS thread as the native layer sees it: where observer calls run, and
// (where the binding can) an fd watch on its own event loop. Implemented by
// the binding (native/js_thread.cc), so no backend needs libuv or Node-API
// symbols; the native tests implement it with a pumped queue.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace memport {

// What a watched fd is ready for: neutral bits, whatever reports them (libuv
// on the JS thread, native/js_thread.cc; epoll on the Linux I/O thread).
enum Readiness : uint32_t {
  kReadable = 1u << 0,
  kWritable = 1u << 1,
  kHungUp = 1u << 2,  // the other end closed, or the fd hung up
  kFailed = 1u << 3,  // an error is pending on the fd
};

// An fd watched from the JS thread's event loop. Destroyed on the JS thread,
// which stops the watch at once.
class FdWatch {
 public:
  virtual ~FdWatch() = default;
  // Also report writability (kWritable) while `want` is true.
  virtual void WantWritable(bool want) = 0;
};

// Observer calls a watch callback wants made, in order, once it has returned
// (so they run outside the backend's locks, each as its own JS callback).
using Deliveries = std::vector<std::function<void()>>;

// Runs tasks on the JS thread. Implemented by the binding (a Node-API
// thread-safe function), so no backend needs libuv or Node-API symbols.
class JsThread {
 public:
  virtual ~JsThread() = default;
  // Thread-safe. Tasks run in order; tasks posted after the environment is
  // torn down are dropped (their captured state is destroyed on that thread).
  virtual void Post(std::function<void()> task) = 0;
  // JS thread only. Calls `on_ready` on the JS thread whenever `fd` is
  // readable, hung up or in error (and writable, if wanted), with Readiness
  // bits; the calls it adds to `deliveries` are made right after it
  // returns. nullptr where the binding cannot (Windows): use an I/O thread.
  using FdCallback = std::function<void(uint32_t ready, Deliveries& deliveries)>;
  virtual std::unique_ptr<FdWatch> WatchFd(int /*fd*/, FdCallback /*on_events*/) { return nullptr; }
};

}  // namespace memport
