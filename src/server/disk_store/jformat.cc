#include "server/disk_store/jformat.h"

#include <algorithm>
#include <cstring>

#include "common/assert.h"
#include "common/crc32c.h"

namespace spindle::server::jdisk {
namespace {

constexpr size_t kCrcAt = kMetaBlock - 4;
// Superblock field offsets.
constexpr size_t kSbMagic = 0, kSbVersion = 8, kSbDisk = 12, kSbCluster = 16, kSbDevice = 80;
constexpr size_t kSbInstance = 88, kSbJOff = 96, kSbJBytes = 104, kSbMOff = 112, kSbMCopy = 120;
constexpr size_t kSbDOff = 128, kSbChunks = 136, kSbChunkBytes = 140, kSbInit = 144;
// Checkpoint header field offsets.
constexpr size_t kCkMagic = 0, kCkGen = 8, kCkInstance = 16, kCkSeq = 24, kCkPos = 32;
constexpr size_t kCkLastCrc = 40, kCkBodyCrc = 44, kCkBodyBytes = 48, kCkObjects = 56;
// Record header field offsets.
constexpr size_t kRhMagic = 0, kRhType = 4, kRhChunks = 6, kRhBytes = 8, kRhBlocks = 12;
constexpr size_t kRhRound = 14, kRhSeq = 16, kRhInstance = 24, kRhLayer = 32, kRhObject = 40,
                 kRhPrev = 44;
constexpr size_t kRhVersion = 48, kRhZeroFirst = 56, kRhZeroCount = 58, kRhCrc = 60;
constexpr size_t kRhFixed = 64, kChunkEntryBytes = 76, kBlockEntryBytes = 8;

uint16_t LoadU16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
void StoreU16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
uint64_t RoundUp(uint64_t v, uint64_t a) {
  return (v + a - 1) / a * a;
}
void SealBlock(std::span<uint8_t> out) {
  StoreU32(out.data() + kCrcAt, Crc32c(out.data(), kCrcAt));
}
bool BlockSealed(std::span<const uint8_t> in) {
  return LoadU32(in.data() + kCrcAt) == Crc32c(in.data(), kCrcAt);
}

uint64_t RecordHeaderBytes(size_t chunks, size_t blocks) {
  return RoundUp(kRhFixed + chunks * kChunkEntryBytes + blocks * kBlockEntryBytes, kBlockSize);
}

void EncodeChunkEntry(const ChunkEntry& c, uint8_t* p) {
  StoreU16(p, c.index);
  StoreU16(p + 2, static_cast<uint16_t>(c.kind));
  StoreU16(p + 4, c.present);
  StoreU32(p + 8, c.disk);
  for (size_t i = 0; i < kChunkBlocks; ++i) StoreU32(p + 12 + 4 * i, c.crc[i]);
}
ChunkEntry DecodeChunkEntry(const uint8_t* p) {
  ChunkEntry c;
  c.index = LoadU16(p);
  c.kind = static_cast<ChunkEntryKind>(LoadU16(p + 2));
  c.present = LoadU16(p + 4);
  c.disk = LoadU32(p + 8);
  for (size_t i = 0; i < kChunkBlocks; ++i) c.crc[i] = LoadU32(p + 12 + 4 * i);
  return c;
}

// Record crc: crc32c of the whole record with the crc field read as zero.
uint32_t RecordCrc(std::span<const uint8_t> rec) {
  static const uint8_t kZero[4] = {0, 0, 0, 0};
  uint32_t crc = Crc32c(rec.data(), kRhCrc);
  crc = Crc32cExtend(crc, kZero, 4);
  return Crc32cExtend(crc, rec.data() + kRhCrc + 4, rec.size() - kRhCrc - 4);
}

Status CheckRecordShape(const Record& r, std::span<const uint8_t> in) {
  if (r.chunks.size() > kChunksPerObject || r.blocks.size() > kBlocksPerObject ||
      r.zero_first + static_cast<uint64_t>(r.zero_count) > kBlocksPerObject) {
    return Error(Code::kCorruption, "record {} has out-of-range counts", r.seq);
  }
  const auto type = static_cast<uint16_t>(r.type);
  if (type == 0 || type > kMaxRecordType) return Error(Code::kCorruption, "bad record type");
  for (const ChunkEntry& c : r.chunks) {
    if (c.index >= kChunksPerObject) return Error(Code::kCorruption, "bad chunk index");
    const auto kind = static_cast<uint16_t>(c.kind);
    if (kind == 0 || kind > kMaxChunkEntryKind) return Error(Code::kCorruption, "bad chunk kind");
  }
  for (const BlockEntry& b : r.blocks) {
    if (b.block >= kBlocksPerObject) return Error(Code::kCorruption, "bad block index");
  }
  if (RecordBytes(r) != in.size()) return Error(Code::kCorruption, "record length mismatch");
  return Status::Ok();
}

}  // namespace

uint32_t LoadU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t LoadU64(const uint8_t* p) {
  return static_cast<uint64_t>(LoadU32(p)) | (static_cast<uint64_t>(LoadU32(p + 4)) << 32);
}
void StoreU32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void StoreU64(uint8_t* p, uint64_t v) {
  StoreU32(p, static_cast<uint32_t>(v));
  StoreU32(p + 4, static_cast<uint32_t>(v >> 32));
}

Result<Superblock> Layout(uint64_t device_bytes, uint64_t journal_bytes) {
  Superblock sb;
  sb.device_bytes = device_bytes;
  if (journal_bytes == 0) journal_bytes = device_bytes / 32;
  journal_bytes =
      std::clamp(journal_bytes / kBlockSize * kBlockSize, kMinJournalBytes, kMaxJournalBytes);
  sb.journal_bytes = journal_bytes;
  sb.meta_offset = RoundUp(sb.journal_offset + journal_bytes, kChunkBytes);
  const uint64_t per_chunk_meta = kObjectRecBytes + 2 * kChunkRecBytes;
  if (device_bytes <= sb.meta_offset) {
    return Error(Code::kInvalidArgument, "{} bytes is too small for a journal of {} bytes",
                 device_bytes, journal_bytes);
  }
  uint64_t chunks = (device_bytes - sb.meta_offset) / (kChunkBytes + 2 * per_chunk_meta);
  chunks = std::min<uint64_t>(chunks, kNoChunk - 1);
  for (; chunks > 0; --chunks) {
    sb.meta_copy_bytes = RoundUp(kMetaBlock + chunks * per_chunk_meta, kChunkBytes);
    sb.data_offset = sb.meta_offset + 2 * sb.meta_copy_bytes;
    if (sb.data_offset + chunks * kChunkBytes <= device_bytes) break;
  }
  if (chunks == 0) {
    return Error(Code::kInvalidArgument, "{} bytes is too small for one data chunk", device_bytes);
  }
  sb.data_chunks = static_cast<uint32_t>(chunks);
  return sb;
}

bool HasSuperblockMagic(std::span<const uint8_t> in) {
  return in.size() >= 8 && LoadU64(in.data()) == kSuperblockMagic;
}

void EncodeSuperblock(const Superblock& sb, std::span<uint8_t> out) {
  SP_ASSERT(out.size() >= kMetaBlock && sb.cluster_id.size() <= kMaxClusterIdBytes);
  std::memset(out.data(), 0, kMetaBlock);
  uint8_t* p = out.data();
  StoreU64(p + kSbMagic, kSuperblockMagic);
  StoreU32(p + kSbVersion, sb.format_version);
  StoreU32(p + kSbDisk, sb.disk.value());
  std::memcpy(p + kSbCluster, sb.cluster_id.data(), sb.cluster_id.size());
  StoreU64(p + kSbDevice, sb.device_bytes);
  StoreU64(p + kSbInstance, sb.instance);
  StoreU64(p + kSbJOff, sb.journal_offset);
  StoreU64(p + kSbJBytes, sb.journal_bytes);
  StoreU64(p + kSbMOff, sb.meta_offset);
  StoreU64(p + kSbMCopy, sb.meta_copy_bytes);
  StoreU64(p + kSbDOff, sb.data_offset);
  StoreU32(p + kSbChunks, sb.data_chunks);
  StoreU32(p + kSbChunkBytes, static_cast<uint32_t>(kChunkBytes));
  StoreU64(p + kSbInit, static_cast<uint64_t>(sb.init_unix_seconds));
  SealBlock(out);
}

Result<Superblock> DecodeSuperblock(std::span<const uint8_t> in) {
  if (in.size() < kMetaBlock || !HasSuperblockMagic(in)) {
    return Error(Code::kFailedPrecondition, "not a Spindle disk (no superblock magic)");
  }
  if (!BlockSealed(in)) return Error(Code::kCorruption, "superblock checksum mismatch");
  const uint8_t* p = in.data();
  Superblock sb;
  sb.format_version = LoadU32(p + kSbVersion);
  if (sb.format_version != kFormatVersion) {
    return Error(Code::kFailedPrecondition,
                 "disk format version {} is not supported by this build (reads version {})",
                 sb.format_version, kFormatVersion);
  }
  sb.disk = DiskId(LoadU32(p + kSbDisk));
  const char* cid = reinterpret_cast<const char*>(p + kSbCluster);
  sb.cluster_id.assign(cid, strnlen(cid, kMaxClusterIdBytes));
  sb.device_bytes = LoadU64(p + kSbDevice);
  sb.instance = LoadU64(p + kSbInstance);
  sb.journal_offset = LoadU64(p + kSbJOff);
  sb.journal_bytes = LoadU64(p + kSbJBytes);
  sb.meta_offset = LoadU64(p + kSbMOff);
  sb.meta_copy_bytes = LoadU64(p + kSbMCopy);
  sb.data_offset = LoadU64(p + kSbDOff);
  sb.data_chunks = LoadU32(p + kSbChunks);
  sb.init_unix_seconds = static_cast<int64_t>(LoadU64(p + kSbInit));
  auto expect = Layout(sb.device_bytes, sb.journal_bytes);
  if (LoadU32(p + kSbChunkBytes) != kChunkBytes || !expect.ok() ||
      expect->meta_offset != sb.meta_offset || expect->data_offset != sb.data_offset ||
      expect->data_chunks != sb.data_chunks || sb.disk.value() > kMaxDiskId) {
    return Error(Code::kFailedPrecondition, "superblock geometry is not one this build writes");
  }
  return sb;
}

void EncodeCheckpointHeader(const CheckpointHeader& h, std::span<uint8_t> out) {
  std::memset(out.data(), 0, kMetaBlock);
  uint8_t* p = out.data();
  StoreU64(p + kCkMagic, kCheckpointMagic);
  StoreU64(p + kCkGen, h.generation);
  StoreU64(p + kCkInstance, h.instance);
  StoreU64(p + kCkSeq, h.last_seq);
  StoreU64(p + kCkPos, h.journal_pos);
  StoreU32(p + kCkLastCrc, h.last_crc);
  StoreU32(p + kCkBodyCrc, h.body_crc);
  StoreU64(p + kCkBodyBytes, h.body_bytes);
  StoreU32(p + kCkObjects, h.objects);
  SealBlock(out);
}

Result<CheckpointHeader> DecodeCheckpointHeader(std::span<const uint8_t> in) {
  const uint8_t* p = in.data();
  if (LoadU64(p + kCkMagic) != kCheckpointMagic) {
    return Error(Code::kNotFound, "no checkpoint header");
  }
  if (!BlockSealed(in)) return Error(Code::kCorruption, "checkpoint header checksum mismatch");
  CheckpointHeader h;
  h.generation = LoadU64(p + kCkGen);
  h.instance = LoadU64(p + kCkInstance);
  h.last_seq = LoadU64(p + kCkSeq);
  h.journal_pos = LoadU64(p + kCkPos);
  h.last_crc = LoadU32(p + kCkLastCrc);
  h.body_crc = LoadU32(p + kCkBodyCrc);
  h.body_bytes = LoadU64(p + kCkBodyBytes);
  h.objects = LoadU32(p + kCkObjects);
  return h;
}

void EncodeObjectRec(const ObjectRec& o, std::vector<uint8_t>& out) {
  size_t at = out.size();
  out.resize(at + kObjectRecBytes + o.chunks.size() * kChunkRecBytes);
  uint8_t* p = out.data() + at;
  StoreU64(p, o.layer.value());
  StoreU32(p + 8, o.object.value());
  StoreU32(p + 12, static_cast<uint32_t>(o.state));
  StoreU64(p + 16, o.version);
  StoreU32(p + 24, static_cast<uint32_t>(o.chunks.size()));
  p += kObjectRecBytes;
  for (const ChunkRec& c : o.chunks) {
    StoreU16(p, c.index);
    StoreU16(p + 2, c.present);
    StoreU16(p + 4, c.zeroed);
    StoreU32(p + 8, c.disk);
    for (size_t i = 0; i < kChunkBlocks; ++i) StoreU32(p + 12 + 4 * i, c.crc[i]);
    p += kChunkRecBytes;
  }
}

Result<std::vector<ObjectRec>> DecodeCheckpointBody(std::span<const uint8_t> body, uint32_t count) {
  std::vector<ObjectRec> out;
  out.reserve(count);
  size_t at = 0;
  for (uint32_t i = 0; i < count; ++i) {
    if (at + kObjectRecBytes > body.size()) return Error(Code::kCorruption, "checkpoint truncated");
    const uint8_t* p = body.data() + at;
    ObjectRec o;
    o.layer = LayerId(LoadU64(p));
    o.object = ObjectIndex(LoadU32(p + 8));
    o.state = static_cast<ObjectState>(LoadU32(p + 12));
    o.version = LoadU64(p + 16);
    uint32_t n = LoadU32(p + 24);
    at += kObjectRecBytes;
    if (n > kChunksPerObject || at + n * kChunkRecBytes > body.size()) {
      return Error(Code::kCorruption, "checkpoint object {} has a bad chunk count", i);
    }
    o.chunks.resize(n);
    for (ChunkRec& c : o.chunks) {
      p = body.data() + at;
      c.index = LoadU16(p);
      c.present = LoadU16(p + 2);
      c.zeroed = LoadU16(p + 4);
      c.disk = LoadU32(p + 8);
      for (size_t k = 0; k < kChunkBlocks; ++k) c.crc[k] = LoadU32(p + 12 + 4 * k);
      at += kChunkRecBytes;
    }
    out.push_back(std::move(o));
  }
  return out;
}

uint64_t RecordBytes(const Record& r) {
  return RecordHeaderBytes(r.chunks.size(), r.blocks.size()) + r.blocks.size() * kBlockSize;
}

uint32_t EncodeRecord(const Record& r, env::AlignedBuffer& out) {
  out = env::AlignedBuffer(RecordBytes(r), env::AlignedBuffer::Fill::kNone);
  return EncodeRecord(r, out.span());
}

uint32_t EncodeRecord(const Record& r, std::span<uint8_t> out) {
  const uint64_t total = RecordBytes(r);
  SP_ASSERT(total <= kMaxRecordBytes && out.size() == total);
  uint8_t* p = out.data();
  // The header and its padding; the block images fill the rest.
  std::memset(p, 0, RecordHeaderBytes(r.chunks.size(), r.blocks.size()));
  StoreU32(p + kRhMagic, kRecordMagic);
  StoreU16(p + kRhType, static_cast<uint16_t>(r.type));
  StoreU16(p + kRhChunks, static_cast<uint16_t>(r.chunks.size()));
  StoreU32(p + kRhBytes, static_cast<uint32_t>(total));
  StoreU16(p + kRhBlocks, static_cast<uint16_t>(r.blocks.size()));
  StoreU16(p + kRhRound, r.round_index);
  StoreU64(p + kRhSeq, r.seq);
  StoreU64(p + kRhInstance, r.instance);
  StoreU64(p + kRhLayer, r.layer.value());
  StoreU32(p + kRhObject, r.object.value());
  StoreU32(p + kRhPrev, r.prev_crc);
  StoreU64(p + kRhVersion, r.version);
  StoreU16(p + kRhZeroFirst, static_cast<uint16_t>(r.zero_first));
  StoreU16(p + kRhZeroCount, static_cast<uint16_t>(r.zero_count));
  uint8_t* e = p + kRhFixed;
  for (const ChunkEntry& c : r.chunks) {
    EncodeChunkEntry(c, e);
    e += kChunkEntryBytes;
  }
  uint8_t* d = p + RecordHeaderBytes(r.chunks.size(), r.blocks.size());
  for (const BlockEntry& b : r.blocks) {
    StoreU16(e, b.block);
    StoreU32(e + 4, b.crc);
    e += kBlockEntryBytes;
    std::memcpy(d, b.data->data(), kBlockSize);
    d += kBlockSize;
  }
  uint32_t crc = RecordCrc(out);
  StoreU32(p + kRhCrc, crc);
  return crc;
}

uint64_t PeekRecordBytes(std::span<const uint8_t> first) {
  if (first.size() < kBlockSize || LoadU32(first.data() + kRhMagic) != kRecordMagic) return 0;
  uint64_t n = LoadU32(first.data() + kRhBytes);
  if (n < kBlockSize || n % kBlockSize != 0 || n > kMaxRecordBytes) return 0;
  return n;
}

Result<Record> DecodeRecord(std::span<const uint8_t> in, uint32_t* crc_out) {
  if (PeekRecordBytes(in) != in.size()) return Error(Code::kCorruption, "not a record");
  const uint8_t* p = in.data();
  uint32_t crc = LoadU32(p + kRhCrc);
  if (crc != RecordCrc(in)) return Error(Code::kCorruption, "record checksum mismatch");
  Record r;
  r.type = static_cast<RecordType>(LoadU16(p + kRhType));
  r.round_index = LoadU16(p + kRhRound);
  r.seq = LoadU64(p + kRhSeq);
  r.instance = LoadU64(p + kRhInstance);
  r.layer = LayerId(LoadU64(p + kRhLayer));
  r.object = ObjectIndex(LoadU32(p + kRhObject));
  r.prev_crc = LoadU32(p + kRhPrev);
  r.version = LoadU64(p + kRhVersion);
  r.zero_first = LoadU16(p + kRhZeroFirst);
  r.zero_count = LoadU16(p + kRhZeroCount);
  size_t nchunks = LoadU16(p + kRhChunks), nblocks = LoadU16(p + kRhBlocks);
  if (RecordHeaderBytes(nchunks, nblocks) + nblocks * kBlockSize != in.size()) {
    return Error(Code::kCorruption, "record {} length does not match its entries", r.seq);
  }
  const uint8_t* e = p + kRhFixed;
  for (size_t i = 0; i < nchunks; ++i, e += kChunkEntryBytes) {
    r.chunks.push_back(DecodeChunkEntry(e));
  }
  const uint8_t* d = p + RecordHeaderBytes(nchunks, nblocks);
  for (size_t i = 0; i < nblocks; ++i, e += kBlockEntryBytes, d += kBlockSize) {
    auto img = std::make_shared<env::AlignedBuffer>(kBlockSize);
    std::memcpy(img->data(), d, kBlockSize);
    r.blocks.push_back(BlockEntry{LoadU16(e), LoadU32(e + 4), std::move(img)});
  }
  SP_RETURN_IF_ERROR(CheckRecordShape(r, in));
  if (crc_out != nullptr) *crc_out = crc;
  return r;
}

}  // namespace spindle::server::jdisk
