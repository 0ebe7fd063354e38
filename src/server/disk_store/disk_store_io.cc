// DiskStore: the write and read paths.
#include <cstring>

#include "common/crc32c.h"
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
    SP_RETURN_IF_ERROR(ApplyWrite(*existing, version, offset, data));
    return version;
  }
  SP_ASSIGN_OR_RETURN(auto fresh, Allocate());
  fresh->header.layer = layer;
  fresh->header.object = object;
  Status s = ApplyWrite(*fresh, version, offset, data);
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
  for (uint32_t i = 0; i < b.count; ++i) header.present[b.first + i] = true;
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
