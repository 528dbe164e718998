// What only the Windows transport backend (native/win) does, checked across
// real processes without Node: the pipe's name, DACL and owner, squatters,
// handle values pushed into the peer (bogus ones refused, failed writes
// revoked, nothing inheritable), and handle counts over many transfers and
// 64 clients. What every backend must do (round trips, queued writes, close
// reasons, protocol violations, peer death) is the transport contract test,
// transport_contract_test.cc, which runs against this backend too.
//
// This program links native/core and native/win directly, plays the JS
// thread itself (a queue that main() pumps), and starts a second copy of
// itself (CreateProcessW, bInheritHandles=FALSE) as the peer, so handles
// really cross process boundaries. Runs on Windows and under Wine; see
// run-win-transport-test.sh.
//
// Every check is exact: waits end on the event checked, with deadlines only a
// hang reaches; handle counts are asked again until they settle (a leak
// never does), never after a fixed pause.
//
// Output: one line per check ("PASS name", "FAIL name: detail", and "SKIP"
// or "INFO" lines that count for nothing), checks made in the child are
// reported over the connection and printed with "[child]", and the last line
// is "N passed, N failed". The exit code is non-zero if anything failed.
//
// Child role: "peer", the counterpart, driven by text commands sent in
// MESSAGE frames.
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <aclapi.h>
#include <sddl.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../../native/core/frame.h"
#include "../../native/core/shared_memory.h"
#include "../../native/core/transport.h"
#include "contract_os.h"
#include "pumped_js_thread.h"
#include "../../native/win/ntdll.h"
#include "../../native/win/win_internal.h"

using namespace memport;

namespace {

// ---------------------------------------------------------------------------
// Reporting

int g_passed = 0;
int g_failed = 0;
bool g_is_child = false;
std::vector<std::string> g_child_lines;  // in the child: sent to the parent with the next reply

void Line(const std::string& text) {
  if (g_is_child) {
    g_child_lines.push_back(text);
  } else {
    std::printf("%s\n", text.c_str());
    std::fflush(stdout);
  }
}

bool Check(bool ok, const std::string& name, const std::string& detail = "") {
  if (ok) {
    ++g_passed;
    Line("PASS " + name);
  } else {
    ++g_failed;
    Line("FAIL " + name + (detail.empty() ? "" : ": " + detail));
  }
  return ok;
}

void Info(const std::string& text) { Line("INFO " + text); }

std::string Describe(const Error& error) {
  return error.code + " (" + error.message + (error.os_code != 0 ? ", os " + std::to_string(error.os_code) : "") + ")";
}

template <typename T>
bool CheckErrorCode(const Result<T>& result, const std::string& code, const std::string& name) {
  if (result.ok()) return Check(false, name, "succeeded, expected " + code);
  return Check(result.error().code == code, name, "got " + Describe(result.error()) + ", expected " + code);
}

std::shared_ptr<PumpedJsThread> g_js;
constexpr int kWait = 20000;  // generous: Wine is slow to start processes

bool PumpUntil(const std::function<bool()>& done, int timeout_ms = kWait) { return g_js->PumpUntil(done, timeout_ms); }

// ---------------------------------------------------------------------------
// Observers that record what happened (they run on the pumping thread).

struct WriteResult {
  bool ok = false;
  Error error;
};

struct ConnRecorder : ConnectionObserver {
  std::deque<InboundMessage> frames;
  bool closed = false;
  int closed_calls = 0;
  Error close_error;
  std::map<uint64_t, WriteResult> writes;

  void OnFrame(InboundMessage message) override { frames.push_back(std::move(message)); }
  void OnClosed(const Error& error) override {
    ++closed_calls;
    closed = true;
    close_error = error;
  }
  void OnWriteDone(uint64_t write_id, const Error* error) override {
    WriteResult result;
    result.ok = error == nullptr;
    if (error != nullptr) result.error = *error;
    writes[write_id] = result;
  }
};

struct ListenRecorder : ListenerObserver {
  std::deque<std::unique_ptr<Connection>> connections;
  bool failed = false;
  Error error;
  void OnConnection(std::unique_ptr<Connection> connection) override { connections.push_back(std::move(connection)); }
  void OnListenerError(const Error& e) override {
    failed = true;
    error = e;
  }
};

std::string TextOf(const InboundMessage& message) {
  return std::string(message.frame.data.begin(), message.frame.data.end());
}

Frame TextFrame(const std::string& text, uint32_t seq = 0) {
  Frame frame;
  frame.type = FrameType::kMessage;
  frame.seq = seq;
  frame.data.assign(text.begin(), text.end());
  return frame;
}

// A started connection and its recorder.
struct Link {
  std::unique_ptr<Connection> connection;
  std::shared_ptr<ConnRecorder> recorder = std::make_shared<ConnRecorder>();
  uint64_t next_write = 1;

  explicit Link(std::unique_ptr<Connection> c) : connection(std::move(c)) { connection->Start(recorder); }

  // Sends text (plus regions); returns the write id, or 0 if Write failed at once.
  uint64_t Send(const std::string& text, const std::vector<const SharedMemory*>& regions = {},
                Error* immediate = nullptr) {
    const uint64_t id = next_write++;
    Status status = connection->Write(id, TextFrame(text, static_cast<uint32_t>(id)), regions);
    if (!status.ok()) {
      if (immediate != nullptr) *immediate = status.error();
      return 0;
    }
    return id;
  }

  bool WaitWrite(uint64_t id, WriteResult* out = nullptr, int timeout_ms = kWait) {
    if (id == 0) return false;
    if (!PumpUntil([&] { return recorder->writes.count(id) != 0; }, timeout_ms)) return false;
    if (out != nullptr) *out = recorder->writes[id];
    return true;
  }

  bool SendAndWait(const std::string& text, const std::vector<const SharedMemory*>& regions = {}) {
    WriteResult result;
    return WaitWrite(Send(text, regions), &result) && result.ok;
  }

  bool NextFrame(InboundMessage* out, int timeout_ms = kWait) {
    if (!PumpUntil([&] { return !recorder->frames.empty() || recorder->closed; }, timeout_ms)) return false;
    if (recorder->frames.empty()) return false;
    *out = std::move(recorder->frames.front());
    recorder->frames.pop_front();
    return true;
  }

  bool WaitClosed(int timeout_ms = kWait) {
    return PumpUntil([&] { return recorder->closed; }, timeout_ms);
  }
};

Result<std::unique_ptr<Connection>> ConnectAndWait(const std::string& name, uint32_t timeout_ms,
                                                   int64_t expected_pid) {
  bool finished = false;
  Result<std::unique_ptr<Connection>> outcome = MakeError("TIMEOUT", "the test gave up waiting for Connect");
  Connect(name, timeout_ms, expected_pid, g_js, [&](Result<std::unique_ptr<Connection>> r) {
    outcome = std::move(r);
    finished = true;
  });
  PumpUntil([&] { return finished; }, static_cast<int>(timeout_ms) + kWait);
  return outcome;
}

int64_t Probe() {
  Result<HandleCensus> census = CountOpenHandles();
  return census.ok() ? census.value().value : -1;
}

// The object type of one of this process's handles ("Section", "File", ...); "" if none.
std::wstring TypeOf(HANDLE h) {
  const win::nt::Functions& ntdll = win::nt::Ntdll();
  alignas(8) unsigned char buffer[512];
  ULONG returned = 0;
  if (ntdll.query_object == nullptr ||
      ntdll.query_object(h, win::nt::kObjectTypeInformation, buffer, sizeof buffer, &returned) != 0) {
    return L"";
  }
  const auto* type = reinterpret_cast<const win::nt::ObjectTypeInformation*>(buffer);
  return std::wstring(type->TypeName.Buffer, type->TypeName.Length / sizeof(wchar_t));
}

// How many handles to the kinds of object memport makes per region and per
// connection this process holds ("sections=N files=N processes=N"): exact,
// unlike the slot probe, which also moves whenever Wine allocates an object
// of its own (semaphores, events) or a handle is replaced by another.
std::string MemportObjects() { return contract_os::HandleCensus(); }

// "objects sections=2 files=5 processes=1" -> "sections=2".
std::string SectionsOf(const std::string& objects) {
  const size_t at = objects.find("sections=");
  return at == std::string::npos ? "" : objects.substr(at, objects.find(' ', at) - at);
}

std::wstring Wide(const std::string& s) { return win::Utf8ToWide(s); }

// A raw, synchronous client of a memport pipe: plays a peer that never reads
// or sends a frame memport would not.
HANDLE RawConnect(const std::string& name) {
  Result<std::string> address = ChannelAddress(name);
  if (!address.ok()) return INVALID_HANDLE_VALUE;
  for (int i = 0; i < 200; ++i) {
    HANDLE h = ::CreateFileW(Wide(address.value()).c_str(), GENERIC_READ | GENERIC_WRITE, 0, nullptr, OPEN_EXISTING,
                             SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, nullptr);
    if (h != INVALID_HANDLE_VALUE) {
      DWORD mode = PIPE_READMODE_MESSAGE;
      ::SetNamedPipeHandleState(h, &mode, nullptr, nullptr);
      return h;
    }
    if (::GetLastError() != ERROR_PIPE_BUSY) return INVALID_HANDLE_VALUE;
    ::WaitNamedPipeW(Wide(address.value()).c_str(), 100);
  }
  return INVALID_HANDLE_VALUE;
}

// Fills a mapping with a recognisable pattern.
void Fill(uint8_t* p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(seed + i * 7);
}
bool HasPattern(const uint8_t* p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != static_cast<uint8_t>(seed + i * 7)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// Child: "peer"

struct PeerChild {
  std::string main_name, busy_name, squat_name;
  int64_t parent_pid = 0;
  std::unique_ptr<Link> link;
  // Regions received in the "regions" phase, kept for later phases.
  std::vector<SharedMemory> kept;
  std::vector<std::shared_ptr<Mapping>> kept_maps;
  HANDLE silent = INVALID_HANDLE_VALUE;

  void Reply(const std::string& head, const std::vector<const SharedMemory*>& regions = {}) {
    std::string text = head;
    for (const std::string& line : g_child_lines) text += "\n" + line;
    g_child_lines.clear();
    WriteResult result;
    if (!link->WaitWrite(link->Send(text, regions), &result) || !result.ok) {
      std::fprintf(stderr, "child: reply '%s' failed\n", head.c_str());
    }
  }

  // Before connecting: a pipe with no free instance, a squatter of another
  // user, and a name another process listens on.
  void PreConnectChecks() {
    const auto start = std::chrono::steady_clock::now();
    Result<std::unique_ptr<Connection>> busy = ConnectAndWait(busy_name, 400, 0);
    const auto took =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
    CheckErrorCode(busy, "TIMEOUT", "connect to a listener with no free instance times out");
    // Only the lower bound: the deadline is measured from inside Connect, after `start`.
    Check(took >= 400, "and waits the whole 400 ms before it does", "took " + std::to_string(took) + " ms");

    if (squat_name != "-") {
      Result<std::unique_ptr<Connection>> squat = ConnectAndWait(squat_name, 2000, 0);
      CheckErrorCode(squat, "ACCESS_DENIED", "connect refuses a pipe owned by another user (squatter)");
      if (!squat.ok()) {
        Check(squat.error().message.find("squatter") != std::string::npos, "squatter error says so",
              squat.error().message);
      }
    }

    auto observer = std::make_shared<ListenRecorder>();
    Result<std::unique_ptr<Listener>> second = Listen(main_name, g_js, observer);
    CheckErrorCode(second, "ALREADY_EXISTS", "Listen on a name another process listens on gives ALREADY_EXISTS");
  }

  // Phase "regions": the two regions the parent sent, read-only and writable.
  void OnRegions(InboundMessage& message) {
    const bool shape = message.regions.size() == 2 && message.frame.regions.size() == 2 &&
                       message.regions[0].read_only() && !message.regions[1].read_only() &&
                       message.regions[0].size() == 4096 && message.regions[1].size() == 8192;
    Check(shape, "receiver adopted 2 regions (read-only 4096, writable 8192) via FromReceived",
          std::to_string(message.regions.size()) + " regions");
    if (!shape) return;
    bool inheritable = false;
    for (const SharedMemory& region : message.regions) {
      DWORD flags = 0;
      inheritable = inheritable || !::GetHandleInformation(win::AsHandle(region.raw()), &flags) ||
                    (flags & HANDLE_FLAG_INHERIT) != 0;
    }
    Check(!inheritable, "received section handles are not inheritable");
    Result<std::shared_ptr<Mapping>> ro_map = message.regions[0].Map();
    Result<std::shared_ptr<Mapping>> rw_map = message.regions[1].Map();
    Check(ro_map.ok() && rw_map.ok(), "receiver maps both regions");
    if (!ro_map.ok() || !rw_map.ok()) return;
    Check(HasPattern(ro_map.value()->data(), 4096, 11), "receiver reads the sender's bytes (read-only region)");
    Check(HasPattern(rw_map.value()->data(), 8192, 22), "receiver reads the sender's bytes (writable region)");
    Fill(rw_map.value()->data(), 8192, 33);
    CheckEscalationRefused(message.regions[0]);
    // The copy-on-write view: writes stay private.
    ro_map.value()->data()[0] ^= 0xFF;
    kept_maps.push_back(ro_map.take());
    kept_maps.push_back(rw_map.take());
    for (SharedMemory& region : message.regions) kept.push_back(std::move(region));
  }

  void CheckEscalationRefused(const SharedMemory& read_only) {
    Result<std::vector<SharedMemory::EscalationAttempt>> attempts = read_only.TryWriteEscalation();
    if (!Check(attempts.ok(), "escalation attempts ran on the read-only region")) return;
    for (const auto& attempt : attempts.value()) {
      if (attempt.path == "map-view-write") {
        Check(!attempt.succeeded, "read-only region cannot be mapped for write in the receiver");
      } else if (attempt.path == "duplicate-write") {
        Check(!attempt.succeeded, "read-only region cannot be re-duplicated for write in the receiver");
      } else if (attempt.path == "virtual-protect-write") {
        Check(!attempt.succeeded, "a read view of the read-only region cannot be made writable");
      } else {
        Info("escalation '" + attempt.path + "' " + (attempt.succeeded ? "succeeded" : "refused") +
             " (real Windows refuses it; Wine does not model the OWNER RIGHTS ACE)");
      }
    }
  }

  // Finds a handle of this process's own pipe to the parent, by looking
  // through our own handle table for a named-pipe client handle.
  HANDLE FindOwnPipeHandle() {
    for (uintptr_t v = 4; v < 0x4000; v += 4) {
      HANDLE h = reinterpret_cast<HANDLE>(v);
      DWORD flags = 0;
      if (!::GetHandleInformation(h, &flags)) continue;
      if (::GetFileType(h) != FILE_TYPE_PIPE) continue;
      ULONG pid = 0;
      if (::GetNamedPipeServerProcessId(h, &pid) && static_cast<int64_t>(pid) == parent_pid) return h;
    }
    return nullptr;
  }

  static bool StillOpen(HANDLE h) {
    DWORD flags = 0;
    return ::GetHandleInformation(h, &flags) != FALSE;
  }

  // Phase "bogus": values a peer could write into a frame's handle field.
  void BogusValues() {
    RefusesBogusNumbers();
    RefusesOwnPipeAndForeignObjects();
    RefusesSectionsOfTheWrongSizeOrMode();
    TrialMappingFallback();
    RefusesFileAndImageSections();
  }

  void RefusesBogusNumbers() {
    struct Case {
      RawHandle value;
      const char* label;
    };
    const Case cases[] = {
        {0, "0"},
        {1, "1"},
        {3, "3"},
        {0x105, "0x105"},
        {static_cast<RawHandle>(static_cast<int32_t>(0xFFFFFFFFu)), "0xFFFFFFFF (sign-extended)"},
        {static_cast<RawHandle>(0xFFFFFFFFu), "0xFFFFFFFF (zero-extended)"},
        {win::AsRaw(::GetCurrentProcess()), "GetCurrentProcess()"},
        {win::AsRaw(::GetCurrentThread()), "GetCurrentThread()"},
        {-6, "-6 (token pseudo-handle)"},
        {0x40000000, "2^30"},
        {0x7FFC, "0x7FFC (unused slot)"},
    };
    for (const Case& c : cases) {
      CheckErrorCode(SharedMemory::FromReceived(c.value, 4096, true), "INVALID_HANDLE",
                     std::string("FromReceived refuses ") + c.label);
    }
  }

  void RefusesOwnPipeAndForeignObjects() {
    HANDLE pipe = FindOwnPipeHandle();
    if (Check(pipe != nullptr, "found the receiver's own pipe handle")) {
      CheckErrorCode(SharedMemory::FromReceived(win::AsRaw(pipe), 4096, true), "INVALID_HANDLE",
                     "FromReceived refuses the receiver's own pipe handle");
      Check(StillOpen(pipe), "the pipe handle was not closed");
      DWORD flags = 0;
      Check(::GetHandleInformation(pipe, &flags) && (flags & HANDLE_FLAG_INHERIT) == 0,
            "the client's pipe handle is not inheritable");
    }

    HANDLE event = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
    CheckErrorCode(SharedMemory::FromReceived(win::AsRaw(event), 4096, true), "INVALID_HANDLE",
                   "FromReceived refuses an Event handle");
    Check(::SetEvent(event) && ::WaitForSingleObject(event, 0) == WAIT_OBJECT_0,
          "the Event handle still works afterwards");
    ::CloseHandle(event);

    Result<SharedMemory> own = SharedMemory::Create(4096);
    if (own.ok()) {
      CheckErrorCode(SharedMemory::FromReceived(own.value().raw(), 4096, false), "INVALID_HANDLE",
                     "FromReceived refuses a section memport already owns");
      Check(own.value().Map().ok(), "the memport-owned section still works afterwards");
    }
    if (!kept.empty()) {
      CheckErrorCode(SharedMemory::FromReceived(kept[1].raw(), 8192, false), "INVALID_HANDLE",
                     "FromReceived refuses a received section already adopted (same value twice)");
    }
  }

  // Sections memport does not own, of the wrong size or mode; then a good
  // one, which is adopted (and closed with its SharedMemory).
  void RefusesSectionsOfTheWrongSizeOrMode() {
    HANDLE section = ::CreateFileMappingW(INVALID_HANDLE_VALUE, nullptr, PAGE_READWRITE | SEC_COMMIT, 0, 4096, nullptr);
    CheckErrorCode(SharedMemory::FromReceived(win::AsRaw(section), 8192, false), "INVALID_HANDLE",
                   "FromReceived refuses a section smaller than declared");
    CheckErrorCode(SharedMemory::FromReceived(win::AsRaw(section), 4096, true), "ACCESS_DENIED",
                   "FromReceived refuses a writable handle declared read-only");
    HANDLE read_only = nullptr;
    ::DuplicateHandle(::GetCurrentProcess(), section, ::GetCurrentProcess(), &read_only,
                      win::kReadOnlySectionAccess, FALSE, 0);
    CheckErrorCode(SharedMemory::FromReceived(win::AsRaw(read_only), 4096, false), "ACCESS_DENIED",
                   "FromReceived refuses a read-only handle declared writable");
    Check(StillOpen(section) && StillOpen(read_only), "refused section handles were not closed");
    Result<SharedMemory> adopted = SharedMemory::FromReceived(win::AsRaw(read_only), 4096, true);
    Check(adopted.ok(), "FromReceived adopts a correct read-only section",
          adopted.ok() ? "" : Describe(adopted.error()));
    if (adopted.ok()) adopted.value().Close();
    Check(!StillOpen(read_only), "closing the adopted SharedMemory closed the handle");
    ::CloseHandle(section);

    HANDLE reserve = ::CreateFileMappingW(INVALID_HANDLE_VALUE, nullptr, PAGE_READWRITE | SEC_RESERVE, 0, 4096, nullptr);
    CheckErrorCode(SharedMemory::FromReceived(win::AsRaw(reserve), 4096, false), "INVALID_HANDLE",
                   "FromReceived refuses a SEC_RESERVE section");
    Check(StillOpen(reserve), "the SEC_RESERVE section was not closed");
    ::CloseHandle(reserve);
  }

  // The check used where the Nt queries are missing.
  void TrialMappingFallback() {
    HANDLE section = ::CreateFileMappingW(INVALID_HANDLE_VALUE, nullptr, PAGE_READWRITE | SEC_COMMIT, 0, 4096, nullptr);
    HANDLE read_only = nullptr;
    ::DuplicateHandle(::GetCurrentProcess(), section, ::GetCurrentProcess(), &read_only,
                      win::kReadOnlySectionAccess, FALSE, 0);
    Check(win::VerifySectionByTrialMapping(section, 4096, false).ok(), "trial-mapping fallback accepts a good section");
    Check(win::VerifySectionByTrialMapping(read_only, 4096, true).ok(),
          "trial-mapping fallback accepts a good read-only section");
    const auto refuses = [](Status status, const std::string& code, const std::string& what) {
      Check(!status.ok() && status.error().code == code, "trial-mapping fallback refuses " + what,
            status.ok() ? "accepted" : Describe(status.error()));
    };
    refuses(win::VerifySectionByTrialMapping(section, 1 << 20, false), "INVALID_HANDLE", "a too-small section");
    refuses(win::VerifySectionByTrialMapping(section, 4096, true), "ACCESS_DENIED",
            "a writable handle declared read-only");
    refuses(win::VerifySectionByTrialMapping(read_only, 4096, false), "ACCESS_DENIED",
            "a read-only handle declared writable");
    HANDLE event = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
    refuses(win::VerifySectionByTrialMapping(event, 4096, true), "INVALID_HANDLE", "an Event");
    ::CloseHandle(event);
    ::CloseHandle(read_only);
    ::CloseHandle(section);
  }

  void RefusesFileAndImageSections() {
    wchar_t exe[MAX_PATH];
    ::GetModuleFileNameW(nullptr, exe, MAX_PATH);
    HANDLE file = ::CreateFileW(exe, GENERIC_READ, FILE_SHARE_READ, nullptr, OPEN_EXISTING, 0, nullptr);
    HANDLE file_section = ::CreateFileMappingW(file, nullptr, PAGE_READONLY, 0, 0, nullptr);
    CheckErrorCode(SharedMemory::FromReceived(win::AsRaw(file_section), 4096, true), "INVALID_HANDLE",
                   "FromReceived refuses a file-backed section");
    HANDLE image_section = ::CreateFileMappingW(file, nullptr, PAGE_READONLY | SEC_IMAGE, 0, 0, nullptr);
    CheckErrorCode(SharedMemory::FromReceived(win::AsRaw(image_section), 4096, true), "INVALID_HANDLE",
                   "FromReceived refuses an image section");
    Check(StillOpen(file_section) && StillOpen(image_section) && StillOpen(file),
          "refused file and image sections were not closed");
    ::CloseHandle(image_section);
    ::CloseHandle(file_section);
    ::CloseHandle(file);
  }

  // Phase "dup-value": a handle value the parent put into our table with DuplicateIntoProcess.
  void AdoptDuplicatedValue(std::istringstream& in) {
    unsigned long long value = 0;
    unsigned long long size = 0;
    in >> value >> size;
    Result<SharedMemory> region = SharedMemory::FromReceived(
        static_cast<RawHandle>(static_cast<int32_t>(static_cast<uint32_t>(value))), size, true);
    if (!Check(region.ok(), "a value from DuplicateIntoProcess is adopted read-only by FromReceived",
               region.ok() ? "" : Describe(region.error()))) {
      return;
    }
    Result<std::shared_ptr<Mapping>> map = region.value().Map();
    Check(map.ok() && HasPattern(map.value()->data(), static_cast<size_t>(size), 11),
          "the receiver reads the bytes through it");
    Result<std::vector<SharedMemory::EscalationAttempt>> attempts = region.value().TryWriteEscalation();
    bool refused = attempts.ok();
    if (attempts.ok()) {
      for (const auto& a : attempts.value()) {
        if (a.path == "map-view-write" || a.path == "duplicate-write") refused = refused && !a.succeeded;
      }
    }
    Check(refused, "and cannot write through it or re-duplicate it for write");
  }

  // Phase "bogus-frame": a raw client sends a frame naming `value` (a handle
  // in the parent's table) as its region.
  void SendBogusFrame(std::istringstream& in) {
    unsigned long long value = 0;
    in >> value;
    Frame frame = TextFrame("take this");
    RegionDescriptor descriptor;
    descriptor.size = 4096;
    descriptor.flags = kRegionReadOnly;
    descriptor.handle = static_cast<uint32_t>(value);
    frame.regions.push_back(descriptor);
    Result<std::vector<uint8_t>> bytes = EncodeFrame(frame);
    HANDLE h = RawConnect(main_name);
    if (!bytes.ok() || !Check(h != INVALID_HANDLE_VALUE, "raw client connected for the bogus frame")) return;
    DWORD written = 0;
    ::WriteFile(h, bytes.value().data(), static_cast<DWORD>(bytes.value().size()), &written, nullptr);
    // Wait for the listener to drop us (the read fails once it closes).
    uint8_t buffer[256];
    DWORD read = 0;
    while (::ReadFile(h, buffer, sizeof buffer, &read, nullptr) || ::GetLastError() == ERROR_MORE_DATA) {
    }
    ::CloseHandle(h);
  }

  // Phase "xfer": adopt the parent's region, check its first byte, and
  // answer with a region of our own carrying the same byte.
  void Transfer(std::istringstream& in, InboundMessage& message) {
    unsigned value = 0;
    in >> value;
    bool ok = message.regions.size() == 1;
    if (ok) {
      Result<std::shared_ptr<Mapping>> map = message.regions[0].Map();
      ok = map.ok() && map.value()->data()[0] == static_cast<uint8_t>(value);
    }
    message.regions.clear();
    Result<SharedMemory> mine = SharedMemory::Create(4096);
    if (mine.ok()) {
      Result<std::shared_ptr<Mapping>> map = mine.value().Map();
      if (map.ok()) map.value()->data()[0] = static_cast<uint8_t>(value);
    }
    const SharedMemory* region = mine.ok() ? &mine.value() : nullptr;
    WriteResult result;
    link->WaitWrite(link->Send(std::string(ok ? "xfer-ok " : "xfer-bad ") + std::to_string(value), {region}), &result);
  }

  int Run() {
    PreConnectChecks();
    Result<std::unique_ptr<Connection>> connected = ConnectAndWait(main_name, 10000, parent_pid);
    if (!connected.ok()) {
      std::fprintf(stderr, "child: connect failed: %s\n", Describe(connected.error()).c_str());
      return 100;
    }
    Check(connected.value()->peer().pid == parent_pid, "client sees the listener's real PID",
          std::to_string(connected.value()->peer().pid) + " vs " + std::to_string(parent_pid));
    link = std::make_unique<Link>(connected.take());
    Reply("hello");

    for (;;) {
      InboundMessage message;
      if (!link->NextFrame(&message, 120000)) {
        std::fprintf(stderr, "child: no command (closed=%d)\n", link->recorder->closed ? 1 : 0);
        return 101;
      }
      std::istringstream in(TextOf(message));
      std::string command;
      in >> command;
      if (command == "regions") {
        OnRegions(message);
        Reply("regions-done");
      } else if (command == "bogus") {
        BogusValues();
        Reply("bogus-done");
      } else if (command == "dup-value") {
        AdoptDuplicatedValue(in);
        Reply("dup-done");
      } else if (command == "probe") {
        Reply("probe " + std::to_string(Probe()));
      } else if (command == "objects") {
        Reply("objects " + MemportObjects());
      } else if (command == "open-silent") {
        silent = RawConnect(main_name);
        Reply("open-silent");
      } else if (command == "close-silent") {
        ::CloseHandle(silent);
        silent = INVALID_HANDLE_VALUE;
        Reply("close-silent");
      } else if (command == "bogus-frame") {
        SendBogusFrame(in);
        Reply("bogus-frame-sent");
      } else if (command == "many") {
        ManyClients(64);
        Reply("many-done");
      } else if (command == "xfer") {
        Transfer(in, message);
      } else if (command == "bye") {
        kept_maps.clear();
        kept.clear();
        Reply("bye");
        link->connection->Close();
        return g_failed;
      } else {
        Reply("unknown " + command);
      }
    }
  }

  // Phase "many": `count` clients at once, each pinging and answered with
  // its own pong while all are open.
  void ManyClients(int count) {
    // Shared with the callbacks, which may still arrive after a timeout below.
    struct Round {
      std::vector<std::unique_ptr<Link>> links;
      int connected = 0;
      int failed = 0;
    };
    auto round = std::make_shared<Round>();
    round->links.resize(count);
    for (int i = 0; i < count; ++i) {
      Connect(main_name, 30000, parent_pid, g_js, [round, i](Result<std::unique_ptr<Connection>> r) {
        if (r.ok()) {
          round->links[i] = std::make_unique<Link>(r.take());
          round->links[i]->Send("ping " + std::to_string(i));
          ++round->connected;
        } else {
          ++round->failed;
          Info("client " + std::to_string(i) + " failed: " + Describe(r.error()));
        }
      });
    }
    PumpUntil([&] { return round->connected + round->failed == count; }, 60000);
    Check(round->connected == count, std::to_string(count) + " clients connected at once",
          std::to_string(round->connected) + " connected, " + std::to_string(round->failed) + " failed");
    const auto answered = [&] {
      int n = 0;
      for (int i = 0; i < count; ++i) {
        if (!round->links[i]) continue;
        for (const InboundMessage& m : round->links[i]->recorder->frames) n += TextOf(m) == "pong " + std::to_string(i);
      }
      return n;
    };
    PumpUntil([&] { return answered() == count; }, 60000);
    int still_open = 0;
    for (auto& l : round->links) still_open += (l && !l->recorder->closed) ? 1 : 0;
    Check(answered() == count, "all " + std::to_string(count) + " clients got their own answer",
          std::to_string(answered()) + " answered");
    Check(still_open == count, "all " + std::to_string(count) + " connections were open at the same time",
          std::to_string(still_open));
    for (auto& l : round->links) {
      if (l) l->connection->Close();
    }
    PumpUntil([&] {
      for (auto& l : round->links) {
        if (l && !l->recorder->closed) return false;
      }
      return true;
    });
  }
};

// ---------------------------------------------------------------------------
// Parent

struct ChildProcess {
  OsHandle process;
  DWORD pid = 0;
};

ChildProcess Spawn(const std::string& args) {
  wchar_t exe[MAX_PATH];
  ::GetModuleFileNameW(nullptr, exe, MAX_PATH);
  std::wstring command = L"\"" + std::wstring(exe) + L"\" " + Wide(args);
  STARTUPINFOW startup{};
  startup.cb = sizeof startup;
  PROCESS_INFORMATION info{};
  ChildProcess child;
  if (!::CreateProcessW(exe, &command[0], /*lpProcessAttributes=*/nullptr, /*lpThreadAttributes=*/nullptr,
                        /*bInheritHandles=*/FALSE, /*dwCreationFlags=*/0, /*lpEnvironment=*/nullptr,
                        /*lpCurrentDirectory=*/nullptr, &startup, &info)) {
    return child;
  }
  ::CloseHandle(info.hThread);
  child.process.reset(win::AsRaw(info.hProcess));
  child.pid = info.dwProcessId;
  return child;
}

// Prints the child's check lines that came with a reply and counts them.
std::string Absorb(const InboundMessage& message) {
  const std::string text = TextOf(message);
  std::istringstream lines(text);
  std::string head;
  std::getline(lines, head);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.compare(0, 5, "PASS ") == 0) {
      ++g_passed;
      Line("PASS [child] " + line.substr(5));
    } else if (line.compare(0, 5, "FAIL ") == 0) {
      ++g_failed;
      Line("FAIL [child] " + line.substr(5));
    } else {
      Line(line.substr(0, 5) + "[child] " + line.substr(line.size() >= 5 ? 5 : 0));
    }
  }
  return head;
}

// Waits for the next frame on `link`, absorbs the child's lines, returns the head.
std::string Expect(Link& link, const std::string& want_prefix, InboundMessage* keep = nullptr, int timeout = kWait) {
  InboundMessage message;
  if (!link.NextFrame(&message, timeout)) {
    Check(false, "reply '" + want_prefix + "' from the child",
          link.recorder->closed ? "connection closed: " + Describe(link.recorder->close_error) : "timed out");
    return "";
  }
  std::string head = Absorb(message);
  if (head.compare(0, want_prefix.size(), want_prefix) != 0) {
    Check(false, "reply '" + want_prefix + "' from the child", "got '" + head + "'");
  }
  if (keep != nullptr) *keep = std::move(message);
  return head;
}

// Sends `command` to the peer and returns the head of its reply.
std::string Ask(Link& peer, const std::string& command) {
  peer.SendAndWait(command);
  return Expect(peer, command.substr(0, command.find(' ')));
}

// Waits for the listener to hand over the next connection, and starts it.
std::unique_ptr<Link> Accept(ListenRecorder& listener, int timeout = kWait) {
  if (!PumpUntil([&] { return !listener.connections.empty(); }, timeout)) return nullptr;
  auto link = std::make_unique<Link>(std::move(listener.connections.front()));
  listener.connections.pop_front();
  return link;
}

// The peer's answer to `command` ("probe", "objects"), asked again until it
// has settled (`settled` holds): what the peer releases may take a moment
// (its I/O thread), a leak never settles. Gives up only after kWait.
std::string PeerReplySettled(Link& peer, const std::string& command,
                             const std::function<bool(const std::string&)>& settled) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWait);
  std::string now = Ask(peer, command);
  while (!settled(now) && std::chrono::steady_clock::now() < deadline) {
    ::Sleep(50);
    now = Ask(peer, command);
  }
  return now;
}

std::string PeerReplySettled(Link& peer, const std::string& command, const std::string& expected) {
  return PeerReplySettled(peer, command, [&expected](const std::string& now) { return now == expected; });
}

// The same for this process's own count of memport's kinds of handle.
std::string OwnObjectsSettled(const std::string& expected) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWait);
  std::string now = MemportObjects();
  while (now != expected && std::chrono::steady_clock::now() < deadline) {
    g_js->PumpFor(50);
    now = MemportObjects();
  }
  return now;
}

// Looks through our own handle table for handles of the kinds memport creates
// (pipes, process handles, sections, the completion port) that a child
// started with bInheritHandles=TRUE (as libuv does) would inherit.
std::string InheritableMemportHandles() {
  std::string found;
  // The standard handles came from whoever started this test (a pipe when a
  // test runner captures its input); they are not memport's.
  const HANDLE standard[] = {::GetStdHandle(STD_INPUT_HANDLE), ::GetStdHandle(STD_OUTPUT_HANDLE),
                             ::GetStdHandle(STD_ERROR_HANDLE)};
  for (uintptr_t v = 4; v < 0x4000; v += 4) {
    HANDLE h = reinterpret_cast<HANDLE>(v);
    if (h == standard[0] || h == standard[1] || h == standard[2]) continue;
    DWORD flags = 0;
    if (!::GetHandleInformation(h, &flags) || (flags & HANDLE_FLAG_INHERIT) == 0) continue;
    const std::wstring name = TypeOf(h);
    if (name.empty()) continue;
    const bool pipe = name == L"File" && ::GetFileType(h) == FILE_TYPE_PIPE;
    if (pipe || name == L"Process" || name == L"Section" || name == L"IoCompletion") {
      found += " " + std::to_string(v) + "=" + win::WideToUtf8(name);
    }
  }
  return found;
}

std::string SddlOwnedBySystem() { return "O:SYG:SYD:P(A;;GA;;;WD)"; }

// The parent's side, one step per Windows-specific property.
struct Parent {
  const int64_t my_pid = ::GetCurrentProcessId();
  const std::string tag = "wt-" + std::to_string(my_pid);
  const std::string main_name = tag + "-main";
  const std::string busy_name = tag + "-busy";
  const std::string squat_name = tag + "-squat";
  std::shared_ptr<ListenRecorder> listen_recorder = std::make_shared<ListenRecorder>();
  std::unique_ptr<Listener> listener;
  HANDLE busy_server = INVALID_HANDLE_VALUE;
  HANDLE busy_client = INVALID_HANDLE_VALUE;
  HANDLE squat_server = INVALID_HANDLE_VALUE;
  ChildProcess child;
  std::unique_ptr<Link> peer;
  // The regions of the "regions" phase: a writable source and its read-only
  // twin, and a writable region; mapped here.
  SharedMemory ro_source, ro, rw;
  std::shared_ptr<Mapping> ro_map, rw_map;

  // The channel address holds the user's SID; the listener has it.
  bool ListenOnMainName() {
    Result<std::string> address = ChannelAddress(main_name);
    Check(address.ok() && address.value().rfind("\\\\.\\pipe\\memport-S-1-", 0) == 0 &&
              address.value().size() > main_name.size() &&
              address.value().compare(address.value().size() - main_name.size(), main_name.size(), main_name) == 0,
          "ChannelAddress is \\\\.\\pipe\\memport-<user SID>-<name>", address.ok() ? address.value() : "");
    if (address.ok()) Info("address: " + address.value());
    Result<std::unique_ptr<Listener>> made = Listen(main_name, g_js, listen_recorder);
    if (!Check(made.ok(), "Listen", made.ok() ? "" : Describe(made.error()))) return false;
    listener = made.take();
    return true;
  }

  // The pipe really has our protected DACL: query it like anyone could.
  void CheckPipeSecurity() {
    HANDLE probe_client = RawConnect(main_name);
    if (!Check(probe_client != INVALID_HANDLE_VALUE, "a raw client opened the pipe")) return;
    PSECURITY_DESCRIPTOR sd = nullptr;
    PACL dacl = nullptr;
    PSID owner = nullptr;
    const DWORD err = ::GetSecurityInfo(probe_client, SE_KERNEL_OBJECT,
                                        OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, &owner, nullptr,
                                        &dacl, nullptr, &sd);
    wchar_t* sddl = nullptr;
    if (err == ERROR_SUCCESS &&
        ::ConvertSecurityDescriptorToStringSecurityDescriptorW(
            sd, SDDL_REVISION_1, OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, &sddl, nullptr)) {
      const std::string text = win::WideToUtf8(sddl);
      Info("pipe security descriptor: " + text);
      Result<std::vector<uint8_t>> user = win::CurrentUserSid();
      Result<std::wstring> user_text = win::SidToString(user.value().data());
      const std::string user_sid = win::WideToUtf8(user_text.value());
      const bool two_aces = dacl != nullptr && dacl->AceCount == 2;
      Check(text.find("D:P") != std::string::npos && two_aces && text.find(user_sid) != std::string::npos &&
                (text.find(";;;SY)") != std::string::npos || text.find("S-1-5-18") != std::string::npos) &&
                text.find(";;;WD)") == std::string::npos && text.find(";;;AN)") == std::string::npos,
            "pipe DACL is protected and grants only the user and SYSTEM", text);
      Check(owner != nullptr && ::EqualSid(owner, user.value().data()), "pipe owner is the user SID");
      ::LocalFree(sddl);
    } else {
      Check(false, "reading the pipe's security descriptor", "error " + std::to_string(err));
    }
    if (sd != nullptr) ::LocalFree(sd);
    ::CloseHandle(probe_client);
    // The listener saw that client; drop it.
    std::unique_ptr<Link> dropped = Accept(*listen_recorder);
    if (dropped) dropped->connection->Close();
  }

  // A pipe with no free instance (one instance, taken by a raw client), and a
  // squatter: a pipe whose owner is another principal (SYSTEM). Real Windows
  // lets only privileged callers set such an owner. Returns the squatter's
  // name for the child, or "-".
  std::string SetUpBusyAndSquattedPipes() {
    Result<std::string> busy_address = ChannelAddress(busy_name);
    busy_server = ::CreateNamedPipeW(Wide(busy_address.value()).c_str(), PIPE_ACCESS_DUPLEX,
                                     PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT, 1, 4096, 4096, 0, nullptr);
    busy_client = ::CreateFileW(Wide(busy_address.value()).c_str(), GENERIC_READ | GENERIC_WRITE, 0, nullptr,
                                OPEN_EXISTING, 0, nullptr);
    Check(busy_server != INVALID_HANDLE_VALUE && busy_client != INVALID_HANDLE_VALUE, "busy pipe set up");

    PSECURITY_DESCRIPTOR sd = nullptr;
    if (::ConvertStringSecurityDescriptorToSecurityDescriptorW(Wide(SddlOwnedBySystem()).c_str(), SDDL_REVISION_1,
                                                               &sd, nullptr)) {
      SECURITY_ATTRIBUTES sa{sizeof sa, sd, FALSE};
      squat_server = ::CreateNamedPipeW(Wide(ChannelAddress(squat_name).value()).c_str(),
                                        PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED,
                                        PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT,
                                        PIPE_UNLIMITED_INSTANCES, 4096, 4096, 0, &sa);
      ::LocalFree(sd);
    }
    if (squat_server != INVALID_HANDLE_VALUE) return squat_name;
    Line("SKIP squatter test: this system would not let us create a pipe owned by SYSTEM (error " +
         std::to_string(::GetLastError()) + ")");
    return "-";
  }

  void CloseBusyAndSquattedPipes() {
    for (HANDLE h : {busy_client, busy_server, squat_server}) {
      if (h != INVALID_HANDLE_VALUE) ::CloseHandle(h);
    }
  }

  // The peer: its PID as the listener learns it, and no memport handle here
  // that a child would inherit.
  bool StartPeer(const std::string& squat_arg) {
    child = Spawn("peer " + main_name + " " + busy_name + " " + squat_arg + " " + std::to_string(my_pid));
    if (!Check(child.process.valid(), "spawned the peer process")) return false;
    Info("peer pid " + std::to_string(child.pid));
    peer = Accept(*listen_recorder, 60000);
    if (!Check(peer != nullptr, "listener accepted the peer")) return false;
    Check(peer->connection->peer().pid == static_cast<int64_t>(child.pid),
          "listener sees the client's real PID (== the child's PID)",
          std::to_string(peer->connection->peer().pid) + " vs " + std::to_string(child.pid));
    Check(peer->connection->peer().uid == -1 && peer->connection->peer().gid == -1, "uid/gid are -1 on Windows");
    Expect(*peer, "hello");
    {
      // Control: the scan does see an inheritable section.
      SECURITY_ATTRIBUTES inherit{sizeof inherit, nullptr, /*bInheritHandle=*/TRUE};
      HANDLE control = ::CreateFileMappingW(INVALID_HANDLE_VALUE, &inherit, PAGE_READWRITE, 0, 4096, nullptr);
      Check(!InheritableMemportHandles().empty(), "the inheritance scan detects an inheritable section (control)");
      ::CloseHandle(control);
    }
    const std::string inheritable = InheritableMemportHandles();
    Check(inheritable.empty(), "no pipe, process, section or completion-port handle here is inheritable", inheritable);
    return true;
  }

  // Two regions, one read-only and one writable: the peer checks them
  // (inheritance, escalation) and writes into the writable one; its
  // copy-on-write write into the read-only one stays its own.
  bool SendRegions() {
    Result<SharedMemory> source = SharedMemory::Create(4096);
    Result<SharedMemory> writable = SharedMemory::Create(8192);
    if (!source.ok() || !writable.ok()) return false;
    ro_source = source.take();
    rw = writable.take();
    Result<std::shared_ptr<Mapping>> source_map = ro_source.Map();
    Result<std::shared_ptr<Mapping>> writable_map = rw.Map();
    if (!source_map.ok() || !writable_map.ok()) return false;
    ro_map = source_map.take();
    rw_map = writable_map.take();
    Fill(ro_map->data(), 4096, 11);
    Fill(rw_map->data(), 8192, 22);
    Result<SharedMemory> twin = ro_source.DuplicateReadOnly();
    if (!Check(twin.ok(), "DuplicateReadOnly")) return false;
    ro = twin.take();
    Check(peer->SendAndWait("regions", {&ro, &rw}), "MESSAGE with 2 regions written (OnWriteDone ok)");
    Expect(*peer, "regions-done");
    Check(HasPattern(rw_map->data(), 8192, 33), "writes through the writable region are seen by the sender");
    Check(HasPattern(ro_map->data(), 4096, 11), "the receiver's copy-on-write write did not reach the sender");
    return true;
  }

  void BogusValuesInPeer() {
    peer->SendAndWait("bogus");
    Expect(*peer, "bogus-done");
    // The connection still works (the receiver's pipe handle was not closed).
    Check(!Ask(*peer, "probe").empty(), "the receiver's connection still works after the bogus values");
  }

  void DuplicateIntoProcessChecks() {
    Result<uint32_t> value = ro.DuplicateIntoProcess(child.pid, /*read_only=*/true);
    if (Check(value.ok(), "DuplicateIntoProcess (read-only) into the peer", value.ok() ? "" : Describe(value.error()))) {
      peer->SendAndWait("dup-value " + std::to_string(value.value()) + " 4096");
      Expect(*peer, "dup-done");
    }
    CheckErrorCode(ro_source.DuplicateIntoProcess(child.pid, /*read_only=*/false), "ACCESS_DENIED",
                   "DuplicateIntoProcess refuses writable once a read-only twin exists");
    CheckErrorCode(ro.DuplicateIntoProcess(child.pid, /*read_only=*/false), "ACCESS_DENIED",
                   "DuplicateIntoProcess refuses writable from a read-only handle");
    CheckErrorCode(rw.DuplicateIntoProcess(0, true), "INVALID_ARGUMENT", "DuplicateIntoProcess refuses pid 0");
  }

  // A Write that fails at once revokes what it already duplicated into the
  // peer (counted by object type in the peer, which is exact).
  void FailedWriteRevokes() {
    const std::string before = Ask(*peer, "objects");
    Frame big = TextFrame(std::string(kMaxDataLength + 1, 'x'));
    Status too_big = peer->connection->Write(900, big, {&rw, &ro});
    Check(!too_big.ok() && too_big.error().code == "INVALID_ARGUMENT",
          "Write with over-long data fails at once (after duplicating 2 handles)");
    // The second region cannot go writable (it has a read-only twin): fails after the first was duplicated.
    Status denied = peer->connection->Write(901, TextFrame("x"), {&rw, &ro_source});
    Check(!denied.ok() && denied.error().code == "ACCESS_DENIED",
          "Write of a writable region with a read-only twin fails at once (after duplicating 1 handle)");
    const std::string after = PeerReplySettled(*peer, "objects", before);
    Check(!before.empty() && before == after, "handles duplicated before a failed Write were revoked in the peer",
          before + " -> " + after);
  }

  // A write waiting on a client that never reads, cancelled by Close: the
  // section it duplicated into that client's process is taken back.
  void CancelledWriteRevokedInPeer() {
    const std::string objects_before = Ask(*peer, "objects");
    Ask(*peer, "open-silent");
    std::unique_ptr<Link> silent = Accept(*listen_recorder);
    if (Check(silent != nullptr, "listener accepted a raw client that never reads")) {
      Check(silent->connection->peer().pid == static_cast<int64_t>(child.pid), "raw client's PID is the child's");
      // Full-size frames until one waits (Write said it was not complete);
      // the one with the region is full-size too, so it cannot fit behind it.
      const std::string bulk(kMaxDataLength, 'f');
      bool waiting = false;
      uint64_t id = 1000;
      for (int i = 0; i < 256 && !waiting; ++i) {
        bool completed = false;
        waiting = silent->connection->WriteInline(++id, TextFrame(bulk), {}, &completed).ok() && !completed;
      }
      bool region_waits = false;
      if (Check(waiting, "a write to a peer that does not read waits")) {
        bool completed = true;
        region_waits = silent->connection->WriteInline(++id, TextFrame(bulk), {&ro}, &completed).ok() && !completed;
        Check(region_waits, "a write with a region waits behind it");
      }
      silent->connection->Close();
      Check(silent->WaitClosed() && silent->recorder->close_error.code == "CLOSED", "Close ends that connection");
      const std::string after = PeerReplySettled(*peer, "objects", [&](const std::string& now) {
        return SectionsOf(now) == SectionsOf(objects_before);
      });
      Check(!SectionsOf(after).empty() && SectionsOf(after) == SectionsOf(objects_before),
            "the handle in the write cancelled by Close was revoked in the peer", objects_before + " -> " + after);
    }
    Ask(*peer, "close-silent");
  }

  // A frame naming one of our own handles (an Event) drops that connection
  // with INVALID_HANDLE and leaves the Event alone.
  void BogusHandleFrame() {
    HANDLE event = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
    peer->SendAndWait("bogus-frame " + std::to_string(reinterpret_cast<uintptr_t>(event)));
    std::unique_ptr<Link> liar = Accept(*listen_recorder);
    if (Check(liar != nullptr, "listener accepted the bogus-handle sender")) {
      Check(liar->WaitClosed() && liar->recorder->close_error.code == "INVALID_HANDLE",
            "a frame naming our Event handle closes that connection with INVALID_HANDLE",
            Describe(liar->recorder->close_error));
    }
    Expect(*peer, "bogus-frame-sent");
    Check(::SetEvent(event) && ::WaitForSingleObject(event, 0) == WAIT_OBJECT_0,
          "the Event named by the bogus frame still works");
    ::CloseHandle(event);
  }

  // 64 clients at once: each gets its own answer while all are open.
  void ManyClientsAtOnce() {
    peer->SendAndWait("many");
    std::vector<std::unique_ptr<Link>> links;
    size_t peak = 0;
    bool done = false;
    InboundMessage reply;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!done && std::chrono::steady_clock::now() < deadline) {
      g_js->PumpUntil([&] { return !listen_recorder->connections.empty() || !peer->recorder->frames.empty(); }, 200);
      while (!listen_recorder->connections.empty()) {
        links.push_back(std::make_unique<Link>(std::move(listen_recorder->connections.front())));
        listen_recorder->connections.pop_front();
      }
      size_t open = 0;
      for (auto& l : links) {
        while (!l->recorder->frames.empty()) {
          const std::string text = TextOf(l->recorder->frames.front());
          l->recorder->frames.pop_front();
          if (text.rfind("ping ", 0) == 0) l->Send("pong " + text.substr(5));
        }
        open += l->recorder->closed ? 0 : 1;
      }
      peak = std::max(peak, open);
      if (!peer->recorder->frames.empty()) {
        reply = std::move(peer->recorder->frames.front());
        peer->recorder->frames.pop_front();
        done = true;
      }
    }
    if (Check(done, "the 64-client round finished")) Absorb(reply);
    // The peer closes none before every client has its answer, so all 64
    // were open here at once.
    Check(peak >= 64, "the listener served 64 connections open at the same time", "peak " + std::to_string(peak));
    for (auto& l : links) l->connection->Close();
    PumpUntil([&] {
      for (auto& l : links) {
        if (!l->recorder->closed) return false;
      }
      return true;
    });
  }

  // One transfer: a region to the peer, and one back carrying the same byte.
  bool TransferRound(unsigned i, SharedMemory& shared, const SharedMemory& shared_ro) {
    // Even rounds: a fresh writable region; odd: the long-lived read-only twin.
    Result<SharedMemory> fresh = SharedMemory::Create(4096);
    if (!fresh.ok()) return false;
    const SharedMemory* region = i % 2 == 0 ? &fresh.value() : &shared_ro;
    {
      Result<std::shared_ptr<Mapping>> map = (i % 2 == 0 ? fresh.value() : shared).Map();
      if (!map.ok()) return false;
      map.value()->data()[0] = static_cast<uint8_t>(i);
    }
    if (!peer->SendAndWait("xfer " + std::to_string(i), {region})) return false;
    InboundMessage answer;
    if (!peer->NextFrame(&answer)) return false;
    if (TextOf(answer) != "xfer-ok " + std::to_string(i) || answer.regions.size() != 1) return false;
    Result<std::shared_ptr<Mapping>> map = answer.regions[0].Map();
    return map.ok() && map.value()->data()[0] == static_cast<uint8_t>(i);
  }

  // 1000 transfers, regions both ways; both processes' handles back to
  // baseline. Two phases: the first 1000 round trips also absorb whatever
  // the runtime allocates once, at a moment of its choosing; the second must
  // then leave both handle tables as they were: the handle count where it is
  // exact (Windows), and everywhere the number of handles of each kind
  // memport makes (under Wine the count is only a slot probe, which Wine's
  // own lazily made objects move). A leak per transfer shows.
  void ThousandTransfers() {
    Result<SharedMemory> shared = SharedMemory::Create(4096);
    Result<SharedMemory> shared_ro = shared.value().DuplicateReadOnly();
    bool ok = shared_ro.ok();
    for (unsigned i = 0; i < 10 && ok; ++i) ok = TransferRound(i, shared.value(), shared_ro.value());  // warm-up
    unsigned done = 0;
    int64_t parent_before = 0;
    std::string parent_objects_before, child_before, child_objects_before;
    long long ms = 0;
    for (int phase = 0; phase < 2 && ok; ++phase) {
      g_js->PumpFor(50);
      parent_before = Probe();
      parent_objects_before = MemportObjects();
      child_before = Ask(*peer, "probe");
      child_objects_before = Ask(*peer, "objects");
      done = 0;
      const auto start = std::chrono::steady_clock::now();
      for (unsigned i = 0; i < 1000 && ok; ++i, ++done) ok = TransferRound(i, shared.value(), shared_ro.value());
      ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
    }
    Check(ok && done == 1000, "1000 round trips, each with a region both ways", std::to_string(done) + " done");
    Info("1000 round trips took " + std::to_string(ms) + " ms");
    const std::string parent_objects_after = OwnObjectsSettled(parent_objects_before);
    const int64_t parent_after = Probe();
    const std::string child_objects_after = PeerReplySettled(*peer, "objects", child_objects_before);
    Check(parent_objects_after == parent_objects_before,
          "parent holds as many sections, files and processes after 1000 transfers",
          parent_objects_before + " -> " + parent_objects_after);
    Check(!child_objects_before.empty() && child_objects_after == child_objects_before,
          "child holds as many sections, files and processes after 1000 transfers",
          child_objects_before + " -> " + child_objects_after);
    Result<HandleCensus> census = CountOpenHandles();
    if (census.ok() && census.value().exact) {
      const std::string child_after = PeerReplySettled(*peer, "probe", child_before);
      Check(parent_before > 0 && parent_after == parent_before && child_before == child_after,
            "handle counts of both processes back to baseline after 1000 transfers (real Windows only)",
            "parent " + std::to_string(parent_before) + " -> " + std::to_string(parent_after) + ", child " +
                child_before + " -> " + child_after);
    } else {
      Info("Wine slot probes (not counts; only reported): parent " + std::to_string(parent_before) + " -> " +
           std::to_string(parent_after));
    }
  }

  // The peer leaves; its exit code is its failure count.
  void Goodbye() {
    peer->SendAndWait("bye");
    Expect(*peer, "bye");
    peer->WaitClosed();
    DWORD exit_code = 1234;
    if (::WaitForSingleObject(win::Get(child.process), 60000) == WAIT_OBJECT_0) {
      ::GetExitCodeProcess(win::Get(child.process), &exit_code);
    }
    Check(exit_code == 0, "the peer process exited cleanly", "exit code " + std::to_string(exit_code));
  }

  int Run() {
    if (!ListenOnMainName()) return 1;
    CheckPipeSecurity();
    const std::string squat_arg = SetUpBusyAndSquattedPipes();
    if (!StartPeer(squat_arg)) return 1;
    CloseBusyAndSquattedPipes();
    if (!SendRegions()) return 1;
    BogusValuesInPeer();
    DuplicateIntoProcessChecks();
    FailedWriteRevokes();
    CancelledWriteRevokedInPeer();
    BogusHandleFrame();
    ManyClientsAtOnce();
    ThousandTransfers();
    Goodbye();
    return 0;
  }
};

}  // namespace

int main(int argc, char** argv) {
  g_js = std::make_shared<PumpedJsThread>();
  const std::string role = argc > 1 ? argv[1] : "parent";
  if (role == "peer" && argc == 6) {
    g_is_child = true;
    PeerChild child;
    child.main_name = argv[2];
    child.busy_name = argv[3];
    child.squat_name = argv[4];
    child.parent_pid = std::atoll(argv[5]);
    return child.Run();
  }
  Parent parent;
  parent.Run();
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  std::fflush(stdout);
  return g_failed == 0 ? 0 : 1;
}
