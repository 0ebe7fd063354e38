// JStore: the journaled disk store, format version 3 (docs/formats/disk.md).
//
// Write path: a write below `large_write_bytes` becomes one journal record holding its 4 KiB
// block images. A write of at least `large_write_bytes` sends its fully covered 64 KiB chunks
// to freshly allocated chunks and journals only their location and crcs. A blocked writer
// that finds no round in progress commits one (the others wait for it, or lead the next); the
// committer thread leads the rounds of queued asynchronous writes (WriteAsync). A round takes
// the pending records and issues, in one File::Batch, the records' redirected data and
// the records (one sequential write; these writes concurrently), then one fdatasync (group
// commit: one durable round); then it applies them to the in-memory index and acknowledges
// them. Journaled blocks stay in memory ("dirty") until the flusher writes them in place.
// Checkpoint (flusher thread, when the journal is a quarter full or dirty blocks are older than
// `flush_interval`): write the dirty blocks, fdatasync, write the whole index to the inactive
// checkpoint copy, fdatasync (one Batch), then release the journal space and deferred frees.
// Open: load the newest valid checkpoint, replay the journal after it, checkpoint. A record of
// the last round in the journal whose redirected data does not match its crcs was torn by a
// crash before its fdatasync completed (never acknowledged): replay drops it.
// Reads: every extent of a read (and of an export or scrub step) is issued in one Batch; a
// 4 KiB-aligned read into a 4 KiB-aligned buffer is read straight into it.
// Install (replica recovery): one record marks the object outdated (version 0, chunks freed),
// records like writes put the image's blocks, a last record sets its version; an outdated
// object refuses reads (through any chain), writes and exports until an install completes.
//
// Threads: every public method is blocking and thread-safe. The caller runs at most one
// Write/Trim per (layer, object) at a time (ObjectStore serialises them).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "common/status.h"
#include "env/env.h"
#include "server/disk_store/allocator.h"
#include "server/disk_store/block_cache.h"
#include "server/disk_store/jformat.h"
#include "server/disk_store/journal.h"

namespace spindle::server::jdisk {

struct InitOptions {
  DiskId disk;
  std::string cluster_id;      // 1..kMaxClusterIdBytes bytes
  uint64_t size_bytes = 0;     // 0: the current size of the file/device
  uint64_t journal_bytes = 0;  // 0: device/32, clamped to 2..256 MiB
};

struct StoreOptions {
  uint64_t large_write_bytes = 128 * kKiB;
  std::chrono::milliseconds flush_interval{200};
  // Clean blocks kept in memory for reads (BlockCache); 0: none. Stores in memory keep none.
  uint64_t cache_bytes = 0;
  // Inspection: load and replay in memory only; nothing is written, writes are refused.
  bool read_only = false;
};

// What Open found on the disk (for inspection tools and logs).
struct OpenReport {
  uint64_t checkpoint_generation = 0;
  int checkpoint_copy = 0;
  std::string other_copy;  // the other copy's state ("generation N" or why it is not valid)
  uint64_t checkpoint_seq = 0;
  uint64_t replayed_records = 0;
  uint64_t last_seq = 0;
  uint64_t journal_end = 0;  // logical position after the last valid record
  // Records of the last durable round dropped because their redirected data did not match
  // their crcs (a crash before the round's fdatasync: never acknowledged).
  uint64_t dropped_records = 0;
};

struct ObjectInfo {
  uint64_t version = 0;  // 0: never written on this disk
  ObjectState state = ObjectState::kUndef;
  uint32_t blocks_present = 0;
};

// One layer's own content of one object (no chain), as Export returns and Install takes.
// present/zeroed: kBlocksPerObject entries, never both set for a block (zeroed: trimmed in this
// layer, a hole that stops chain fall-through; neither: reads fall through to lower layers).
// data: the present blocks' 4 KiB images, concatenated in block order.
struct ObjectImage {
  uint64_t version = 0;
  std::vector<bool> present;
  std::vector<bool> zeroed;
  std::vector<uint8_t> data;
};

struct ObjectEntry {
  LayerId layer;
  ObjectIndex object;
  ObjectInfo info;
  uint32_t chunks = 0;  // data chunks it owns
};

struct StoreStats {
  uint64_t device_bytes = 0;
  uint64_t data_bytes = 0;     // data area capacity
  uint64_t on_disk_bytes = 0;  // chunks in use (including frees not yet released)
  uint64_t bytes_stored = 0;   // blocks present, in bytes
  uint64_t objects = 0;
  uint64_t max_objects = 0;   // the format's limit (one per data chunk)
  uint64_t index_bytes = 0;   // estimated in-memory index, without checksums
  uint64_t crc_bytes = 0;     // in-memory checksums
  uint64_t dirty_blocks = 0;  // journaled blocks not yet written in place
  uint64_t journal_bytes = 0;
  uint64_t journal_used = 0;
  uint64_t checkpoints = 0;
  uint64_t cache_bytes = 0;  // blocks in the read cache, in bytes
  uint64_t cache_hits = 0;   // blocks read from the cache, since open
  uint64_t cache_misses = 0;
};

struct LayerStats {
  uint64_t stored_bytes = 0;   // storedSize: blocks present
  uint64_t on_disk_bytes = 0;  // onDiskSize: chunks owned
};

// One ScrubBlocks call: what was verified of one layer's own copy of one object.
struct ScrubResult {
  uint64_t version = 0;     // the object's version (0: absent or outdated; nothing verified)
  uint32_t next_block = 0;  // where to continue; kBlocksPerObject: the object is done
  uint32_t blocks_verified = 0;
  uint64_t bytes_read = 0;           // from the device (journaled images are checked in memory)
  std::vector<uint32_t> bad_blocks;  // ascending
};

// A stored block whose crc32c did not verify, found while the object was at `version`.
struct BadBlock {
  LayerId layer;
  ObjectIndex object;
  uint32_t block = 0;
  uint64_t version = 0;
  bool operator==(const BadBlock&) const = default;
};

// What the disk's background scrubber (server/scrubber.h) found so far.
struct ScrubStats {
  uint64_t bandwidth_bytes_per_s = 0;
  // The last step was paced at the busy rate: clients did I/O on the disk since the step before.
  bool throttled = false;
  uint64_t passes = 0;                     // completed passes over every object
  uint64_t verified_blocks = 0;            // over all passes
  int64_t last_pass_end_unix_seconds = 0;  // 0: no pass completed yet
  // Known bad, in (layer, object, block) order; at most kMaxScrubBadBlocks.
  std::vector<BadBlock> bad_blocks;
};

// A write's `base` when it follows the version before its own.
inline constexpr uint64_t kPreviousVersion = ~uint64_t{0};

class JStore {
 public:
  // Writes a superblock and an empty checkpoint. Refuses (kAlreadyExists) a device that has a
  // Spindle superblock magic, so a live disk is never wiped by mistake.
  static Status Init(env::Env& env, const std::string& path, const InitOptions& options);
  // Opens, loads the checkpoint and replays the journal. kFailedPrecondition: not a Spindle
  // disk, another format version, or another cluster (cluster_id empty: accept any).
  static Result<std::unique_ptr<JStore>> Open(env::Env& env, const std::string& path,
                                              const std::string& cluster_id,
                                              StoreOptions options = {});
  ~JStore();

  // Sector-aligned non-empty range within the object, version order: the write applies on top
  // of `base` (kPreviousVersion: version - 1; a client's first write after it learnt the
  // object's version skips ahead: docs/decisions/0014). version <= current: no change, returns
  // current; otherwise current != base: kFailedPrecondition.
  // kResourceExhausted "no space" when the data area is full (nothing changed).
  // kFailedPrecondition "object outdated" while the object is kOutdated.
  // `crcs`, if not empty: the crc32c of each 4 KiB piece of data (the last may be shorter),
  // which the caller has checked against it; whole blocks then take these instead of being
  // summed again.
  Result<uint64_t> Write(LayerId layer, ObjectIndex object, uint64_t version, uint32_t offset,
                         std::span<const uint8_t> data, std::span<const uint32_t> crcs = {},
                         uint64_t base = kPreviousVersion);
  // Trim: whole blocks become zeroed (holes that stop chain fall-through) and
  // their chunks are freed when empty; partial blocks this layer stores are zero-filled.
  Result<uint64_t> Trim(LayerId layer, ObjectIndex object, uint64_t version, uint32_t offset,
                        uint32_t length, uint64_t base = kPreviousVersion);
  // Write and Trim for a caller on an event loop, which must not block on the device: the
  // record is built on the calling thread and its durable round run by the store's committer
  // thread, which calls `done` (on that thread, or on another writer's that led the round) with
  // what Write/Trim would have returned. kBlocking: this one needs the blocking call on a pool
  // thread (a range of partial blocks, a write of large_write_bytes or more, or chunks that only
  // a checkpoint frees); nothing happened. kDone: `result` is final at once (a version already
  // applied, or an error) and `done` is not called. kQueued: `done` will be called.
  using WriteDone = std::function<void(Result<uint64_t>)>;
  struct AsyncStart {
    enum Kind { kBlocking, kDone, kQueued } kind = kBlocking;
    Result<uint64_t> result{uint64_t{0}};
  };
  AsyncStart WriteAsync(LayerId layer, ObjectIndex object, uint64_t version, uint32_t offset,
                        std::span<const uint8_t> data, std::span<const uint32_t> crcs,
                        uint64_t base, WriteDone done);
  AsyncStart TrimAsync(LayerId layer, ObjectIndex object, uint64_t version, uint32_t offset,
                       uint32_t length, uint64_t base, WriteDone done);
  // Chain read, top layer first; zeros where no layer has data; every block's crc32c checked.
  // kUnavailable "object outdated on this disk" when any layer's object is kOutdated (also
  // BlockStatus): a server never serves data it knows is stale.
  // `block_crcs`, when given, receives the crc32c of every block read if the range is whole
  // blocks (the checked ones, so the caller need not compute them again), else is left empty.
  Status Read(std::span<const LayerId> chain, ObjectIndex object, uint32_t offset,
              std::span<uint8_t> out, std::vector<uint32_t>* block_crcs = nullptr);
  Result<std::vector<bool>> BlockStatus(std::span<const LayerId> chain, ObjectIndex object,
                                        uint32_t offset, uint32_t length) const;
  // Read in three steps, for a caller that does the device reads itself (asynchronously, on
  // its own event loop): PrepareRead resolves the range, fills the blocks that need no device
  // read and lists the device reads in plan->reads (against file_handle()); the caller runs
  // them all; FinishRead checks the crcs and fills `out`, as Read does. A kCorruption from
  // FinishRead may come from a block moved or rewritten in place meanwhile: prepare again (up
  // to kReadAttempts times in all) before taking it for real. `out` and the plan must stay
  // alive and untouched until FinishRead. scratch: the device reads run before this thread
  // prepares another read (else the plan owns its buffer).
  struct ReadPlan;
  Status PrepareRead(std::span<const LayerId> chain, ObjectIndex object, uint32_t offset,
                     std::span<uint8_t> out, bool scratch, ReadPlan* plan);
  Status FinishRead(const ReadPlan& plan, std::span<uint8_t> out,
                    std::vector<uint32_t>* block_crcs) const;
  // A read without a copy, for a store whose file is in memory (mapped at open): when the range
  // is whole blocks all stored in one run of the file, `bytes` points at them in the mapping
  // (kept alive by `keep`), checked against their crcs (unless `check` is false: the caller
  // checks them itself), which go to `block_crcs`; otherwise `bytes` is left empty and the
  // caller reads the usual way. Errors as Read's. A write to
  // these blocks after the check changes the bytes under the caller, who must check them against
  // the crcs again after using them (the client checks every read).
  struct InPlaceRead {
    std::shared_ptr<const env::Mapping> keep;
    std::span<const uint8_t> bytes;
    std::vector<uint32_t> block_crcs;
  };
  Status ReadInPlace(std::span<const LayerId> chain, ObjectIndex object, uint32_t offset,
                     uint32_t length, InPlaceRead* out, bool check = true);
  // The OS handle of the store's file for reads (-1 when it has none, e.g. a simulated disk).
  int file_handle() const { return file_->native_handle(); }
  // Forgets every object of `layer` and frees its chunks (journaled).
  Status DeleteLayer(LayerId layer);

  // This layer's own content of the object (no chain), every block crc-checked (kCorruption
  // names the block). An absent object: version 0, nothing present. kUnavailable when the
  // object is kOutdated. REQUIRES: no concurrent Write/Trim/Install of the object.
  Result<ObjectImage> Export(LayerId layer, ObjectIndex object);
  // Replaces the object by `image` crash-safely: after a crash the object is as before, kOutdated
  // at version 0 (must be installed again), or wholly installed (image.version, kOk). Version 0
  // with nothing present or zeroed removes the object. kInvalidArgument: malformed image;
  // kResourceExhausted: no space (the object may be left kOutdated). Other errors may leave it
  // kOutdated too. REQUIRES: no concurrent Write/Trim/Export/Install of the object.
  Status Install(LayerId layer, ObjectIndex object, const ObjectImage& image);

  ObjectInfo Info(LayerId layer, ObjectIndex object) const;
  // Info without blocks_present (left 0), which costs a pass over the object's chunks: for the
  // per-request version checks of the data path.
  ObjectInfo Head(LayerId layer, ObjectIndex object) const;
  std::vector<ObjectEntry> List() const;
  StoreStats Stats() const;
  LayerStats Layer(LayerId layer) const;
  // Verifies the crc of every stored block (read-only); returns the bad ones as messages.
  Result<std::vector<std::string>> Verify();
  // Writes dirty blocks and a checkpoint now.
  Status Checkpoint();
  // Where `block` of (layer, object) is stored on the device; kNotFound when it is not
  // present. Until the next checkpoint the current image may exist only in the journal.
  Result<uint64_t> BlockOffset(LayerId layer, ObjectIndex object, uint32_t block) const;
  // Cross-checks the index (read-only): chunk ownership, ranges, bits, limits. Problems found.
  std::vector<std::string> CheckIndex() const;
  const OpenReport& open_report() const { return report_; }

  // Scrubbing (server/scrubber.h). Verifies the crc32c of the blocks this layer stores of the
  // object (no chain) from `first_block` on, at most `max_blocks` of them, without blocking
  // writes for longer than resolving them. A mismatch is resolved and read again
  // (kReadAttempts in all) before it counts, so a racing write, flush or chunk reuse never
  // makes a good block look bad. An absent or outdated object verifies nothing. kIoError: the
  // device failed. REQUIRES: max_blocks > 0, first_block <= kBlocksPerObject.
  Result<ScrubResult> ScrubBlocks(LayerId layer, ObjectIndex object, uint32_t first_block,
                                  uint32_t max_blocks);
  // The first stored object at or after (layer, object) in (layer, object) order.
  std::optional<std::pair<LayerId, ObjectIndex>> NextObject(LayerId layer,
                                                            ObjectIndex object) const;
  // The scrubber publishes its statistics here after every step, so that whoever reports on
  // the disk (the registrar) needs no link to it. nullopt: no scrubber runs. Reading drops the
  // bad blocks of objects rewritten or installed since they were found (version changed).
  void PublishScrubStats(ScrubStats stats);
  std::optional<ScrubStats> scrub_stats() const;
  // Client I/O on the disk: the data path (ObjectStore) notes each read, write and trim, and the
  // scrubber slows down while the count moves.
  void NoteClientIo() { client_ios_.fetch_add(1, std::memory_order_relaxed); }
  uint64_t client_ios() const { return client_ios_.load(std::memory_order_relaxed); }
  static constexpr size_t kMaxScrubBadBlocks = 1024;

  const Superblock& superblock() const { return sb_; }
  const std::string& path() const { return file_->path(); }
  // The device is memory (tmpfs): Read never waits for I/O (env::File::is_memory).
  bool in_memory() const { return file_->is_memory(); }

  static constexpr size_t kMaxChainLength = 64;
  static constexpr size_t kMaxBatchRecords = 64;  // records per group commit (durable round)
  static constexpr int kReadAttempts = 3;         // re-resolve after a racing flush/reuse

 private:
  using Key = std::pair<uint64_t, uint32_t>;                  // (layer, object)
  using BlockKey = std::tuple<uint64_t, uint32_t, uint32_t>;  // (layer, object, block)
  struct Pending {
    Record* rec;
    std::span<const env::IoOp> data;  // writes of its redirected data (made durable with it)
    Status status = Status::Ok();
    bool done = false;
    std::condition_variable cv;  // commit_mu_: its round is done, or it leads the next
    // An asynchronous write (WriteAsync) owns its record and hears through `on_done`; the queue
    // owns its entry.
    std::unique_ptr<Record> owned;
    WriteDone on_done;
  };
  // Where one block of a read comes from.
  struct Source {
    enum Kind { kZero, kMemory, kDisk } kind = kZero;
    BlockImage image;
    uint64_t offset = 0;
    uint32_t crc = 0;
    uint64_t layer = 0;
    bool cached = false;  // a kDisk block copied from the cache, not read
  };

 public:
  struct ReadPlan {
    std::vector<Source> src;
    ObjectIndex object{0};
    uint32_t offset = 0;    // in the object
    bool into_out = false;  // blocks land straight in the caller's buffer
    env::AlignedBuffer own;
    uint8_t* base = nullptr;       // block slot 0
    std::vector<env::IoOp> reads;  // the device reads still to run
    uint64_t disk_bytes = 0;
    uint64_t cache_epoch = 0;  // BlockCache::Epoch() before resolving
  };

 private:
  struct FlushItem {
    BlockKey key;
    uint64_t offset;
    BlockImage image;
  };

  JStore(std::unique_ptr<env::File> file, Superblock sb, StoreOptions options);
  // Open steps.
  Status LoadCheckpoint(CheckpointHeader* header);
  Result<CheckpointHeader> ReadCheckpointCopy(int copy, std::vector<uint8_t>* body);
  void IndexObjects(std::vector<ObjectRec> objects);
  void Start();

  // Index (mu_ held).
  void Apply(Record& rec);
  void ApplyChunk(ObjectRec& obj, const ChunkEntry& e);
  void ApplyZero(ObjectRec& obj, uint32_t first, uint32_t count);
  void ApplyZeroMask(ObjectRec& obj, const ChunkEntry& e);
  void DropChunks(ObjectRec& obj);
  void DropLayer(LayerId layer);
  ChunkRec& ChunkAt(ObjectRec& obj, uint16_t index);
  void FreeChunkDisk(ChunkRec& c);
  void EraseEmptyChunks(ObjectRec& obj);
  const ChunkRec* FindChunk(const ObjectRec& obj, uint16_t index) const;
  const ObjectRec* FindObject(LayerId layer, ObjectIndex object) const;
  Source Resolve(std::span<const LayerId> chain, ObjectIndex object, uint32_t block) const;
  // Resolve for blocks [first, first + count) into out[0, count).
  void ResolveRange(std::span<const LayerId> chain, ObjectIndex object, uint32_t first,
                    uint32_t count, Source* out) const;

  // Write path.
  Status VersionGate(LayerId layer, ObjectIndex object, uint64_t version, uint64_t base,
                     uint64_t* current);
  // Fills the record; *data_writes: the redirected chunks' writes, from `data` itself where it
  // is aligned for the device, else from *copy.
  // *needs_checkpoint (when given): set instead of checkpointing when only a checkpoint would
  // free the chunks it needs (the error is then kUnavailable; nothing changed).
  Status BuildWrite(Record& rec, uint32_t offset, std::span<const uint8_t> data,
                    std::span<const uint32_t> crcs, env::AlignedBuffer* copy,
                    std::vector<env::IoOp>* data_writes, bool* needs_checkpoint = nullptr);
  Status BuildTrim(Record& rec, uint32_t offset, uint32_t length);
  Result<BlockImage> OldImage(LayerId layer, ObjectIndex object, uint32_t block);
  Status AllocateChunks(Record& rec, uint32_t count, std::vector<uint32_t>* out,
                        bool* needs_checkpoint = nullptr);
  void ReturnChunks(const Record& rec);
  // Writes of the redirected chunks of `rec` whose data lies side by side in `data` (in entry
  // order), one per run of consecutive disk chunks.
  void RedirectWrites(const Record& rec, const uint8_t* data, std::vector<env::IoOp>* out) const;
  // Queues the record (and the writes of its redirected data) for group commit; returns once
  // it is durable and applied, or failed.
  Status Commit(Record& rec, std::span<const env::IoOp> data = {});
  // Version gate and a fresh record (type, layer, object, version) for WriteAsync/TrimAsync;
  // nullptr, with *answer set, when the call is answered at once.
  std::unique_ptr<Pending> StartAsync(RecordType type, LayerId layer, ObjectIndex object,
                                      uint64_t version, uint64_t base, AsyncStart* answer);
  // Queues an asynchronous write's record (built, version-gated) for the committer.
  AsyncStart Enqueue(std::unique_ptr<Pending> p);
  // REQUIRES: commit_mu_ held by `lock`, no round in progress. Takes a batch, runs its durable
  // round with the lock released, completes its writers and wakes the next round's leader.
  void RunRound(std::unique_lock<std::mutex>& lock, const Pending* self);
  // REQUIRES: commit_mu_ held. Wakes whoever leads the next round: the queue's first writer if
  // it is blocked in Commit, else the committer thread.
  void WakeNextLeader();
  Status ReadOnce(std::span<const LayerId> chain, ObjectIndex object, uint32_t offset,
                  std::span<uint8_t> out, std::vector<uint32_t>* block_crcs);
  // The crc32c of each block slot of `base` (filled from `src`): the checked device crcs, a
  // constant for zeros, computed for journaled images.
  static void BlockCrcs(const std::vector<Source>& src, const uint8_t* base,
                        std::vector<uint32_t>* block_crcs);
  // Fills block slot k of `base` for every src[k]: zeros, the journaled image or the device's
  // block (every run of consecutive device blocks read in one Batch). *disk_bytes: bytes read.
  Status FetchBlocks(const std::vector<Source>& src, uint8_t* base, uint64_t* disk_bytes);
  // FetchBlocks without the device reads: lists them in *reads instead.
  static void FillBlocks(const std::vector<Source>& src, uint8_t* base,
                         std::vector<env::IoOp>* reads, uint64_t* disk_bytes);
  // kCorruption naming the first device block of src whose crc does not match; src[k] is block
  // blocks[k], or first_block + k when blocks is empty.
  Status CheckDiskCrcs(const std::vector<Source>& src, const uint8_t* base, ObjectIndex object,
                       uint32_t first_block, std::span<const uint32_t> blocks) const;
  // Replay: whether the redirected data of `rec` matches the crcs it carries.
  Result<bool> RedirectedDataIntact(const Record& rec);
  // mu_ held: kUnavailable when the object of some layer of the chain is kOutdated.
  Status CheckNotOutdated(std::span<const LayerId> chain, ObjectIndex object) const;
  // Scrub: whether block `block` of (layer, object) still fails to verify after resolving it
  // again; *version: the object's version then.
  Result<bool> ScrubConfirm(LayerId layer, ObjectIndex object, uint32_t block, uint64_t* version);

  // Export/Install.
  Result<ObjectImage> ExportOnce(LayerId layer, ObjectIndex object);
  Status BeginInstall(LayerId layer, ObjectIndex object, const ObjectImage& image);
  Status InstallChunks(LayerId layer, ObjectIndex object, const ObjectImage& image,
                       uint32_t* next_chunk, size_t* data_pos);

  // Background threads.
  // REQUIRES: commit_mu_ held. The next group-commit round: the queue's head, bounded.
  std::vector<Pending*> TakeBatch();
  Status CommitBatch(std::vector<Pending*>& batch);
  void FlushLoop();
  // The committer thread: leads the rounds of asynchronous writes that no blocked writer leads.
  void CommitLoop();
  // Writes the dirty blocks in place, fdatasync, the checkpoint into the inactive copy,
  // fdatasync: one Batch.
  Status FlushAndWriteCheckpoint(std::vector<FlushItem>& items, CheckpointHeader& h,
                                 const std::vector<uint8_t>& body);
  void RequestCheckpoint();

  std::unique_ptr<env::File> file_;
  std::shared_ptr<const env::Mapping> map_;  // the whole file, when it is in memory
  std::unique_ptr<BlockCache> cache_;        // clean blocks read before (not in memory)
  const Superblock sb_;
  const StoreOptions options_;
  OpenReport report_;

  mutable std::mutex mu_;  // index, dirty blocks, allocator, applied_
  std::map<Key, ObjectRec> objects_;
  std::map<BlockKey, BlockImage> dirty_;
  ChunkAllocator alloc_;
  uint64_t chunk_recs_ = 0;
  uint64_t blocks_present_ = 0;
  JournalCursor applied_;  // after the last record applied to the index
  Status failed_;          // sticky: an I/O error made the in-memory state untrustworthy

  std::mutex journal_mu_;  // journal_ (a round's leader appends, a checkpoint moves the tail)
  std::condition_variable space_cv_;
  Journal journal_;
  std::atomic<uint64_t> journal_used_{0};  // for Stats

  std::mutex commit_mu_;  // queue_, stop_, checkpoint_requested_
  std::condition_variable flush_cv_;
  std::condition_variable commit_cv_;  // the committer: a round to lead, or stop
  std::deque<Pending*> queue_;
  bool stop_ = false;
  bool committing_ = false;  // a writer is committing a round (JStore::Commit)
  bool checkpoint_requested_ = false;

  std::mutex ckpt_mu_;  // one checkpoint at a time; generation_ .. ckpt_buf_
  uint64_t generation_ = 0;
  int active_copy_ = 0;
  // Kept between checkpoints (each one would otherwise allocate and fault them in afresh):
  env::AlignedBuffer flush_stage_;  // runs of adjacent dirty blocks, gathered for writing
  env::AlignedBuffer ckpt_buf_;     // header and body of the checkpoint being written
  std::vector<uint8_t> ckpt_body_;  // the body's encoding (its capacity reused)
  uint64_t checkpoints_ = 0;

  mutable std::mutex scrub_mu_;  // scrub_
  std::optional<ScrubStats> scrub_;
  std::atomic<uint64_t> client_ios_{0};

  std::thread flusher_;
  std::thread committer_;
};

}  // namespace spindle::server::jdisk
