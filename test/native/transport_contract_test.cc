// The transport contract (native/core/transport.h), one set of cases run
// against whichever backend this program is linked with: native/linux on
// Linux, native/win under Wine or on Windows (run-contract-test.sh builds
// both). Modelled on servo/ipc-channel's platform/test.rs, which runs one
// set of cases over each platform module. The cases hold no OS code: what
// they need from the OS beyond the interface (a second process, a raw
// client, a handle count) is contract_os.h, implemented once per OS.
//
// Every check is exact: a case waits for the event it checks (a completion,
// OnClosed, a child's exit) with a generous deadline that only a hang
// reaches, never for a time that a slow machine could miss. Handle counts
// are compared once the case has released everything, and asked again
// until they settle (the backends' I/O threads release what they hold a
// moment after the JS-thread callbacks); a leak never settles.
//
// Output: "PASS <case>: <check>" / "FAIL <case>: <check>: <detail>" lines,
// and last "N passed, N failed". Exit status 0 only if nothing failed.
//
// Child roles (argv[1]): "echo <name> <parent pid>" connects and answers
// (round trip); "mute <name> <parent pid>" connects and never reads (peer
// death mid-write).
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../../native/core/frame.h"
#include "../../native/core/shared_memory.h"
#include "../../native/core/transport.h"
#include "pumped_js_thread.h"
#include "contract_os.h"

using namespace memport;

namespace {

// Only a hang reaches these.
constexpr int kWaitMs = 30000;
constexpr int kChildWaitMs = 60000;  // Wine takes seconds to start a process

// ---------------------------------------------------------------------------
// Reporting

int g_passed = 0;
int g_failed = 0;
std::string g_case;
bool g_quiet = false;  // a child role: its parent reports on it

bool Check(bool ok, const std::string& what, const std::string& detail = "") {
  if (ok) {
    ++g_passed;
    if (!g_quiet) contract_os::PrintLine("PASS " + g_case + ": " + what);
  } else {
    ++g_failed;
    if (!g_quiet) contract_os::PrintLine("FAIL " + g_case + ": " + what + (detail.empty() ? "" : ": " + detail));
  }
  return ok;
}

std::string Describe(const Error& error) { return error.code + " (" + error.message + ")"; }

std::shared_ptr<PumpedJsThread> g_js;

bool PumpUntil(const std::function<bool()>& done, int timeout_ms = kWaitMs) { return g_js->PumpUntil(done, timeout_ms); }

// ---------------------------------------------------------------------------
// Observers that record every call.

struct WriteOutcome {
  int calls = 0;  // OnWriteDone calls for this id: the contract says one
  bool ok = false;
  Error error;
};

struct ConnRecorder : ConnectionObserver {
  std::deque<InboundMessage> frames;
  int closed_calls = 0;
  Error close_error;
  std::map<uint64_t, WriteOutcome> writes;

  void OnFrame(InboundMessage message) override { frames.push_back(std::move(message)); }
  void OnClosed(const Error& error) override {
    ++closed_calls;
    close_error = error;
  }
  void OnWriteDone(uint64_t write_id, const Error* error) override {
    WriteOutcome& outcome = writes[write_id];
    ++outcome.calls;
    outcome.ok = error == nullptr;
    if (error != nullptr) outcome.error = *error;
  }
};

struct ListenRecorder : ListenerObserver {
  std::deque<std::unique_ptr<Connection>> connections;
  int errors = 0;
  void OnConnection(std::unique_ptr<Connection> connection) override { connections.push_back(std::move(connection)); }
  void OnListenerError(const Error&) override { ++errors; }
};

Frame DataFrame(uint32_t seq, const std::vector<uint8_t>& data) {
  Frame frame;
  frame.type = FrameType::kMessage;
  frame.seq = seq;
  frame.data = data;
  return frame;
}

Frame TextFrame(uint32_t seq, const std::string& text) { return DataFrame(seq, std::vector<uint8_t>(text.begin(), text.end())); }

std::string TextOf(const InboundMessage& message) { return std::string(message.frame.data.begin(), message.frame.data.end()); }

// One end of a connection, its recorder, and what its writes did.
struct End {
  std::unique_ptr<Connection> connection;
  std::shared_ptr<ConnRecorder> recorder = std::make_shared<ConnRecorder>();
  uint64_t next_id = 1;
  std::vector<uint64_t> inline_ids;  // handed to the OS before Write returned: no OnWriteDone
  std::vector<uint64_t> queued_ids;  // completion reported later, through OnWriteDone

  explicit End(std::unique_ptr<Connection> c) : connection(std::move(c)) {}
  void Start(const PeerLimits& limits = PeerLimits{}) { connection->Start(recorder, limits); }

  // Writes one frame; returns its id, or 0 after an immediate failure (*failed says why).
  uint64_t Write(const std::vector<uint8_t>& data, const std::vector<const SharedMemory*>& regions = {},
                 Error* failed = nullptr) {
    const uint64_t id = next_id++;
    bool completed = false;
    Status status = connection->WriteInline(id, DataFrame(static_cast<uint32_t>(id), data), regions, &completed);
    if (!status.ok()) {
      if (failed != nullptr) *failed = status.error();
      return 0;
    }
    (completed ? inline_ids : queued_ids).push_back(id);
    return id;
  }
  uint64_t WriteText(const std::string& text, const std::vector<const SharedMemory*>& regions = {}) {
    return Write(std::vector<uint8_t>(text.begin(), text.end()), regions);
  }

  bool WaitWritten(uint64_t id) {
    for (uint64_t i : inline_ids) {
      if (i == id) return true;
    }
    return PumpUntil([&] { return recorder->writes.count(id) != 0; }) && recorder->writes[id].ok;
  }
  bool WaitFrame(InboundMessage* out) {
    PumpUntil([&] { return !recorder->frames.empty() || recorder->closed_calls > 0; });
    if (recorder->frames.empty()) return false;
    *out = std::move(recorder->frames.front());
    recorder->frames.pop_front();
    return true;
  }
  bool WaitClosed() { return PumpUntil([&] { return recorder->closed_calls > 0; }); }

  // Writes full-size data frames until one is not handed to the OS at once
  // (the peer does not read, so its buffer fills); true once one waits.
  bool FillUntilQueued() {
    for (int i = 0; i < 4096; ++i) {
      if (WriteBulk() == 0) return false;
      if (!queued_ids.empty()) return true;
    }
    return false;
  }

  // A full-size frame: once one waits, no other fits the OS buffer either.
  // (Wine's pipe completes a small write queued behind a waiting one, which
  // then counts as handed to the OS: its handles stay with the peer.)
  uint64_t WriteBulk(const std::vector<const SharedMemory*>& regions = {}) {
    return Write(std::vector<uint8_t>(kMaxDataLength, 0x5A), regions);
  }
};

// A listener and its recorder.
struct Server {
  std::shared_ptr<ListenRecorder> recorder = std::make_shared<ListenRecorder>();
  std::unique_ptr<Listener> listener;

  bool Listen(const std::string& name) {
    Result<std::unique_ptr<Listener>> made = memport::Listen(name, g_js, recorder);
    if (!Check(made.ok(), "Listen " + name, made.ok() ? "" : Describe(made.error()))) return false;
    listener = made.take();
    return true;
  }
  // The next connection the listener hands over (not started).
  std::unique_ptr<End> Accept(int timeout_ms = kWaitMs) {
    if (!PumpUntil([&] { return !recorder->connections.empty(); }, timeout_ms)) return nullptr;
    auto end = std::make_unique<End>(std::move(recorder->connections.front()));
    recorder->connections.pop_front();
    return end;
  }
};

std::unique_ptr<End> ConnectTo(const std::string& name, int64_t expected_pid = 0) {
  bool finished = false;
  Result<std::unique_ptr<Connection>> outcome = MakeError("TIMEOUT", "the test gave up waiting for Connect");
  Connect(name, 10000, expected_pid, g_js, [&](Result<std::unique_ptr<Connection>> r) {
    outcome = std::move(r);
    finished = true;
  });
  PumpUntil([&] { return finished; });
  if (!Check(outcome.ok(), "Connect " + name, outcome.ok() ? "" : Describe(outcome.error()))) return nullptr;
  return std::make_unique<End>(outcome.take());
}

// A client connected to `server` and the connection the listener handed
// over for it, both started; false (after a failed check) if either is missing.
bool ConnectStarted(Server& server, const std::string& name, std::unique_ptr<End>* client,
                    std::unique_ptr<End>* accepted, const std::string& what) {
  *client = ConnectTo(name);
  *accepted = server.Accept();
  if (!*client || !Check(*accepted != nullptr, what)) return false;
  (*client)->Start();
  (*accepted)->Start();
  return true;
}

std::string ChannelName(const std::string& what) {
  return "ct-" + std::to_string(contract_os::CurrentPid()) + "-" + what;
}

// A region filled with `seed`-derived bytes; read-only twin on request.
SharedMemory MakeRegion(uint64_t size, uint8_t seed) {
  Result<SharedMemory> region = SharedMemory::Create(size);
  if (!region.ok()) return SharedMemory();
  Result<std::shared_ptr<Mapping>> map = region.value().Map();
  if (map.ok()) {
    for (uint64_t i = 0; i < size; ++i) map.value()->data()[i] = static_cast<uint8_t>(seed + i * 7);
  }
  return region.take();
}

bool HasPattern(const SharedMemory& region, uint8_t seed) {
  Result<std::shared_ptr<Mapping>> map = region.Map();
  if (!map.ok()) return false;
  for (uint64_t i = 0; i < region.size(); ++i) {
    if (map.value()->data()[i] != static_cast<uint8_t>(seed + i * 7)) return false;
  }
  return true;
}

void Fill(const SharedMemory& region, uint8_t seed) {
  Result<std::shared_ptr<Mapping>> map = region.Map();
  if (!map.ok()) return;
  for (uint64_t i = 0; i < region.size(); ++i) map.value()->data()[i] = static_cast<uint8_t>(seed + i * 7);
}

// Every id in `ids` got exactly one OnWriteDone, failed with `code` (or
// succeeded, for code ""); the detail names the first that did not.
bool AllCompletedOnce(const ConnRecorder& recorder, const std::vector<uint64_t>& ids, const std::string& code,
                      std::string* detail) {
  for (uint64_t id : ids) {
    auto it = recorder.writes.find(id);
    const int calls = it == recorder.writes.end() ? 0 : it->second.calls;
    const bool as_expected = calls == 1 && (code.empty() ? it->second.ok : !it->second.ok && it->second.error.code == code);
    if (!as_expected) {
      *detail = "write " + std::to_string(id) + ": " + std::to_string(calls) + " completions" +
                (calls > 0 ? (it->second.ok ? ", ok" : ", " + Describe(it->second.error)) : "");
      return false;
    }
  }
  return true;
}

// No OnWriteDone for writes the backend said were complete when Write returned.
bool NoneReported(const ConnRecorder& recorder, const std::vector<uint64_t>& ids, std::string* detail) {
  for (uint64_t id : ids) {
    if (recorder.writes.count(id) != 0) {
      *detail = "write " + std::to_string(id) + " completed inline and was reported again";
      return false;
    }
  }
  return true;
}

// Pumps and re-counts until the census is `baseline` again (the I/O threads
// release what they hold a moment after the callbacks); a leak stays.
void CheckCensusSettles(const std::string& baseline) {
  std::string now;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWaitMs);
  for (;;) {
    g_js->Drain();
    now = contract_os::HandleCensus();
    if (now == baseline || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Check(now == baseline, "no handle leaked (" + now + ")", baseline + " -> " + now);
}

// ---------------------------------------------------------------------------
// The cases.

// A name has one live listener; it is free again once that listener closes;
// connecting finds it or says NOT_FOUND; a client that names the listener's
// PID gets that process or ACCESS_DENIED.
void Names() {
  const std::string baseline = contract_os::HandleCensus();
  const std::string name = ChannelName("names");
  Result<std::string> bad = ChannelAddress("bad/name");
  Check(!bad.ok() && bad.error().code == "INVALID_ARGUMENT", "ChannelAddress refuses a name with a '/'");
  Result<std::string> upper = ChannelAddress(name + "-CASE");
  Result<std::string> lower = ChannelAddress(name + "-case");
  Check(upper.ok() && lower.ok() && upper.value() == lower.value(), "names are case-insensitive (one address)");
  {
    Server server;
    if (!server.Listen(name)) return;
    Result<std::unique_ptr<Listener>> second = memport::Listen(name, g_js, std::make_shared<ListenRecorder>());
    Check(!second.ok() && second.error().code == "ALREADY_EXISTS", "a second Listen on the name gives ALREADY_EXISTS",
          second.ok() ? "succeeded" : Describe(second.error()));
    Check(server.listener->address() == ChannelAddress(name).value(), "the listener's address() is the channel address");

    bool finished = false;
    Result<std::unique_ptr<Connection>> wrong = MakeError("TIMEOUT", "no answer");
    Connect(name, 10000, contract_os::CurrentPid() + 1, g_js, [&](Result<std::unique_ptr<Connection>> r) {
      wrong = std::move(r);
      finished = true;
    });
    PumpUntil([&] { return finished; });
    Check(!wrong.ok() && wrong.error().code == "ACCESS_DENIED", "Connect expecting another listener PID gives ACCESS_DENIED",
          wrong.ok() ? "connected" : Describe(wrong.error()));
    std::unique_ptr<End> right = ConnectTo(name, contract_os::CurrentPid());
    std::unique_ptr<End> accepted = server.Accept();
    Check(right && accepted && accepted->connection->peer().pid == contract_os::CurrentPid() &&
              right->connection->peer().pid == contract_os::CurrentPid(),
          "Connect expecting this PID succeeds, and both ends see this process as the peer");
    // Every connection goes first: on Windows a pipe name exists while any
    // instance of it does, a connection's included, and the OS refuses a
    // first instance until then (FILE_FLAG_FIRST_PIPE_INSTANCE).
    right.reset();
    accepted.reset();
    g_js->Drain();
    server.recorder->connections.clear();  // the refused client's, if the listener saw it
    server.listener->Close();
    Result<std::unique_ptr<Listener>> again = memport::Listen(name, g_js, std::make_shared<ListenRecorder>());
    Check(again.ok(), "once the listener and its connections are closed, the name can be listened on again",
          again.ok() ? "" : Describe(again.error()));
  }
  bool finished = false;
  Result<std::unique_ptr<Connection>> nobody = MakeError("TIMEOUT", "no answer");
  Connect(name, 10000, 0, g_js, [&](Result<std::unique_ptr<Connection>> r) {
    nobody = std::move(r);
    finished = true;
  });
  PumpUntil([&] { return finished; });
  Check(!nobody.ok() && nobody.error().code == "NOT_FOUND", "once no listener has the name, Connect gives NOT_FOUND",
        nobody.ok() ? "connected" : Describe(nobody.error()));
  CheckCensusSettles(baseline);
}

// Regions cross to another process and back: the same bytes arrive, and
// writes through a shared writable region are seen on both sides.
void RoundTripWithHandles() {
  const std::string baseline = contract_os::HandleCensus();
  const std::string name = ChannelName("echo");
  {
    Server server;
    if (!server.Listen(name)) return;
    std::unique_ptr<contract_os::Child> child =
        contract_os::SpawnSelf({"echo", name, std::to_string(contract_os::CurrentPid())});
    if (!Check(child != nullptr, "spawned the echo peer")) return;
    std::unique_ptr<End> peer = server.Accept(kChildWaitMs);
    if (!Check(peer != nullptr, "the listener accepted the peer")) return;
    Check(peer->connection->peer().pid == child->pid(), "the listener sees the peer's real PID",
          std::to_string(peer->connection->peer().pid) + " vs " + std::to_string(child->pid()));
    peer->Start();

    SharedMemory source = MakeRegion(4096, 11);
    Result<SharedMemory> read_only = source.DuplicateReadOnly();
    SharedMemory writable = MakeRegion(8192, 22);
    if (!Check(read_only.ok() && writable.valid(), "made a read-only and a writable region")) return;
    const uint64_t sent = peer->WriteText("regions", {&read_only.value(), &writable});
    Check(sent != 0 && peer->WaitWritten(sent), "a MESSAGE with 2 regions is written");

    InboundMessage reply;
    if (!Check(peer->WaitFrame(&reply), "the peer answers")) return;
    Check(TextOf(reply) == "ok", "the peer got the same bytes in both regions, with their sizes and modes", TextOf(reply));
    Check(HasPattern(writable, 33), "the peer's writes through the writable region are seen here");
    Check(HasPattern(read_only.value(), 11), "the read-only region still holds the original bytes");
    const bool one = reply.regions.size() == 1 && reply.frame.regions.size() == 1;
    if (Check(one, "the answer carries the peer's region", std::to_string(reply.regions.size()) + " regions")) {
      const SharedMemory& theirs = reply.regions[0];
      Check(theirs.size() == 4096 && !theirs.read_only() && HasPattern(theirs, 44),
            "its region arrives writable, 4096 bytes, with the peer's bytes");
      Fill(theirs, 55);
      const uint64_t verify = peer->WriteText("verify");
      Check(verify != 0 && peer->WaitWritten(verify), "the verify request is written");
      InboundMessage verdict;
      Check(peer->WaitFrame(&verdict) && TextOf(verdict) == "ok", "the peer sees this side's writes into its region",
            TextOf(verdict));
    }
    reply = InboundMessage();
    peer->connection->Close();
    Check(child->WaitExit(kChildWaitMs) == 0, "the peer saw PEER_CLOSED and exited cleanly");
  }
  CheckCensusSettles(baseline);
}

// Many frames written before the peer reads: all arrive, in order, and each
// write's completion is reported once (or not at all when Write said it was
// already complete).
void QueuedWrites() {
  const std::string baseline = contract_os::HandleCensus();
  const std::string name = ChannelName("queued");
  {
    Server server;
    if (!server.Listen(name)) return;
    std::unique_ptr<End> client = ConnectTo(name);
    std::unique_ptr<End> receiver = server.Accept();
    if (!client || !Check(receiver != nullptr, "the listener handed over the client")) return;
    client->Start();  // the receiver is not started: it reads nothing yet

    constexpr int kFrames = 96;
    std::vector<SharedMemory> regions;
    for (int i = 0; i < kFrames; i += 8) regions.push_back(MakeRegion(4096, static_cast<uint8_t>(i)));
    bool written = true;
    for (int i = 0; i < kFrames && written; ++i) {
      std::vector<uint8_t> data(kMaxDataLength, static_cast<uint8_t>(i));
      std::vector<const SharedMemory*> with;
      if (i % 8 == 0) with.push_back(&regions[i / 8]);
      written = client->Write(data, with) != 0;
    }
    Check(written, std::to_string(kFrames) + " writes of 128 KiB accepted before the peer reads");
    Check(!client->queued_ids.empty(), "some writes wait for the peer (not all fit the OS buffer)",
          std::to_string(client->inline_ids.size()) + " completed at once");

    PeerLimits roomy;  // room for every frame unreceived at once (the default budget is 4 MiB of data)
    roomy.max_pending_data_bytes = uint64_t{64} << 20;
    receiver->Start(roomy);
    PumpUntil([&] { return receiver->recorder->frames.size() == kFrames || receiver->recorder->closed_calls > 0; });
    std::string order_problem;
    const std::deque<InboundMessage>& frames = receiver->recorder->frames;
    for (size_t i = 0; i < frames.size() && order_problem.empty(); ++i) {
      const InboundMessage& m = frames[i];
      const bool content = m.frame.seq == i + 1 && m.frame.data.size() == kMaxDataLength &&
                           m.frame.data.front() == static_cast<uint8_t>(i) && m.frame.data.back() == static_cast<uint8_t>(i);
      const bool carries = i % 8 == 0 ? m.regions.size() == 1 && HasPattern(m.regions[0], static_cast<uint8_t>(i))
                                      : m.regions.empty();
      if (!content || !carries) order_problem = "frame " + std::to_string(i) + " has seq " + std::to_string(m.frame.seq);
    }
    Check(frames.size() == kFrames && order_problem.empty(), "every frame arrives once, in order, with its region",
          std::to_string(frames.size()) + " frames; " + order_problem);
    PumpUntil([&] { return client->recorder->writes.size() >= client->queued_ids.size(); });

    // Closing both ends posts OnClosed after any completion still queued, so
    // a duplicate completion would be seen below.
    client->connection->Close();
    receiver->connection->Close();
    PumpUntil([&] { return client->recorder->closed_calls > 0 && receiver->recorder->closed_calls > 0; });
    std::string detail;
    Check(AllCompletedOnce(*client->recorder, client->queued_ids, "", &detail), "each waiting write is reported once, ok",
          detail);
    Check(NoneReported(*client->recorder, client->inline_ids, &detail), "writes complete at once are never reported",
          detail);
    Check(client->recorder->closed_calls == 1 && receiver->recorder->closed_calls == 1, "OnClosed once on each end");
  }
  CheckCensusSettles(baseline);
}

// A peer process killed while writes to it wait: every waiting write
// completes with PEER_CLOSED, OnClosed(PEER_CLOSED) once, nothing leaks.
void PeerDeathMidWrite() {
  const std::string baseline = contract_os::HandleCensus();
  const std::string name = ChannelName("death");
  {
    Server server;
    if (!server.Listen(name)) return;
    std::unique_ptr<contract_os::Child> child =
        contract_os::SpawnSelf({"mute", name, std::to_string(contract_os::CurrentPid())});
    if (!Check(child != nullptr, "spawned a peer that never reads")) return;
    std::unique_ptr<End> peer = server.Accept(kChildWaitMs);
    if (!Check(peer != nullptr, "the listener accepted the peer")) return;
    peer->Start();
    SharedMemory a = MakeRegion(4096, 1);
    SharedMemory b = MakeRegion(4096, 2);
    if (!Check(peer->FillUntilQueued(), "writes to a peer that does not read start to wait")) return;
    for (int i = 0; i < 3; ++i) peer->WriteBulk({&a, &b});
    child->Kill();
    Check(child->WaitExit(kChildWaitMs) >= 0, "the peer process is dead");
    Check(peer->WaitClosed(), "OnClosed follows the peer's death");
    g_js->Drain();
    Check(peer->recorder->closed_calls == 1 && peer->recorder->close_error.code == "PEER_CLOSED",
          "OnClosed(PEER_CLOSED) once", Describe(peer->recorder->close_error));
    std::string detail;
    Check(AllCompletedOnce(*peer->recorder, peer->queued_ids, "PEER_CLOSED", &detail),
          "every waiting write (" + std::to_string(peer->queued_ids.size()) + ") completes once with PEER_CLOSED",
          detail);
    Error late;
    Check(peer->Write({1}, {&a}, &late) == 0 && late.code == "PEER_CLOSED", "a Write afterwards fails with PEER_CLOSED",
          Describe(late));
  }
  CheckCensusSettles(baseline);
}

// What each way of ending reports: Close() here is CLOSED (for OnClosed,
// waiting writes and later writes alike); the other end then sees
// PEER_CLOSED; a peer dropped for breaking the protocol ends the connection
// with PROTOCOL, and writes still waiting fail with that same code, the
// reason the connection ended.
void CloseReasons() {
  const std::string baseline = contract_os::HandleCensus();
  const std::string name = ChannelName("close");
  {
    Server server;
    if (!server.Listen(name)) return;
    SharedMemory region = MakeRegion(4096, 3);

    // Close() here, with writes waiting.
    std::unique_ptr<End> closer = ConnectTo(name);
    std::unique_ptr<End> other = server.Accept();
    if (!closer || !Check(other != nullptr, "the listener handed over the client")) return;
    closer->Start();
    if (!Check(closer->FillUntilQueued(), "writes to an end that does not read start to wait")) return;
    closer->WriteBulk({&region});
    closer->connection->Close();
    PumpUntil([&] { return closer->recorder->closed_calls > 0; });
    g_js->Drain();
    std::string detail;
    Check(AllCompletedOnce(*closer->recorder, closer->queued_ids, "CLOSED", &detail),
          "Close() completes each waiting write once with CLOSED", detail);
    Check(closer->recorder->closed_calls == 1 && closer->recorder->close_error.code == "CLOSED",
          "Close() reports OnClosed(CLOSED) once", Describe(closer->recorder->close_error));
    Error late;
    Check(closer->Write({1}, {}, &late) == 0 && late.code == "CLOSED", "a Write after Close() fails with CLOSED",
          Describe(late));
    closer->connection->Close();
    g_js->Drain();
    Check(closer->recorder->closed_calls == 1, "Close() twice reports OnClosed once");

    // The other end: what was written arrives, then PEER_CLOSED.
    other->Start();
    Check(other->WaitClosed() && other->recorder->close_error.code == "PEER_CLOSED",
          "the other end of a closed connection sees PEER_CLOSED", Describe(other->recorder->close_error));
    size_t handed_over = closer->inline_ids.size();
    for (const auto& [id, outcome] : closer->recorder->writes) handed_over += outcome.ok ? 1 : 0;
    Check(other->recorder->frames.size() == handed_over, "and first receives every frame that was handed to the OS",
          std::to_string(other->recorder->frames.size()) + " of " + std::to_string(handed_over) + " frames");
    Check(other->Write({1}, {}, &late) == 0 && late.code == "PEER_CLOSED",
          "a Write on it afterwards fails with PEER_CLOSED", Describe(late));
    other->recorder->frames.clear();

    // A peer dropped for a protocol violation while writes to it wait.
    std::unique_ptr<contract_os::RawClient> raw = contract_os::RawConnect(name);
    std::unique_ptr<End> dropped = server.Accept();
    if (!Check(raw && dropped, "a raw client connected")) return;
    dropped->Start();
    if (!Check(dropped->FillUntilQueued(), "writes to a raw client that does not read start to wait")) return;
    dropped->WriteBulk({&region});
    Check(raw->Send({'n', 'o', 't', ' ', 'a', ' ', 'f', 'r', 'a', 'm', 'e', ' ', 'a', 't', ' ', 'a', 'l', 'l'}),
          "the raw client sent garbage");
    Check(dropped->WaitClosed(), "the violation ends the connection");
    g_js->Drain();
    Check(dropped->recorder->closed_calls == 1 && dropped->recorder->close_error.code == "PROTOCOL",
          "OnClosed(PROTOCOL) once", Describe(dropped->recorder->close_error));
    Check(AllCompletedOnce(*dropped->recorder, dropped->queued_ids, "PROTOCOL", &detail),
          "each write still waiting fails once with PROTOCOL, the reason the connection ended", detail);
    Check(dropped->Write({1}, {}, &late) == 0 && late.code == "PROTOCOL",
          "a Write afterwards fails with PROTOCOL too", Describe(late));
  }
  CheckCensusSettles(baseline);
}

// A connection that ended before it was started (the listener wrote its
// WELCOME to a client that had gone, and the write ended the connection)
// still reports OnClosed, once, when started: the binding keeps the event
// loop alive from Start until OnClosed, so a lost OnClosed is a process that
// never exits.
void EndedBeforeStart() {
  const std::string baseline = contract_os::HandleCensus();
  const std::string name = ChannelName("early-end");
  {
    Server server;
    if (!server.Listen(name)) return;
    std::unique_ptr<End> client = ConnectTo(name);
    std::unique_ptr<End> accepted = server.Accept();
    if (!client || !Check(accepted != nullptr, "the listener handed over the client")) return;
    client->connection->Close();
    client.reset();
    Error failed;
    for (int i = 0; i < 64 && failed.code.empty(); ++i) accepted->Write({1}, {}, &failed);  // the WELCOME, and more
    accepted->Start();
    Check(accepted->WaitClosed(), "Start on a connection that has ended reports OnClosed");
    g_js->Drain();
    Check(accepted->recorder->closed_calls == 1 && accepted->recorder->close_error.code == "PEER_CLOSED",
          "once, with PEER_CLOSED", Describe(accepted->recorder->close_error));
  }
  CheckCensusSettles(baseline);
}

// A notifier travels beside a region (frame descriptor bit 2): the receiver
// gets its own handle to the same wake-up object, checked to be a notifier,
// and a wake raised through either handle is taken through the other.
void NotifiersTravel() {
  const std::string baseline = contract_os::HandleCensus();
  const std::string name = ChannelName("notifiers");
  {
    Server server;
    if (!server.Listen(name)) return;
    std::unique_ptr<End> client, accepted;
    if (!ConnectStarted(server, name, &client, &accepted, "the listener handed over the client")) return;
    SharedMemory region = MakeRegion(4096, 5);
    Result<Notifier> ours = Notifier::Create();
    if (!Check(ours.ok() && region.valid(), "made a region and a notifier")) return;
    bool completed = false;
    Status sent = client->connection->WriteInline(1, TextFrame(1, "with a notifier"), {&region}, &completed, {&ours.value()});
    Check(sent.ok(), "a MESSAGE with a region and a notifier is written", sent.ok() ? "" : Describe(sent.error()));
    InboundMessage message;
    if (!Check(accepted->WaitFrame(&message), "it arrives")) return;
    const bool shape = message.regions.size() == 1 && message.notifiers.size() == 1 && message.frame.regions.size() == 2 &&
                       !message.frame.regions[0].notifier() && message.frame.regions[1].notifier();
    Check(shape, "one region and one notifier, in descriptor order",
          std::to_string(message.regions.size()) + " regions, " + std::to_string(message.notifiers.size()) + " notifiers");
    if (shape) {
      Check(HasPattern(message.regions[0], 5), "the region carries the sender's bytes");
      Notifier& theirs = message.notifiers[0];
      Check(theirs.Notify().ok(), "the received notifier can notify");
      Result<bool> woke = ours.value().TryConsume();
      Check(woke.ok() && woke.value(), "and the sender's notifier has that wake");
      Check(ours.value().Notify().ok(), "the sender's notifier can notify");
      woke = theirs.TryConsume();
      Check(woke.ok() && woke.value(), "and the received one has that wake");
    }
    message = InboundMessage();
  }
  CheckCensusSettles(baseline);
}

// A stream reader's members (docs/PROTOCOL.md section 6): the frame declares
// one reader, the last two regions and notifiers carry flag bit 3, and the
// receiver's frame says so; a declaration the handles cannot back is refused
// before anything is sent.
void StreamMembersTravel() {
  const std::string baseline = contract_os::HandleCensus();
  const std::string name = ChannelName("streams");
  {
    Server server;
    if (!server.Listen(name)) return;
    std::unique_ptr<End> client, accepted;
    if (!ConnectStarted(server, name, &client, &accepted, "the listener handed over the client")) return;
    SharedMemory plain = MakeRegion(4096, 3);
    SharedMemory data = MakeRegion(8192, 9);
    Result<SharedMemory> twin = data.DuplicateReadOnly();
    SharedMemory control = MakeRegion(64, 1);
    Result<Notifier> n0 = Notifier::Create();
    Result<Notifier> n1 = Notifier::Create();
    Result<Notifier> n2 = Notifier::Create();
    if (!Check(twin.ok() && plain.valid() && control.valid() && n0.ok() && n1.ok() && n2.ok(), "made the parts")) return;
    Frame lopsided = TextFrame(1, "one notifier short");
    lopsided.streams = 1;
    bool completed = false;
    Status short_of = client->connection->WriteInline(1, std::move(lopsided), {&twin.value(), &control}, &completed, {&n1.value()});
    Check(!short_of.ok() && short_of.error().code == "INVALID_ARGUMENT", "a stream declared without its two notifiers is refused",
          short_of.ok() ? "sent" : Describe(short_of.error()));
    Frame frame = TextFrame(1, "with a stream");
    frame.streams = 1;
    Status sent = client->connection->WriteInline(2, std::move(frame), {&plain, &twin.value(), &control}, &completed,
                                                  {&n0.value(), &n1.value(), &n2.value()});
    Check(sent.ok(), "a MESSAGE with a region, a notifier and a stream reader is written", sent.ok() ? "" : Describe(sent.error()));
    InboundMessage message;
    if (!Check(accepted->WaitFrame(&message), "it arrives")) return;
    const std::vector<RegionDescriptor>& d = message.frame.regions;
    const bool shape = message.frame.streams == 1 && message.regions.size() == 3 && message.notifiers.size() == 3 && d.size() == 6;
    Check(shape, "one stream reader: three regions and three notifiers, the last two of each its members",
          "streams " + std::to_string(message.frame.streams) + ", " + std::to_string(message.regions.size()) + " regions");
    if (shape) {
      Check(!d[0].stream() && d[1].stream() && d[2].stream() && !d[3].stream() && d[4].stream() && d[5].stream(),
            "flag bit 3 marks exactly the members");
      Check(message.regions[1].read_only() && !message.regions[2].read_only(), "the data arrives read-only, the control region writable");
      Check(HasPattern(message.regions[1], 9), "the data region carries the writer's bytes");
    }
    message = InboundMessage();
  }
  CheckCensusSettles(baseline);
}

// A listener closed while a client it accepted is still on its way to the
// JS thread: Close() frees the name at once all the same (on Windows that
// client's pipe instance kept it, and a Listen right after was
// ALREADY_EXISTS), and the client is never handed over: it learns its end.
void ListenAgainAfterClose() {
  const std::string baseline = contract_os::HandleCensus();
  const std::string name = ChannelName("relisten");
  {
    Server server;
    if (!server.Listen(name)) return;
    bool finished = false;
    Result<std::unique_ptr<Connection>> outcome = MakeError("TIMEOUT", "no answer");
    Connect(name, 10000, 0, g_js, [&](Result<std::unique_ptr<Connection>> r) {
      outcome = std::move(r);
      finished = true;
    });
    // Not pumped: wait until both the client's result and the accepted
    // connection are queued for the JS thread.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWaitMs);
    while (g_js->Queued() < 2 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    Check(g_js->Queued() >= 2, "the listener accepted the client and posted it", std::to_string(g_js->Queued()) + " tasks queued");
    server.listener->Close();
    Result<std::unique_ptr<Listener>> again = memport::Listen(name, g_js, std::make_shared<ListenRecorder>());
    Check(again.ok(), "Listen right after Close() succeeds, with an accepted client not yet handed over",
          again.ok() ? "" : Describe(again.error()));
    PumpUntil([&] { return finished; });
    g_js->Drain();
    Check(server.recorder->connections.empty(), "the closed listener hands nothing over",
          std::to_string(server.recorder->connections.size()) + " handed over");
    if (Check(outcome.ok(), "the client had connected", outcome.ok() ? "" : Describe(outcome.error()))) {
      End client(outcome.take());
      client.Start();
      Check(client.WaitClosed() && client.recorder->close_error.code == "PEER_CLOSED",
            "and learns PEER_CLOSED", Describe(client.recorder->close_error));
    }
  }
  CheckCensusSettles(baseline);
}

// Frames already read and on their way to the JS thread when Close() is
// called are not delivered: after Close returns, only the OnWriteDone and
// OnClosed it causes arrive (transport.h). Both backends read on an I/O
// thread here (the pumped JS thread watches no fds), which posts each frame.
void NothingAfterClose() {
  const std::string baseline = contract_os::HandleCensus();
  const std::string name = ChannelName("after-close");
  {
    Server server;
    if (!server.Listen(name)) return;
    std::unique_ptr<End> client, accepted;
    if (!ConnectStarted(server, name, &client, &accepted, "the listener handed over the client")) return;
    SharedMemory region = MakeRegion(4096, 9);
    for (int i = 0; i < 8; ++i) client->WriteText("frame " + std::to_string(i), {&region});
    // Not pumped: the I/O thread reads the frames and posts each; they wait
    // in the queue.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWaitMs);
    while (g_js->Queued() < 8 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    Check(g_js->Queued() >= 8, "the frames were read and posted", std::to_string(g_js->Queued()) + " tasks queued");
    accepted->connection->Close();
    g_js->Drain();
    Check(accepted->recorder->frames.empty(), "no frame read before Close() is delivered after it",
          std::to_string(accepted->recorder->frames.size()) + " delivered");
    Check(accepted->recorder->closed_calls == 1 && accepted->recorder->close_error.code == "CLOSED",
          "OnClosed(CLOSED) once", Describe(accepted->recorder->close_error));
    accepted.reset();
    Check(client->WaitClosed() && client->recorder->close_error.code == "PEER_CLOSED",
          "the writer sees PEER_CLOSED", Describe(client->recorder->close_error));
  }
  CheckCensusSettles(baseline);
}

// Bytes that are not a frame drop that connection with PROTOCOL and deliver
// nothing; the listener goes on serving other clients.
void ProtocolViolation() {
  const std::string baseline = contract_os::HandleCensus();
  const std::string name = ChannelName("garbage");
  {
    Server server;
    if (!server.Listen(name)) return;
    std::vector<uint8_t> garbage(100);
    for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<uint8_t>(i * 31 + 5);
    Frame frame = TextFrame(1, "a header that promises more data than follows");
    Result<std::vector<uint8_t>> short_frame = EncodeFrame(frame);
    short_frame.value().resize(short_frame.value().size() - 5);
    const std::vector<std::pair<std::string, std::vector<uint8_t>>> bad = {
        {"random bytes", garbage},
        {"a frame shorter than its header says", short_frame.value()},
        {"an empty message", {}},
        // No header can describe this much: the message is just too long.
        {"a message longer than the largest frame", std::vector<uint8_t>(kMaxFrameSize + 4096, 0x41)},
    };
    for (const auto& [label, bytes] : bad) {
      std::unique_ptr<contract_os::RawClient> raw = contract_os::RawConnect(name);
      std::unique_ptr<End> victim = server.Accept();
      if (!Check(raw && victim, "a raw client connected (" + label + ")")) return;
      // Started first: a pipe blocks a write longer than its buffer until the reader reads.
      victim->Start();
      raw->Send(bytes);
      Check(victim->WaitClosed() && victim->recorder->close_error.code == "PROTOCOL",
            label + " closes that connection with PROTOCOL", Describe(victim->recorder->close_error));
      g_js->Drain();
      Check(victim->recorder->frames.empty() && victim->recorder->closed_calls == 1,
            "no frame is delivered and OnClosed comes once");
    }

    std::unique_ptr<End> client, served;
    if (!ConnectStarted(server, name, &client, &served, "the listener still accepts a well-behaved client")) return;
    const uint64_t id = client->WriteText("still here");
    InboundMessage message;
    Check(id != 0 && served->WaitFrame(&message) && TextOf(message) == "still here",
          "and its frame arrives");
    Check(server.recorder->errors == 0, "the listener reported no error");
  }
  CheckCensusSettles(baseline);
}

// Handles in writes that never reached the peer (it left without reading)
// are released here and, where the backend puts them into the peer's handle
// table before the write (Windows), taken back from it. The peer is in this
// process, so its handle table is ours: the census sees both.
void UndeliveredHandlesReleased() {
  const std::string baseline = contract_os::HandleCensus();
  const std::string name = ChannelName("revoke");
  {
    Server server;
    if (!server.Listen(name)) return;
    std::vector<SharedMemory> regions;
    for (int i = 0; i < 4; ++i) regions.push_back(MakeRegion(4096, static_cast<uint8_t>(i)));
    std::unique_ptr<contract_os::RawClient> raw = contract_os::RawConnect(name);
    std::unique_ptr<End> sender = server.Accept();
    if (!Check(raw && sender, "a raw client that never reads connected")) return;
    sender->Start();
    if (!Check(sender->FillUntilQueued(), "writes to it start to wait")) return;
    const size_t waiting = sender->queued_ids.size();
    for (int i = 0; i < 3; ++i) sender->WriteBulk({&regions[0], &regions[1], &regions[2], &regions[3]});
    Check(sender->queued_ids.size() == waiting + 3, "3 writes with 4 regions each wait behind the first");
    raw.reset();  // leaves without reading anything
    Check(sender->WaitClosed() && sender->recorder->close_error.code == "PEER_CLOSED",
          "the peer leaving ends the connection with PEER_CLOSED", Describe(sender->recorder->close_error));
    g_js->Drain();
    std::string detail;
    Check(AllCompletedOnce(*sender->recorder, sender->queued_ids, "PEER_CLOSED", &detail),
          "each waiting write fails once with PEER_CLOSED", detail);
  }
  CheckCensusSettles(baseline);
}

// What the backends make once per process (an I/O thread and its epoll fd
// or completion port, which the census leaves out) is made here, before the
// cases.
void WarmUp() {
  const std::string baseline = contract_os::HandleCensus();
  {
    const std::string name = ChannelName("warm-up");
    Server server;
    if (!server.Listen(name)) return;
    std::unique_ptr<End> client, served;
    if (!ConnectStarted(server, name, &client, &served, "the listener handed over the client")) return;
    SharedMemory region = MakeRegion(4096, 7);
    const uint64_t id = client->WriteText("warm", {&region});
    InboundMessage message;
    Check(id != 0 && served->WaitFrame(&message) && message.regions.size() == 1, "a first message arrives");
  }
  CheckCensusSettles(baseline);
}

// ---------------------------------------------------------------------------
// Child roles.

// Connects, then answers "regions" (checks both regions, writes into the
// writable one, sends one of its own) and "verify" (sees the parent's write
// into it). Exits 0 on PEER_CLOSED, non-zero on anything unexpected.
int RunEcho(const std::string& name, int64_t parent_pid) {
  g_case = "echo";
  g_quiet = true;
  std::unique_ptr<End> parent = ConnectTo(name, parent_pid);
  if (!parent) return 10;
  parent->Start();
  SharedMemory mine = MakeRegion(4096, 44);
  for (;;) {
    InboundMessage message;
    if (!parent->WaitFrame(&message)) {
      g_js->Drain();
      return parent->recorder->close_error.code == "PEER_CLOSED" ? 0 : 11;
    }
    const std::string command = TextOf(message);
    std::string answer = "ok";
    std::vector<const SharedMemory*> with;
    if (command == "regions") {
      const bool shape = message.regions.size() == 2 && message.regions[0].read_only() &&
                         !message.regions[1].read_only() && message.regions[0].size() == 4096 &&
                         message.regions[1].size() == 8192;
      if (!shape) {
        answer = "bad: " + std::to_string(message.regions.size()) + " regions of the wrong size or mode";
      } else if (!HasPattern(message.regions[0], 11) || !HasPattern(message.regions[1], 22)) {
        answer = "bad: the bytes differ";
      } else {
        Fill(message.regions[1], 33);
        with.push_back(&mine);
      }
    } else if (command == "verify") {
      if (!HasPattern(mine, 55)) answer = "bad: the parent's write is not visible";
    } else {
      answer = "bad: unknown command " + command;
    }
    const uint64_t id = parent->WriteText(answer, with);
    if (id == 0 || !parent->WaitWritten(id)) return 12;
  }
}

// Connects and never starts its connection, so it reads nothing; waits to be killed.
int RunMute(const std::string& name, int64_t parent_pid) {
  g_case = "mute";
  g_quiet = true;
  std::unique_ptr<End> parent = ConnectTo(name, parent_pid);
  if (!parent) return 10;
  std::this_thread::sleep_for(std::chrono::minutes(10));
  return 13;
}

}  // namespace

int main(int argc, char** argv) {
  g_js = std::make_shared<PumpedJsThread>();
  const std::string role = argc > 1 ? argv[1] : "";
  if (role == "echo" && argc == 4) return RunEcho(argv[2], std::atoll(argv[3]));
  if (role == "mute" && argc == 4) return RunMute(argv[2], std::atoll(argv[3]));

  contract_os::PrintLine(std::string("transport contract, ") + contract_os::kPlatform + " backend");
  const std::pair<const char*, void (*)()> cases[] = {
      {"warm-up", WarmUp},
      {"names", Names},
      {"round trip with handles", RoundTripWithHandles},
      {"queued writes", QueuedWrites},
      {"peer death mid-write", PeerDeathMidWrite},
      {"close reasons", CloseReasons},
      {"ended before start", EndedBeforeStart},
      {"nothing after close", NothingAfterClose},
      {"listen again after close", ListenAgainAfterClose},
      {"notifiers travel", NotifiersTravel},
      {"stream members travel", StreamMembersTravel},
      {"protocol violation", ProtocolViolation},
      {"undelivered handles released", UndeliveredHandlesReleased},
  };
  for (const auto& [name, run] : cases) {
    g_case = name;
    const int failed_before = g_failed;
    const int passed_before = g_passed;
    run();
    g_js->Drain();
    if (g_passed == passed_before && g_failed == failed_before) Check(false, "the case made no check");
  }
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  std::fflush(stdout);
  return g_failed == 0 ? 0 : 1;
}
