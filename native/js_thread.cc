#include "js_thread.h"

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

}  // namespace memport
