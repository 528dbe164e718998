// Watching fds on the JS thread's own event loop (libuv's), so a backend that
// can (Linux) reads a connection on the JS thread: one wake-up per frame
// instead of an I/O thread's plus the JS thread's. The binding's JsThread
// owns one LoopFdWatcher and hands out its watches through
// JsThread::WatchFd; the watcher itself belongs to the backend
// (native/linux/loop_fd_watch.cc). Where the OS has none (Windows: named
// pipes are not pollable), NewLoopFdWatcher returns nullptr and backends use
// their I/O thread.
#pragma once

#include <functional>
#include <memory>

#include "transport.h"

namespace memport {

// What a watch needs from the JS thread it runs on. Implemented by the
// binding; a watch keeps its host alive until libuv has closed it.
class LoopHost {
 public:
  virtual ~LoopHost() = default;
  // False once the environment is being torn down: nothing may reach JS.
  virtual bool alive() const = 0;
  // Runs `task` as Node runs a callback from the loop (in a callback scope,
  // so the promise reactions it queues run when it returns).
  virtual void RunAsCallback(const std::function<void()>& task) = 0;
};

class LoopFdWatcher {
 public:
  virtual ~LoopFdWatcher() = default;
  // JS thread only. Calls `on_events` with Readiness bits whenever `fd` is
  // readable, hung up or in error (and writable while wanted); the calls it
  // adds to its Deliveries are run through `host` right after it returns.
  // nullptr if the loop refused the fd. The watch does not keep the loop alive.
  virtual std::unique_ptr<FdWatch> Watch(int fd, JsThread::FdCallback on_events, std::shared_ptr<LoopHost> host) = 0;
  // Environment teardown: closes every open watch (libuv must have none left
  // when a worker's loop closes). True if none is left open; otherwise
  // `on_last_closed` runs once libuv has confirmed the last one.
  virtual bool CloseAll(std::function<void()> on_last_closed) = 0;
};

// A watcher for the libuv loop `uv_loop` (a uv_loop_t*), or nullptr where
// this OS's backend does not read on the loop.
std::unique_ptr<LoopFdWatcher> NewLoopFdWatcher(void* uv_loop);

}  // namespace memport
