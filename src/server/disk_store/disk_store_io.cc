// DiskStore: the write and read paths.
#include <algorithm>
#include <cstring>

#include "common/crc32c.h"
#include "common/log.h"
#include "server/disk_store/disk_store.h"

namespace spindle::server::disk {
namespace {

Status CheckRange(uint32_t offset, size_t length) {
  if (length == 0 || offset % kSectorSize != 0 || length % kSectorSize != 0 ||
      offset + static_cast<uint64_t>(length) > kObjectSize) {
    return Error(Code::kInvalidArgument,
                 "bad range offset {} length {} (sector-aligned, non-empty, within {} bytes)",
                 offset, length, kObjectSize);
  }
  return Status::Ok();
}

struct BlockSpan {
  uint32_t first = 0;
  uint32_t count = 0;
};
BlockSpan BlocksOf(uint32_t offset, size_t length) {
  uint32_t first = static_cast<uint32_t>(offset / kBlockSize);
  uint32_t last = static_cast<uint32_t>((offset + length - 1) / kBlockSize);
  return {first, last - first + 1};
}

// The crc metadata blocks covering blocks [first, first + count).
struct CrcSpan {
  uint64_t file_offset = 0;
  uint32_t first_crc = 0;  // block index of the first crc in the buffer
  size_t bytes = 0;
};
CrcSpan CrcBlocksOf(uint32_t slot, BlockSpan b) {
  uint32_t m0 = static_cast<uint32_t>(b.first / kCrcsPerMetaBlock);
  uint32_t m1 = static_cast<uint32_t>((b.first + b.count - 1) / kCrcsPerMetaBlock);
  return {SlotCrcOffset(slot) + m0 * kMetaBlockSize, static_cast<uint32_t>(m0 * kCrcsPerMetaBlock),
          (m1 - m0 + 1) * kMetaBlockSize};
}

Status ReadExact(env::File& file, uint64_t offset, std::span<uint8_t> buf) {
  SP_ASSIGN_OR_RETURN(size_t n, file.PRead(offset, buf));
  if (n != buf.size()) {
    return Error(Code::kIoError, "{}: short read at {} ({} of {} bytes)", file.path(), offset, n,
                 buf.size());
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<DiskStore::Slot>> DiskStore::Allocate() {
  std::lock_guard lock(mu_);
  if (free_.empty()) {
    return Error(Code::kResourceExhausted, "{}: all {} object slots are in use", path(),
                 sb_.slot_count);
  }
  auto slot = std::make_unique<Slot>(free_.back());
  free_.pop_back();
  return slot;
}

void DiskStore::Release(std::unique_ptr<Slot> slot) {
  std::lock_guard lock(mu_);
  free_.push_back(slot->index);
}

Status DiskStore::ReadVerified(const Slot& slot, uint32_t first, uint32_t count,
                               uint8_t* dst) const {
  SP_RETURN_IF_ERROR(ReadExact(*file_, SlotDataOffset(slot.index) + first * kBlockSize,
                               {dst, count * kBlockSize}));
  CrcSpan cs = CrcBlocksOf(slot.index, {first, count});
  env::AlignedBuffer crcs(cs.bytes);
  SP_RETURN_IF_ERROR(ReadExact(*file_, cs.file_offset, crcs.span()));
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t block = first + i;
    uint32_t stored = LoadU32(crcs.data() + (block - cs.first_crc) * 4);
    uint32_t actual = Crc32c(dst + i * kBlockSize, kBlockSize);
    if (stored != actual) {
      return Error(Code::kCorruption,
                   "disk {} layer {} object {} block {}: crc32c {:08x} stored, {:08x} read",
                   sb_.disk.value(), slot.header.layer.value(), slot.header.object.value(), block,
                   stored, actual);
    }
  }
  return Status::Ok();
}

Result<uint64_t> DiskStore::Write(LayerId layer, ObjectIndex object, uint64_t version,
                                  uint32_t offset, std::span<const uint8_t> data) {
  SP_RETURN_IF_ERROR(CheckRange(offset, data.size()));
  return Versioned(layer, object, version,
                   [&](Slot& slot) { return ApplyWrite(slot, version, offset, data); });
}

Result<uint64_t> DiskStore::Versioned(LayerId layer, ObjectIndex object, uint64_t version,
                                      const std::function<Status(Slot&)>& apply) {
  if (version == 0) return Error(Code::kInvalidArgument, "version 0 is never written");
  Slot* existing = Find(layer, object);
  uint64_t current = existing ? Info(layer, object).version : 0;
  if (version <= current) return current;
  if (version != current + 1) {
    return Error(Code::kFailedPrecondition, "layer {} object {} is at version {}, not {}",
                 layer.value(), object.value(), current, version - 1);
  }
  if (existing != nullptr) {
    std::unique_lock lock(existing->mu);
    SP_RETURN_IF_ERROR(apply(*existing));
    return version;
  }
  SP_ASSIGN_OR_RETURN(auto fresh, Allocate());
  fresh->header.layer = layer;
  fresh->header.object = object;
  Status s = apply(*fresh);
  if (!s.ok()) {
    Release(std::move(fresh));
    return s;
  }
  std::lock_guard lock(mu_);
  index_.emplace(Key{layer.value(), object.value()}, std::move(fresh));
  return version;
}

Status DiskStore::ApplyWrite(Slot& slot, uint64_t version, uint32_t offset,
                             std::span<const uint8_t> data) {
  const BlockSpan b = BlocksOf(offset, data.size());
  const uint32_t last = b.first + b.count - 1;
  const bool head_partial = offset % kBlockSize != 0;
  const bool tail_partial = (offset + data.size()) % kBlockSize != 0;
  env::AlignedBuffer buf(b.count * kBlockSize);
  // Sub-block writes keep the rest of their block: read (and verify) it first.
  if (head_partial && slot.header.present[b.first]) {
    SP_RETURN_IF_ERROR(ReadVerified(slot, b.first, 1, buf.data()));
  }
  if (tail_partial && slot.header.present[last] && !(head_partial && b.count == 1)) {
    SP_RETURN_IF_ERROR(ReadVerified(slot, last, 1, buf.data() + (b.count - 1) * kBlockSize));
  }
  std::memcpy(buf.data() + offset % kBlockSize, data.data(), data.size());

  CrcSpan cs = CrcBlocksOf(slot.index, b);
  env::AlignedBuffer crcs(cs.bytes);
  SP_RETURN_IF_ERROR(ReadExact(*file_, cs.file_offset, crcs.span()));
  for (uint32_t i = 0; i < b.count; ++i) {
    StoreU32(crcs.data() + (b.first + i - cs.first_crc) * 4,
             Crc32c(buf.data() + i * kBlockSize, kBlockSize));
  }
  SlotHeader header = slot.header;
  header.version = version;
  header.state = static_cast<uint32_t>(ObjectState::kOk);
  for (uint32_t i = 0; i < b.count; ++i) {
    header.present[b.first + i] = true;
    header.zeroed[b.first + i] = false;
  }
  env::AlignedBuffer hblock(kMetaBlockSize);
  EncodeSlotHeader(header, hblock.span());

  SP_RETURN_IF_ERROR(file_->PWrite(SlotDataOffset(slot.index) + b.first * kBlockSize, buf.span()));
  SP_RETURN_IF_ERROR(file_->PWrite(cs.file_offset, crcs.span()));
  SP_RETURN_IF_ERROR(file_->PWrite(SlotOffset(slot.index), hblock.span()));
  SP_RETURN_IF_ERROR(file_->DataSync());

  std::lock_guard lock(mu_);
  blocks_stored_ += header.present.count() - slot.header.present.count();
  slot.header = std::move(header);
  return Status::Ok();
}

Status DiskStore::Read(std::span<const LayerId> chain, ObjectIndex object, uint32_t offset,
                       std::span<uint8_t> out) {
  SP_RETURN_IF_ERROR(CheckRange(offset, out.size()));
  if (chain.empty() || chain.size() > kMaxChainLength) {
    return Error(Code::kInvalidArgument, "chain of {} layers (1..{})", chain.size(),
                 kMaxChainLength);
  }
  const BlockSpan b = BlocksOf(offset, out.size());
  env::AlignedBuffer buf(b.count * kBlockSize);  // zeros where no layer has the block
  std::vector<bool> filled(b.count, false);
  for (LayerId layer : chain) {
    const Slot* slot = Find(layer, object);
    if (slot == nullptr) continue;
    std::shared_lock lock(slot->mu);
    SP_RETURN_IF_ERROR(ReadChainLayer(*slot, b.first, b.count, filled, buf.data()));
  }
  std::memcpy(out.data(), buf.data() + offset % kBlockSize, out.size());
  return Status::Ok();
}

Status DiskStore::ReadChainLayer(const Slot& slot, uint32_t first, uint32_t count,
                                 std::vector<bool>& filled, uint8_t* dst) const {
  for (uint32_t j = 0; j < count; ++j) {
    if (slot.header.zeroed[first + j]) filled[j] = true;  // trimmed here: zeros (dst is zero)
  }
  auto wanted = [&](uint32_t i) { return !filled[i] && slot.header.present[first + i]; };
  uint32_t i = 0;
  while (i < count) {
    if (!wanted(i)) {
      ++i;
      continue;
    }
    uint32_t run = i;
    while (run < count && wanted(run)) ++run;
    SP_RETURN_IF_ERROR(ReadVerified(slot, first + i, run - i, dst + i * kBlockSize));
    for (uint32_t j = i; j < run; ++j) filled[j] = true;
    i = run;
  }
  return Status::Ok();
}

}  // namespace spindle::server::disk

namespace spindle::server::disk {

Result<uint64_t> DiskStore::Trim(LayerId layer, ObjectIndex object, uint64_t version,
                                 uint32_t offset, uint32_t length) {
  SP_RETURN_IF_ERROR(CheckRange(offset, length));
  return Versioned(layer, object, version,
                   [&](Slot& slot) { return ApplyTrim(slot, version, offset, length); });
}

Status DiskStore::ApplyTrim(Slot& slot, uint64_t version, uint32_t offset, uint32_t length) {
  const BlockSpan b = BlocksOf(offset, length);
  const uint64_t end = static_cast<uint64_t>(offset) + length;
  SlotHeader header = slot.header;
  header.version = version;
  header.state = static_cast<uint32_t>(ObjectState::kOk);
  BlockBitmap freed;  // whole blocks whose stored data can be punched out
  for (uint32_t block = b.first; block < b.first + b.count; ++block) {
    const uint64_t start = static_cast<uint64_t>(block) * kBlockSize;
    if (offset <= start && start + kBlockSize <= end) {
      freed[block] = header.present[block];
      header.present[block] = false;
      header.zeroed[block] = true;
      continue;
    }
    if (!header.present[block]) continue;  // zeroed or absent: see the header's limitation
    const uint32_t from = static_cast<uint32_t>(std::max<uint64_t>(offset, start) - start);
    const uint32_t to = static_cast<uint32_t>(std::min<uint64_t>(end, start + kBlockSize) - start);
    SP_RETURN_IF_ERROR(ZeroPartOfBlock(slot, block, from, to));
  }
  env::AlignedBuffer hblock(kMetaBlockSize);
  EncodeSlotHeader(header, hblock.span());
  SP_RETURN_IF_ERROR(file_->PWrite(SlotOffset(slot.index), hblock.span()));
  SP_RETURN_IF_ERROR(file_->DataSync());
  // Only now that no durable header points at the data may its space go.
  PunchBlocks(slot, freed);
  std::lock_guard lock(mu_);
  blocks_stored_ -= slot.header.present.count() - header.present.count();
  slot.header = std::move(header);
  return Status::Ok();
}

Status DiskStore::ZeroPartOfBlock(Slot& slot, uint32_t block, uint32_t from, uint32_t to) {
  env::AlignedBuffer buf(kBlockSize);
  SP_RETURN_IF_ERROR(ReadVerified(slot, block, 1, buf.data()));
  std::memset(buf.data() + from, 0, to - from);
  CrcSpan cs = CrcBlocksOf(slot.index, {block, 1});
  env::AlignedBuffer crcs(cs.bytes);
  SP_RETURN_IF_ERROR(ReadExact(*file_, cs.file_offset, crcs.span()));
  StoreU32(crcs.data() + (block - cs.first_crc) * 4, Crc32c(buf.data(), kBlockSize));
  SP_RETURN_IF_ERROR(file_->PWrite(SlotDataOffset(slot.index) + block * kBlockSize, buf.span()));
  return file_->PWrite(cs.file_offset, crcs.span());
}

void DiskStore::PunchBlocks(const Slot& slot, const BlockBitmap& freed) {
  uint32_t i = 0;
  while (i < kBlocksPerObject) {
    if (!freed[i]) {
      ++i;
      continue;
    }
    uint32_t run = i;
    while (run < kBlocksPerObject && freed[run]) ++run;
    Status s = file_->PunchHole(SlotDataOffset(slot.index) + uint64_t{i} * kBlockSize,
                                uint64_t{run - i} * kBlockSize);
    // The trim is already durable; an unpunched range only wastes space.
    if (!s.ok() && s.code() != Code::kUnimplemented) {
      SP_LOG_WARN("trim layer {} object {}: {}", slot.header.layer.value(),
                  slot.header.object.value(), s.message());
    }
    i = run;
  }
}

Result<std::vector<bool>> DiskStore::BlockStatus(std::span<const LayerId> chain, ObjectIndex object,
                                                 uint32_t offset, uint32_t length) const {
  if (length == 0 || offset % kBlockSize != 0 || length % kBlockSize != 0 ||
      uint64_t{offset} + length > kObjectSize) {
    return Error(Code::kInvalidArgument,
                 "block status range offset {} length {} (4 KiB-aligned, non-empty, within {})",
                 offset, length, kObjectSize);
  }
  if (chain.empty() || chain.size() > kMaxChainLength) {
    return Error(Code::kInvalidArgument, "chain of {} layers (1..{})", chain.size(),
                 kMaxChainLength);
  }
  const uint32_t first = static_cast<uint32_t>(offset / kBlockSize);
  const uint32_t count = static_cast<uint32_t>(length / kBlockSize);
  std::vector<bool> data(count, false), decided(count, false);
  for (LayerId layer : chain) {
    const Slot* slot = Find(layer, object);
    if (slot == nullptr) continue;
    std::shared_lock lock(slot->mu);
    for (uint32_t i = 0; i < count; ++i) {
      if (decided[i]) continue;
      if (slot->header.present[first + i]) data[i] = decided[i] = true;
      if (slot->header.zeroed[first + i]) decided[i] = true;
    }
  }
  return data;
}

}  // namespace spindle::server::disk
