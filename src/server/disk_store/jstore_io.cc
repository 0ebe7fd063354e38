// JStore: the write, trim and read paths; export and install of one object (replica recovery).
#include <algorithm>
#include <bit>
#include <cstring>

#include "common/assert.h"
#include "common/crc32c.h"
#include "server/disk_store/jstore.h"

namespace spindle::server::jdisk {
namespace {

Status CheckRange(uint32_t offset, uint64_t length, uint64_t unit) {
  if (length == 0 || offset % unit != 0 || length % unit != 0 || offset + length > kObjectSize) {
    return Error(Code::kInvalidArgument,
                 "bad range offset {} length {} (multiples of {}, non-empty, within {} bytes)",
                 offset, length, unit, kObjectSize);
  }
  return Status::Ok();
}

Status CheckChain(std::span<const LayerId> chain) {
  if (chain.empty() || chain.size() > JStore::kMaxChainLength) {
    return Error(Code::kInvalidArgument, "chain of {} layers (1..{})", chain.size(),
                 JStore::kMaxChainLength);
  }
  return Status::Ok();
}

Status ReadExact(env::File& file, uint64_t offset, std::span<uint8_t> buf) {
  SP_ASSIGN_OR_RETURN(size_t n, file.PRead(offset, buf));
  if (n != buf.size()) {
    return Error(Code::kIoError, "{}: short read at {} ({} of {} bytes)", file.path(), offset, n,
                 buf.size());
  }
  return Status::Ok();
}

std::shared_ptr<env::AlignedBuffer> NewBlock() {
  return std::make_shared<env::AlignedBuffer>(kBlockSize);
}

bool AlignedAddress(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % env::kDirectIoAlignment == 0;
}

// A read buffer reused by the calling thread (reads into a caller's buffer that is not aligned
// for direct I/O): saves allocating, zeroing and faulting in a fresh one per read. Larger reads
// get a buffer of their own.
uint8_t* ScratchBuffer(size_t bytes, env::AlignedBuffer& own) {
  constexpr size_t kMaxScratch = 1 * kMiB + 2 * kBlockSize;
  if (bytes > kMaxScratch) {
    own = env::AlignedBuffer(bytes, env::AlignedBuffer::Fill::kNone);
    return own.data();
  }
  thread_local env::AlignedBuffer scratch;
  if (scratch.size() < bytes)
    scratch = env::AlignedBuffer(kMaxScratch, env::AlignedBuffer::Fill::kNone);
  return scratch.data();
}

}  // namespace

Status JStore::VersionGate(LayerId layer, ObjectIndex object, uint64_t version, uint64_t base,
                           uint64_t* current) {
  if (version == 0) return Error(Code::kInvalidArgument, "version 0 is never written");
  if (options_.read_only) return Error(Code::kFailedPrecondition, "{} is open read-only", path());
  std::lock_guard lock(mu_);
  if (!failed_.ok()) return failed_;
  const ObjectRec* obj = FindObject(layer, object);
  if (obj != nullptr && obj->state == ObjectState::kOutdated) {
    return Error(Code::kFailedPrecondition, "layer {} object {}: object outdated (being installed)",
                 layer.value(), object.value());
  }
  *current = obj ? obj->version : 0;
  if (base == kPreviousVersion) base = version - 1;
  if (base >= version) {
    return Error(Code::kInvalidArgument, "version {} cannot follow version {}", version, base);
  }
  if (version > *current && *current != base) {
    return Error(Code::kFailedPrecondition, "layer {} object {} is at version {}, not {}",
                 layer.value(), object.value(), *current, base);
  }
  return Status::Ok();
}

Result<uint64_t> JStore::Write(LayerId layer, ObjectIndex object, uint64_t version, uint32_t offset,
                               std::span<const uint8_t> data, std::span<const uint32_t> crcs,
                               uint64_t base) {
  SP_RETURN_IF_ERROR(CheckRange(offset, data.size(), kSectorSize));
  uint64_t current = 0;
  SP_RETURN_IF_ERROR(VersionGate(layer, object, version, base, &current));
  if (version <= current) return current;
  Record rec;
  rec.type = RecordType::kWrite;
  rec.layer = layer;
  rec.object = object;
  rec.version = version;
  env::AlignedBuffer copy;
  std::vector<env::IoOp> data_writes;
  Status s = BuildWrite(rec, offset, data, crcs, &copy, &data_writes);
  if (!s.ok()) {
    ReturnChunks(rec);
    return s;
  }
  SP_RETURN_IF_ERROR(Commit(rec, data_writes));
  return version;
}

Result<uint64_t> JStore::Trim(LayerId layer, ObjectIndex object, uint64_t version, uint32_t offset,
                              uint32_t length, uint64_t base) {
  SP_RETURN_IF_ERROR(CheckRange(offset, length, kSectorSize));
  uint64_t current = 0;
  SP_RETURN_IF_ERROR(VersionGate(layer, object, version, base, &current));
  if (version <= current) return current;
  Record rec;
  rec.type = RecordType::kTrim;
  rec.layer = layer;
  rec.object = object;
  rec.version = version;
  SP_RETURN_IF_ERROR(BuildTrim(rec, offset, length));
  SP_RETURN_IF_ERROR(Commit(rec));
  return version;
}

Status JStore::DeleteLayer(LayerId layer) {
  Record rec;
  rec.type = RecordType::kDeleteLayer;
  rec.layer = layer;
  return Commit(rec);
}

std::unique_ptr<JStore::Pending> JStore::StartAsync(RecordType type, LayerId layer,
                                                    ObjectIndex object, uint64_t version,
                                                    uint64_t base, AsyncStart* answer) {
  uint64_t current = 0;
  if (Status s = VersionGate(layer, object, version, base, &current); !s.ok()) {
    *answer = {AsyncStart::kDone, s};
    return nullptr;
  }
  if (version <= current) {
    *answer = {AsyncStart::kDone, current};
    return nullptr;
  }
  auto p = std::make_unique<Pending>();
  p->owned = std::make_unique<Record>();
  p->rec = p->owned.get();
  p->rec->type = type;
  p->rec->layer = layer;
  p->rec->object = object;
  p->rec->version = version;
  return p;
}

JStore::AsyncStart JStore::WriteAsync(LayerId layer, ObjectIndex object, uint64_t version,
                                      uint32_t offset, std::span<const uint8_t> data,
                                      std::span<const uint32_t> crcs, uint64_t base,
                                      WriteDone done) {
  if (Status s = CheckRange(offset, data.size(), kSectorSize); !s.ok()) {
    return {AsyncStart::kDone, s};
  }
  // Only whole blocks below the redirect size: no device read (old images), no data writes.
  if (offset % kBlockSize != 0 || data.size() % kBlockSize != 0 ||
      data.size() >= options_.large_write_bytes || options_.read_only) {
    return {};
  }
  AsyncStart answer;
  std::unique_ptr<Pending> p =
      StartAsync(RecordType::kWrite, layer, object, version, base, &answer);
  if (p == nullptr) return answer;
  env::AlignedBuffer copy;
  std::vector<env::IoOp> data_writes;
  bool needs_checkpoint = false;
  Status s = BuildWrite(*p->rec, offset, data, crcs, &copy, &data_writes, &needs_checkpoint);
  if (!s.ok()) {
    ReturnChunks(*p->rec);
    if (needs_checkpoint) return {};
    return {AsyncStart::kDone, s};
  }
  SP_ASSERT(data_writes.empty());
  p->on_done = std::move(done);
  return Enqueue(std::move(p));
}

JStore::AsyncStart JStore::TrimAsync(LayerId layer, ObjectIndex object, uint64_t version,
                                     uint32_t offset, uint32_t length, uint64_t base,
                                     WriteDone done) {
  if (Status s = CheckRange(offset, length, kSectorSize); !s.ok()) return {AsyncStart::kDone, s};
  if (offset % kBlockSize != 0 || length % kBlockSize != 0 || options_.read_only) return {};
  AsyncStart answer;
  std::unique_ptr<Pending> p = StartAsync(RecordType::kTrim, layer, object, version, base, &answer);
  if (p == nullptr) return answer;
  if (Status s = BuildTrim(*p->rec, offset, length); !s.ok()) return {AsyncStart::kDone, s};
  p->on_done = std::move(done);
  return Enqueue(std::move(p));
}

JStore::AsyncStart JStore::Enqueue(std::unique_ptr<Pending> p) {
  {
    std::lock_guard lock(commit_mu_);
    if (!stop_) {
      queue_.push_back(p.release());
      if (!committing_) commit_cv_.notify_one();
      return {AsyncStart::kQueued, uint64_t{0}};
    }
  }
  ReturnChunks(*p->rec);
  return {AsyncStart::kDone, Error(Code::kUnavailable, "{}: the store is closing", path())};
}

Status JStore::Commit(Record& rec, std::span<const env::IoOp> data) {
  Pending p;
  p.rec = &rec;
  p.data = data;
  std::unique_lock lock(commit_mu_);
  if (options_.read_only) return Error(Code::kFailedPrecondition, "{} is open read-only", path());
  if (stop_) return Error(Code::kUnavailable, "{}: the store is closing", path());
  queue_.push_back(&p);
  // Group commit without a hand-over to another thread (each costs a wake-up): a writer that
  // finds no round in progress commits one itself, its own record and whatever has queued up.
  // The others sleep on their own condition until the round that holds their record is done,
  // or until they are first in the queue when a round ends and lead the next one: one wake-up
  // per writer, not one per writer per round.
  while (!p.done) {
    if (committing_) {
      p.cv.wait(lock);
      continue;
    }
    RunRound(lock, &p);
  }
  return p.status;
}

void JStore::RunRound(std::unique_lock<std::mutex>& lock, const Pending* self) {
  committing_ = true;
  std::vector<Pending*> batch = TakeBatch();
  lock.unlock();
  const Status s = CommitBatch(batch);
  // Asynchronous writers hear first, outside the lock; their entries are the queue's.
  std::vector<Pending*> blocked;
  for (Pending* q : batch) {
    if (!q->on_done) {
      blocked.push_back(q);
      continue;
    }
    std::unique_ptr<Pending> owned(q);
    if (s.ok()) {
      owned->on_done(owned->rec->version);
    } else {
      owned->on_done(s);
    }
  }
  lock.lock();
  for (Pending* q : blocked) {
    q->status = s;
    q->done = true;
    if (q != self) q->cv.notify_one();  // under the lock: q stays alive until it has it
  }
  committing_ = false;
  WakeNextLeader();
}

void JStore::WakeNextLeader() {
  if (queue_.empty()) return;
  if (queue_.front()->on_done) {
    commit_cv_.notify_one();
  } else {
    queue_.front()->cv.notify_one();
  }
}

Status JStore::AllocateChunks(Record& rec, uint32_t count, std::vector<uint32_t>* out,
                              bool* needs_checkpoint) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    uint32_t pending = 0;
    {
      std::lock_guard lock(mu_);
      const bool fresh = FindObject(rec.layer, rec.object) == nullptr;
      if (fresh && objects_.size() >= sb_.max_objects()) {
        return Error(Code::kResourceExhausted, "disk {}: no space: {} objects stored",
                     sb_.disk.value(), objects_.size());
      }
      if (chunk_recs_ + count + 2 > sb_.max_chunk_recs()) {
        return Error(Code::kResourceExhausted, "disk {}: no space: index full", sb_.disk.value());
      }
      if (alloc_.total() - alloc_.used() >= count) {
        out->resize(count);
        for (uint32_t& c : *out) alloc_.Allocate(&c);
        return Status::Ok();
      }
      pending = alloc_.pending();
    }
    if (pending == 0) break;
    if (needs_checkpoint != nullptr) {
      *needs_checkpoint = true;
      return Error(Code::kUnavailable, "disk {}: chunks wait for a checkpoint", sb_.disk.value());
    }
    SP_RETURN_IF_ERROR(Checkpoint());  // releases chunks freed by applied records
  }
  std::lock_guard lock(mu_);
  return Error(Code::kResourceExhausted, "disk {}: no space: {} of {} chunks in use, {} needed",
               sb_.disk.value(), alloc_.used(), alloc_.total(), count);
}

void JStore::ReturnChunks(const Record& rec) {
  std::lock_guard lock(mu_);
  for (const ChunkEntry& e : rec.chunks) alloc_.Return(e.disk);
}

Result<BlockImage> JStore::OldImage(LayerId layer, ObjectIndex object, uint32_t block) {
  const LayerId chain[1] = {layer};
  Source s;
  {
    std::lock_guard lock(mu_);
    s = Resolve(chain, object, block);
  }
  if (s.kind == Source::kMemory) return s.image;
  auto img = NewBlock();
  if (s.kind == Source::kDisk) {
    std::vector<Source> one{s};
    uint64_t bytes = 0;
    SP_RETURN_IF_ERROR(FetchBlocks(one, img->data(), &bytes));
    SP_RETURN_IF_ERROR(CheckDiskCrcs(one, img->data(), object, block, {}));
  }
  return BlockImage(img);
}

Status JStore::BuildWrite(Record& rec, uint32_t offset, std::span<const uint8_t> data,
                          std::span<const uint32_t> crcs, env::AlignedBuffer* copy,
                          std::vector<env::IoOp>* data_writes, bool* needs_checkpoint) {
  const uint64_t end = offset + data.size();
  // The caller's crc of block b when data covers it whole and its pieces are the blocks.
  const bool given =
      offset % kBlockSize == 0 && crcs.size() == (data.size() + kBlockSize - 1) / kBlockSize;
  auto block_crc = [&](uint64_t b, const uint8_t* block) {
    const uint64_t piece = (b * kBlockSize - offset) / kBlockSize;
    if (given && (piece + 1) * kBlockSize <= data.size()) return crcs[piece];
    return Crc32c(block, kBlockSize);
  };
  const uint32_t b0 = offset / kBlockSize, b1 = static_cast<uint32_t>((end - 1) / kBlockSize);
  const bool large = data.size() >= options_.large_write_bytes;
  auto redirected = [&](uint32_t ci) {
    return large && offset <= ci * kChunkBytes && end >= (ci + 1) * kChunkBytes;
  };
  std::vector<ChunkEntry> entries;
  {
    std::lock_guard lock(mu_);
    const ObjectRec* obj = FindObject(rec.layer, rec.object);
    for (uint32_t ci = b0 / kChunkBlocks; ci <= b1 / kChunkBlocks; ++ci) {
      const ChunkRec* c = obj ? FindChunk(*obj, static_cast<uint16_t>(ci)) : nullptr;
      bool mapped = c != nullptr && c->disk != kNoChunk;
      if (redirected(ci)) {
        entries.push_back(
            ChunkEntry{static_cast<uint16_t>(ci), ChunkEntryKind::kRedirect, 0xffff, kNoChunk, {}});
      } else if (!mapped) {
        entries.push_back(
            ChunkEntry{static_cast<uint16_t>(ci), ChunkEntryKind::kAlloc, 0, kNoChunk, {}});
      }
    }
  }
  std::vector<uint32_t> disks;
  SP_RETURN_IF_ERROR(
      AllocateChunks(rec, static_cast<uint32_t>(entries.size()), &disks, needs_checkpoint));
  for (size_t i = 0; i < entries.size(); ++i) {
    entries[i].disk = disks[i];
    rec.chunks.push_back(entries[i]);
  }
  // Redirected chunks: written straight from the caller's buffer when the device accepts its
  // address, else from an aligned copy; one write per run of consecutive disk chunks whose data
  // is contiguous in memory.
  size_t redirects = 0;
  for (const ChunkEntry& e : rec.chunks) redirects += e.kind == ChunkEntryKind::kRedirect;
  const uint64_t first_chunk = (offset + kChunkBytes - 1) / kChunkBytes * kChunkBytes;
  const bool in_place =
      redirects == 0 || !file_->is_direct() || AlignedAddress(data.data() + (first_chunk - offset));
  if (!in_place) {
    *copy = env::AlignedBuffer(redirects * kChunkBytes, env::AlignedBuffer::Fill::kNone);
  }
  uint8_t* next = in_place ? nullptr : copy->data();
  for (ChunkEntry& e : rec.chunks) {
    if (e.kind != ChunkEntryKind::kRedirect) continue;
    const uint8_t* from = data.data() + (e.index * kChunkBytes - offset);
    if (!in_place) {
      std::memcpy(next, from, kChunkBytes);
      from = next;
      next += kChunkBytes;
    }
    for (uint32_t i = 0; i < kChunkBlocks; ++i) {
      e.crc[i] = block_crc(uint64_t{e.index} * kChunkBlocks + i, from + i * kBlockSize);
    }
    const uint64_t at = sb_.ChunkOffset(e.disk);
    env::IoOp* prev = data_writes->empty() ? nullptr : &data_writes->back();
    if (prev != nullptr && prev->offset + prev->length == at && prev->data + prev->length == from) {
      prev->length += kChunkBytes;
    } else {
      data_writes->push_back(env::IoOp::Write(at, {from, kChunkBytes}));
    }
  }
  for (uint32_t b = b0; b <= b1; ++b) {
    if (redirected(b / kChunkBlocks)) continue;
    const uint64_t bs = static_cast<uint64_t>(b) * kBlockSize;
    const uint64_t from = std::max<uint64_t>(bs, offset), to = std::min(bs + kBlockSize, end);
    std::shared_ptr<env::AlignedBuffer> img = NewBlock();
    if (to - from < kBlockSize) {
      SP_ASSIGN_OR_RETURN(BlockImage old, OldImage(rec.layer, rec.object, b));
      std::memcpy(img->data(), old->data(), kBlockSize);
    }
    std::memcpy(img->data() + (from - bs), data.data() + (from - offset), to - from);
    rec.blocks.push_back(
        BlockEntry{static_cast<uint16_t>(b), block_crc(b, img->data()), std::move(img)});
  }
  return Status::Ok();
}

void JStore::RedirectWrites(const Record& rec, const uint8_t* data,
                            std::vector<env::IoOp>* out) const {
  for (const ChunkEntry& e : rec.chunks) {
    if (e.kind != ChunkEntryKind::kRedirect) continue;
    const uint64_t at = sb_.ChunkOffset(e.disk);
    if (!out->empty() && out->back().offset + out->back().length == at) {
      out->back().length += kChunkBytes;
    } else {
      out->push_back(env::IoOp::Write(at, {data, kChunkBytes}));
    }
    data += kChunkBytes;
  }
}

Status JStore::BuildTrim(Record& rec, uint32_t offset, uint32_t length) {
  const uint64_t end = static_cast<uint64_t>(offset) + length;
  const uint64_t whole_first = (offset + kBlockSize - 1) / kBlockSize;
  const uint64_t whole_end = end / kBlockSize;
  if (whole_end > whole_first) {
    rec.zero_first = static_cast<uint32_t>(whole_first);
    rec.zero_count = static_cast<uint32_t>(whole_end - whole_first);
  }
  std::vector<uint32_t> partial;
  if (offset % kBlockSize != 0) partial.push_back(offset / kBlockSize);
  const uint32_t last = static_cast<uint32_t>((end - 1) / kBlockSize);
  if (end % kBlockSize != 0 && (partial.empty() || partial[0] != last)) partial.push_back(last);
  const LayerId chain[1] = {rec.layer};
  for (uint32_t b : partial) {
    Source s;
    {
      std::lock_guard lock(mu_);
      s = Resolve(chain, rec.object, b);
    }
    if (s.kind == Source::kZero) continue;  // not stored in this layer: nothing to zero
    SP_ASSIGN_OR_RETURN(BlockImage old, OldImage(rec.layer, rec.object, b));
    auto img = NewBlock();
    std::memcpy(img->data(), old->data(), kBlockSize);
    const uint64_t bs = static_cast<uint64_t>(b) * kBlockSize;
    const uint64_t from = std::max<uint64_t>(bs, offset), to = std::min(bs + kBlockSize, end);
    std::memset(img->data() + (from - bs), 0, to - from);
    rec.blocks.push_back(
        BlockEntry{static_cast<uint16_t>(b), Crc32c(img->data(), kBlockSize), std::move(img)});
  }
  return Status::Ok();
}

Status JStore::Read(std::span<const LayerId> chain, ObjectIndex object, uint32_t offset,
                    std::span<uint8_t> out, std::vector<uint32_t>* block_crcs) {
  SP_RETURN_IF_ERROR(CheckRange(offset, out.size(), kSectorSize));
  SP_RETURN_IF_ERROR(CheckChain(chain));
  Status s;
  // A mismatch can come from a block that was moved or rewritten in place between resolving
  // and reading it; resolving again tells that apart from real corruption.
  for (int attempt = 0; attempt < kReadAttempts; ++attempt) {
    s = ReadOnce(chain, object, offset, out, block_crcs);
    if (s.code() != Code::kCorruption) return s;
  }
  return s;
}

Status JStore::ReadOnce(std::span<const LayerId> chain, ObjectIndex object, uint32_t offset,
                        std::span<uint8_t> out, std::vector<uint32_t>* block_crcs) {
  ReadPlan plan;
  SP_RETURN_IF_ERROR(PrepareRead(chain, object, offset, out, /*scratch=*/true, &plan));
  if (!plan.reads.empty()) SP_RETURN_IF_ERROR(file_->Batch(plan.reads));
  return FinishRead(plan, out, block_crcs);
}

Status JStore::ReadInPlace(std::span<const LayerId> chain, ObjectIndex object, uint32_t offset,
                           uint32_t length, InPlaceRead* out, bool check) {
  out->bytes = {};
  SP_RETURN_IF_ERROR(CheckRange(offset, length, kSectorSize));
  SP_RETURN_IF_ERROR(CheckChain(chain));
  if (map_ == nullptr || offset % kBlockSize != 0 || length % kBlockSize != 0 || length == 0) {
    return Status::Ok();
  }
  const uint32_t b0 = offset / kBlockSize;
  const uint32_t count = length / kBlockSize;
  const std::span<const uint8_t> file = map_->bytes();
  std::vector<Source> src(count);
  Status s;
  for (int attempt = 0; attempt < kReadAttempts; ++attempt) {
    {
      std::lock_guard lock(mu_);
      SP_RETURN_IF_ERROR(CheckNotOutdated(chain, object));
      ResolveRange(chain, object, b0, count, src.data());
    }
    for (uint32_t k = 0; k < count; ++k) {
      if (src[k].kind != Source::kDisk || src[k].offset != src[0].offset + k * kBlockSize) {
        return Status::Ok();  // zeros, blocks not yet flushed, or more than one run
      }
    }
    if (src[0].offset > file.size() || file.size() - src[0].offset < length) return Status::Ok();
    const uint8_t* base = file.data() + src[0].offset;
    if (check) {
      s = CheckDiskCrcs(src, base, object, b0, {});
      if (s.code() == Code::kCorruption) continue;  // moved or rewritten meanwhile: resolve again
      SP_RETURN_IF_ERROR(s);
    }
    out->keep = map_;
    out->bytes = {base, length};
    out->block_crcs.resize(count);
    for (uint32_t k = 0; k < count; ++k) out->block_crcs[k] = src[k].crc;
    return Status::Ok();
  }
  return s;
}

Status JStore::PrepareRead(std::span<const LayerId> chain, ObjectIndex object, uint32_t offset,
                           std::span<uint8_t> out, bool scratch, ReadPlan* plan) {
  SP_RETURN_IF_ERROR(CheckRange(offset, out.size(), kSectorSize));
  SP_RETURN_IF_ERROR(CheckChain(chain));
  const uint32_t b0 = offset / kBlockSize;
  const uint32_t count = static_cast<uint32_t>((offset + out.size() - 1) / kBlockSize) - b0 + 1;
  plan->src.assign(count, Source{});
  // Before resolving: a block rewritten after this point is not put back into the cache from
  // what this read finds on the device.
  if (cache_ != nullptr) plan->cache_epoch = cache_->Epoch();
  {
    std::lock_guard lock(mu_);
    SP_RETURN_IF_ERROR(CheckNotOutdated(chain, object));
    ResolveRange(chain, object, b0, count, plan->src.data());
  }
  plan->object = object;
  plan->offset = offset;
  // Whole blocks into a buffer the device accepts: the caller's own, else a scratch one (the
  // thread's, when the reads run before this thread reads again; else one of the plan's own).
  plan->into_out = offset % kBlockSize == 0 && out.size() % kBlockSize == 0 &&
                   (!file_->is_direct() || AlignedAddress(out.data()));
  if (plan->into_out) {
    plan->base = out.data();
  } else if (scratch) {
    plan->base = ScratchBuffer(count * kBlockSize, plan->own);
  } else {
    plan->own = env::AlignedBuffer(count * kBlockSize, env::AlignedBuffer::Fill::kNone);
    plan->base = plan->own.data();
  }
  plan->reads.clear();
  plan->disk_bytes = 0;
  if (cache_ != nullptr) {
    for (size_t k = 0; k < plan->src.size(); ++k) {
      Source& b = plan->src[k];
      if (b.kind == Source::kDisk) b.cached = cache_->Lookup(b.offset, plan->base + k * kBlockSize);
    }
  }
  FillBlocks(plan->src, plan->base, &plan->reads, &plan->disk_bytes);
  return Status::Ok();
}

Status JStore::FinishRead(const ReadPlan& plan, std::span<uint8_t> out,
                          std::vector<uint32_t>* block_crcs) const {
  SP_RETURN_IF_ERROR(CheckDiskCrcs(plan.src, plan.base, plan.object, plan.offset / kBlockSize, {}));
  if (cache_ != nullptr && !plan.reads.empty()) {
    std::vector<BlockCache::Block> read;
    for (size_t k = 0; k < plan.src.size(); ++k) {
      const Source& b = plan.src[k];
      if (b.kind == Source::kDisk && !b.cached)
        read.push_back({b.offset, plan.base + k * kBlockSize});
    }
    cache_->Insert(read, plan.cache_epoch);
  }
  if (!plan.into_out) std::memcpy(out.data(), plan.base + plan.offset % kBlockSize, out.size());
  if (block_crcs != nullptr) {
    const bool whole = plan.offset % kBlockSize == 0 && out.size() % kBlockSize == 0;
    block_crcs->clear();
    if (whole) BlockCrcs(plan.src, plan.base, block_crcs);
  }
  return Status::Ok();
}

void JStore::BlockCrcs(const std::vector<Source>& src, const uint8_t* base,
                       std::vector<uint32_t>* block_crcs) {
  static const uint32_t zero_crc = [] {
    std::vector<uint8_t> zeros(kBlockSize, 0);
    return Crc32c(zeros.data(), zeros.size());
  }();
  block_crcs->resize(src.size());
  for (size_t k = 0; k < src.size(); ++k) {
    switch (src[k].kind) {
      case Source::kDisk:
        (*block_crcs)[k] = src[k].crc;  // CheckDiskCrcs found the block matches it
        break;
      case Source::kZero:
        (*block_crcs)[k] = zero_crc;
        break;
      case Source::kMemory:
        (*block_crcs)[k] = Crc32c(base + k * kBlockSize, kBlockSize);
        break;
    }
  }
}

Status JStore::FetchBlocks(const std::vector<Source>& src, uint8_t* base, uint64_t* disk_bytes) {
  std::vector<env::IoOp> reads;
  FillBlocks(src, base, &reads, disk_bytes);
  if (reads.empty()) return Status::Ok();
  return file_->Batch(reads);
}

void JStore::FillBlocks(const std::vector<Source>& src, uint8_t* base,
                        std::vector<env::IoOp>* reads, uint64_t* disk_bytes) {
  for (size_t i = 0; i < src.size();) {
    uint8_t* dst = base + i * kBlockSize;
    if (src[i].cached) {  // already in place
      ++i;
      continue;
    }
    if (src[i].kind != Source::kDisk) {
      if (src[i].kind == Source::kMemory) {
        std::memcpy(dst, src[i].image->data(), kBlockSize);
      } else {
        std::memset(dst, 0, kBlockSize);
      }
      ++i;
      continue;
    }
    size_t j = i + 1;
    while (j < src.size() && src[j].kind == Source::kDisk && !src[j].cached &&
           src[j].offset == src[j - 1].offset + kBlockSize) {
      ++j;
    }
    reads->push_back(env::IoOp::Read(src[i].offset, {dst, (j - i) * kBlockSize}));
    *disk_bytes += (j - i) * kBlockSize;
    i = j;
  }
}

Status JStore::CheckDiskCrcs(const std::vector<Source>& src, const uint8_t* base,
                             ObjectIndex object, uint32_t first_block,
                             std::span<const uint32_t> blocks) const {
  for (size_t k = 0; k < src.size(); ++k) {
    if (src[k].kind != Source::kDisk) continue;
    const uint32_t actual = Crc32c(base + k * kBlockSize, kBlockSize);
    if (actual != src[k].crc) {
      // A cached copy that no longer matches is dropped: the caller's next attempt reads the
      // device.
      if (src[k].cached) cache_->Invalidate(src[k].offset, kBlockSize);
      return Error(Code::kCorruption,
                   "disk {} layer {} object {} block {}: crc32c {:08x} stored, {:08x} read",
                   sb_.disk.value(), src[k].layer, object.value(),
                   blocks.empty() ? first_block + k : blocks[k], src[k].crc, actual);
    }
  }
  return Status::Ok();
}

Status JStore::CheckNotOutdated(std::span<const LayerId> chain, ObjectIndex object) const {
  for (LayerId layer : chain) {
    const ObjectRec* obj = FindObject(layer, object);
    if (obj != nullptr && obj->state == ObjectState::kOutdated) {
      return Error(Code::kUnavailable, "disk {} layer {} object {}: object outdated on this disk",
                   sb_.disk.value(), layer.value(), object.value());
    }
  }
  return Status::Ok();
}

Result<std::vector<bool>> JStore::BlockStatus(std::span<const LayerId> chain, ObjectIndex object,
                                              uint32_t offset, uint32_t length) const {
  SP_RETURN_IF_ERROR(CheckRange(offset, length, kBlockSize));
  SP_RETURN_IF_ERROR(CheckChain(chain));
  std::vector<bool> out(length / kBlockSize);
  std::vector<Source> src(out.size());
  {
    std::lock_guard lock(mu_);
    SP_RETURN_IF_ERROR(CheckNotOutdated(chain, object));
    ResolveRange(chain, object, offset / kBlockSize, static_cast<uint32_t>(src.size()), src.data());
  }
  for (size_t i = 0; i < out.size(); ++i) out[i] = src[i].kind != Source::kZero;
  return out;
}

Result<std::vector<std::string>> JStore::Verify() {
  struct Item {
    LayerId layer;
    ObjectIndex object;
    ChunkRec chunk;
  };
  std::vector<Item> items;
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, obj] : objects_) {
      for (const ChunkRec& c : obj.chunks) {
        if (c.disk != kNoChunk) items.push_back(Item{obj.layer, obj.object, c});
      }
    }
  }
  std::vector<std::string> bad;
  for (const Item& it : items) {
    for (uint32_t i = 0; i < kChunkBlocks; ++i) {
      if ((it.chunk.present & (1u << i)) == 0) continue;
      const LayerId chain[1] = {it.layer};
      env::AlignedBuffer one(kBlockSize);
      Status s =
          Read(chain, it.object, (it.chunk.index * kChunkBlocks + i) * kBlockSize, one.span());
      if (s.code() == Code::kCorruption) bad.push_back(s.message());
      if (!s.ok() && s.code() != Code::kCorruption) return s;
    }
  }
  return bad;
}

// ---- scrubbing ----

Result<ScrubResult> JStore::ScrubBlocks(LayerId layer, ObjectIndex object, uint32_t first_block,
                                        uint32_t max_blocks) {
  SP_ASSERT(max_blocks > 0 && first_block <= kBlocksPerObject);
  ScrubResult r;
  r.next_block = static_cast<uint32_t>(kBlocksPerObject);
  const LayerId chain[1] = {layer};
  std::vector<Source> src;
  std::vector<uint32_t> blocks;  // src[i] is block blocks[i]
  {
    std::lock_guard lock(mu_);
    const ObjectRec* obj = FindObject(layer, object);
    if (obj == nullptr || obj->state == ObjectState::kOutdated) return r;
    r.version = obj->version;
    for (const ChunkRec& c : obj->chunks) {
      for (uint32_t i = 0; i < kChunkBlocks && r.next_block == kBlocksPerObject; ++i) {
        const uint32_t b = static_cast<uint32_t>(c.index * kChunkBlocks + i);
        if (b < first_block || ((c.present >> i) & 1) == 0) continue;
        if (blocks.size() == max_blocks) {
          r.next_block = b;
          break;
        }
        blocks.push_back(b);
        src.push_back(Resolve(chain, object, b));
      }
    }
  }
  env::AlignedBuffer buf(blocks.size() * kBlockSize, env::AlignedBuffer::Fill::kNone);
  SP_RETURN_IF_ERROR(FetchBlocks(src, buf.data(), &r.bytes_read));
  std::vector<uint32_t> suspects;
  for (size_t k = 0; k < src.size(); ++k) {
    if (Crc32c(buf.data() + k * kBlockSize, kBlockSize) != src[k].crc)
      suspects.push_back(blocks[k]);
  }
  r.blocks_verified = static_cast<uint32_t>(blocks.size());
  for (uint32_t b : suspects) {
    SP_ASSIGN_OR_RETURN(bool bad, ScrubConfirm(layer, object, b, &r.version));
    if (bad) r.bad_blocks.push_back(b);
  }
  return r;
}

Result<bool> JStore::ScrubConfirm(LayerId layer, ObjectIndex object, uint32_t block,
                                  uint64_t* version) {
  const LayerId chain[1] = {layer};
  env::AlignedBuffer one(kBlockSize);
  for (int attempt = 1; attempt < kReadAttempts; ++attempt) {
    Source s;
    {
      std::lock_guard lock(mu_);
      const ObjectRec* obj = FindObject(layer, object);
      if (obj == nullptr || obj->state == ObjectState::kOutdated) return false;
      *version = obj->version;
      s = Resolve(chain, object, block);
    }
    if (s.kind == Source::kZero) return false;  // trimmed or removed since
    if (s.kind == Source::kMemory) {
      std::memcpy(one.data(), s.image->data(), kBlockSize);
    } else {
      SP_RETURN_IF_ERROR(ReadExact(*file_, s.offset, one.span()));
    }
    if (Crc32c(one.data(), kBlockSize) == s.crc) return false;
  }
  return true;
}

// ---- export and install (replica recovery) ----

namespace {

constexpr uint32_t kInstallInlineBlocks = 48;    // journaled images per install record
constexpr uint32_t kInstallRedirectChunks = 64;  // redirected chunks (4 MiB) per install record
constexpr uint16_t kFullChunk = 0xffff;

uint16_t ChunkMask(const std::vector<bool>& bits, uint32_t chunk) {
  uint16_t mask = 0;
  for (uint32_t i = 0; i < kChunkBlocks; ++i) {
    if (bits[chunk * kChunkBlocks + i]) mask |= static_cast<uint16_t>(1u << i);
  }
  return mask;
}

Status CheckImage(const ObjectImage& image) {
  if (image.present.size() != kBlocksPerObject || image.zeroed.size() != kBlocksPerObject) {
    return Error(Code::kInvalidArgument, "object image maps of {} and {} blocks, not {}",
                 image.present.size(), image.zeroed.size(), kBlocksPerObject);
  }
  uint64_t present = 0;
  bool zeroed = false;
  for (uint32_t b = 0; b < kBlocksPerObject; ++b) {
    if (image.present[b] && image.zeroed[b]) {
      return Error(Code::kInvalidArgument, "object image block {} both present and zeroed", b);
    }
    present += image.present[b];
    zeroed = zeroed || image.zeroed[b];
  }
  if (image.data.size() != present * kBlockSize) {
    return Error(Code::kInvalidArgument, "object image has {} data bytes for {} present blocks",
                 image.data.size(), present);
  }
  if (image.version == 0 && (present > 0 || zeroed)) {
    return Error(Code::kInvalidArgument, "an object image of version 0 must be empty");
  }
  return Status::Ok();
}

}  // namespace

Result<ObjectImage> JStore::Export(LayerId layer, ObjectIndex object) {
  // As Read: a mismatch may come from a flush or chunk reuse racing the resolution.
  Result<ObjectImage> r = ExportOnce(layer, object);
  for (int attempt = 1; attempt < kReadAttempts && r.status().code() == Code::kCorruption;
       ++attempt) {
    r = ExportOnce(layer, object);
  }
  return r;
}

Result<ObjectImage> JStore::ExportOnce(LayerId layer, ObjectIndex object) {
  ObjectImage image;
  image.present.assign(kBlocksPerObject, false);
  image.zeroed.assign(kBlocksPerObject, false);
  const LayerId chain[1] = {layer};
  std::vector<Source> src;
  std::vector<uint32_t> blocks;  // src[i] is block blocks[i]
  {
    std::lock_guard lock(mu_);
    SP_RETURN_IF_ERROR(CheckNotOutdated(chain, object));
    const ObjectRec* obj = FindObject(layer, object);
    if (obj == nullptr) return image;
    image.version = obj->version;
    for (const ChunkRec& c : obj->chunks) {
      for (uint32_t i = 0; i < kChunkBlocks; ++i) {
        const uint32_t b = c.index * kChunkBlocks + i;
        image.zeroed[b] = (c.zeroed >> i) & 1;
        if (((c.present >> i) & 1) == 0) continue;
        image.present[b] = true;
        blocks.push_back(b);
        src.push_back(Resolve(chain, object, b));
      }
    }
  }
  if (blocks.empty()) return image;
  env::AlignedBuffer buf(blocks.size() * kBlockSize, env::AlignedBuffer::Fill::kNone);
  uint64_t bytes = 0;
  SP_RETURN_IF_ERROR(FetchBlocks(src, buf.data(), &bytes));
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i].kind == Source::kMemory &&
        Crc32c(buf.data() + i * kBlockSize, kBlockSize) != src[i].crc) {
      return Error(Code::kCorruption, "disk {} layer {} object {} block {}: journaled image crc",
                   sb_.disk.value(), layer.value(), object.value(), blocks[i]);
    }
  }
  SP_RETURN_IF_ERROR(CheckDiskCrcs(src, buf.data(), object, 0, blocks));
  image.data.assign(buf.data(), buf.data() + buf.size());
  return image;
}

Status JStore::Install(LayerId layer, ObjectIndex object, const ObjectImage& image) {
  SP_RETURN_IF_ERROR(CheckImage(image));
  if (options_.read_only) return Error(Code::kFailedPrecondition, "{} is open read-only", path());
  // Step 1: the object becomes outdated at version 0 with no data.
  SP_RETURN_IF_ERROR(BeginInstall(layer, object, image));
  // Step 2: its blocks, in records like writes (no version gate: it stays outdated).
  uint32_t chunk = 0;
  size_t data_pos = 0;
  while (chunk < kChunksPerObject) {
    SP_RETURN_IF_ERROR(InstallChunks(layer, object, image, &chunk, &data_pos));
  }
  SP_ASSERT(data_pos == image.data.size());
  // Step 3: the version; the object is served again.
  Record end;
  end.type = RecordType::kInstallEnd;
  end.layer = layer;
  end.object = object;
  end.version = image.version;
  SP_RETURN_IF_ERROR(Commit(end));
  const ObjectInfo info = Info(layer, object);
  const ObjectState want = image.version == 0 ? ObjectState::kUndef : ObjectState::kOk;
  if (info.version != image.version || info.state != want) {
    return Error(Code::kAborted, "layer {} object {}: the layer was deleted during the install",
                 layer.value(), object.value());
  }
  return Status::Ok();
}

// Checks space (so that a disk too full for the image refuses before changing anything), then
// journals the kInstallBegin record carrying the image's zeroed bits.
Status JStore::BeginInstall(LayerId layer, ObjectIndex object, const ObjectImage& image) {
  Record rec;
  rec.type = RecordType::kInstallBegin;
  rec.layer = layer;
  rec.object = object;
  uint64_t chunk_recs = 0, data_chunks = 0;
  for (uint32_t ci = 0; ci < kChunksPerObject; ++ci) {
    const uint16_t zeroed = ChunkMask(image.zeroed, ci);
    const uint16_t present = ChunkMask(image.present, ci);
    if (zeroed != 0) {
      rec.chunks.push_back(
          ChunkEntry{static_cast<uint16_t>(ci), ChunkEntryKind::kZero, zeroed, kNoChunk, {}});
    }
    chunk_recs += (zeroed | present) != 0;
    data_chunks += present != 0;
  }
  {
    std::lock_guard lock(mu_);
    if (!failed_.ok()) return failed_;
    const ObjectRec* obj = FindObject(layer, object);
    uint64_t owned = 0;
    if (obj != nullptr) {
      for (const ChunkRec& c : obj->chunks) owned += c.disk != kNoChunk;
    }
    if (obj == nullptr && image.version != 0 && objects_.size() >= sb_.max_objects()) {
      return Error(Code::kResourceExhausted, "disk {}: no space: {} objects stored",
                   sb_.disk.value(), objects_.size());
    }
    const uint64_t recs_after = chunk_recs_ - (obj ? obj->chunks.size() : 0) + chunk_recs;
    if (recs_after + 2 > sb_.max_chunk_recs()) {
      return Error(Code::kResourceExhausted, "disk {}: no space: index full", sb_.disk.value());
    }
    // Chunks freed by this install or pending release become usable after a checkpoint.
    const uint64_t usable = alloc_.total() - alloc_.used() + alloc_.pending() + owned;
    if (data_chunks > usable) {
      return Error(Code::kResourceExhausted,
                   "disk {}: no space: {} of {} chunks in use, {} needed to install",
                   sb_.disk.value(), alloc_.used(), alloc_.total(), data_chunks);
    }
  }
  return Commit(rec);
}

// Puts the present blocks of the chunks from *next_chunk on into one kInstallData record (as
// many as fit): a wholly present chunk is redirected (written to a fresh chunk and synced
// first), the others are journaled as block images. Advances *next_chunk and *data_pos.
Status JStore::InstallChunks(LayerId layer, ObjectIndex object, const ObjectImage& image,
                             uint32_t* next_chunk, size_t* data_pos) {
  struct Planned {
    uint16_t index;
    uint16_t mask;
    size_t at;  // its first image in image.data
  };
  std::vector<Planned> plan;
  uint32_t inline_blocks = 0, redirects = 0;
  size_t pos = *data_pos;
  uint32_t ci = *next_chunk;
  for (; ci < kChunksPerObject; ++ci) {
    const uint16_t mask = ChunkMask(image.present, ci);
    if (mask == 0) continue;
    const uint32_t n = static_cast<uint32_t>(std::popcount(mask));
    if (mask == kFullChunk) {
      if (redirects == kInstallRedirectChunks) break;
      ++redirects;
    } else {
      if (inline_blocks + n > kInstallInlineBlocks) break;
      inline_blocks += n;
    }
    plan.push_back(Planned{static_cast<uint16_t>(ci), mask, pos});
    pos += n * kBlockSize;
  }
  *next_chunk = ci;
  if (plan.empty()) return Status::Ok();
  Record rec;
  rec.type = RecordType::kInstallData;
  rec.layer = layer;
  rec.object = object;
  std::vector<uint32_t> disks;
  SP_RETURN_IF_ERROR(AllocateChunks(rec, static_cast<uint32_t>(plan.size()), &disks));
  env::AlignedBuffer redirect(redirects * kChunkBytes, env::AlignedBuffer::Fill::kNone);
  uint8_t* next = redirect.data();
  for (size_t k = 0; k < plan.size(); ++k) {
    const Planned& p = plan[k];
    const uint8_t* from = image.data.data() + p.at;
    if (p.mask == kFullChunk) {
      ChunkEntry e{p.index, ChunkEntryKind::kRedirect, kFullChunk, disks[k], {}};
      std::memcpy(next, from, kChunkBytes);
      for (uint32_t i = 0; i < kChunkBlocks; ++i) {
        e.crc[i] = Crc32c(next + i * kBlockSize, kBlockSize);
      }
      next += kChunkBytes;
      rec.chunks.push_back(e);
      continue;
    }
    rec.chunks.push_back(ChunkEntry{p.index, ChunkEntryKind::kAlloc, 0, disks[k], {}});
    for (uint32_t i = 0; i < kChunkBlocks; ++i) {
      if (((p.mask >> i) & 1) == 0) continue;
      auto img = NewBlock();
      std::memcpy(img->data(), from, kBlockSize);
      from += kBlockSize;
      rec.blocks.push_back(BlockEntry{static_cast<uint16_t>(p.index * kChunkBlocks + i),
                                      Crc32c(img->data(), kBlockSize), std::move(img)});
    }
  }
  *data_pos = pos;
  std::vector<env::IoOp> data_writes;
  RedirectWrites(rec, redirect.data(), &data_writes);
  return Commit(rec, data_writes);
}

}  // namespace spindle::server::jdisk
