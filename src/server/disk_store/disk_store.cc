// DiskStore: initialisation, open and the in-memory index. I/O paths are in disk_store_io.cc.
#include "server/disk_store/disk_store.h"

#include "common/log.h"

namespace spindle::server::disk {
namespace {

Result<std::unique_ptr<env::File>> OpenDevice(env::Env& env, const std::string& path,
                                              env::Create create) {
  return env.OpenFile(path, env::OpenOptions{create, env::Direct::kTry});
}

Status CheckClusterId(const std::string& id) {
  if (id.empty() || id.size() > kMaxClusterIdBytes) {
    return Error(Code::kInvalidArgument, "cluster id must have 1..{} bytes, got {}",
                 kMaxClusterIdBytes, id.size());
  }
  return Status::Ok();
}

// Sizes the device for Init: grows a regular file (sparse) to the requested size.
Result<uint64_t> PrepareSize(env::File& file, uint64_t requested) {
  SP_ASSIGN_OR_RETURN(uint64_t current, file.Size());
  if (requested == 0) return current;
  if (current < requested) {
    if (file.is_block_device()) {
      return Error(Code::kInvalidArgument, "{} has {} bytes, fewer than the requested {}",
                   file.path(), current, requested);
    }
    SP_RETURN_IF_ERROR(file.Truncate(requested));
  }
  return requested;
}

// Zeroes every slot header that is not already zero, so that slots of an earlier use of the
// device do not come back as objects.
Status ClearSlotHeaders(env::File& file, uint32_t slot_count) {
  env::AlignedBuffer block(kMetaBlockSize);
  const env::AlignedBuffer zeros(kMetaBlockSize);
  for (uint32_t s = 0; s < slot_count; ++s) {
    SP_ASSIGN_OR_RETURN(size_t n, file.PRead(SlotOffset(s), block.span()));
    bool empty = true;
    for (size_t i = 0; i < n && empty; ++i) empty = block.data()[i] == 0;
    if (!empty) SP_RETURN_IF_ERROR(file.PWrite(SlotOffset(s), zeros.span()));
  }
  return Status::Ok();
}

}  // namespace

Status DiskStore::Init(env::Env& env, const std::string& path, const InitOptions& options) {
  SP_RETURN_IF_ERROR(CheckClusterId(options.cluster_id));
  if (options.disk.value() > kMaxDiskId) {
    return Error(Code::kInvalidArgument, "disk id {} is above {}", options.disk.value(),
                 kMaxDiskId);
  }
  SP_ASSIGN_OR_RETURN(auto file, OpenDevice(env, path, env::Create::kYes));
  env::AlignedBuffer block(kMetaBlockSize);
  SP_ASSIGN_OR_RETURN(size_t n, file->PRead(kSuperblockOffset, block.span()));
  if (n == kMetaBlockSize && HasSuperblockMagic(block.span())) {
    auto existing = DecodeSuperblock(block.span());
    if (existing.ok()) {
      return Error(Code::kAlreadyExists, "{} is already disk {} of cluster '{}'", path,
                   existing->disk.value(), existing->cluster_id);
    }
    return Error(Code::kAlreadyExists, "{} has a Spindle superblock ({}); wipe it first", path,
                 existing.status().message());
  }
  SP_ASSIGN_OR_RETURN(uint64_t bytes, PrepareSize(*file, options.size_bytes));
  Superblock sb;
  sb.disk = options.disk;
  sb.cluster_id = options.cluster_id;
  sb.device_bytes = bytes;
  sb.slot_count = SlotCountFor(bytes);
  sb.init_unix_seconds = env.clock().UnixSeconds();
  if (sb.slot_count == 0) {
    return Error(Code::kInvalidArgument, "{}: {} bytes is too small (minimum {})", path, bytes,
                 kMinDeviceBytes);
  }
  SP_RETURN_IF_ERROR(ClearSlotHeaders(*file, sb.slot_count));
  // The superblock goes last and only after the cleared headers are durable.
  SP_RETURN_IF_ERROR(file->DataSync());
  EncodeSuperblock(sb, block.span());
  SP_RETURN_IF_ERROR(file->PWrite(kSuperblockOffset, block.span()));
  return file->DataSync();
}

Result<std::unique_ptr<DiskStore>> DiskStore::Open(env::Env& env, const std::string& path,
                                                   const std::string& cluster_id) {
  SP_ASSIGN_OR_RETURN(auto file, OpenDevice(env, path, env::Create::kNo));
  env::AlignedBuffer block(kMetaBlockSize);
  SP_ASSIGN_OR_RETURN(size_t n, file->PRead(kSuperblockOffset, block.span()));
  if (n < kMetaBlockSize) {
    return Error(Code::kFailedPrecondition, "{} is not a Spindle disk (too short)", path);
  }
  auto sb = DecodeSuperblock(block.span());
  if (!sb.ok()) return Status(sb.status().code(), path + ": " + sb.status().message());
  if (!cluster_id.empty() && sb->cluster_id != cluster_id) {
    return Error(Code::kFailedPrecondition, "{} is disk {} of cluster '{}', not of cluster '{}'",
                 path, sb->disk.value(), sb->cluster_id, cluster_id);
  }
  SP_ASSIGN_OR_RETURN(uint64_t size, file->Size());
  if (size < sb->device_bytes) {
    return Error(Code::kFailedPrecondition, "{} has {} bytes but its superblock says {}", path,
                 size, sb->device_bytes);
  }
  std::unique_ptr<DiskStore> store(new DiskStore(std::move(file), std::move(sb).value()));
  SP_RETURN_IF_ERROR(store->LoadIndex());
  return store;
}

DiskStore::DiskStore(std::unique_ptr<env::File> file, Superblock sb)
    : file_(std::move(file)), sb_(std::move(sb)) {}

Status DiskStore::LoadIndex() {
  env::AlignedBuffer block(kMetaBlockSize);
  std::vector<uint32_t> damaged_slots;
  std::lock_guard lock(mu_);
  for (uint32_t s = 0; s < sb_.slot_count; ++s) {
    SP_ASSIGN_OR_RETURN(size_t n, file_->PRead(SlotOffset(s), block.span()));
    if (n < kMetaBlockSize) return Error(Code::kIoError, "{}: short read of slot {}", path(), s);
    auto header = DecodeSlotHeader(block.span());
    if (!header.ok() && header.status().code() == Code::kNotFound) continue;
    Key key = header.ok() ? Key{header->layer.value(), header->object.value()} : Key{};
    if (header.ok() && index_.count(key) != 0) {
      header =
          Error(Code::kCorruption, "second slot for layer {} object {}", key.first, key.second);
    }
    if (!header.ok()) {
      // Quarantined: not indexed and never reused, so the evidence stays for inspection.
      SP_LOG_WARN("{}: slot {} damaged: {}", path(), s, header.status().message());
      ++damaged_;
      damaged_slots.push_back(s);
      continue;
    }
    auto slot = std::make_unique<Slot>(s);
    slot->header = std::move(header).value();
    blocks_stored_ += slot->header.present.count();
    index_.emplace(key, std::move(slot));
  }
  std::vector<bool> taken(sb_.slot_count, false);
  for (uint32_t s : damaged_slots) taken[s] = true;
  for (const auto& [key, slot] : index_) taken[slot->index] = true;
  for (uint32_t s = sb_.slot_count; s-- > 0;) {
    if (!taken[s]) free_.push_back(s);
  }
  return Status::Ok();
}

DiskStore::Slot* DiskStore::Find(LayerId layer, ObjectIndex object) const {
  std::lock_guard lock(mu_);
  auto it = index_.find(Key{layer.value(), object.value()});
  return it == index_.end() ? nullptr : it->second.get();
}

ObjectInfo DiskStore::Info(LayerId layer, ObjectIndex object) const {
  const Slot* slot = Find(layer, object);
  if (slot == nullptr) return {};
  std::shared_lock lock(slot->mu);
  return ObjectInfo{slot->header.version, static_cast<ObjectState>(slot->header.state),
                    static_cast<uint32_t>(slot->header.present.count())};
}

std::vector<ObjectEntry> DiskStore::List() const {
  std::vector<std::pair<Key, const Slot*>> slots;
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, slot] : index_) slots.emplace_back(key, slot.get());
  }
  std::vector<ObjectEntry> out;
  out.reserve(slots.size());
  for (const auto& [key, slot] : slots) {
    std::shared_lock lock(slot->mu);
    out.push_back(
        ObjectEntry{LayerId(key.first), ObjectIndex(key.second), slot->index,
                    ObjectInfo{slot->header.version, static_cast<ObjectState>(slot->header.state),
                               static_cast<uint32_t>(slot->header.present.count())}});
  }
  return out;
}

StoreStats DiskStore::Stats() const {
  std::lock_guard lock(mu_);
  StoreStats s;
  s.device_bytes = sb_.device_bytes;
  s.slots_total = sb_.slot_count;
  s.slots_used = static_cast<uint32_t>(index_.size());
  s.slots_damaged = damaged_;
  s.bytes_stored = blocks_stored_ * kBlockSize;
  return s;
}

}  // namespace spindle::server::disk
