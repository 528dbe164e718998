// Linux: fds watched on the JS thread's libuv loop with uv_poll
// (native/core/loop_watch.h). Only a Node process has libuv, so the native
// contract test, which drives readiness itself, does not link this file.
#include <algorithm>
#include <vector>

#include "../core/loop_watch.h"

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

namespace memport {

namespace {

constexpr int kUvPoll = 8;  // UV_POLL in enum uv_handle_type
constexpr int kUvReadable = 1;
constexpr int kUvWritable = 2;
constexpr int kUvDisconnect = 4;

// uv_poll's event bits as the neutral Readiness bits the connection reads.
uint32_t FromUvPoll(int status, int events) {
  if (status < 0) return kFailed;
  return ((events & kUvReadable) ? kReadable : 0u) | ((events & kUvWritable) ? kWritable : 0u) |
         ((events & kUvDisconnect) ? kHungUp : 0u);
}

class UvWatcher;

// One uv_poll handle. Its memory must stay valid until libuv's close
// callback, which can come after the backend dropped its FdWatch (a normal
// close) or before (environment teardown closed it first), so whichever is
// last frees it. It keeps its host (and so the watcher the host owns) alive
// until then.
struct PollHandle {
  PollHandle() : storage(new char[uv_handle_size(kUvPoll)]) {}
  uv_poll_t* poll() { return reinterpret_cast<uv_poll_t*>(storage.get()); }
  uv_handle_t* handle() { return reinterpret_cast<uv_handle_t*>(storage.get()); }

  std::unique_ptr<char[]> storage;
  JsThread::FdCallback on_events;
  std::shared_ptr<LoopHost> host;
  UvWatcher* watcher = nullptr;
  int uv_events = kUvReadable | kUvDisconnect;
  bool closing = false;
  bool closed = false;
  bool backend_gone = false;
};

class UvWatcher : public LoopFdWatcher {
 public:
  explicit UvWatcher(uv_loop_t* loop) : loop_(loop) {}

  std::unique_ptr<FdWatch> Watch(int fd, JsThread::FdCallback on_events, std::shared_ptr<LoopHost> host) override;

  bool CloseAll(std::function<void()> on_last_closed) override {
    std::vector<PollHandle*> open = watches_;
    for (PollHandle* watch : open) {
      if (!watch->closing) Close(watch);
    }
    if (watches_.empty()) return true;
    on_last_closed_ = std::move(on_last_closed);
    return false;
  }

  static void Close(PollHandle* watch) {
    watch->closing = true;
    uv_poll_stop(watch->poll());
    uv_close(watch->handle(), [](uv_handle_t* handle) {
      OnClosed(static_cast<PollHandle*>(uv_handle_get_data(handle)));
    });
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    auto* watch = static_cast<PollHandle*>(uv_handle_get_data(reinterpret_cast<uv_handle_t*>(handle)));
    std::shared_ptr<LoopHost> host = watch->host;
    if (watch->closing) return;
    if (!host->alive()) {
      // Teardown has begun and nothing may reach JS any more; stop, or a
      // readable fd would call us on every turn until the watch is closed.
      uv_poll_stop(watch->poll());
      return;
    }
    Deliveries deliveries;
    // The watch may be closed from inside; its memory lives until libuv's
    // close callback, which cannot run before this returns.
    watch->on_events(FromUvPoll(status, events), deliveries);
    for (auto& task : deliveries) host->RunAsCallback(task);
  }

 private:
  static void OnClosed(PollHandle* watch) {
    watch->closed = true;
    // Held to the end of this function: the last watch's close may drop the
    // last owner of the host, which owns this watcher.
    std::shared_ptr<LoopHost> host = std::move(watch->host);
    UvWatcher* self = watch->watcher;
    auto& list = self->watches_;
    list.erase(std::remove(list.begin(), list.end(), watch), list.end());
    if (watch->backend_gone) delete watch;
    if (list.empty() && self->on_last_closed_) {
      std::function<void()> done = std::move(self->on_last_closed_);
      self->on_last_closed_ = nullptr;
      done();
    }
  }

  uv_loop_t* const loop_;
  std::vector<PollHandle*> watches_;  // open, so teardown can close them
  std::function<void()> on_last_closed_;
};

class UvFdWatch : public FdWatch {
 public:
  explicit UvFdWatch(PollHandle* watch) : watch_(watch) {}
  ~UvFdWatch() override {
    watch_->backend_gone = true;
    if (watch_->closed) {
      delete watch_;
    } else if (!watch_->closing) {
      UvWatcher::Close(watch_);
    }
  }

  void WantWritable(bool want) override {
    if (watch_->closing) return;
    const int events = want ? (watch_->uv_events | kUvWritable) : (watch_->uv_events & ~kUvWritable);
    if (events == watch_->uv_events) return;
    watch_->uv_events = events;
    uv_poll_start(watch_->poll(), events, UvWatcher::OnPoll);
  }

 private:
  PollHandle* watch_;
};

std::unique_ptr<FdWatch> UvWatcher::Watch(int fd, JsThread::FdCallback on_events, std::shared_ptr<LoopHost> host) {
  auto* watch = new PollHandle();
  if (uv_poll_init(loop_, watch->poll(), fd) != 0) {
    delete watch;
    return nullptr;
  }
  uv_handle_set_data(watch->handle(), watch);
  watch->on_events = std::move(on_events);
  watch->host = std::move(host);
  watch->watcher = this;
  // The connection's hold keeps the loop alive, not the watch.
  uv_unref(watch->handle());
  uv_poll_start(watch->poll(), watch->uv_events, OnPoll);
  watches_.push_back(watch);
  return std::make_unique<UvFdWatch>(watch);
}

}  // namespace

std::unique_ptr<LoopFdWatcher> NewLoopFdWatcher(void* uv_loop) {
  if (uv_loop == nullptr) return nullptr;
  return std::make_unique<UvWatcher>(static_cast<uv_loop_t*>(uv_loop));
}

}  // namespace memport
