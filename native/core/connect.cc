#include "connect.h"

#include <utility>

namespace memport {

namespace {

// Reaches the listener (retrying while it is busy, until the deadline), then
// checks it, cheapest and most telling first, before anything is sent to it.
Result<std::unique_ptr<Connection>> ConnectBlocking(const std::string& name, uint32_t timeout_ms,
                                                    int64_t expected_server_pid, const std::shared_ptr<JsThread>& js) {
  Result<std::unique_ptr<ConnectSteps>> begun = BeginConnect(name);
  if (!begun.ok()) return begun.error();
  std::unique_ptr<ConnectSteps> steps = begun.take();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::unique_ptr<ReachedListener> listener;
  for (;;) {
    Result<Reach> reach = steps->TryOnce();
    if (!reach.ok()) return reach.error();
    if (reach.value().reached) {
      listener = std::move(reach.value().reached);
      break;
    }
    if (reach.value().absent) {
      Result<std::string> address = ChannelAddress(name);
      return MakeError("NOT_FOUND", "no listener named '" + name + "'" + (address.ok() ? " (" + address.value() + ")" : ""));
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return MakeError("TIMEOUT", "the listener '" + name + "' did not accept within " + std::to_string(timeout_ms) + " ms");
    }
    steps->WaitWhileBusy(left);
  }
  Status owns = listener->CheckOwnsName();
  if (!owns.ok()) return owns.error();
  Status user = listener->CheckUser();
  if (!user.ok()) return user.error();
  const int64_t server_pid = listener->server().pid;
  if (expected_server_pid > 0 && server_pid != expected_server_pid) {
    return MakeError("ACCESS_DENIED", "the listener of '" + name + "' is process " + std::to_string(server_pid) +
                                          ", not the expected " + std::to_string(expected_server_pid));
  }
  // While the serving process runs, its PID is its alone: the checks above
  // were about the listener, not a process that inherited the number.
  Status serving = listener->CheckStillServing();
  if (!serving.ok()) return serving.error();
  return listener->Open(js);
}

}  // namespace

void Connect(const std::string& name, uint32_t timeout_ms, int64_t expected_server_pid, std::shared_ptr<JsThread> js,
             std::function<void(Result<std::unique_ptr<Connection>>)> done) {
  auto finish = std::make_shared<std::function<void(Result<std::unique_ptr<Connection>>)>>(
      [js, done = std::move(done)](Result<std::unique_ptr<Connection>> result) {
        auto shared = std::make_shared<Result<std::unique_ptr<Connection>>>(std::move(result));
        js->Post([done, shared] { done(std::move(*shared)); });
      });
  // Reaching a listener can wait (a full backlog, every pipe instance taken),
  // bounded by the timeout: on a short-lived thread, never the JS thread or
  // the libuv pool.
  Status started = StartDetachedThread([name, timeout_ms, expected_server_pid, js, finish] {
    (*finish)(ConnectBlocking(name, timeout_ms, expected_server_pid, js));
  });
  if (!started.ok()) (*finish)(started.error());
}

}  // namespace memport
