// contract_os.h on Windows: CreateProcessW of this program (no handle
// inherited), a raw synchronous pipe client, and handles counted by object
// type (NtQueryObject), which is exact under Wine too, unlike its handle-slot
// probe.
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <cstdio>

#include "../../native/core/transport.h"
#include "../../native/win/ntdll.h"
#include "../../native/win/win_internal.h"
#include "contract_os.h"

namespace contract_os {

const char* const kPlatform = "win32";

int64_t CurrentPid() { return static_cast<int64_t>(::GetCurrentProcessId()); }

namespace {

class WinChild : public Child {
 public:
  WinChild(HANDLE process, DWORD pid) : process_(process), pid_(pid) {}
  ~WinChild() override {
    if (::WaitForSingleObject(process_, 0) != WAIT_OBJECT_0) {
      ::TerminateProcess(process_, 9);
      ::WaitForSingleObject(process_, 60000);
    }
    ::CloseHandle(process_);
  }
  int64_t pid() const override { return pid_; }
  void Kill() override { ::TerminateProcess(process_, 9); }
  int WaitExit(int timeout_ms) override {
    if (::WaitForSingleObject(process_, static_cast<DWORD>(timeout_ms)) != WAIT_OBJECT_0) return -1;
    DWORD code = 0;
    ::GetExitCodeProcess(process_, &code);
    return static_cast<int>(code);
  }

 private:
  HANDLE process_;
  DWORD pid_;
};

class WinRawClient : public RawClient {
 public:
  explicit WinRawClient(HANDLE pipe) : pipe_(pipe) {}
  ~WinRawClient() override { ::CloseHandle(pipe_); }
  bool Send(const std::vector<uint8_t>& bytes) override {
    DWORD written = 0;
    return ::WriteFile(pipe_, bytes.data(), static_cast<DWORD>(bytes.size()), &written, /*lpOverlapped=*/nullptr) &&
           written == bytes.size();
  }

 private:
  HANDLE pipe_;
};

// The object type of one of this process's handles ("Section", "File", ...); "" if none.
std::wstring TypeOf(HANDLE h) {
  const memport::win::nt::Functions& ntdll = memport::win::nt::Ntdll();
  alignas(8) unsigned char buffer[512];
  ULONG returned = 0;
  if (ntdll.query_object == nullptr ||
      ntdll.query_object(h, memport::win::nt::kObjectTypeInformation, buffer, sizeof buffer, &returned) != 0) {
    return L"";
  }
  const auto* type = reinterpret_cast<const memport::win::nt::ObjectTypeInformation*>(buffer);
  return std::wstring(type->TypeName.Buffer, type->TypeName.Length / sizeof(wchar_t));
}

}  // namespace

std::unique_ptr<Child> SpawnSelf(const std::vector<std::string>& args) {
  wchar_t exe[MAX_PATH];
  ::GetModuleFileNameW(nullptr, exe, MAX_PATH);
  std::wstring command = L"\"" + std::wstring(exe) + L"\"";
  for (const std::string& a : args) command += L" " + memport::win::Utf8ToWide(a);
  STARTUPINFOW startup{};
  startup.cb = sizeof startup;
  PROCESS_INFORMATION info{};
  if (!::CreateProcessW(exe, &command[0], /*lpProcessAttributes=*/nullptr, /*lpThreadAttributes=*/nullptr,
                        /*bInheritHandles=*/FALSE, /*dwCreationFlags=*/0, /*lpEnvironment=*/nullptr,
                        /*lpCurrentDirectory=*/nullptr, &startup, &info)) {
    return nullptr;
  }
  ::CloseHandle(info.hThread);
  return std::make_unique<WinChild>(info.hProcess, info.dwProcessId);
}

std::unique_ptr<RawClient> RawConnect(const std::string& name) {
  memport::Result<std::string> address = memport::ChannelAddress(name);
  if (!address.ok()) return nullptr;
  const std::wstring wide = memport::win::Utf8ToWide(address.value());
  for (int attempt = 0; attempt < 200; ++attempt) {
    HANDLE h = ::CreateFileW(wide.c_str(), GENERIC_READ | GENERIC_WRITE, /*dwShareMode=*/0,
                             /*lpSecurityAttributes=*/nullptr, OPEN_EXISTING,
                             SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, /*hTemplateFile=*/nullptr);
    if (h != INVALID_HANDLE_VALUE) {
      DWORD mode = PIPE_READMODE_MESSAGE;
      ::SetNamedPipeHandleState(h, &mode, nullptr, nullptr);
      return std::make_unique<WinRawClient>(h);
    }
    if (::GetLastError() != ERROR_PIPE_BUSY) return nullptr;
    ::WaitNamedPipeW(wide.c_str(), 100);
  }
  return nullptr;
}

std::string HandleCensus() {
  int sections = 0, files = 0, processes = 0;
  for (uintptr_t v = 4; v < 0x4000; v += 4) {
    const std::wstring type = TypeOf(reinterpret_cast<HANDLE>(v));
    sections += type == L"Section";
    files += type == L"File";
    processes += type == L"Process";
  }
  return "sections=" + std::to_string(sections) + " files=" + std::to_string(files) +
         " processes=" + std::to_string(processes);
}

void PrintLine(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

}  // namespace contract_os
