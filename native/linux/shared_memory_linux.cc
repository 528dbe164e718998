// SharedMemory on Linux: a sealed memfd. No name reaches any namespace (the
// memfd "name" is a debugging label only visible in /proc/<pid>/fd links).
//
// Why the seals: a peer that can shrink the file makes every reader die of
// SIGBUS on its next access, so size is fixed for ever (F_SEAL_SHRINK |
// F_SEAL_GROW). Read-only twins add F_SEAL_FUTURE_WRITE, because an O_RDONLY
// fd is not read-only by itself: /proc/self/fd/N can be reopened O_RDWR.
// See memfd_create(2) and fcntl(2) "File Sealing".
#include <errno.h>
#include <fcntl.h>
#include <linux/memfd.h>
#include <stdio.h>

#include <cstdio>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

#include "../core/owned_handles.h"
#include "../core/shared_memory.h"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U  // Linux 6.3
#endif
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010  // Linux 5.1
#endif

namespace memport {

namespace {

constexpr int kBaseSeals = F_SEAL_SHRINK | F_SEAL_GROW;
constexpr long kTmpfsMagic = 0x01021994;  // TMPFS_MAGIC, <linux/magic.h>

// Registered as owned (core/owned_handles.h) before the number can be seen elsewhere.
int MemfdCreate(const char* label, unsigned flags) {
  return static_cast<int>(OpenRegistered([&] { return ::syscall(SYS_memfd_create, label, flags); }));
}

std::string ProcFdPath(RawHandle fd) { return "/proc/self/fd/" + std::to_string(fd); }

}  // namespace

void SharedMemory::Close() { handle_.reset(); }

Result<uint32_t> SharedMemory::DuplicateIntoProcess(int64_t /*pid*/, bool /*read_only*/) const {
  return MakeError("UNSUPPORTED", "duplicateInto is Windows-only: on Linux, send the region over a connection "
                                  "(SCM_RIGHTS) or let a child inherit the fd");
}

void Mapping::Unmap(uint8_t* data, uint64_t length) { ::munmap(data, length); }

void Mapping::ScrubInPlace() {
  // MAP_FIXED over our own range: atomic replacement, no window in which the
  // addresses are unmapped (and so could be handed to someone else).
  ::mmap(data_, length_, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
}

// Parked ranges are anonymous zero pages that were never touched: they hold
// no memory, only address space and a VMA each (counted in Live()).
uint64_t Mapping::MaxParkedBytes() { return UINT64_MAX; }

namespace {

// PAGEMAP_SCAN (Linux 6.7, <linux/fs.h>), declared here for older headers.
struct PageRegion {
  uint64_t start, end, categories;
};
struct PageScanArg {
  uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
  uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
constexpr unsigned long kPagemapScan = _IOWR('f', 16, PageScanArg);
constexpr uint64_t kPageIsFile = 1u << 2;
constexpr uint64_t kPageIsPresent = 1u << 3;
constexpr uint64_t kPageIsSwapped = 1u << 4;

}  // namespace

// A page this process wrote into a private file mapping is an anonymous page,
// present or swapped out; every other page there is the file's own (or not
// faulted in yet). PAGEMAP_SCAN finds the first such page without copying the
// page table out. Where the kernel lacks it, the answer is "maybe".
bool Mapping::MayHavePrivatePages() const {
  if (data_ == nullptr || length_ == 0) return false;
  static const int pagemap = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (pagemap < 0) return true;
  PageRegion found{};
  PageScanArg arg{};
  arg.size = sizeof arg;
  arg.start = reinterpret_cast<uintptr_t>(data_);
  arg.end = arg.start + length_;
  arg.vec = reinterpret_cast<uintptr_t>(&found);
  arg.vec_len = 1;
  arg.max_pages = 1;
  arg.category_mask = kPageIsFile;
  arg.category_inverted = kPageIsFile;  // wanted: not a file page ...
  arg.category_anyof_mask = kPageIsPresent | kPageIsSwapped;  // ... that exists
  arg.return_mask = kPageIsFile | kPageIsPresent | kPageIsSwapped;
  return ::ioctl(pagemap, kPagemapScan, &arg) != 0;  // -1 (unsupported) counts as "maybe"
}

int64_t Mapping::MaxLive() {
  // Half the kernel's per-process VMA limit: the other half is for V8, libuv
  // and everything else in the process.
  static const int64_t max = [] {
    int64_t limit = 65530;  // the kernel default
    if (FILE* f = std::fopen("/proc/sys/vm/max_map_count", "r")) {
      long long value = 0;
      if (std::fscanf(f, "%lld", &value) == 1 && value > 0) limit = value;
      std::fclose(f);
    }
    return limit / 2;
  }();
  return max;
}

Result<SharedMemory> SharedMemory::Create(uint64_t size) {
  if (size == 0 || size > kMaxSize) {
    return MakeError("INVALID_ARGUMENT", "size must be between 1 and 2^47 bytes");
  }
  const unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
  int fd = MemfdCreate("memport", flags | MFD_NOEXEC_SEAL);
  if (fd < 0 && errno == EINVAL) fd = MemfdCreate("memport", flags);  // kernels before 6.3
  if (fd < 0) return LastOsError("memfd_create", "creating a shared region");
  OsHandle handle(fd);

  // ftruncate only sets the size; tmpfs allocates pages when they are touched.
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    return LastOsError("ftruncate", "sizing a shared region of " + std::to_string(size) + " bytes");
  }
  if (::fcntl(fd, F_ADD_SEALS, kBaseSeals) != 0) {
    return LastOsError("fcntl(F_ADD_SEALS)", "sealing a shared region's size");
  }
  return SharedMemory(std::move(handle), size, /*read_only=*/false,
                      std::make_shared<SharingPolicy>());
}

Result<SharedMemory> SharedMemory::DuplicateReadOnly() {
  if (!valid()) return MakeError("CLOSED", "the region is closed");
  if (!read_only_) {
    // Existing writable mappings (the creator's views) keep working; every new
    // write access — write(2), a new shared writable mmap, from any fd — is refused.
    // F_SEAL_SEAL too: nothing about this memory may change any more. A second
    // twin finds the seals already in place (adding to a sealed set fails).
    const int seals = ::fcntl(handle_.get(), F_GET_SEALS);
    if (seals < 0 || ((seals & F_SEAL_FUTURE_WRITE) == 0 &&
                      ::fcntl(handle_.get(), F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) != 0)) {
      return LastOsError("fcntl(F_ADD_SEALS)", "sealing a region against future writes");
    }
    if (policy_) policy_->read_only_twin_exists = true;
  }
  // A new open file description with O_RDONLY, so the twin's fd carries no write
  // access even where a kernel would honour it.
  const std::string path = ProcFdPath(handle_.get());
  const int fd = static_cast<int>(OpenRegistered([&] { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC); }));
  if (fd < 0) return LastOsError("open(/proc/self/fd)", "opening a read-only handle to a region");
  return SharedMemory(OsHandle(fd), size_, /*read_only=*/true, policy_);
}

Result<SharedMemory> SharedMemory::DuplicateInProcess() const {
  if (!valid()) return MakeError("CLOSED", "the region is closed");
  // F_DUPFD_CLOEXEC shares the open file description, so the copy has exactly
  // this fd's access (O_RDONLY stays read-only); the seals are the object's.
  const int fd = static_cast<int>(OpenRegistered([&] { return ::fcntl(handle_.get(), F_DUPFD_CLOEXEC, 0); }));
  if (fd < 0) return LastOsError("fcntl(F_DUPFD_CLOEXEC)", "duplicating a region's fd for another thread");
  return Twin(OsHandle(fd));
}

namespace {
MemoryIdentity IdentityFrom(const struct statx& st) {
  MemoryIdentity id;
  id.device = (uint64_t{st.stx_dev_major} << 32) | st.stx_dev_minor;
  id.object = st.stx_ino;
  // Without a birth time (old kernels) the inode alone identifies the memfd.
  if (st.stx_mask & STATX_BTIME) {
    id.born = static_cast<uint64_t>(st.stx_btime.tv_sec) * 1000000000u + st.stx_btime.tv_nsec;
  }
  return id;
}
}  // namespace

// Checks, before anything is mapped, that a received fd is what the peer
// declared (docs/SECURITY.md, Linux items 2-3): a sealed memfd on tmpfs whose
// size can no longer change (so no peer can make our reads die of SIGBUS), at
// least `size` bytes long, with exactly the declared access.
Result<SharedMemory> SharedMemory::FromReceived(RawHandle raw, uint64_t size, bool read_only, bool from_transport) {
  if (raw < 0 || raw > INT32_MAX) return MakeError("INVALID_HANDLE", "not a file descriptor");
  if (size == 0 || size > kMaxSize) return MakeError("INVALID_ARGUMENT", "declared size out of range");
  const int fd = static_cast<int>(raw);
  // Held until the fd is adopted, so "not owned yet" and "owned now" are one
  // step for every other thread. A transport fd was just made by recvmsg, so
  // nobody can own it; an inherited or user-given number may be one a live
  // region already owns, and adopting it twice would let the second close()
  // close whatever the number is reused for.
  // (The binding says what to do instead; this is the race-free guard.)
  OwnedHandles registry;
  if (!from_transport && registry.Contains(raw)) {
    return MakeError("ALREADY_EXISTS", "fd " + std::to_string(raw) + " already belongs to a memport region in this process");
  }
  // One statx for the checks and for the identity the received-mappings
  // cache looks the region up by.
  struct statx st;
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE | STATX_INO | STATX_BTIME, &st) != 0) {
    return LastOsError("statx", "checking a received handle");
  }
  if ((st.stx_mask & (STATX_TYPE | STATX_SIZE)) != (STATX_TYPE | STATX_SIZE) || !S_ISREG(st.stx_mode)) {
    return MakeError("INVALID_HANDLE", "the received fd is not a shared-memory file (not a regular file)");
  }
  struct statfs fs;
  if (::fstatfs(fd, &fs) != 0) return LastOsError("fstatfs", "checking a received handle");
  if (fs.f_type != kTmpfsMagic) return MakeError("INVALID_HANDLE", "the received fd is not on tmpfs (not a memfd)");
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0) return MakeError("INVALID_HANDLE", "the received fd does not support sealing (not a memfd)");
  if ((seals & kBaseSeals) != kBaseSeals) {
    return MakeError("INVALID_HANDLE", "the received memfd can still change size (missing F_SEAL_SHRINK/F_SEAL_GROW)");
  }
  if (st.stx_size < size) {
    return MakeError("INVALID_HANDLE", "the received memfd is " + std::to_string(st.stx_size) + " bytes, less than the " +
                                           std::to_string(size) + " declared");
  }
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return LastOsError("fcntl(F_GETFL)", "checking a received handle");
  // An O_WRONLY fd passes every check above and only fails at mmap: refuse it
  // here, so a peer sending one is dropped like any other bad handle.
  if ((flags & O_ACCMODE) == O_WRONLY) {
    return MakeError("ACCESS_DENIED", "the received fd is open write-only: it cannot be mapped for reading");
  }
  const bool write_sealed = (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) != 0;
  if (read_only && !write_sealed) {
    return MakeError("ACCESS_DENIED", "declared read-only, but the memfd is not sealed against writes");
  }
  if (!read_only && ((flags & O_ACCMODE) != O_RDWR || write_sealed)) {
    return MakeError("ACCESS_DENIED", "declared writable, but the fd gives no write access");
  }
  // Ours now: it must not leak into children. recvmsg's MSG_CMSG_CLOEXEC
  // already saw to that for fds memport received itself.
  if (!from_transport) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  registry.Add(raw);
  SharedMemory memory(OsHandle(raw), size, read_only, std::make_shared<SharingPolicy>());
  memory.identity_ = IdentityFrom(st);
  memory.identity_known_ = true;
  return memory;
}

Result<std::shared_ptr<Mapping>> SharedMemory::Map() const {
  if (!valid()) return MakeError("CLOSED", "the region is closed");
  if (Mapping::Live() >= Mapping::MaxLive()) Mapping::UnparkAll();
  if (Mapping::Live() >= Mapping::MaxLive()) {
    return MakeError("OUT_OF_MEMORY", "this process already holds " + std::to_string(Mapping::Live()) +
                                          " mappings (half the kernel's vm.max_map_count); close regions you no "
                                          "longer need and let the event loop run so closed ones are released");
  }
  // Read-only handles are mapped private and writable: copy-on-write, so a JS
  // write into a read-only view changes a private page instead of faulting.
  // MAP_NORESERVE keeps that from charging the whole size against overcommit.
  const int prot = PROT_READ | PROT_WRITE;
  const int flags = read_only_ ? (MAP_PRIVATE | MAP_NORESERVE) : MAP_SHARED;
  void* data = ::mmap(nullptr, size_, prot, flags, static_cast<int>(handle_.get()), 0);
  if (data == MAP_FAILED) {
    return LastOsError("mmap", "mapping a region of " + std::to_string(size_) + " bytes");
  }
  return std::make_shared<Mapping>(static_cast<uint8_t*>(data), size_);
}

Result<MemoryIdentity> SharedMemory::Identity() const {
  if (!valid()) return MakeError("CLOSED", "the region is closed");
  // Named memory can change size under us: never reuse a mapping of it.
  if (named_) return MakeError("UNSUPPORTED", "named regions are mapped afresh each time they are received");
  if (identity_known_) return identity_;
  struct statx st;
  if (::statx(static_cast<int>(handle_.get()), "", AT_EMPTY_PATH, STATX_INO | STATX_BTIME, &st) != 0) {
    return LastOsError("statx", "identifying a region");
  }
  return IdentityFrom(st);
}

bool SharedMemory::WriteSharingAllowed() const {
  if (read_only_ || !valid()) return false;
  if (policy_ && policy_->read_only_twin_exists) return false;
  int seals = ::fcntl(handle_.get(), F_GET_SEALS);
  return seals >= 0 && (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) == 0;
}

Result<std::vector<SharedMemory::EscalationAttempt>> SharedMemory::TryWriteEscalation() const {
  if (!valid()) return MakeError("CLOSED", "the region is closed");
  const int fd = static_cast<int>(handle_.get());
  std::vector<EscalationAttempt> attempts;
  auto map_shared_writable = [this](int target) {
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, target, 0);
    if (p == MAP_FAILED) return false;
    ::munmap(p, size_);
    return true;
  };

  // A shared writable mapping of the fd held.
  attempts.push_back({"mmap-shared-write", map_shared_writable(fd)});

  // Reopening the memfd read-write through /proc (the inode is mode 0777),
  // then mapping it shared-writable or writing to it.
  int rw = ::open(ProcFdPath(fd).c_str(), O_RDWR | O_CLOEXEC);
  OsHandle reopened(rw);
  attempts.push_back({"reopen-proc-fd-mmap-write", rw >= 0 && map_shared_writable(rw)});
  // write(2) of the byte already there: a real write that changes nothing
  // (a racing writer could interleave; acceptable in a test hook).
  bool wrote = false;
  if (rw >= 0) {
    char current = 0;
    wrote = ::pread(rw, &current, 1, 0) == 1 && ::pwrite(rw, &current, 1, 0) == 1;
  }
  attempts.push_back({"reopen-proc-fd-pwrite", wrote});

  // mprotect of a shared read-only mapping up to PROT_WRITE.
  bool upgraded = false;
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
  if (p != MAP_FAILED) {
    upgraded = ::mprotect(p, size_, PROT_READ | PROT_WRITE) == 0;
    ::munmap(p, size_);
  }
  attempts.push_back({"mprotect-shared-write", upgraded});

  // The seal itself: it can never be removed, so only its absence is a way in.
  int seals = ::fcntl(fd, F_GET_SEALS);
  attempts.push_back({"unsealed", seals < 0 || (seals & (F_SEAL_FUTURE_WRITE | F_SEAL_WRITE)) == 0});
  return attempts;
}

}  // namespace memport
