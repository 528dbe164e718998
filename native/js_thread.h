// JsThread on top of a Node-API thread-safe function: the one way backend I/O
// threads get work onto the JS thread. Keeps the event loop alive only while
// channel objects hold it (Hold/Release), like an open net.Socket does.
#pragma once

#include <node_api.h>

#include <atomic>
#include <functional>
#include <memory>
#include <vector>

#include "core/loop_watch.h"
#include "core/transport.h"

namespace memport {

class NapiJsThread : public JsThread, public LoopHost {
 public:
  static std::shared_ptr<NapiJsThread> Create(napi_env env);
  ~NapiJsThread() override;

  void Post(std::function<void()> task) override;
  std::unique_ptr<FdWatch> WatchFd(int fd, FdCallback on_events) override;

  // JS thread only. The loop stays alive while holds > 0.
  void Hold();
  void Release();

  // False once the environment is being torn down: objects destroyed after
  // that must not call into Node-API.
  bool alive() const override { return alive_->load(); }
  std::shared_ptr<std::atomic<bool>> alive_flag() const { return alive_; }

  // Called from the environment's cleanup hook.
  void Shutdown();

 private:
  NapiJsThread() = default;
  static void CallJs(napi_env env, napi_value js_callback, void* context, void* data);

  // Fds watched on the loop (native/core/loop_watch.h); null where the
  // backend reads on its I/O thread. Closed at environment teardown (libuv
  // must have no open handles left when a worker's loop closes).
  static void CloseWatchesAtTeardown(napi_async_cleanup_hook_handle handle, void* arg);
  void RunAsCallback(const std::function<void()>& task) override;
  std::weak_ptr<NapiJsThread> self_;
  std::unique_ptr<LoopFdWatcher> watcher_;
  bool tearing_down_ = false;
  napi_ref resource_ = nullptr;
  napi_async_context async_context_ = nullptr;

  napi_env env_ = nullptr;
  napi_threadsafe_function tsfn_ = nullptr;
  std::shared_ptr<std::atomic<bool>> alive_ = std::make_shared<std::atomic<bool>>(true);
  int holds_ = 0;
};

}  // namespace memport
