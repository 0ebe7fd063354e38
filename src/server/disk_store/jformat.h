// On-disk byte layout of the journaled store, format version 3 (docs/formats/disk.md).
// This file and jformat.cc are the only code that encodes or decodes it.
//
//   [0, 4 KiB)                       superblock
//   [journal_offset, +journal_bytes) circular journal of checksummed, sequence-numbered records
//   [meta_offset, +2 * meta_copy)    two checkpoint copies (A/B) of the whole index
//   [data_offset, +data_chunks*64K)  data area: 64 KiB chunks, each 16 blocks of 4 KiB
//
// All integers little-endian. Every record, checkpoint and the superblock carry a crc32c.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/ids.h"
#include "common/status.h"
#include "common/units.h"
#include "env/file.h"

namespace spindle::server::jdisk {

inline constexpr uint64_t kSuperblockMagic = 0x4b534944444e5053ull;  // "SPNDDISK" (as v1)
inline constexpr uint64_t kCheckpointMagic = 0x54504b43444e5053ull;  // "SPNDCKPT"
inline constexpr uint32_t kRecordMagic = 0x4345524au;                // "JREC"
inline constexpr uint32_t kFormatVersion = 3;
inline constexpr size_t kMetaBlock = 4096;
inline constexpr size_t kMaxClusterIdBytes = 63;
inline constexpr uint32_t kMaxDiskId = 4095;
inline constexpr uint64_t kChunkBlocks = 16;  // thin-allocation unit: 16 x 4 KiB
inline constexpr uint64_t kChunkBytes = kChunkBlocks * kBlockSize;
inline constexpr uint64_t kChunksPerObject = kBlocksPerObject / kChunkBlocks;  // 512
inline constexpr uint32_t kNoChunk = 0xffffffffu;
inline constexpr uint64_t kJournalOffset = 64 * kKiB;
inline constexpr uint64_t kMinJournalBytes = 2 * kMiB;  // twice the largest record
inline constexpr uint64_t kMaxJournalBytes = 256 * kMiB;
inline constexpr uint64_t kMaxRecordBytes = 1 * kMiB;  // a record never exceeds this
// Checkpoint sizes: per object and per chunk record, see EncodeCheckpointBody.
inline constexpr size_t kObjectRecBytes = 28;
inline constexpr size_t kChunkRecBytes = 76;

enum class ObjectState : uint32_t { kUndef = 0, kOk = 1, kOutdated = 2 };

struct Superblock {
  uint32_t format_version = kFormatVersion;
  DiskId disk;
  std::string cluster_id;
  uint64_t device_bytes = 0;
  uint64_t instance = 0;  // random per init; every record and checkpoint carries it
  uint64_t journal_offset = kJournalOffset;
  uint64_t journal_bytes = 0;
  uint64_t meta_offset = 0;
  uint64_t meta_copy_bytes = 0;
  uint64_t data_offset = 0;
  uint32_t data_chunks = 0;
  int64_t init_unix_seconds = 0;

  uint64_t max_objects() const { return data_chunks; }
  uint64_t max_chunk_recs() const { return 2ull * data_chunks; }
  uint64_t ChunkOffset(uint32_t chunk) const { return data_offset + chunk * kChunkBytes; }
};

// Lays out a device of `device_bytes` (journal_bytes 0: device/32 clamped to 1..256 MiB).
// kInvalidArgument when the device is too small for one data chunk.
Result<Superblock> Layout(uint64_t device_bytes, uint64_t journal_bytes);

void EncodeSuperblock(const Superblock& sb, std::span<uint8_t> out);  // out: kMetaBlock
// kFailedPrecondition: not a Spindle disk, or a format version this build does not read
// (the message names it); kCorruption: magic matches, checksum does not.
Result<Superblock> DecodeSuperblock(std::span<const uint8_t> in);
bool HasSuperblockMagic(std::span<const uint8_t> in);

// ---- in-memory index entries (also the checkpoint's body) ----
struct ChunkRec {
  uint16_t index = 0;    // chunk within the object, 0..511
  uint16_t present = 0;  // bit i: block index*16+i holds data
  uint16_t zeroed = 0;   // bit i: block trimmed in this layer (reads stop here: zeros)
  uint32_t disk = kNoChunk;
  std::array<uint32_t, kChunkBlocks> crc{};
};
struct ObjectRec {
  LayerId layer;
  ObjectIndex object;
  ObjectState state = ObjectState::kUndef;
  uint64_t version = 0;
  std::vector<ChunkRec> chunks;  // sorted by index
};

struct CheckpointHeader {
  uint64_t generation = 0;  // the copy with the higher valid generation wins
  uint64_t instance = 0;
  uint64_t last_seq = 0;     // every record <= last_seq is in this checkpoint
  uint64_t journal_pos = 0;  // logical journal position of record last_seq + 1
  uint32_t last_crc = 0;     // crc of record last_seq (the next record's prev_crc)
  uint64_t body_bytes = 0;
  uint32_t body_crc = 0;
  uint32_t objects = 0;
};
void EncodeCheckpointHeader(const CheckpointHeader& h, std::span<uint8_t> out);  // kMetaBlock
Result<CheckpointHeader> DecodeCheckpointHeader(std::span<const uint8_t> in);
// Appends the objects to `out` (kObjectRecBytes + chunks * kChunkRecBytes each).
void EncodeObjectRec(const ObjectRec& o, std::vector<uint8_t>& out);
// Decodes `count` objects; kCorruption on a malformed body.
Result<std::vector<ObjectRec>> DecodeCheckpointBody(std::span<const uint8_t> body, uint32_t count);

// ---- journal records ----
// An install (replica recovery) is kInstallBegin, any number of kInstallData, kInstallEnd:
// a crash leaves the object as before, outdated at version 0, or wholly installed.
enum class RecordType : uint16_t {
  kWrite = 1,
  kTrim = 2,
  kDeleteLayer = 3,
  kInstallBegin = 4,  // object becomes kOutdated, version 0, every chunk freed; then its entries
  kInstallData = 5,   // entries and blocks as a write; version and state unchanged
  kInstallEnd = 6,    // version = record's version, state kOk (version 0: object forgotten)
};
inline constexpr uint16_t kMaxRecordType = 6;
enum class ChunkEntryKind : uint16_t {
  kAlloc = 1,  // chunk `disk` now backs chunk `index` (data follows as inline blocks)
  // chunk `disk` holds the new data of blocks `present`, written in the same durable round as
  // the record (replay drops a record of the last round whose data does not match its crcs)
  kRedirect = 2,
  kZero = 3,  // blocks `present` become zeroed in this layer (`disk` unused: kNoChunk)
};
inline constexpr uint16_t kMaxChunkEntryKind = 3;
struct ChunkEntry {
  uint16_t index = 0;
  ChunkEntryKind kind = ChunkEntryKind::kAlloc;
  uint16_t present = 0;
  uint32_t disk = kNoChunk;
  std::array<uint32_t, kChunkBlocks> crc{};
};
using BlockImage = std::shared_ptr<const env::AlignedBuffer>;  // one 4 KiB block
struct BlockEntry {
  uint16_t block = 0;
  uint32_t crc = 0;
  BlockImage data;
};
struct Record {
  RecordType type = RecordType::kWrite;
  // Position in its durable round (one group commit: one write of the records and their
  // redirected data, one fdatasync); 0 starts a round. Set by Journal::Prepare.
  uint16_t round_index = 0;
  uint64_t seq = 0;
  uint32_t prev_crc = 0;
  uint64_t instance = 0;
  LayerId layer;
  ObjectIndex object;
  uint64_t version = 0;
  uint32_t zero_first = 0;  // kTrim: whole blocks [zero_first, +zero_count) become zeroed
  uint32_t zero_count = 0;
  std::vector<ChunkEntry> chunks;
  std::vector<BlockEntry> blocks;
};

// Bytes the encoded record takes (multiple of 4 KiB).
uint64_t RecordBytes(const Record& r);
// Encodes r into a fresh buffer; returns the record's crc (the next record's prev_crc).
uint32_t EncodeRecord(const Record& r, env::AlignedBuffer& out);
// The same into `out`, which must be RecordBytes(r) long (every byte is written).
uint32_t EncodeRecord(const Record& r, std::span<uint8_t> out);
// Reads the total length from a record's first 4 KiB; 0 when it is not a record header.
uint64_t PeekRecordBytes(std::span<const uint8_t> first_block);
// Decodes a whole record, checking magic, length and crc; kCorruption when invalid.
Result<Record> DecodeRecord(std::span<const uint8_t> in, uint32_t* crc_out);

uint32_t LoadU32(const uint8_t* p);
uint64_t LoadU64(const uint8_t* p);
void StoreU32(uint8_t* p, uint32_t v);
void StoreU64(uint8_t* p, uint64_t v);

}  // namespace spindle::server::jdisk
