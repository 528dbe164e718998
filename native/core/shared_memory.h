// The platform-neutral shared-memory interface. Linux implements it with a
// sealed memfd (native/linux), Windows with an unnamed section (native/win).
// Nothing here has a name in any OS namespace: the handle is the only key —
// except the objects opened or created on purpose by name (OpenNamed,
// CreateNamed; native/linux/named_shm_linux.cc, native/win/named_section_win.cc),
// which exist to talk to programs that already use names.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "error.h"
#include "os_handle.h"

namespace memport {

// A mapped view of a whole shared-memory object. Released when the last
// reference goes, which is when no JavaScript view can reach it any more
// (the region's own reference plus one per external ArrayBuffer).
class Mapping {
 public:
  Mapping(uint8_t* data, uint64_t length) : data_(data), length_(length) { live_.fetch_add(1); }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping();  // unmaps now, or, once retired, parks the range (see Retire)

  uint8_t* data() const { return data_; }
  uint64_t length() const { return length_; }

  // Called when the region is closed and every view detached: JavaScript can
  // no longer reach these pages, but native code that was handed a view
  // earlier (an fs.write or a zlib job on a libuv pool thread, say) may still
  // be using the address range, and nothing tells us when it stops: V8 frees
  // a detached buffer's backing store at once, however many raw pointers to
  // it are in flight. So a retired range is not unmapped when its last buffer
  // goes but parked, still mapped, for kRetiredGraceMs (or until the parking
  // caps below are reached; released by ReleaseDue on a JS timer), and a straggler reads and writes valid memory
  // instead of faulting. Linux first swaps the shared pages for anonymous
  // private ones in place (ScrubInPlace), so the shared memory is returned at
  // once and a parked range costs no memory, only its address range; Windows
  // cannot replace a view in place, so a parked view keeps its pages.
  void Retire();

  // For a closed region whose mapping is kept for reuse (the received-mappings
  // cache): not scrubbed now, since it may be handed out again, but scrubbed
  // and parked like a retired one when it is finally released.
  void ParkWhenReleased();

  // True unless this process certainly has not written into a private
  // (copy-on-write) mapping. Written pages would hide the shared bytes from a
  // later reader, so a kept read-only mapping is reused only when this is false.
  bool MayHavePrivatePages() const;

  // Mappings that exist in this process (including retired and parked ones
  // not yet unmapped). Each is one kernel VMA, and the kernel caps those per
  // process (vm.max_map_count); running out would starve V8 itself, so
  // creating one more beyond MaxLive() is refused with OUT_OF_MEMORY instead,
  // after unmapping every parked range (UnparkAll) to make room.
  static int64_t Live() { return live_.load(); }
  static int64_t MaxLive();  // per OS

  static constexpr int64_t kRetiredGraceMs = 5000;
  static constexpr size_t kMaxParked = 1024;
  static uint64_t MaxParkedBytes();  // per OS: what parked ranges may still hold
  // Unmaps every parked range now, oldest first; returns how many.
  static size_t UnparkAll();
  static size_t Parked();
  // Unmaps the parked ranges whose grace has run out. True while any range is
  // parked or any retired mapping is still held (so JS keeps its timer).
  static bool ReleaseDue();

 private:
  friend class ParkedRanges;
  void ScrubInPlace();                                   // per OS
  static void Unmap(uint8_t* data, uint64_t length);    // per OS
  static void Unmapped() { live_.fetch_sub(1); }

  static inline std::atomic<int64_t> live_{0};
  static inline std::atomic<int64_t> retired_alive_{0};  // retired, not yet destroyed
  uint8_t* data_;
  uint64_t length_;
  std::atomic<bool> retired_{false};
  bool scrubbed_ = false;  // set on the JS thread by Retire, read by the destructor
};

// The OS object behind a handle, so a region received again is recognised
// (native/received_mappings.h). Linux: the memfd's device, inode and birth
// time; the inode cannot be reused while a mapping of it exists here, and the
// birth time guards against kernels whose inode numbers wrap.
struct MemoryIdentity {
  uint64_t device = 0;
  uint64_t object = 0;
  uint64_t born = 0;
  bool operator==(const MemoryIdentity& other) const {
    return device == other.device && object == other.object && born == other.born;
  }
};

// What the owner of a writable object has promised: once a read-only twin has
// been made, no writable handle to the same memory may leave the process.
// Shared by every SharedMemory that refers to the same OS object here.
struct SharingPolicy {
  std::atomic<bool> read_only_twin_exists{false};
};

class SharedMemory {
 public:
  // Largest size accepted: the 47-bit user address space of x86-64.
  static constexpr uint64_t kMaxSize = uint64_t{1} << 47;

  SharedMemory() = default;
  SharedMemory(SharedMemory&&) = default;
  SharedMemory& operator=(SharedMemory&&) = default;
  ~SharedMemory() { Close(); }

  // A new, zero-filled, writable object of `size` bytes with no name.
  static Result<SharedMemory> Create(uint64_t size);

  // Named objects (SECURITY.md, "Named shared memory"). `name` is already in
  // the OS's spelling (src/region.ts checks and normalises it): Linux "/name",
  // Windows "Local\<name>" or "Global\<name>".
  // Opens an existing one. `size` 0 means the object's whole size as the OS
  // reports it; a larger `size` than the object is INVALID_ARGUMENT.
  static Result<SharedMemory> OpenNamed(const std::string& name, bool read_only, uint64_t size);
  // Creates one, zero-filled, of `size` bytes; ALREADY_EXISTS if the name is
  // taken (never a silent open of somebody else's object). Linux: mode 0600.
  static Result<SharedMemory> CreateNamed(const std::string& name, uint64_t size, bool read_only);
  // Linux: shm_unlink. Windows: UNSUPPORTED (a name goes with its last handle).
  static Status UnlinkNamed(const std::string& name);
  // True for a region opened or created by name. Such memory has none of the
  // guarantees memport gives its own: anyone who knows the name may open it,
  // and on Linux anyone with write access may change its size.
  bool named() const { return named_; }

  // Copies between the mapping and a buffer without touching bytes past the
  // object's current end: a named POSIX object can be shrunk by another
  // process, and a plain memcpy from the mapping would then die of SIGBUS.
  // INVALID_ARGUMENT when the range is past the current end. For memport's
  // own (sealed or section) memory this is a plain copy.
  Status ReadAt(const Mapping& mapping, uint64_t offset, uint8_t* out, uint64_t length) const;
  Status WriteAt(const Mapping& mapping, uint64_t offset, const uint8_t* in, uint64_t length) const;

  // A second handle to the same memory that the OS will not let anyone use for
  // writing. Afterwards WriteSharingAllowed() is false for every handle to it.
  Result<SharedMemory> DuplicateReadOnly();

  // A second handle to the same object with the same access, for another
  // thread of this process (a worker's region, SharedRegion.forWorker): it
  // keeps this one's size, mode, name-ness and sharing policy (a read-only
  // twin made on either thread binds both), and is registered as owned
  // (core/owned_handles.h), so each handle has exactly one owner.
  Result<SharedMemory> DuplicateInProcess() const;

  // Adopts a handle that came from a peer (or was inherited) after checking it
  // is what was declared: a memport-kind shared-memory object of at least
  // `size` bytes, with exactly the access of the declared mode.
  // Takes ownership only on success. On failure the caller still owns `raw`:
  // on Linux it is an fd we received and the caller closes it; on Windows it
  // is a bare number that may name anything in our handle table, so it must
  // NOT be closed (docs/SECURITY.md).
  // `from_transport`: Linux, the fd came from memport's own recvmsg, which
  // already made it close-on-exec (an inherited one is made so here).
  static Result<SharedMemory> FromReceived(RawHandle raw, uint64_t size, bool read_only, bool from_transport = false);

  // Adopts a region a peer flagged named (frame.h kRegionNamed), for a
  // connection that accepts named regions (acceptNamedRegions). The result is
  // named(): size-checked ReadAt/WriteAt, no read-only twin, never cached.
  // Linux: `raw` is an fd we received (the caller closes it on failure); it
  // may be unsealed but must be a regular file on tmpfs of at least `size`
  // bytes whose access mode matches the declared one.
  // Windows: `raw` is a bare number the peer pushed into our table, which may
  // name anything we hold, so it is never closed nor adopted: a duplicate of
  // it is made and validated (a named section is allowed here), and the
  // sender closes the pushed value once the message is settled.
  static Result<SharedMemory> FromReceivedNamed(RawHandle raw, uint64_t size, bool read_only);

  // Windows: duplicates this object's handle into process `pid` with the rights
  // of the mode (read-only: FILE_MAP_READ | SECTION_QUERY) and returns the value
  // valid in that process. Writable copies need WriteSharingAllowed().
  // Linux: UNSUPPORTED (fds travel with SCM_RIGHTS or by inheritance).
  Result<uint32_t> DuplicateIntoProcess(int64_t pid, bool read_only) const;

  // Maps the whole object: shared and writable for a writable handle, private
  // copy-on-write for a read-only one (JS writes land in private pages, never
  // reach the shared bytes, and never fault).
  Result<std::shared_ptr<Mapping>> Map() const;

  // Which OS object this handle refers to; UNSUPPORTED where the platform
  // gives no cheap, reliable answer (Windows for now).
  Result<MemoryIdentity> Identity() const;

  // False once a read-only twin exists (on Linux: once the memfd is sealed
  // against future writes, by anyone).
  bool WriteSharingAllowed() const;

  // Test hook: tries every way this platform offers to regain write access
  // from this handle, and reports for each whether the OS allowed it.
  struct EscalationAttempt {
    std::string path;  // a stable identifier, e.g. "reopen-proc-fd-rdwr"
    bool succeeded;
  };
  Result<std::vector<EscalationAttempt>> TryWriteEscalation() const;

  uint64_t size() const { return size_; }
  bool read_only() const { return read_only_; }
  bool valid() const { return handle_.valid(); }
  RawHandle raw() const { return handle_.get(); }
  // Closes the handle (idempotent). Per OS: Windows also forgets the value in
  // its registry of memport-owned sections.
  void Close();

 private:
  SharedMemory(OsHandle handle, uint64_t size, bool read_only,
               std::shared_ptr<SharingPolicy> policy)
      : handle_(std::move(handle)), size_(size), read_only_(read_only), policy_(std::move(policy)) {}

  // What OpenNamed does on every OS once it holds `handle` to the object
  // `name` of `object_size` bytes (native/core/named.cc): the size asked for
  // is checked against it (0: all of it) and the region is marked named.
  static Result<SharedMemory> FromNamedObject(OsHandle handle, const std::string& name, uint64_t object_size,
                                              uint64_t size, bool read_only);

  // This object's description around another handle to the same memory.
  SharedMemory Twin(OsHandle handle) const {
    SharedMemory twin(std::move(handle), size_, read_only_, policy_);
    twin.identity_ = identity_;
    twin.identity_known_ = identity_known_;
    twin.named_ = named_;
    return twin;
  }

  OsHandle handle_;
  uint64_t size_ = 0;
  bool read_only_ = false;
  std::shared_ptr<SharingPolicy> policy_;
  // Learnt while checking a received handle (Linux), so Identity() needs no
  // second system call.
  MemoryIdentity identity_;
  bool identity_known_ = false;
  bool named_ = false;
};

// Open OS handles in this process, for leak tests. `exact` is false where the
// OS gives no count (Wine's GetProcessHandleCount returns 0); `value` is then
// the lowest free handle slot, which rises when handles leak.
struct HandleCensus {
  int64_t value = 0;
  bool exact = true;
};
Result<HandleCensus> CountOpenHandles();

}  // namespace memport
