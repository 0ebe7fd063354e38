// On-disk byte layout of the simple slot store, format version 1 (docs/formats/disk.md).
// This file is the only place that encodes or decodes it.
//
//   [0, 4096)                      superblock
//   slot i at kSlotsOffset + i * kSlotStride:
//     [0, 4096)                    slot header: identity, version, state, presence bitmap
//     [4096, 4096 + 32 KiB)        crc32c of each of the object's 8192 blocks (u32 LE)
//     [kSlotMetaSize, +32 MiB)     the object's data, block b at b * 4096
//
// All integers are little-endian. Every 4 KiB metadata block ends with the crc32c of its first
// 4092 bytes. An all-zero slot header means a free slot.
#pragma once

#include <bitset>
#include <cstdint>
#include <span>
#include <string>

#include "common/ids.h"
#include "common/status.h"
#include "common/units.h"

namespace spindle::server::disk {

inline constexpr uint64_t kSuperblockMagic = 0x4b534944444e5053ull;  // "SPNDDISK"
inline constexpr uint64_t kSlotMagic = 0x544f4c53444e5053ull;        // "SPNDSLOT"
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr size_t kMetaBlockSize = 4096;
inline constexpr size_t kMaxClusterIdBytes = 63;
inline constexpr uint64_t kSuperblockOffset = 0;
inline constexpr uint64_t kSlotsOffset = kMetaBlockSize;
inline constexpr uint64_t kCrcsPerMetaBlock = kMetaBlockSize / 4;            // 1024
inline constexpr uint64_t kCrcRegionBytes = kBlocksPerObject * 4;            // 32 KiB
inline constexpr uint64_t kSlotMetaSize = kMetaBlockSize + kCrcRegionBytes;  // 36 KiB
inline constexpr uint64_t kSlotStride = kSlotMetaSize + kObjectSize;
// The smallest disk holds one slot.
inline constexpr uint64_t kMinDeviceBytes = kSlotsOffset + kSlotStride;
// Slot indexes are u32 in memory; a larger device would need a new format.
inline constexpr uint64_t kMaxSlots = 1ull << 24;

// StorPool object states (reference/storpool-api.md) that this store records.
enum class ObjectState : uint32_t { kUndef = 0, kOk = 1, kOutdated = 2 };

using BlockBitmap = std::bitset<kBlocksPerObject>;

struct Superblock {
  uint32_t format_version = kFormatVersion;
  DiskId disk;
  std::string cluster_id;
  uint64_t device_bytes = 0;  // size given at init; slots never extend past it
  uint32_t slot_count = 0;
  int64_t init_unix_seconds = 0;
};

struct SlotHeader {
  LayerId layer;
  ObjectIndex object;
  uint32_t state = static_cast<uint32_t>(ObjectState::kUndef);
  uint64_t version = 0;
  BlockBitmap present;  // the block's data is stored in this slot
  // The block was trimmed in this layer: it reads as zeros whatever lower layers of a chain
  // hold. Never set together with `present` for the same block.
  BlockBitmap zeroed;
};

uint32_t SlotCountFor(uint64_t device_bytes);
inline uint64_t SlotOffset(uint32_t slot) {
  return kSlotsOffset + slot * kSlotStride;
}
inline uint64_t SlotCrcOffset(uint32_t slot) {
  return SlotOffset(slot) + kMetaBlockSize;
}
inline uint64_t SlotDataOffset(uint32_t slot) {
  return SlotOffset(slot) + kSlotMetaSize;
}

// out: kMetaBlockSize bytes. Encode asserts the fields fit.
void EncodeSuperblock(const Superblock& sb, std::span<uint8_t> out);
// kFailedPrecondition when the block is not a Spindle superblock at all or names an unknown
// format version; kCorruption when the magic matches but the checksum does not.
Result<Superblock> DecodeSuperblock(std::span<const uint8_t> in);

// True when the block starts with the superblock magic (whatever its state).
bool HasSuperblockMagic(std::span<const uint8_t> in);

void EncodeSlotHeader(const SlotHeader& h, std::span<uint8_t> out);
// An all-zero block is kNotFound (a free slot); a bad magic or checksum is
// kCorruption.
Result<SlotHeader> DecodeSlotHeader(std::span<const uint8_t> in);

uint32_t LoadU32(const uint8_t* p);
void StoreU32(uint8_t* p, uint32_t v);

}  // namespace spindle::server::disk
