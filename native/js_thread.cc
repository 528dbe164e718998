#include "js_thread.h"

#include <napi.h>

#include <algorithm>

#ifndef _WIN32
// The few libuv calls used here, declared rather than taken from <uv.h>: the
// Node-API headers the addon builds against do not ship libuv's, and these
// are part of libuv 1.x's stable ABI, exported by every Node binary. The
// handle is treated as opaque and sized with uv_handle_size().
extern "C" {
typedef struct uv_loop_s uv_loop_t;
typedef struct uv_poll_s uv_poll_t;
typedef struct uv_handle_s uv_handle_t;
typedef void (*uv_poll_cb)(uv_poll_t* handle, int status, int events);
typedef void (*uv_close_cb)(uv_handle_t* handle);
int uv_poll_init(uv_loop_t* loop, uv_poll_t* handle, int fd);
int uv_poll_start(uv_poll_t* handle, int events, uv_poll_cb cb);
int uv_poll_stop(uv_poll_t* handle);
void uv_close(uv_handle_t* handle, uv_close_cb close_cb);
void uv_unref(uv_handle_t* handle);
size_t uv_handle_size(int type);
void* uv_handle_get_data(const uv_handle_t* handle);
void uv_handle_set_data(uv_handle_t* handle, void* data);
}

namespace {
constexpr int kUvPoll = 8;  // UV_POLL in enum uv_handle_type
constexpr int kUvReadable = 1;
constexpr int kUvWritable = 2;
constexpr int kUvDisconnect = 4;
}  // namespace
#endif

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
#ifndef _WIN32
  thread->self_ = thread;
  napi_value resource;
  if (napi_create_object(env, &resource) != napi_ok || napi_create_reference(env, resource, 1, &thread->resource_) != napi_ok ||
      napi_async_init(env, resource, name, &thread->async_context_) != napi_ok ||
      napi_add_async_cleanup_hook(env, CloseWatchesAtTeardown, thread.get(), &thread->teardown_) != napi_ok) {
    thread->async_context_ = nullptr;  // no watches then: backends fall back to their I/O threads
  }
#endif
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

#ifndef _WIN32

// One uv_poll handle. Its memory must stay valid until libuv's close callback,
// which can come after the backend dropped its FdWatch (a normal close) or
// before (environment teardown closed it first), so whichever is last frees it.
struct NapiJsThread::Watch {
  explicit Watch() : storage(new char[uv_handle_size(kUvPoll)]) {}
  uv_poll_t* poll() { return reinterpret_cast<uv_poll_t*>(storage.get()); }
  uv_handle_t* handle() { return reinterpret_cast<uv_handle_t*>(storage.get()); }

  std::unique_ptr<char[]> storage;
  FdCallback on_events;
  std::shared_ptr<NapiJsThread> owner;
  int uv_events = kUvReadable | kUvDisconnect;
  bool closing = false;
  bool closed = false;
  bool backend_gone = false;
};

class NapiJsThread::UvFdWatch : public FdWatch {
 public:
  explicit UvFdWatch(Watch* watch) : watch_(watch) {}
  ~UvFdWatch() override {
    watch_->backend_gone = true;
    if (watch_->closed) {
      delete watch_;
    } else if (!watch_->closing) {
      Close(watch_);
    }
  }

  void WantWritable(bool want) override {
    if (watch_->closing) return;
    const int events = want ? (watch_->uv_events | kUvWritable) : (watch_->uv_events & ~kUvWritable);
    if (events == watch_->uv_events) return;
    watch_->uv_events = events;
    uv_poll_start(watch_->poll(), events, OnPoll);
  }

  static void Close(Watch* watch) {
    watch->closing = true;
    uv_poll_stop(watch->poll());
    uv_close(watch->handle(), [](uv_handle_t* handle) { OnWatchClosed(static_cast<Watch*>(uv_handle_get_data(handle))); });
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    Watch* watch = static_cast<Watch*>(uv_handle_get_data(reinterpret_cast<uv_handle_t*>(handle)));
    std::shared_ptr<NapiJsThread> owner = watch->owner;
    if (watch->closing) return;
    if (!owner->alive()) {
      // Teardown has begun and nothing may reach JS any more; stop, or a
      // readable fd would call us on every turn until the watch is closed.
      uv_poll_stop(watch->poll());
      return;
    }
    uint32_t bits = 0;
    if (status < 0) {
      bits = kFailed;
    } else {
      if (events & kUvReadable) bits |= kReadable;
      if (events & kUvWritable) bits |= kWritable;
      if (events & kUvDisconnect) bits |= kHungUp;
    }
    Deliveries deliveries;
    // The watch may be closed from inside; its memory lives until libuv's
    // close callback, which cannot run before this returns.
    watch->on_events(bits, deliveries);
    for (auto& task : deliveries) owner->RunAsCallback(task);
  }

 private:
  Watch* watch_;
};

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
  if (async_context_ == nullptr || tearing_down_ || !alive_->load()) return nullptr;
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env_, &loop) != napi_ok || loop == nullptr) return nullptr;
  auto* watch = new Watch();
  if (uv_poll_init(loop, watch->poll(), fd) != 0) {
    delete watch;
    return nullptr;
  }
  uv_handle_set_data(watch->handle(), watch);
  watch->on_events = std::move(on_events);
  watch->owner = self_.lock();
  // The connection's Hold() keeps the loop alive, not the watch.
  uv_unref(watch->handle());
  uv_poll_start(watch->poll(), watch->uv_events, UvFdWatch::OnPoll);
  watches_.push_back(watch);
  return std::make_unique<UvFdWatch>(watch);
}

void NapiJsThread::OnWatchClosed(Watch* watch) {
  watch->closed = true;
  std::shared_ptr<NapiJsThread> owner = std::move(watch->owner);
  auto& list = owner->watches_;
  list.erase(std::remove(list.begin(), list.end(), watch), list.end());
  if (watch->backend_gone) delete watch;
  if (owner->tearing_down_ && list.empty() && owner->teardown_ != nullptr) {
    napi_remove_async_cleanup_hook(owner->teardown_);
    owner->teardown_ = nullptr;
  }
}

// Environment teardown: close every watch still open and let Node wait for
// libuv to confirm, so a worker's loop closes with no handle of ours on it.
void NapiJsThread::CloseWatchesAtTeardown(napi_async_cleanup_hook_handle handle, void* arg) {
  auto* thread = static_cast<NapiJsThread*>(arg);
  thread->tearing_down_ = true;
  thread->teardown_ = handle;
  std::shared_ptr<NapiJsThread> keep = thread->self_.lock();  // the last watch's close may drop the last owner
  std::vector<Watch*> open = thread->watches_;
  for (Watch* watch : open) {
    if (!watch->closing) UvFdWatch::Close(watch);
  }
  if (thread->watches_.empty() && thread->teardown_ != nullptr) {
    napi_remove_async_cleanup_hook(thread->teardown_);
    thread->teardown_ = nullptr;
  }
}

#else

std::unique_ptr<FdWatch> NapiJsThread::WatchFd(int /*fd*/, FdCallback /*on_events*/) { return nullptr; }

#endif

}  // namespace memport
