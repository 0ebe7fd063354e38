// JStore: group commit, the flusher and checkpoints.
#include <algorithm>
#include <cstring>

#include "common/crc32c.h"
#include "common/log.h"
#include "server/disk_store/jstore.h"

namespace spindle::server::jdisk {
namespace {

constexpr size_t kMaxFlushRun = 1 * kMiB;      // bytes per coalesced in-place write
constexpr size_t kFlushStageBytes = 4 * kMiB;  // runs gathered per Batch of a checkpoint
// Checkpoint buffers up to this size are kept for the next checkpoint.
constexpr size_t kKeepCheckpointBytes = 16 * kMiB;
constexpr std::chrono::milliseconds kSpaceWait{100};

}  // namespace

void JStore::RequestCheckpoint() {
  {
    std::lock_guard lock(commit_mu_);
    checkpoint_requested_ = true;
  }
  flush_cv_.notify_all();
}

std::vector<JStore::Pending*> JStore::TakeBatch() {
  // A batch stays below a quarter of the journal so that it always fits after a checkpoint.
  std::vector<Pending*> batch;
  uint64_t bytes = 0;
  while (!queue_.empty() && batch.size() < kMaxBatchRecords &&
         (batch.empty() || bytes + RecordBytes(*queue_.front()->rec) <= sb_.journal_bytes / 4)) {
    bytes += RecordBytes(*queue_.front()->rec);
    batch.push_back(queue_.front());
    queue_.pop_front();
  }
  return batch;
}

Status JStore::CommitBatch(std::vector<Pending*>& batch) {
  {
    std::lock_guard lock(mu_);
    if (!failed_.ok()) return failed_;
  }
  std::vector<Record*> recs;
  for (Pending* p : batch) recs.push_back(p->rec);
  std::unique_lock jlock(journal_mu_);
  while (journal_.BytesNeeded(recs) > journal_.free_bytes()) {
    jlock.unlock();
    {
      std::lock_guard lock(mu_);
      if (!failed_.ok()) return failed_;  // no checkpoint will free space
    }
    RequestCheckpoint();
    jlock.lock();
    space_cv_.wait_for(jlock, kSpaceWait);
    std::lock_guard lock(commit_mu_);
    if (stop_) return Error(Code::kUnavailable, "{}: the store is closing", path());
  }
  // One durable round: the redirected data and the records in one Batch, then one fdatasync.
  // Replay drops a record of the last round whose data did not all reach the disk.
  std::vector<env::IoOp> ops;
  for (const Pending* p : batch) ops.insert(ops.end(), p->data.begin(), p->data.end());
  if (cache_ != nullptr) {
    for (const env::IoOp& op : ops) cache_->Invalidate(op.offset, op.length);
  }
  std::vector<env::AlignedBuffer> bufs;
  auto end = journal_.Prepare(recs, &bufs, &ops);
  Status s = end.status();
  if (s.ok()) {
    ops.push_back(env::IoOp::Sync());
    s = file_->Batch(ops);
  }
  if (s.ok()) journal_.Advance(*end);
  const uint64_t used = journal_.used_bytes();
  jlock.unlock();
  std::lock_guard lock(mu_);
  if (!s.ok()) {
    failed_ = s;  // the journal may hold part of the batch: stop accepting writes
    SP_LOG_ERROR("{}: journal write failed, store stopped: {}", path(), s.ToString());
    return s;
  }
  for (Record* r : recs) Apply(*r);
  applied_ = *end;
  journal_used_ = used;
  if (used > sb_.journal_bytes / 4) flush_cv_.notify_all();
  return Status::Ok();
}

void JStore::CommitLoop() {
  std::unique_lock lock(commit_mu_);
  for (;;) {
    // A blocked writer at the head leads its own round; the committer leads the others. At stop
    // it runs the rounds still queued, so that every queued writer hears.
    commit_cv_.wait(lock, [&] {
      return (stop_ && queue_.empty()) ||
             (!committing_ && !queue_.empty() && queue_.front()->on_done);
    });
    if (queue_.empty()) return;
    RunRound(lock, nullptr);
  }
}

void JStore::FlushLoop() {
  for (;;) {
    {
      std::unique_lock lock(commit_mu_);
      flush_cv_.wait_for(lock, options_.flush_interval,
                         [&] { return stop_ || checkpoint_requested_; });
      if (stop_) return;
      checkpoint_requested_ = false;
    }
    bool needed = false;
    {
      std::lock_guard lock(mu_);
      needed = failed_.ok() &&
               (!dirty_.empty() || alloc_.pending() > 0 || journal_used_ > sb_.journal_bytes / 4);
    }
    if (!needed) continue;
    Status s = Checkpoint();
    if (!s.ok()) SP_LOG_WARN("{}: checkpoint failed: {}", path(), s.ToString());
  }
}

Status JStore::FlushAndWriteCheckpoint(std::vector<FlushItem>& items, CheckpointHeader& h,
                                       const std::vector<uint8_t>& body) {
  std::sort(items.begin(), items.end(),
            [](const FlushItem& a, const FlushItem& b) { return a.offset < b.offset; });
  // A lone block is written from its image (aligned, kept alive by `items`); a run of adjacent
  // blocks is gathered into the staging buffer, which is kept between checkpoints: allocating
  // (and faulting in) a buffer per run each time cost more than the writes. When the staging
  // buffer is full, the writes so far are issued first.
  if (flush_stage_.size() == 0) {
    flush_stage_ = env::AlignedBuffer(kFlushStageBytes, env::AlignedBuffer::Fill::kNone);
  }
  std::vector<env::IoOp> ops;
  size_t staged = 0;
  for (size_t i = 0; i < items.size();) {
    size_t j = i + 1;
    while (j < items.size() && items[j].offset == items[j - 1].offset + kBlockSize &&
           (j - i) * kBlockSize < kMaxFlushRun) {
      ++j;
    }
    if (j == i + 1) {
      ops.push_back(env::IoOp::Write(items[i].offset, items[i].image->span()));
      i = j;
      continue;
    }
    const size_t bytes = (j - i) * kBlockSize;
    if (staged + bytes > flush_stage_.size()) {
      SP_RETURN_IF_ERROR(file_->Batch(ops));
      ops.clear();
      staged = 0;
    }
    uint8_t* run = flush_stage_.data() + staged;
    for (size_t k = i; k < j; ++k) {
      std::memcpy(run + (k - i) * kBlockSize, items[k].image->data(), kBlockSize);
    }
    ops.push_back(env::IoOp::Write(items[i].offset, {run, bytes}));
    staged += bytes;
    i = j;
  }
  // The blocks must be durable before the checkpoint that no longer has them in the journal.
  if (!ops.empty()) ops.push_back(env::IoOp::Sync());
  const int copy = 1 - active_copy_;
  h.generation = generation_ + 1;
  h.instance = sb_.instance;
  h.body_bytes = body.size();
  h.body_crc = Crc32c(body.data(), body.size());
  const size_t total = kMetaBlock + body.size();
  if (ckpt_buf_.size() < total) {
    ckpt_buf_ = env::AlignedBuffer(total + total / 4, env::AlignedBuffer::Fill::kNone);
  }
  EncodeCheckpointHeader(h, ckpt_buf_.span().first(kMetaBlock));
  if (!body.empty()) std::memcpy(ckpt_buf_.data() + kMetaBlock, body.data(), body.size());
  // Whole device blocks: zeros after the body.
  const size_t padded =
      (total + env::kDirectIoAlignment - 1) / env::kDirectIoAlignment * env::kDirectIoAlignment;
  std::memset(ckpt_buf_.data() + total, 0, padded - total);
  ops.push_back(
      env::IoOp::Write(sb_.meta_offset + static_cast<uint64_t>(copy) * sb_.meta_copy_bytes,
                       ckpt_buf_.span().first(padded)));
  ops.push_back(env::IoOp::Sync());
  SP_RETURN_IF_ERROR(file_->Batch(ops));
  generation_ = h.generation;
  active_copy_ = copy;
  return Status::Ok();
}

Status JStore::Checkpoint() {
  if (options_.read_only) return Error(Code::kFailedPrecondition, "{} is open read-only", path());
  std::lock_guard ckpt(ckpt_mu_);
  CheckpointHeader h;
  std::vector<uint8_t>& body = ckpt_body_;
  body.clear();
  std::vector<FlushItem> items;
  std::vector<uint32_t> freed;
  {
    std::lock_guard lock(mu_);
    if (!failed_.ok()) return failed_;
    h.last_seq = applied_.next_seq - 1;
    h.journal_pos = applied_.pos;
    h.last_crc = applied_.prev_crc;
    h.objects = static_cast<uint32_t>(objects_.size());
    body.reserve(objects_.size() * kObjectRecBytes + chunk_recs_ * kChunkRecBytes);
    for (const auto& [key, obj] : objects_) EncodeObjectRec(obj, body);
    for (const auto& [bkey, img] : dirty_) {
      const ObjectRec* obj = FindObject(LayerId(std::get<0>(bkey)), ObjectIndex(std::get<1>(bkey)));
      const uint32_t block = std::get<2>(bkey);
      const ChunkRec* c = FindChunk(*obj, static_cast<uint16_t>(block / kChunkBlocks));
      const uint64_t at = sb_.ChunkOffset(c->disk) + (block % kChunkBlocks) * kBlockSize;
      // While the block is dirty reads take its image, not the device: from here on the cache
      // has the new image, and no read begun before puts the old one back.
      if (cache_ != nullptr) cache_->Update(at, img->data());
      items.push_back(FlushItem{bkey, at, img});
    }
    freed = alloc_.TakePending();
  }
  Status s = FlushAndWriteCheckpoint(items, h, body);
  if (ckpt_buf_.size() > kKeepCheckpointBytes) {  // a large index: do not hold two more copies
    ckpt_body_ = {};
    ckpt_buf_ = {};
  }
  if (!s.ok()) {
    std::lock_guard lock(mu_);
    failed_ = s;
    return s;
  }
  {
    std::lock_guard jlock(journal_mu_);
    journal_.SetTail(h.journal_pos);
    journal_used_ = journal_.used_bytes();
  }
  space_cv_.notify_all();
  std::lock_guard lock(mu_);
  for (const FlushItem& it : items) {
    auto d = dirty_.find(it.key);
    if (d != dirty_.end() && d->second == it.image) dirty_.erase(d);
  }
  alloc_.Release(freed);
  ++checkpoints_;
  return Status::Ok();
}

}  // namespace spindle::server::jdisk
