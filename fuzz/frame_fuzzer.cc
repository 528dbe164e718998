// libFuzzer target for the wire-format codec in native/core/frame.cc.
//
// DecodeFrame parses bytes straight from a peer that may be hostile, so it is
// the one piece of memport that must be right for every possible input. Each
// input is used twice:
//
//  1. Decode: the bytes are a received packet. DecodeFrame's verdict must
//     match an independent reading of docs/PROTOCOL.md section 2 (SpecAccepts
//     below), and every frame it accepts must re-encode to exactly the input.
//  2. Encode: the same bytes are read loosely as a Frame that a sender might
//     build (any type byte, up to 127 descriptors, the rest as data).
//     EncodeFrame must refuse exactly the frames that break a cap, lay out the
//     ones it accepts byte for byte as the spec says, and DecodeFrame must
//     read them back unchanged whenever the spec allows them.
//
// The caps and rules here are typed in from the spec, not taken from frame.h,
// so a wrong constant there is a finding rather than a shared assumption.
//
// A violated invariant prints which one and calls __builtin_trap(), which
// libFuzzer reports as a crash and saves as an artifact.
//
// LLVMFuzzerCustomMutator (at the end) mixes libFuzzer's byte-level mutations
// with structural ones that keep the header's counts consistent with the
// bytes: a random byte flip almost always fails the exact-length rule first,
// which would leave every check after it unexercised.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "frame.h"

using memport::DecodeFrame;
using memport::EncodeFrame;
using memport::Frame;
using memport::FrameType;
using memport::RegionDescriptor;
using memport::Result;

namespace {

// docs/PROTOCOL.md section 2.
constexpr size_t kSpecHeader = 16;
constexpr size_t kSpecDescriptor = 16;
constexpr size_t kSpecMaxRegions = 64;
constexpr size_t kSpecMaxData = 131072;
constexpr uint64_t kSpecMaxRegionSize = uint64_t{1} << 47;
constexpr uint32_t kSpecKnownFlags = 0x3;  // bit 0 read-only, bit 1 named (PROTOCOL.md section 2)
constexpr uint32_t kSpecNotifier = 0x4;    // bit 2: a notifier, size 0, no other bit (but bit 3)
constexpr uint32_t kSpecStream = 0x8;      // bit 3: a stream member (PROTOCOL.md section 6)
constexpr uint8_t kMagic[4] = {0x4D, 0x50, 0x52, 0x54};  // "MPRT"
constexpr uint8_t kWelcome = 1, kMessage = 3, kAck = 4;

// The encode pass reads at most this many descriptors: enough to cross the
// 64-region cap without making every execution allocate for 65535.
constexpr size_t kEncodeRegionLimit = 127;

[[noreturn]] void Fail(const char* invariant, int line) {
  std::fprintf(stderr, "frame_fuzzer: invariant violated (frame_fuzzer.cc:%d): %s\n", line, invariant);
  __builtin_trap();
}
#define FUZZ_CHECK(cond) \
  do {                   \
    if (!(cond)) Fail(#cond, __LINE__); \
  } while (0)

// Little-endian readers and writers, kept separate from frame.cc's so a bug
// there is not mirrored here.
uint64_t ReadLE(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}
void WriteLE(uint8_t* p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

bool RegionAllowed(uint64_t size, uint32_t flags) {
  if (flags == kSpecNotifier || flags == (kSpecNotifier | kSpecStream)) return size == 0;
  // A stream member is never a named region (bit 1).
  if ((flags & kSpecStream) != 0 && (flags & 0x2) != 0) return false;
  return size >= 1 && size <= kSpecMaxRegionSize && (flags & ~(kSpecKnownFlags | kSpecStream)) == 0;
}

// PROTOCOL.md section 6, "Readers over connections": the number of stream
// readers a frame's descriptors (as flags, in frame order) hand over, or -1.
// Written from the spec's wording: split by kind, each kind's stream members
// are a suffix; regions come in (read-only, writable) pairs; two notifiers per
// reader.
int SpecStreams(const std::vector<uint32_t>& flags) {
  std::vector<uint32_t> regions;
  std::vector<uint32_t> notifiers;
  for (uint32_t f : flags) ((f & kSpecNotifier) != 0 ? notifiers : regions).push_back(f);
  auto suffix = [](const std::vector<uint32_t>& kind) -> long {
    size_t first = kind.size();
    while (first > 0 && (kind[first - 1] & kSpecStream) != 0) --first;
    for (size_t i = 0; i < first; ++i) {
      if ((kind[i] & kSpecStream) != 0) return -1;
    }
    return static_cast<long>(kind.size() - first);
  };
  const long region_members = suffix(regions);
  const long notifier_members = suffix(notifiers);
  if (region_members < 0 || notifier_members < 0 || region_members % 2 != 0 || notifier_members != region_members) return -1;
  for (long i = 0; i < region_members; ++i) {
    const bool read_only = (regions[regions.size() - region_members + i] & 0x1) != 0;
    if (read_only != (i % 2 == 0)) return -1;  // data (read-only), then control (writable)
  }
  return static_cast<int>(region_members / 2);
}

// The frame-level rules a receiver drops a connection for (PROTOCOL.md
// section 2). Deliberately absent, because they are not the codec's job: seq
// values, handle values, and whether data is UTF-8 JSON.
bool SpecAccepts(const uint8_t* bytes, size_t length) {
  if (length < kSpecHeader) return false;
  if (std::memcmp(bytes, kMagic, sizeof kMagic) != 0 || bytes[4] != 1) return false;
  const uint8_t type = bytes[5];
  if (type < 1 || type > 5) return false;
  const size_t regions = ReadLE(bytes + 6, 2);
  const size_t data = ReadLE(bytes + 12, 4);
  if (regions > kSpecMaxRegions || data > kSpecMaxData) return false;
  if (length != kSpecHeader + kSpecDescriptor * regions + data) return false;
  if ((type == kWelcome || type == kAck) && (regions != 0 || data != 0)) return false;
  if (type != kMessage && regions != 0) return false;
  std::vector<uint32_t> flags;
  for (size_t i = 0; i < regions; ++i) {
    const uint8_t* d = bytes + kSpecHeader + kSpecDescriptor * i;
    flags.push_back(static_cast<uint32_t>(ReadLE(d + 8, 4)));
    if (!RegionAllowed(ReadLE(d, 8), flags.back())) return false;
  }
  return SpecStreams(flags) >= 0;
}

std::vector<uint32_t> FlagsOf(const Frame& frame) {
  std::vector<uint32_t> flags;
  for (const RegionDescriptor& region : frame.regions) flags.push_back(region.flags);
  return flags;
}

bool SameFrame(const Frame& a, const Frame& b) {
  if (a.type != b.type || a.seq != b.seq || a.data != b.data || a.regions.size() != b.regions.size() || a.streams != b.streams) {
    return false;
  }
  for (size_t i = 0; i < a.regions.size(); ++i) {
    const RegionDescriptor& x = a.regions[i];
    const RegionDescriptor& y = b.regions[i];
    if (x.size != y.size || x.flags != y.flags || x.handle != y.handle) return false;
  }
  return true;
}

void CheckDecode(const uint8_t* bytes, size_t length) {
  Result<Frame> decoded = DecodeFrame(bytes, length);
  const bool spec_accepts = SpecAccepts(bytes, length);
  if (!decoded.ok()) {
    // The transport drops the connection on PROTOCOL; any other code would
    // be surfaced to the application as if the local side had failed.
    FUZZ_CHECK(decoded.error().code == "PROTOCOL");
    FUZZ_CHECK(!spec_accepts);  // a conforming peer's frame was refused
    return;
  }
  FUZZ_CHECK(length >= kSpecHeader);
  FUZZ_CHECK(spec_accepts);  // a frame the spec says to drop was accepted
  const Frame& frame = decoded.value();
  const auto type = static_cast<uint8_t>(frame.type);
  FUZZ_CHECK(type == bytes[5]);
  FUZZ_CHECK(frame.seq == ReadLE(bytes + 8, 4));
  FUZZ_CHECK(frame.regions.size() <= kSpecMaxRegions);
  FUZZ_CHECK(frame.data.size() <= kSpecMaxData);
  FUZZ_CHECK(length == kSpecHeader + kSpecDescriptor * frame.regions.size() + frame.data.size());
  FUZZ_CHECK(type == kMessage || frame.regions.empty());
  FUZZ_CHECK((type != kWelcome && type != kAck) || frame.data.empty());
  for (const RegionDescriptor& region : frame.regions) FUZZ_CHECK(RegionAllowed(region.size, region.flags));
  FUZZ_CHECK(frame.streams == SpecStreams(FlagsOf(frame)));

  // The round trip: the encoding is canonical, so an accepted frame that
  // re-encodes differently means a field was misread or ignored.
  Result<std::vector<uint8_t>> encoded = EncodeFrame(frame);
  FUZZ_CHECK(encoded.ok());
  FUZZ_CHECK(encoded.value().size() == length);
  FUZZ_CHECK(std::memcmp(encoded.value().data(), bytes, length) == 0);
}

// Reads `bytes` loosely as the frame a sender might build: the type byte is
// taken as is, the region count masked to 0..127, missing descriptor bytes are
// zero, and whatever follows the descriptors is the data.
Frame LooseFrame(const uint8_t* bytes, size_t length) {
  Frame frame;
  frame.type = static_cast<FrameType>(bytes[5]);
  frame.seq = static_cast<uint32_t>(ReadLE(bytes + 8, 4));
  frame.regions.resize(ReadLE(bytes + 6, 2) & kEncodeRegionLimit);
  size_t at = kSpecHeader;
  for (RegionDescriptor& region : frame.regions) {
    uint8_t d[kSpecDescriptor] = {};
    if (at < length) std::memcpy(d, bytes + at, std::min(kSpecDescriptor, length - at));
    region.size = ReadLE(d, 8);
    region.flags = static_cast<uint32_t>(ReadLE(d + 8, 4));
    region.handle = static_cast<uint32_t>(ReadLE(d + 12, 4));
    at += kSpecDescriptor;
  }
  if (at < length) frame.data.assign(bytes + at, bytes + length);
  // The version byte is the encoder's own; it stands for the stream count a
  // sender declares, so declarations that do not match the flags are tried too.
  frame.streams = bytes[4] % 4;
  return frame;
}

void CheckEncode(const uint8_t* bytes, size_t length) {
  if (length < kSpecHeader) return;
  const Frame frame = LooseFrame(bytes, length);
  bool within_caps = frame.regions.size() <= kSpecMaxRegions && frame.data.size() <= kSpecMaxData;
  for (const RegionDescriptor& region : frame.regions) within_caps = within_caps && RegionAllowed(region.size, region.flags);
  // The encoder must also refuse what section 2 makes the peer drop: unknown
  // types, a payload on WELCOME/ACK, regions on anything but MESSAGE.
  const uint8_t type = static_cast<uint8_t>(frame.type);
  const bool control = type == 1 || type == 4;
  const bool within_rules = within_caps && type >= 1 && type <= 5 &&
                            !(control && (!frame.regions.empty() || !frame.data.empty())) &&
                            (type == 3 || frame.regions.empty()) && SpecStreams(FlagsOf(frame)) == frame.streams;

  Result<std::vector<uint8_t>> encoded = EncodeFrame(frame);
  FUZZ_CHECK(encoded.ok() == within_rules);
  if (!encoded.ok()) {
    FUZZ_CHECK(encoded.error().code == "INVALID_ARGUMENT");
    return;
  }

  // The layout, field by field, as section 2 draws it.
  const std::vector<uint8_t>& out = encoded.value();
  FUZZ_CHECK(out.size() == kSpecHeader + kSpecDescriptor * frame.regions.size() + frame.data.size());
  FUZZ_CHECK(std::memcmp(out.data(), kMagic, sizeof kMagic) == 0);
  FUZZ_CHECK(out[4] == 1);
  FUZZ_CHECK(out[5] == static_cast<uint8_t>(frame.type));
  FUZZ_CHECK(ReadLE(out.data() + 6, 2) == frame.regions.size());
  FUZZ_CHECK(ReadLE(out.data() + 8, 4) == frame.seq);
  FUZZ_CHECK(ReadLE(out.data() + 12, 4) == frame.data.size());
  for (size_t i = 0; i < frame.regions.size(); ++i) {
    const uint8_t* d = out.data() + kSpecHeader + kSpecDescriptor * i;
    FUZZ_CHECK(ReadLE(d, 8) == frame.regions[i].size);
    FUZZ_CHECK(ReadLE(d + 8, 4) == frame.regions[i].flags);
    FUZZ_CHECK(ReadLE(d + 12, 4) == frame.regions[i].handle);
  }
  const size_t data_at = kSpecHeader + kSpecDescriptor * frame.regions.size();
  FUZZ_CHECK(frame.data.empty() || std::memcmp(out.data() + data_at, frame.data.data(), frame.data.size()) == 0);

  Result<Frame> decoded = DecodeFrame(out.data(), out.size());
  FUZZ_CHECK(decoded.ok() == SpecAccepts(out.data(), out.size()));
  if (decoded.ok()) FUZZ_CHECK(SameFrame(decoded.value(), frame));
  // EncodeFrame never emits a frame the peer must drop.
  FUZZ_CHECK(decoded.ok());
}

// ---------------------------------------------------------------------------
// Structural mutation

// A frame cut into its parts without judging it, so that invalid frames can be
// edited too. Re-serialising recomputes region_count and data_length.
struct LooseParts {
  uint8_t header[kSpecHeader];
  std::vector<std::vector<uint8_t>> descriptors;
  std::vector<uint8_t> data;

  LooseParts(const uint8_t* bytes, size_t length) {
    if (length < kSpecHeader) {
      // Too short to be a frame: wrap it in an empty MESSAGE as its data.
      const uint8_t message[kSpecHeader] = {0x4D, 0x50, 0x52, 0x54, 1, kMessage};
      std::memcpy(header, message, sizeof header);
      data.assign(bytes, bytes + length);
      return;
    }
    std::memcpy(header, bytes, sizeof header);
    const size_t available = (length - kSpecHeader) / kSpecDescriptor;
    const size_t count = std::min<size_t>(ReadLE(bytes + 6, 2), available);
    const uint8_t* p = bytes + kSpecHeader;
    for (size_t i = 0; i < count; ++i, p += kSpecDescriptor) descriptors.emplace_back(p, p + kSpecDescriptor);
    data.assign(p, bytes + length);
  }

  size_t Size() const { return kSpecHeader + kSpecDescriptor * descriptors.size() + data.size(); }

  size_t Write(uint8_t* out) const {
    std::memcpy(out, header, sizeof header);
    WriteLE(out + 6, descriptors.size(), 2);
    WriteLE(out + 12, data.size(), 4);
    uint8_t* p = out + kSpecHeader;
    for (const auto& d : descriptors) p = std::copy(d.begin(), d.end(), p);
    std::copy(data.begin(), data.end(), p);
    return Size();
  }
};

template <typename T, size_t N>
T Pick(std::minstd_rand& rng, const T (&choices)[N]) {
  return choices[rng() % N];
}

// The values each check in section 2 turns on, on both sides of the line.
uint64_t InterestingRegionSize(std::minstd_rand& rng) {
  const uint64_t sizes[] = {0, 1, 4096, kSpecMaxRegionSize - 1, kSpecMaxRegionSize, kSpecMaxRegionSize + 1,
                            UINT64_MAX, uint64_t{1} << 63};
  return rng() % 4 == 0 ? (uint64_t{rng()} << 32 | rng()) : Pick(rng, sizes);
}
uint32_t InterestingFlags(std::minstd_rand& rng) {
  const uint32_t flags[] = {0, 1, 2, 3, 4, 5, 6, 7, 0x80000000u, 0xFFFFFFFFu};
  return rng() % 4 == 0 ? (1u << (rng() % 32)) : Pick(rng, flags);
}
size_t InterestingDataLength(std::minstd_rand& rng, size_t current) {
  const size_t lengths[] = {0, 1, 2, kSpecMaxData - 1, kSpecMaxData, kSpecMaxData + 1, current + 1,
                            current > 0 ? current - 1 : 0};
  return rng() % 3 == 0 ? rng() % 256 : Pick(rng, lengths);
}

// Half the time a descriptor the spec allows, so that long valid region lists
// are reachable; otherwise one with boundary values.
std::vector<uint8_t> NewDescriptor(std::minstd_rand& rng) {
  std::vector<uint8_t> d(kSpecDescriptor);
  const bool valid = rng() % 2 == 0;
  WriteLE(d.data(), valid ? 1 + (uint64_t{rng()} << 32 | rng()) % kSpecMaxRegionSize : InterestingRegionSize(rng), 8);
  WriteLE(d.data() + 8, valid ? rng() % 2 : InterestingFlags(rng), 4);
  WriteLE(d.data() + 12, rng(), 4);
  return d;
}

void MutateStructure(LooseParts& parts, std::minstd_rand& rng) {
  switch (rng() % 9) {
    case 0: {
      const uint8_t types[] = {0, 1, 2, 3, 4, 5, 6, 255};
      parts.header[5] = Pick(rng, types);
      break;
    }
    case 1:  // insert a descriptor, up to one past the cap
      if (parts.descriptors.size() > kSpecMaxRegions) break;
      parts.descriptors.insert(parts.descriptors.begin() + rng() % (parts.descriptors.size() + 1), NewDescriptor(rng));
      break;
    case 2: {  // jump to a count at the cap's edges by repeating a descriptor
      const size_t counts[] = {0, 1, kSpecMaxRegions - 1, kSpecMaxRegions, kSpecMaxRegions + 1};
      const std::vector<uint8_t> filler =
          parts.descriptors.empty() ? NewDescriptor(rng) : parts.descriptors[rng() % parts.descriptors.size()];
      parts.descriptors.resize(Pick(rng, counts), filler);
      break;
    }
    case 3:
      if (!parts.descriptors.empty()) parts.descriptors.erase(parts.descriptors.begin() + rng() % parts.descriptors.size());
      break;
    case 4:
      if (!parts.descriptors.empty()) WriteLE(parts.descriptors[rng() % parts.descriptors.size()].data(), InterestingRegionSize(rng), 8);
      break;
    case 5:
      if (!parts.descriptors.empty()) WriteLE(parts.descriptors[rng() % parts.descriptors.size()].data() + 8, InterestingFlags(rng), 4);
      break;
    case 6:  // new bytes look like JSON text, which is what data usually holds
      parts.data.resize(InterestingDataLength(rng, parts.data.size()), static_cast<uint8_t>("{}\":, a1"[rng() % 8]));
      break;
    case 7: {
      const uint32_t seqs[] = {0, 1, 0xFFFFFFFFu};
      WriteLE(parts.header + 8, rng() % 2 ? rng() : Pick(rng, seqs), 4);
      break;
    }
    default: {
      const uint8_t versions[] = {0, 1, 2, 255};
      parts.header[4] = Pick(rng, versions);
      break;
    }
  }
}

// After a byte-level mutation, makes the header's counts agree with the
// input's length again, keeping region_count when it still fits.
void RepairCounts(uint8_t* bytes, size_t length) {
  if (length < kSpecHeader) return;
  const size_t room = (length - kSpecHeader) / kSpecDescriptor;
  size_t regions = ReadLE(bytes + 6, 2);
  if (regions > room) regions = std::min(room, kSpecMaxRegions);
  WriteLE(bytes + 6, regions, 2);
  WriteLE(bytes + 12, length - kSpecHeader - kSpecDescriptor * regions, 4);
}

}  // namespace

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CheckDecode(data, size);
  CheckEncode(data, size);
  return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  std::minstd_rand rng(seed);
  const unsigned choice = rng() % 10;
  if (choice < 4) return LLVMFuzzerMutate(data, size, max_size);
  if (choice < 6) {
    size = LLVMFuzzerMutate(data, size, max_size);
    RepairCounts(data, size);
    return size;
  }
  LooseParts parts(data, size);
  MutateStructure(parts, rng);
  if (rng() % 4 == 0) MutateStructure(parts, rng);
  if (parts.Size() > max_size) {
    const size_t fixed = kSpecHeader + kSpecDescriptor * parts.descriptors.size();
    if (fixed > max_size) return LLVMFuzzerMutate(data, size, max_size);
    parts.data.resize(max_size - fixed);
  }
  size = parts.Write(data);
  // Sometimes leave the counts one off, or the length one off, so the exact
  // length rule is probed from frames that are otherwise valid.
  if (rng() % 8 == 0) {
    switch (rng() % 4) {
      case 0: WriteLE(data + 6, ReadLE(data + 6, 2) + 1, 2); break;
      case 1: WriteLE(data + 12, ReadLE(data + 12, 4) + 1, 4); break;
      case 2: if (size > kSpecHeader) --size; break;
      default: if (size < max_size) data[size++] = 0; break;
    }
  }
  return size;
}
