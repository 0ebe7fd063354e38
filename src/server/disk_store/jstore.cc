// JStore: init, open, the in-memory index and how journal records change it.
// Write/read paths: jstore_io.cc. Committer, flusher, checkpoints: jstore_flush.cc.
#include "server/disk_store/jstore.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "common/assert.h"
#include "common/crc32c.h"
#include "common/log.h"

namespace spindle::server::jdisk {
namespace {

Status CheckInitOptions(const InitOptions& o) {
  if (o.cluster_id.empty() || o.cluster_id.size() > kMaxClusterIdBytes) {
    return Error(Code::kInvalidArgument, "cluster id must have 1..{} bytes, got {}",
                 kMaxClusterIdBytes, o.cluster_id.size());
  }
  if (o.disk.value() > kMaxDiskId) {
    return Error(Code::kInvalidArgument, "disk id {} is above {}", o.disk.value(), kMaxDiskId);
  }
  return Status::Ok();
}

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

// A value that differs between two inits of the same device.
uint64_t NewInstance(env::Env& env, const std::string& path, const InitOptions& o) {
  uint64_t nanos = static_cast<uint64_t>(env.clock().Now().time_since_epoch().count());
  uint32_t a = Crc32c(path.data(), path.size());
  a = Crc32cExtend(a, o.cluster_id.data(), o.cluster_id.size());
  a = Crc32cExtend(a, &nanos, sizeof nanos);
  uint64_t unix_s = static_cast<uint64_t>(env.clock().UnixSeconds());
  return (static_cast<uint64_t>(a) << 32) ^ nanos ^ (unix_s << 20) ^ o.disk.value();
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

Status JStore::Init(env::Env& env, const std::string& path, const InitOptions& options) {
  SP_RETURN_IF_ERROR(CheckInitOptions(options));
  SP_ASSIGN_OR_RETURN(auto file, env.OpenFile(path, {env::Create::kYes, env::Direct::kTry}));
  env::AlignedBuffer block(kMetaBlock);
  SP_ASSIGN_OR_RETURN(size_t n, file->PRead(0, block.span()));
  if (n == kMetaBlock && HasSuperblockMagic(block.span())) {
    return Error(Code::kAlreadyExists, "{} already has a Spindle superblock; wipe it first", path);
  }
  SP_ASSIGN_OR_RETURN(uint64_t bytes, PrepareSize(*file, options.size_bytes));
  SP_ASSIGN_OR_RETURN(Superblock sb, Layout(bytes, options.journal_bytes));
  sb.disk = options.disk;
  sb.cluster_id = options.cluster_id;
  sb.instance = NewInstance(env, path, options);
  sb.init_unix_seconds = env.clock().UnixSeconds();
  CheckpointHeader h;
  h.generation = 1;
  h.instance = sb.instance;
  EncodeCheckpointHeader(h, block.span());
  SP_RETURN_IF_ERROR(file->PWrite(sb.meta_offset, block.span()));
  std::memset(block.data(), 0, block.size());
  SP_RETURN_IF_ERROR(file->PWrite(sb.meta_offset + sb.meta_copy_bytes, block.span()));
  // The superblock goes last and only after the empty checkpoint is durable.
  SP_RETURN_IF_ERROR(file->DataSync());
  EncodeSuperblock(sb, block.span());
  SP_RETURN_IF_ERROR(file->PWrite(0, block.span()));
  return file->DataSync();
}

Result<std::unique_ptr<JStore>> JStore::Open(env::Env& env, const std::string& path,
                                             const std::string& cluster_id, StoreOptions options) {
  SP_ASSIGN_OR_RETURN(auto file, env.OpenFile(path, {env::Create::kNo, env::Direct::kTry}));
  env::AlignedBuffer block(kMetaBlock);
  SP_ASSIGN_OR_RETURN(size_t n, file->PRead(0, block.span()));
  if (n < kMetaBlock) return Error(Code::kFailedPrecondition, "{}: not a Spindle disk", path);
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
  std::unique_ptr<JStore> store(new JStore(std::move(file), std::move(sb).value(), options));
  CheckpointHeader h;
  SP_RETURN_IF_ERROR(store->LoadCheckpoint(&h));
  // A round's records are applied once the next round starts: a round is written only
  // after the previous one's fdatasync, so every earlier round is durable. The last round may
  // not be: its records are checked against their redirected data first.
  std::vector<Record> round;
  auto apply_round = [&] {
    std::lock_guard lock(store->mu_);
    for (Record& rec : round) store->Apply(rec);
    store->report_.replayed_records += round.size();
    round.clear();
  };
  auto end = store->journal_.Replay(JournalCursor{h.journal_pos, h.last_seq + 1, h.last_crc},
                                    [&](Record&& rec) {
                                      if (rec.round_index == 0) apply_round();
                                      round.push_back(std::move(rec));
                                      return Status::Ok();
                                    });
  if (!end.ok()) return end.status();
  for (auto it = round.begin(); it != round.end();) {
    SP_ASSIGN_OR_RETURN(bool intact, store->RedirectedDataIntact(*it));
    if (intact) {
      ++it;
      continue;
    }
    SP_LOG_WARN(
        "{}: journal record {} (layer {} object {} version {}): redirected data not "
        "durable, dropped (a crash before its sync; it was never acknowledged)",
        path, it->seq, it->layer.value(), it->object.value(), it->version);
    ++store->report_.dropped_records;
    it = round.erase(it);
  }
  apply_round();
  SP_LOG_DEBUG("{}: checkpoint generation {} seq {}, journal replayed to seq {}", path,
               h.generation, h.last_seq, end->next_seq - 1);
  store->applied_ = *end;
  store->report_.checkpoint_seq = h.last_seq;
  store->report_.last_seq = end->next_seq - 1;
  store->report_.journal_end = end->pos;
  if (options.read_only) return store;
  SP_RETURN_IF_ERROR(store->Checkpoint());
  store->Start();
  return store;
}

JStore::JStore(std::unique_ptr<env::File> file, Superblock sb, StoreOptions options)
    : file_(std::move(file)),
      sb_(std::move(sb)),
      options_(options),
      alloc_(sb_.data_chunks),
      journal_(*file_, sb_.journal_offset, sb_.journal_bytes, sb_.instance) {}

JStore::~JStore() {
  {
    std::lock_guard lock(commit_mu_);
    stop_ = true;
  }
  flush_cv_.notify_all();
  space_cv_.notify_all();
  commit_cv_.notify_all();
  if (committer_.joinable()) committer_.join();
  if (flusher_.joinable()) flusher_.join();
}

void JStore::Start() {
  if (file_->is_memory()) {
    // Without a mapping every read copies (ReadInPlace declines): not worth failing the open.
    if (auto size = file_->Size(); size.ok()) {
      if (auto map = file_->MapForRead(*size); map.ok()) map_ = std::move(*map);
    }
  } else if (options_.cache_bytes >= BlockCache::kBlock && !options_.read_only) {
    cache_ = std::make_unique<BlockCache>(options_.cache_bytes);
  }
  flusher_ = std::thread([this] { FlushLoop(); });
  committer_ = std::thread([this] { CommitLoop(); });
}

Result<CheckpointHeader> JStore::ReadCheckpointCopy(int copy, std::vector<uint8_t>* body) {
  const uint64_t at = sb_.meta_offset + static_cast<uint64_t>(copy) * sb_.meta_copy_bytes;
  env::AlignedBuffer block(kMetaBlock);
  SP_RETURN_IF_ERROR(ReadExact(*file_, at, block.span()));
  SP_ASSIGN_OR_RETURN(CheckpointHeader h, DecodeCheckpointHeader(block.span()));
  if (h.instance != sb_.instance) return Error(Code::kNotFound, "checkpoint of another init");
  if (h.body_bytes > sb_.meta_copy_bytes - kMetaBlock) {
    return Error(Code::kCorruption, "checkpoint body of {} bytes", h.body_bytes);
  }
  env::AlignedBuffer data(h.body_bytes);
  if (h.body_bytes > 0) SP_RETURN_IF_ERROR(ReadExact(*file_, at + kMetaBlock, data.span()));
  if (Crc32c(data.data(), h.body_bytes) != h.body_crc) {
    return Error(Code::kCorruption, "checkpoint copy {} body checksum mismatch", copy);
  }
  body->assign(data.data(), data.data() + h.body_bytes);
  return h;
}

Status JStore::LoadCheckpoint(CheckpointHeader* header) {
  std::vector<uint8_t> bodies[2];
  Result<CheckpointHeader> h[2] = {ReadCheckpointCopy(0, &bodies[0]),
                                   ReadCheckpointCopy(1, &bodies[1])};
  for (int i = 0; i < 2; ++i) {
    if (!h[i].ok() && h[i].status().code() == Code::kIoError) return h[i].status();
  }
  int best = -1;
  for (int i = 0; i < 2; ++i) {
    if (h[i].ok() && (best < 0 || h[i]->generation > h[best]->generation)) best = i;
  }
  if (best < 0) {
    return Error(Code::kCorruption, "{}: no valid checkpoint ({}; {})", path(),
                 h[0].status().message(), h[1].status().message());
  }
  SP_ASSIGN_OR_RETURN(auto objects, DecodeCheckpointBody(bodies[best], h[best]->objects));
  *header = *h[best];
  report_.checkpoint_generation = header->generation;
  report_.checkpoint_copy = best;
  report_.other_copy = h[1 - best].ok() ? fmt::format("generation {}", h[1 - best]->generation)
                                        : h[1 - best].status().message();
  generation_ = header->generation;
  active_copy_ = best;
  std::lock_guard lock(mu_);
  IndexObjects(std::move(objects));
  return Status::Ok();
}

Result<bool> JStore::RedirectedDataIntact(const Record& rec) {
  constexpr size_t kGroup = 16;  // chunks read per Batch (1 MiB)
  std::vector<const ChunkEntry*> redirects;
  for (const ChunkEntry& e : rec.chunks) {
    if (e.kind != ChunkEntryKind::kRedirect) continue;
    if (e.disk >= sb_.data_chunks) return false;
    redirects.push_back(&e);
  }
  if (redirects.empty()) return true;
  env::AlignedBuffer buf(std::min(redirects.size(), kGroup) * kChunkBytes,
                         env::AlignedBuffer::Fill::kNone);
  for (size_t i = 0; i < redirects.size(); i += kGroup) {
    const size_t n = std::min(kGroup, redirects.size() - i);
    std::vector<env::IoOp> ops;
    for (size_t k = 0; k < n; ++k) {
      ops.push_back(env::IoOp::Read(sb_.ChunkOffset(redirects[i + k]->disk),
                                    buf.span().subspan(k * kChunkBytes, kChunkBytes)));
    }
    SP_RETURN_IF_ERROR(file_->Batch(ops));
    for (size_t k = 0; k < n; ++k) {
      const ChunkEntry& e = *redirects[i + k];
      for (uint32_t b = 0; b < kChunkBlocks; ++b) {
        if (((e.present >> b) & 1) == 0) continue;
        const uint8_t* block = buf.data() + k * kChunkBytes + b * kBlockSize;
        if (Crc32c(block, kBlockSize) != e.crc[b]) return false;
      }
    }
  }
  return true;
}

void JStore::IndexObjects(std::vector<ObjectRec> objects) {
  for (ObjectRec& o : objects) {
    for (const ChunkRec& c : o.chunks) {
      if (c.disk != kNoChunk && c.disk < sb_.data_chunks) alloc_.MarkUsed(c.disk);
      blocks_present_ += static_cast<uint64_t>(std::popcount(c.present));
    }
    chunk_recs_ += o.chunks.size();
    Key key{o.layer.value(), o.object.value()};
    objects_.emplace(key, std::move(o));
  }
}

// ---- applying records (mu_ held) ----

ChunkRec& JStore::ChunkAt(ObjectRec& obj, uint16_t index) {
  auto it = std::lower_bound(obj.chunks.begin(), obj.chunks.end(), index,
                             [](const ChunkRec& c, uint16_t i) { return c.index < i; });
  if (it != obj.chunks.end() && it->index == index) return *it;
  ++chunk_recs_;
  ChunkRec fresh;
  fresh.index = index;
  return *obj.chunks.insert(it, fresh);
}

const ChunkRec* JStore::FindChunk(const ObjectRec& obj, uint16_t index) const {
  auto it = std::lower_bound(obj.chunks.begin(), obj.chunks.end(), index,
                             [](const ChunkRec& c, uint16_t i) { return c.index < i; });
  return it != obj.chunks.end() && it->index == index ? &*it : nullptr;
}

const ObjectRec* JStore::FindObject(LayerId layer, ObjectIndex object) const {
  auto it = objects_.find(Key{layer.value(), object.value()});
  return it == objects_.end() ? nullptr : &it->second;
}

void JStore::FreeChunkDisk(ChunkRec& c) {
  if (c.disk != kNoChunk) alloc_.Free(c.disk);
  c.disk = kNoChunk;
}

void JStore::EraseEmptyChunks(ObjectRec& obj) {
  auto empty = [](const ChunkRec& c) { return c.present == 0 && c.zeroed == 0; };
  size_t before = obj.chunks.size();
  for (ChunkRec& c : obj.chunks) {
    if (c.present == 0) FreeChunkDisk(c);  // space without data (also left by zero entries)
  }
  std::erase_if(obj.chunks, empty);
  chunk_recs_ -= before - obj.chunks.size();
}

void JStore::ApplyChunk(ObjectRec& obj, const ChunkEntry& e) {
  if (e.kind == ChunkEntryKind::kZero) {
    ApplyZeroMask(obj, e);
    return;
  }
  ChunkRec& c = ChunkAt(obj, e.index);
  if (c.disk != e.disk) FreeChunkDisk(c);
  c.disk = e.disk;
  alloc_.MarkUsed(e.disk);
  if (e.kind != ChunkEntryKind::kRedirect) return;
  for (uint32_t i = 0; i < kChunkBlocks; ++i) {
    const uint16_t bit = static_cast<uint16_t>(1u << i);
    if ((e.present & bit) == 0) continue;
    dirty_.erase(BlockKey{obj.layer.value(), obj.object.value(), e.index * kChunkBlocks + i});
    if ((c.present & bit) == 0) ++blocks_present_;
    c.present |= bit;
    c.zeroed &= static_cast<uint16_t>(~bit);
    c.crc[i] = e.crc[i];
  }
}

void JStore::ApplyZero(ObjectRec& obj, uint32_t first, uint32_t count) {
  for (uint32_t b = first; b < first + count; ++b) {
    ChunkRec& c = ChunkAt(obj, static_cast<uint16_t>(b / kChunkBlocks));
    const uint16_t bit = static_cast<uint16_t>(1u << (b % kChunkBlocks));
    if (c.present & bit) --blocks_present_;
    c.present &= static_cast<uint16_t>(~bit);
    c.zeroed |= bit;
    dirty_.erase(BlockKey{obj.layer.value(), obj.object.value(), b});
    if (c.present == 0) FreeChunkDisk(c);
  }
}

// The zeroed bits of a kZero entry; the chunk's space (if it ends without data) is freed by
// EraseEmptyChunks once the whole record is applied.
void JStore::ApplyZeroMask(ObjectRec& obj, const ChunkEntry& e) {
  ChunkRec& c = ChunkAt(obj, e.index);
  for (uint32_t i = 0; i < kChunkBlocks; ++i) {
    const uint16_t bit = static_cast<uint16_t>(1u << i);
    if ((e.present & bit) == 0) continue;
    if (c.present & bit) --blocks_present_;
    c.present &= static_cast<uint16_t>(~bit);
    c.zeroed |= bit;
    dirty_.erase(BlockKey{obj.layer.value(), obj.object.value(), e.index * kChunkBlocks + i});
  }
}

// Forgets every block of the object (and its journaled images) and frees its chunks.
void JStore::DropChunks(ObjectRec& obj) {
  for (ChunkRec& c : obj.chunks) {
    blocks_present_ -= static_cast<uint64_t>(std::popcount(c.present));
    FreeChunkDisk(c);
  }
  chunk_recs_ -= obj.chunks.size();
  obj.chunks.clear();
  auto d = dirty_.lower_bound(BlockKey{obj.layer.value(), obj.object.value(), 0});
  while (d != dirty_.end() && std::get<0>(d->first) == obj.layer.value() &&
         std::get<1>(d->first) == obj.object.value()) {
    d = dirty_.erase(d);
  }
}

void JStore::Apply(Record& rec) {
  if (rec.type == RecordType::kDeleteLayer) {
    DropLayer(rec.layer);
    return;
  }
  const Key key{rec.layer.value(), rec.object.value()};
  auto [it, fresh] = objects_.try_emplace(key);
  ObjectRec& obj = it->second;
  if (fresh) {
    obj.layer = rec.layer;
    obj.object = rec.object;
  }
  switch (rec.type) {
    case RecordType::kInstallBegin:
      DropChunks(obj);
      obj.version = 0;
      obj.state = ObjectState::kOutdated;
      break;
    case RecordType::kInstallData:
    case RecordType::kInstallEnd:
      if (obj.state != ObjectState::kOutdated) {
        // The layer was deleted during the install: drop the record and its fresh chunks.
        for (const ChunkEntry& e : rec.chunks) {
          if (e.kind == ChunkEntryKind::kZero || e.disk == kNoChunk) continue;
          alloc_.MarkUsed(e.disk);
          alloc_.Free(e.disk);
        }
        if (fresh) objects_.erase(it);
        return;
      }
      if (rec.type == RecordType::kInstallData) break;
      obj.version = rec.version;
      obj.state = ObjectState::kOk;
      if (rec.version == 0) {  // an install of "absent": the object is removed
        DropChunks(obj);
        objects_.erase(it);
        return;
      }
      break;
    default:
      obj.version = rec.version;
      obj.state = ObjectState::kOk;
  }
  for (const ChunkEntry& e : rec.chunks) ApplyChunk(obj, e);
  for (const BlockEntry& b : rec.blocks) {
    ChunkRec& c = ChunkAt(obj, static_cast<uint16_t>(b.block / kChunkBlocks));
    const uint16_t bit = static_cast<uint16_t>(1u << (b.block % kChunkBlocks));
    SP_ASSERT(c.disk != kNoChunk);
    if ((c.present & bit) == 0) ++blocks_present_;
    c.present |= bit;
    c.zeroed &= static_cast<uint16_t>(~bit);
    c.crc[b.block % kChunkBlocks] = b.crc;
    dirty_[BlockKey{rec.layer.value(), rec.object.value(), b.block}] = b.data;
  }
  if (rec.zero_count > 0) ApplyZero(obj, rec.zero_first, rec.zero_count);
  // Only chunk entries and zeroing leave a chunk without data; block entries (most records:
  // small writes into chunks the object has) only add to theirs, so skip the scan of the
  // object's chunks for those.
  if (rec.zero_count > 0 || !rec.chunks.empty()) EraseEmptyChunks(obj);
}

void JStore::DropLayer(LayerId layer) {
  auto it = objects_.lower_bound(Key{layer.value(), 0});
  while (it != objects_.end() && it->first.first == layer.value()) {
    for (ChunkRec& c : it->second.chunks) {
      blocks_present_ -= static_cast<uint64_t>(std::popcount(c.present));
      FreeChunkDisk(c);
    }
    chunk_recs_ -= it->second.chunks.size();
    it = objects_.erase(it);
  }
  auto d = dirty_.lower_bound(BlockKey{layer.value(), 0, 0});
  while (d != dirty_.end() && std::get<0>(d->first) == layer.value()) d = dirty_.erase(d);
}

JStore::Source JStore::Resolve(std::span<const LayerId> chain, ObjectIndex object,
                               uint32_t block) const {
  Source s;
  ResolveRange(chain, object, block, 1, &s);
  return s;
}

void JStore::ResolveRange(std::span<const LayerId> chain, ObjectIndex object, uint32_t first,
                          uint32_t count, Source* out) const {
  SP_ASSERT(chain.size() <= kMaxChainLength);
  const ObjectRec* objs[kMaxChainLength];
  for (size_t l = 0; l < chain.size(); ++l) objs[l] = FindObject(chain[l], object);
  const ChunkRec* recs[kMaxChainLength];
  const uint32_t end = first + count;
  for (uint32_t b = first; b < end;) {
    // Each layer's chunk record is looked up once per chunk, not once per block.
    const uint16_t index = static_cast<uint16_t>(b / kChunkBlocks);
    for (size_t l = 0; l < chain.size(); ++l) {
      recs[l] = objs[l] ? FindChunk(*objs[l], index) : nullptr;
    }
    const uint32_t chunk_end = std::min<uint32_t>(end, (index + 1u) * kChunkBlocks);
    for (; b < chunk_end; ++b) {
      const uint16_t bit = static_cast<uint16_t>(1u << (b % kChunkBlocks));
      Source& s = out[b - first];
      s = Source{};
      for (size_t l = 0; l < chain.size(); ++l) {
        const ChunkRec* c = recs[l];
        if (c == nullptr) continue;
        if (c->zeroed & bit) break;  // a hole in this layer: zeros
        if ((c->present & bit) == 0) continue;
        s.layer = chain[l].value();
        s.crc = c->crc[b % kChunkBlocks];
        auto d = dirty_.empty() ? dirty_.end()
                                : dirty_.find(BlockKey{chain[l].value(), object.value(), b});
        if (d != dirty_.end()) {
          s.kind = Source::kMemory;
          s.image = d->second;
        } else {
          s.kind = Source::kDisk;
          s.offset = sb_.ChunkOffset(c->disk) + (b % kChunkBlocks) * kBlockSize;
        }
        break;
      }
    }
  }
}

// ---- queries ----

Result<uint64_t> JStore::BlockOffset(LayerId layer, ObjectIndex object, uint32_t block) const {
  std::lock_guard lock(mu_);
  const ObjectRec* obj = FindObject(layer, object);
  const ChunkRec* c = obj ? FindChunk(*obj, static_cast<uint16_t>(block / kChunkBlocks)) : nullptr;
  if (c == nullptr || (c->present & (1u << (block % kChunkBlocks))) == 0) {
    return Error(Code::kNotFound, "layer {} object {} block {} is not stored", layer.value(),
                 object.value(), block);
  }
  return sb_.ChunkOffset(c->disk) + (block % kChunkBlocks) * kBlockSize;
}

std::optional<std::pair<LayerId, ObjectIndex>> JStore::NextObject(LayerId layer,
                                                                  ObjectIndex object) const {
  std::lock_guard lock(mu_);
  auto it = objects_.lower_bound(Key{layer.value(), object.value()});
  if (it == objects_.end()) return std::nullopt;
  return std::pair{it->second.layer, it->second.object};
}

void JStore::PublishScrubStats(ScrubStats stats) {
  SP_ASSERT(stats.bad_blocks.size() <= kMaxScrubBadBlocks);
  std::lock_guard lock(scrub_mu_);
  scrub_ = std::move(stats);
}

std::optional<ScrubStats> JStore::scrub_stats() const {
  std::optional<ScrubStats> out;
  {
    std::lock_guard lock(scrub_mu_);
    out = scrub_;
  }
  if (!out) return out;
  std::lock_guard lock(mu_);
  std::erase_if(out->bad_blocks, [&](const BadBlock& b) {
    const ObjectRec* obj = FindObject(b.layer, b.object);
    return obj == nullptr || obj->version != b.version;
  });
  return out;
}

std::vector<std::string> JStore::CheckIndex() const {
  std::vector<std::string> bad;
  std::vector<bool> owned(sb_.data_chunks, false);
  std::lock_guard lock(mu_);
  uint64_t recs = 0;
  for (const auto& [key, obj] : objects_) {
    uint32_t prev = 0;
    for (size_t i = 0; i < obj.chunks.size(); ++i) {
      const ChunkRec& c = obj.chunks[i];
      auto where = [&] {
        return fmt::format("layer {} object {} chunk {}", key.first, key.second, c.index);
      };
      if (i > 0 && c.index <= prev) bad.push_back(where() + ": chunks out of order");
      prev = c.index;
      if (c.index >= kChunksPerObject) bad.push_back(where() + ": index out of range");
      if (c.present & c.zeroed) bad.push_back(where() + ": block both present and zeroed");
      if (c.present == 0 && c.disk != kNoChunk) bad.push_back(where() + ": space without data");
      if (c.present != 0 && c.disk == kNoChunk) bad.push_back(where() + ": data without space");
      if (c.disk != kNoChunk && c.disk >= sb_.data_chunks) {
        bad.push_back(where() + fmt::format(": disk chunk {} out of range", c.disk));
      } else if (c.disk != kNoChunk && owned[c.disk]) {
        bad.push_back(where() + fmt::format(": disk chunk {} owned twice", c.disk));
      } else if (c.disk != kNoChunk) {
        owned[c.disk] = true;
      }
    }
    recs += obj.chunks.size();
    if (obj.state == ObjectState::kOutdated && obj.version != 0) {
      bad.push_back(fmt::format("layer {} object {}: outdated at version {}", key.first, key.second,
                                obj.version));
    }
  }
  if (objects_.size() > sb_.max_objects()) bad.push_back("more objects than the format allows");
  if (recs > sb_.max_chunk_recs()) bad.push_back("more chunk records than the format allows");
  if (recs != chunk_recs_) bad.push_back("chunk record count mismatch");
  for (const auto& [bkey, img] : dirty_) {
    const ObjectRec* obj = FindObject(LayerId(std::get<0>(bkey)), ObjectIndex(std::get<1>(bkey)));
    const uint32_t b = std::get<2>(bkey);
    const ChunkRec* c = obj ? FindChunk(*obj, static_cast<uint16_t>(b / kChunkBlocks)) : nullptr;
    if (c == nullptr || (c->present & (1u << (b % kChunkBlocks))) == 0) {
      bad.push_back(fmt::format("journaled block {} of layer {} object {} is not present", b,
                                std::get<0>(bkey), std::get<1>(bkey)));
    }
  }
  return bad;
}

ObjectInfo JStore::Info(LayerId layer, ObjectIndex object) const {
  std::lock_guard lock(mu_);
  const ObjectRec* obj = FindObject(layer, object);
  if (obj == nullptr) return {};
  uint32_t present = 0;
  for (const ChunkRec& c : obj->chunks) present += static_cast<uint32_t>(std::popcount(c.present));
  return ObjectInfo{obj->version, obj->state, present};
}

ObjectInfo JStore::Head(LayerId layer, ObjectIndex object) const {
  std::lock_guard lock(mu_);
  const ObjectRec* obj = FindObject(layer, object);
  if (obj == nullptr) return {};
  return ObjectInfo{obj->version, obj->state, 0};
}

std::vector<ObjectEntry> JStore::List() const {
  std::lock_guard lock(mu_);
  std::vector<ObjectEntry> out;
  out.reserve(objects_.size());
  for (const auto& [key, obj] : objects_) {
    ObjectEntry e{obj.layer, obj.object, {obj.version, obj.state, 0}, 0};
    for (const ChunkRec& c : obj.chunks) {
      e.info.blocks_present += static_cast<uint32_t>(std::popcount(c.present));
      e.chunks += c.disk != kNoChunk ? 1 : 0;
    }
    out.push_back(e);
  }
  return out;
}

StoreStats JStore::Stats() const {
  // Per object: map node and ObjectRec (~112 bytes); per chunk: 12 bytes without its crcs.
  constexpr uint64_t kPerObject = 112, kPerChunk = 12, kPerDirty = 96;
  std::lock_guard lock(mu_);
  StoreStats s;
  s.device_bytes = sb_.device_bytes;
  s.data_bytes = static_cast<uint64_t>(sb_.data_chunks) * kChunkBytes;
  s.on_disk_bytes = static_cast<uint64_t>(alloc_.used()) * kChunkBytes;
  s.bytes_stored = blocks_present_ * kBlockSize;
  s.objects = objects_.size();
  s.max_objects = sb_.max_objects();
  s.index_bytes =
      objects_.size() * kPerObject + chunk_recs_ * kPerChunk + dirty_.size() * kPerDirty;
  s.crc_bytes = chunk_recs_ * kChunkBlocks * 4;
  s.dirty_blocks = dirty_.size();
  s.journal_bytes = sb_.journal_bytes;
  s.journal_used = journal_used_.load();
  s.checkpoints = checkpoints_;
  if (cache_ != nullptr) {
    const BlockCache::Stats c = cache_->stats();
    s.cache_bytes = c.blocks * kBlockSize;
    s.cache_hits = c.hits;
    s.cache_misses = c.misses;
  }
  return s;
}

LayerStats JStore::Layer(LayerId layer) const {
  std::lock_guard lock(mu_);
  LayerStats s;
  for (auto it = objects_.lower_bound(Key{layer.value(), 0});
       it != objects_.end() && it->first.first == layer.value(); ++it) {
    for (const ChunkRec& c : it->second.chunks) {
      s.stored_bytes += static_cast<uint64_t>(std::popcount(c.present)) * kBlockSize;
      s.on_disk_bytes += c.disk != kNoChunk ? kChunkBytes : 0;
    }
  }
  return s;
}

}  // namespace spindle::server::jdisk
