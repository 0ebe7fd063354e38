#include "server/disk_store/format.h"

#include <algorithm>
#include <cstring>

#include "common/assert.h"
#include "common/crc32c.h"

namespace spindle::server::disk {
namespace {

// Superblock field offsets.
constexpr size_t kSbMagic = 0, kSbVersion = 8, kSbDisk = 12, kSbCluster = 16;
constexpr size_t kSbDeviceBytes = 80, kSbSlotCount = 88, kSbBlockSize = 92, kSbObjectSize = 96;
constexpr size_t kSbSlotsOffset = 104, kSbSlotStride = 112, kSbMetaSize = 120, kSbInitTime = 128;
// Slot header field offsets.
constexpr size_t kShMagic = 0, kShLayer = 8, kShObject = 16, kShState = 20, kShVersion = 24;
constexpr size_t kShCount = 32, kShBitmap = 64;
constexpr size_t kShZeroedBitmap = kShBitmap + kBlocksPerObject / 8;
constexpr size_t kCrcAt = kMetaBlockSize - 4;
static_assert(kShZeroedBitmap + kBlocksPerObject / 8 <= kCrcAt);

void StoreBitmap(const BlockBitmap& bits, uint8_t* p) {
  for (size_t b = 0; b < kBlocksPerObject; ++b) {
    if (bits[b]) p[b / 8] |= static_cast<uint8_t>(1u << (b % 8));
  }
}
void LoadBitmap(const uint8_t* p, BlockBitmap& bits) {
  for (size_t b = 0; b < kBlocksPerObject; ++b) bits[b] = (p[b / 8] >> (b % 8)) & 1;
}

void StoreU64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t LoadU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void Seal(std::span<uint8_t> block) {
  StoreU32(block.data() + kCrcAt, Crc32c(block.data(), kCrcAt));
}
bool SealOk(std::span<const uint8_t> block) {
  return LoadU32(block.data() + kCrcAt) == Crc32c(block.data(), kCrcAt);
}

}  // namespace

uint32_t LoadU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}
void StoreU32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint32_t SlotCountFor(uint64_t device_bytes) {
  if (device_bytes < kMinDeviceBytes) return 0;
  return static_cast<uint32_t>(
      std::min<uint64_t>((device_bytes - kSlotsOffset) / kSlotStride, kMaxSlots));
}

void EncodeSuperblock(const Superblock& sb, std::span<uint8_t> out) {
  SP_ASSERT(out.size() == kMetaBlockSize);
  SP_ASSERT(sb.cluster_id.size() <= kMaxClusterIdBytes);
  std::memset(out.data(), 0, out.size());
  uint8_t* p = out.data();
  StoreU64(p + kSbMagic, kSuperblockMagic);
  StoreU32(p + kSbVersion, sb.format_version);
  StoreU32(p + kSbDisk, sb.disk.value());
  std::memcpy(p + kSbCluster, sb.cluster_id.data(), sb.cluster_id.size());
  StoreU64(p + kSbDeviceBytes, sb.device_bytes);
  StoreU32(p + kSbSlotCount, sb.slot_count);
  StoreU32(p + kSbBlockSize, static_cast<uint32_t>(kBlockSize));
  StoreU64(p + kSbObjectSize, kObjectSize);
  StoreU64(p + kSbSlotsOffset, kSlotsOffset);
  StoreU64(p + kSbSlotStride, kSlotStride);
  StoreU32(p + kSbMetaSize, static_cast<uint32_t>(kSlotMetaSize));
  StoreU64(p + kSbInitTime, static_cast<uint64_t>(sb.init_unix_seconds));
  Seal(out);
}

Result<Superblock> DecodeSuperblock(std::span<const uint8_t> in) {
  SP_ASSERT(in.size() == kMetaBlockSize);
  const uint8_t* p = in.data();
  if (LoadU64(p + kSbMagic) != kSuperblockMagic) {
    return Error(Code::kFailedPrecondition, "not a Spindle disk (no superblock magic)");
  }
  if (!SealOk(in)) return Error(Code::kCorruption, "superblock checksum mismatch");
  Superblock sb;
  sb.format_version = LoadU32(p + kSbVersion);
  if (sb.format_version != kFormatVersion) {
    return Error(Code::kFailedPrecondition,
                 "unknown disk format version {} (this build reads version {})", sb.format_version,
                 kFormatVersion);
  }
  if (LoadU32(p + kSbBlockSize) != kBlockSize || LoadU64(p + kSbObjectSize) != kObjectSize ||
      LoadU64(p + kSbSlotsOffset) != kSlotsOffset || LoadU64(p + kSbSlotStride) != kSlotStride ||
      LoadU32(p + kSbMetaSize) != kSlotMetaSize) {
    return Error(Code::kFailedPrecondition, "superblock geometry differs from format {}",
                 kFormatVersion);
  }
  sb.disk = DiskId(LoadU32(p + kSbDisk));
  const char* c = reinterpret_cast<const char*>(p + kSbCluster);
  sb.cluster_id.assign(c, strnlen(c, kMaxClusterIdBytes));
  sb.device_bytes = LoadU64(p + kSbDeviceBytes);
  sb.slot_count = LoadU32(p + kSbSlotCount);
  sb.init_unix_seconds = static_cast<int64_t>(LoadU64(p + kSbInitTime));
  if (sb.slot_count != SlotCountFor(sb.device_bytes) || sb.disk.value() > kMaxDiskId) {
    return Error(Code::kCorruption, "superblock fields inconsistent (slots {}, disk {})",
                 sb.slot_count, sb.disk.value());
  }
  return sb;
}

bool HasSuperblockMagic(std::span<const uint8_t> in) {
  return in.size() >= 8 && LoadU64(in.data() + kSbMagic) == kSuperblockMagic;
}

void EncodeSlotHeader(const SlotHeader& h, std::span<uint8_t> out) {
  SP_ASSERT(out.size() == kMetaBlockSize);
  std::memset(out.data(), 0, out.size());
  uint8_t* p = out.data();
  StoreU64(p + kShMagic, kSlotMagic);
  StoreU64(p + kShLayer, h.layer.value());
  StoreU32(p + kShObject, h.object.value());
  StoreU32(p + kShState, h.state);
  StoreU64(p + kShVersion, h.version);
  StoreU32(p + kShCount, static_cast<uint32_t>(h.present.count()));
  StoreBitmap(h.present, p + kShBitmap);
  StoreBitmap(h.zeroed, p + kShZeroedBitmap);
  Seal(out);
}

Result<SlotHeader> DecodeSlotHeader(std::span<const uint8_t> in) {
  SP_ASSERT(in.size() == kMetaBlockSize);
  const uint8_t* p = in.data();
  if (std::all_of(in.begin(), in.end(), [](uint8_t b) { return b == 0; })) {
    return Error(Code::kNotFound, "free slot");
  }
  if (LoadU64(p + kShMagic) != kSlotMagic) return Error(Code::kCorruption, "bad slot magic");
  if (!SealOk(in)) return Error(Code::kCorruption, "slot header checksum mismatch");
  SlotHeader h;
  h.layer = LayerId(LoadU64(p + kShLayer));
  h.object = ObjectIndex(LoadU32(p + kShObject));
  h.state = LoadU32(p + kShState);
  h.version = LoadU64(p + kShVersion);
  LoadBitmap(p + kShBitmap, h.present);
  LoadBitmap(p + kShZeroedBitmap, h.zeroed);
  if (h.present.count() != LoadU32(p + kShCount)) {
    return Error(Code::kCorruption, "slot header block count disagrees with its bitmap");
  }
  if ((h.present & h.zeroed).any()) {
    return Error(Code::kCorruption, "slot header marks a block both present and zeroed");
  }
  return h;
}

}  // namespace spindle::server::disk
