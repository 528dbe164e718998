// Named POSIX shared memory (shm_open), for talking to programs that already
// use names: Python's multiprocessing.shared_memory, Boost.Interprocess, ...
// Only reached through SharedRegion.openNamed/createNamed/unlinkNamed; memport
// itself never names memory (SECURITY.md, "Named shared memory").
//
// What a name costs, and what is done about it here:
// - Squatting: create uses O_CREAT | O_EXCL, so an object somebody planted
//   under the name is refused (ALREADY_EXISTS), never silently used; mode 0600.
// - Other things under /dev/shm: a FIFO, socket, directory or symlink planted
//   under the name is refused before anything is mapped (O_NOFOLLOW from
//   shm_open, O_NONBLOCK so a FIFO cannot block the open, then S_ISREG).
// - No seals: shm_open objects cannot be sealed, so anyone with write access
//   can shrink one, and touching a mapped page past the new end raises SIGBUS.
//   memport's own copies (ReadAt/WriteAt) therefore never read a mapped page
//   past the current end; zero-copy views are the user's risk, documented.
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <memory>
#include <cstring>
#include <string>

#include "../core/named.h"
#include "../core/owned_handles.h"
#include "../core/shared_memory.h"

namespace memport {

namespace {

constexpr long kTmpfsMagic = 0x01021994;  // TMPFS_MAGIC, <linux/magic.h>

// A typed error for a failed shm_open, saying what to do next.
Error OpenFailure(const std::string& name, bool creating, bool read_only) {
  const int err = errno;
  Error error = OsError(err, "shm_open", (creating ? "creating " : "opening ") + QuotedName(name));
  switch (err) {
    case ENOENT:
      error.message = "no shared-memory object is named " + QuotedName(name) + " (look in /dev/shm)";
      break;
    case EEXIST:
      error.message = NamedExistsMessage(name);
      break;
    case EACCES:
      error.message = NamedAccessRefusedMessage(name, read_only);
      break;
    // glibc's shm_open reports a directory as EINVAL (POSIX's error for it);
    // the name itself was checked in src/region.ts, so EINVAL is the object.
    case EINVAL:
    case ELOOP:
    case EISDIR:
    case ENXIO:
      error.code = "INVALID_HANDLE";
      error.message = QuotedName(name) + " is not a shared-memory object (a symlink, directory or socket has that name)";
      break;
    case ENAMETOOLONG:
      error.code = "INVALID_ARGUMENT";
      break;
    default:
      break;
  }
  return error;
}

// What shm_open returned must be a regular file on tmpfs: a FIFO or device
// planted under the name is refused before anything is mapped.
Result<uint64_t> CheckNamedObject(int fd, const std::string& name) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return LastOsError("fstat", "checking " + QuotedName(name));
  if (!S_ISREG(st.st_mode)) {
    return MakeError("INVALID_HANDLE", QuotedName(name) + " is not a shared-memory object (a FIFO or device has that name)");
  }
  struct statfs fs;
  if (::fstatfs(fd, &fs) != 0) return LastOsError("fstatfs", "checking " + QuotedName(name));
  if (fs.f_type != kTmpfsMagic) return MakeError("INVALID_HANDLE", QuotedName(name) + " is not on tmpfs (/dev/shm)");
  return static_cast<uint64_t>(st.st_size);
}

// The object's size now (another process may have changed it since it was mapped).
Result<uint64_t> CurrentSize(RawHandle fd) {
  struct stat st;
  if (::fstat(static_cast<int>(fd), &st) != 0) return LastOsError("fstat", "checking a named region's current size");
  return static_cast<uint64_t>(st.st_size);
}

Error PastEnd(uint64_t offset, uint64_t length, uint64_t now) {
  return MakeError("INVALID_ARGUMENT", "bytes " + std::to_string(offset) + ".." + std::to_string(offset + length) +
                                           " are past the named object's current end (" + std::to_string(now) +
                                           " bytes): another process shrank it; open it again to see its new size");
}

}  // namespace

Result<SharedMemory> SharedMemory::OpenNamed(const std::string& name, bool read_only, uint64_t size) {
  if (size > kMaxSize) return MakeError("INVALID_ARGUMENT", "size must be at most 2^47 bytes");
  const int fd = static_cast<int>(
      OpenRegistered([&] { return ::shm_open(name.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_NONBLOCK, 0); }));
  if (fd < 0) return OpenFailure(name, /*creating=*/false, read_only);
  OsHandle handle(fd);
  Result<uint64_t> actual = CheckNamedObject(fd, name);
  if (!actual.ok()) return actual.error();
  return FromNamedObject(std::move(handle), name, actual.value(), size, read_only);
}

// A region a peer flagged named (SECURITY.md, "Named shared memory", sending).
// Only the sealed-memfd rule is relaxed, and only for a region that says it is
// named, on a connection that opted in: an unflagged region still has to be a
// sealed memfd (FromReceived), so a peer cannot get unsealed memory past a
// receiver that did not ask for it. What is still checked is what makes the
// fd mappable as declared: a regular file on tmpfs (/dev/shm or a memfd; a
// pipe, socket, device or disk file is refused), at least the declared size
// now, and the access mode of the declared mode (read-only: an O_RDONLY fd,
// so this handle cannot write; writable: O_RDWR).
Result<SharedMemory> SharedMemory::FromReceivedNamed(RawHandle raw, uint64_t size, bool read_only) {
  if (raw < 0 || raw > INT32_MAX) return MakeError("INVALID_HANDLE", "not a file descriptor");
  if (size == 0 || size > kMaxSize) return MakeError("INVALID_ARGUMENT", "declared size out of range");
  const int fd = static_cast<int>(raw);
  OwnedHandles registry;  // see FromReceived: checked and adopted as one step
  struct stat st;
  if (::fstat(fd, &st) != 0) return LastOsError("fstat", "checking a received named region");
  if (!S_ISREG(st.st_mode)) {
    return MakeError("INVALID_HANDLE", "the received named region is not a shared-memory file (not a regular file)");
  }
  struct statfs fs;
  if (::fstatfs(fd, &fs) != 0) return LastOsError("fstatfs", "checking a received named region");
  if (fs.f_type != kTmpfsMagic) {
    return MakeError("INVALID_HANDLE", "the received named region is not on tmpfs (not POSIX shared memory)");
  }
  if (static_cast<uint64_t>(st.st_size) < size) {
    return MakeError("INVALID_HANDLE", "the received named region is " + std::to_string(st.st_size) +
                                           " bytes, less than the " + std::to_string(size) + " declared");
  }
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return LastOsError("fcntl(F_GETFL)", "checking a received named region");
  const int mode = flags & O_ACCMODE;
  if (read_only && mode != O_RDONLY) {
    return MakeError("ACCESS_DENIED", "a named region declared read-only arrived open for writing");
  }
  if (!read_only && mode != O_RDWR) {
    return MakeError("ACCESS_DENIED", "a named region declared writable arrived without read-write access");
  }
  registry.Add(raw);
  SharedMemory memory(OsHandle(raw), size, read_only, std::make_shared<SharingPolicy>());
  memory.named_ = true;
  return memory;
}

Result<SharedMemory> SharedMemory::CreateNamed(const std::string& name, uint64_t size, bool read_only) {
  if (size == 0 || size > kMaxSize) return MakeError("INVALID_ARGUMENT", "size must be between 1 and 2^47 bytes");
  // O_EXCL: an existing object under this name is refused, never opened.
  const int fd = static_cast<int>(OpenRegistered([&] { return ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600); }));
  if (fd < 0) return OpenFailure(name, /*creating=*/true, read_only);
  OsHandle handle(fd);
  // Undone on any failure below, so a failed create leaves no name behind.
  auto fail = [&name](Error error) {
    ::shm_unlink(name.c_str());
    return error;
  };
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    return fail(LastOsError("ftruncate", "sizing " + QuotedName(name) + " to " + std::to_string(size) + " bytes"));
  }
  if (read_only) {
    // This process keeps a read-only handle only; the object stays writable
    // for whoever opens it by name (mode 0600: this user).
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    const int ro = static_cast<int>(OpenRegistered([&] { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC); }));
    if (ro < 0) return fail(LastOsError("open(/proc/self/fd)", "opening a read-only handle to " + QuotedName(name)));
    handle.reset(ro);
  }
  SharedMemory memory(std::move(handle), size, read_only, std::make_shared<SharingPolicy>());
  memory.named_ = true;
  return memory;
}

Status SharedMemory::UnlinkNamed(const std::string& name) {
  if (::shm_unlink(name.c_str()) != 0) {
    Error error = LastOsError("shm_unlink", "removing the name " + QuotedName(name));
    if (error.code == "NOT_FOUND") error.message = "no shared-memory object is named " + QuotedName(name);
    return error;
  }
  return Ok();
}

// Named regions copy with pread/pwrite on the fd where they can: those return
// short (never fault) at the object's end, whatever another process does
// meanwhile. A read-only region's private copy-on-write mapping holds this
// process's own writes, which the fd does not see, so once it may have such
// pages (Mapping::MayHavePrivatePages) its reads and writes go through the
// mapping after an fstat: a shrink racing with that copy could still fault,
// which SECURITY.md states.
Status SharedMemory::ReadAt(const Mapping& mapping, uint64_t offset, uint8_t* out, uint64_t length) const {
  if (length == 0) return Ok();
  if (!named_) {
    std::memcpy(out, mapping.data() + offset, length);
    return Ok();
  }
  if (read_only_ && mapping.MayHavePrivatePages()) {
    Result<uint64_t> now = CurrentSize(handle_.get());
    if (!now.ok()) return now.error();
    if (offset + length > now.value()) return PastEnd(offset, length, now.value());
    std::memcpy(out, mapping.data() + offset, length);
    return Ok();
  }
  uint64_t done = 0;
  while (done < length) {
    const ssize_t n = ::pread(static_cast<int>(handle_.get()), out + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return LastOsError("pread", "reading a named region");
    if (n == 0) {
      Result<uint64_t> now = CurrentSize(handle_.get());
      return PastEnd(offset, length, now.ok() ? now.value() : offset + done);
    }
    done += static_cast<uint64_t>(n);
  }
  return Ok();
}

Status SharedMemory::WriteAt(const Mapping& mapping, uint64_t offset, const uint8_t* in, uint64_t length) const {
  if (length == 0) return Ok();
  if (!named_) {
    std::memmove(mapping.data() + offset, in, length);
    return Ok();
  }
  // pwrite past the end would grow the object, so the size is checked first;
  // a shrink racing with the write can only make the write grow it back, not fault.
  Result<uint64_t> now = CurrentSize(handle_.get());
  if (!now.ok()) return now.error();
  if (offset + length > now.value()) return PastEnd(offset, length, now.value());
  if (read_only_) {
    std::memmove(mapping.data() + offset, in, length);
    return Ok();
  }
  uint64_t done = 0;
  while (done < length) {
    const ssize_t n = ::pwrite(static_cast<int>(handle_.get()), in + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return LastOsError("pwrite", "writing a named region");
    done += static_cast<uint64_t>(n);
  }
  return Ok();
}

}  // namespace memport
