#include "js_thread.h"

#include <napi.h>

#include <algorithm>

namespace memport {

std::shared_ptr<NapiJsThread> NapiJsThread::Create(napi_env env) {
  std::shared_ptr<NapiJsThread> thread(new NapiJsThread());
  thread->env_ = env;
  napi_value name;
  napi_create_string_utf8(env, "memport-io", NAPI_AUTO_LENGTH, &name);
  napi_status status = napi_create_threadsafe_function(
      env, /*func=*/nullptr, /*async_resource=*/nullptr, name, /*max_queue_size=*/0,
      /*initial_thread_count=*/1, /*thread_finalize_data=*/nullptr, /*thread_finalize_cb=*/nullptr,
      /*context=*/nullptr, CallJs, &thread->tsfn_);
  if (status != napi_ok) return nullptr;
  napi_unref_threadsafe_function(env, thread->tsfn_);
  thread->self_ = thread;
  uv_loop_s* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) loop = nullptr;
  // Where the backend reads on the loop (Linux), watches need a callback
  // scope to run deliveries in, and must all be closed at teardown.
  thread->watcher_ = NewLoopFdWatcher(loop);
  napi_value resource;
  if (thread->watcher_ &&
      (napi_create_object(env, &resource) != napi_ok || napi_create_reference(env, resource, 1, &thread->resource_) != napi_ok ||
       napi_async_init(env, resource, name, &thread->async_context_) != napi_ok ||
       napi_add_async_cleanup_hook(env, CloseWatchesAtTeardown, thread.get(), /*remove_handle=*/nullptr) != napi_ok)) {
    thread->watcher_.reset();  // no watches then: backends fall back to their I/O threads
  }
  return thread;
}

NapiJsThread::~NapiJsThread() = default;

void NapiJsThread::Post(std::function<void()> task) {
  if (!alive_->load()) return;
  auto* boxed = new std::function<void()>(std::move(task));
  if (napi_call_threadsafe_function(tsfn_, boxed, napi_tsfn_nonblocking) != napi_ok) {
    // The environment is closing; the task's captures are destroyed here, and
    // the objects they hold check alive() before touching Node-API.
    alive_->store(false);
    delete boxed;
  }
}

void NapiJsThread::CallJs(napi_env env, napi_value /*js_callback*/, void* /*context*/, void* data) {
  auto* task = static_cast<std::function<void()>*>(data);
  if (env != nullptr) (*task)();
  delete task;
}

void NapiJsThread::Hold() {
  if (holds_++ == 0 && alive_->load()) napi_ref_threadsafe_function(env_, tsfn_);
}

void NapiJsThread::Release() {
  if (holds_ > 0 && --holds_ == 0 && alive_->load()) napi_unref_threadsafe_function(env_, tsfn_);
}

void NapiJsThread::Shutdown() {
  if (!alive_->exchange(false)) return;
  napi_release_threadsafe_function(tsfn_, napi_tsfn_abort);
}

// Runs a task as Node runs any callback from the loop: in a handle scope and
// a callback scope, so promise reactions and nextTicks it queues run when it
// returns, exactly as after a thread-safe-function call.
void NapiJsThread::RunAsCallback(const std::function<void()>& task) {
  if (!alive_->load()) return;
  napi_handle_scope handles;
  if (napi_open_handle_scope(env_, &handles) != napi_ok) return;
  napi_value resource;
  napi_callback_scope scope;
  if (napi_get_reference_value(env_, resource_, &resource) == napi_ok &&
      napi_open_callback_scope(env_, resource, async_context_, &scope) == napi_ok) {
    try {
      task();
    } catch (const Napi::Error& error) {
      // A JS exception escaping an observer (src/channel.ts lets none escape)
      // is reported as uncaught, as Node does for any event handler.
      napi_fatal_exception(env_, error.Value());
    }
    napi_close_callback_scope(env_, scope);
  }
  napi_close_handle_scope(env_, handles);
}

std::unique_ptr<FdWatch> NapiJsThread::WatchFd(int fd, FdCallback on_events) {
  if (!watcher_ || tearing_down_ || !alive_->load()) return nullptr;
  return watcher_->Watch(fd, std::move(on_events), self_.lock());
}

// Environment teardown: close every watch still open and let Node wait for
// libuv to confirm, so a worker's loop closes with no handle of ours on it.
void NapiJsThread::CloseWatchesAtTeardown(napi_async_cleanup_hook_handle handle, void* arg) {
  auto* thread = static_cast<NapiJsThread*>(arg);
  thread->tearing_down_ = true;
  std::shared_ptr<NapiJsThread> keep = thread->self_.lock();  // the last watch's close may drop the last owner
  if (thread->watcher_->CloseAll([handle] { napi_remove_async_cleanup_hook(handle); })) {
    napi_remove_async_cleanup_hook(handle);
  }
}

}  // namespace memport
