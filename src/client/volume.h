// An attached volume as the NBD side sees it: byte-addressed Read / Write / WriteZeroes /
// Flush, turned into per-object data-protocol requests (DESIGN.md §4, §5).
//
// Writes: a request is split per 32 MiB object; each piece takes the object's next version
// and is sent to every usable disk of the object's disk set in parallel; it succeeds when all
// of them acknowledged (then it is durable on each). Reads go to the tail of the disk set and
// fall back towards the head on error or checksum mismatch.
//
// Thread: owned by the io_context thread; all methods run there. Shared by the NBD sessions
// that use it (shared_ptr); the ServerPool must outlive it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include <asio.hpp>

#include "client/async_util.h"
#include "client/server_pool.h"
#include "client/state.h"
#include "common/status.h"

namespace spindle::client {

// A replica that does not answer within this is treated as failed (reported to mgmt).
inline constexpr std::chrono::milliseconds kIoTimeout{6000};
inline constexpr std::chrono::milliseconds kObjectInfoTimeout{5000};
// OBJECT_SYNC may pull a whole object from a peer.
inline constexpr std::chrono::milliseconds kSyncTimeout{30000};
// WRITE_ZEROES with NO_HOLE is sent as writes of zeros in pieces of this size.
inline constexpr uint32_t kZeroPieceBytes = 4 * 1024 * 1024;
// Objects trimmed at once by one Trim (each one TRIM per replica).
inline constexpr size_t kMaxTrimObjectsAtOnce = 8;
// The most one BlockStatus call looks at (a shorter answer is allowed by NBD).
inline constexpr uint64_t kMaxBlockStatusBytes = 256ull * 1024 * 1024;

// One piece of a byte range that falls inside a single object.
struct Extent {
  uint32_t object = 0;
  uint32_t offset = 0;  // inside the object
  uint32_t length = 0;
  uint64_t buffer_offset = 0;  // inside the caller's buffer
};
// Splits [offset, offset + length) at object boundaries. REQUIRES: no overflow.
std::vector<Extent> SplitExtents(uint64_t offset, uint64_t length);

// Per-object write versions of one layer. Survives a Volume being replaced by a new spec of
// the same layer, so versions are never handed out twice.
struct ObjectVersions {
  explicit ObjectVersions(asio::any_io_executor ex) : loaded(ex) {}
  struct Entry {
    bool known = false;
    bool loading = false;
    // The next write skips ahead (proto::kWriteFlagSkip): set when the version was learnt.
    bool skip_next = false;
    uint64_t last = 0;       // last version handed out
    uint32_t in_flight = 0;  // writes and trims sent with a version, not yet completed
  };
  std::unordered_map<uint32_t, Entry> entries;
  AsyncSignal loaded;  // notified when a version query finishes
};

// A run of equal allocation in a BlockStatus answer.
struct AllocRun {
  uint64_t length = 0;
  bool data = false;  // false: a hole (reads as zeros, nothing stored)
};

class Volume {
 public:
  Volume(asio::any_io_executor ex, ServerPool& pool, VolumeSpec spec,
         std::shared_ptr<ObjectVersions> versions);
  Volume(const Volume&) = delete;
  Volume& operator=(const Volume&) = delete;

  const VolumeSpec& spec() const { return spec_; }
  const std::shared_ptr<ObjectVersions>& versions() const { return versions_; }
  // Takes a new layout (disk sets, chain) of the same volume and layer.
  void UpdateSpec(VolumeSpec spec) { spec_ = std::move(spec); }
  // Moves the volume to a new top layer (a snapshot froze the old one): new writes and trims
  // wait, those in flight complete, then `spec` and fresh per-object versions take over and
  // the waiting ones go on. So the old layer holds exactly the writes acknowledged before.
  // REQUIRES: spec is of the same volume, size and rights; one switch at a time.
  asio::awaitable<void> SwitchLayer(VolumeSpec spec);
  // A group snapshot's cut (docs/decisions/0007-group-snapshot.md): new writes and trims wait
  // until Resume(); reads go on. Once a Flush() begun after Pause() completes, none is in
  // flight and the layer holds exactly the writes acknowledged so far. A SwitchLayer while
  // paused keeps the writes held. Idempotent.
  void Pause() { paused_ = true; }
  void Resume();
  bool paused() const { return paused_; }

  // REQUIRES for all: the range lies inside the volume. Errors: kPermissionDenied on a
  // read-only volume, kInvalidArgument for unaligned writes, else the replicas' failure.
  asio::awaitable<Status> Read(uint64_t offset, std::span<uint8_t> out);
  // offset and data.size() are multiples of 512.
  asio::awaitable<Status> Write(uint64_t offset, std::span<const uint8_t> data);
  // Writes real zeros (NBD WRITE_ZEROES with NO_HOLE).
  asio::awaitable<Status> WriteZeroes(uint64_t offset, uint64_t length);
  // Makes the range read as zeros and frees it on the servers: TRIM with a new per-object
  // version to every usable replica, like a write (and ordered with writes for Flush).
  // offset and length are multiples of 512.
  asio::awaitable<Status> Trim(uint64_t offset, uint64_t length);
  // Allocation of [offset, offset + length) (length > 0): runs starting at `offset`, covering
  // at most kMaxBlockStatusBytes and never past the end of the volume or the range, asked of
  // the tail replica of each object (falling back towards the head). 4 KiB granularity.
  asio::awaitable<Result<std::vector<AllocRun>>> BlockStatus(uint64_t offset, uint64_t length);
  // Completes after every write issued before it has completed.
  asio::awaitable<void> Flush();

 private:
  asio::awaitable<Status> WriteAligned(uint64_t offset, std::span<const uint8_t> data);
  // On a volume with parent layers the store cannot merge a partial 4 KiB block with the
  // lower layers' data (a WRITE names only the top layer), so partial blocks are read through
  // the chain and written whole, and writes and trims touching the same 4 KiB blocks are
  // serialized (a merge must not undo a concurrent write's data). REQUIRES: blocks locked.
  asio::awaitable<Status> WriteMerged(uint64_t offset, std::span<const uint8_t> data);
  asio::awaitable<Status> TrimOverChain(uint64_t offset, uint64_t length);
  asio::awaitable<Status> TrimRange(uint64_t offset, uint64_t length);
  // Waits until no other write holds a block of the range, then holds them as `seq`.
  asio::awaitable<void> LockBlocks(uint64_t seq, uint64_t offset, uint64_t length);
  void UnlockBlocks(uint64_t seq);
  bool BlocksBusy(uint64_t first, uint64_t last) const;
  // Returns once no layer switch or cut holds writes back.
  asio::awaitable<void> WaitNotSwitching();
  asio::awaitable<Status> ReadAligned(uint64_t offset, std::span<uint8_t> out);

  // replication.cc
  asio::awaitable<Status> WriteObject(Extent e, std::span<const uint8_t> data);
  asio::awaitable<Status> ReadObject(Extent e, std::span<uint8_t> out);
  asio::awaitable<Status> TrimObject(Extent e);
  // Fills (*out)[e.buffer_offset / 4096 + i] for the 4 KiB blocks of e (4 KiB-aligned).
  asio::awaitable<Status> StatusObject(Extent e, std::shared_ptr<std::vector<bool>> out);
  asio::awaitable<Status> StatusReplica(DiskId disk, Extent e,
                                        std::shared_ptr<std::vector<bool>> out);
  asio::awaitable<Status> TrimReplica(DiskId disk,
                                      std::shared_ptr<const std::vector<uint8_t>> encoded);
  // Runs a write-like operation as one of writes_in_flight_ (for Flush).
  uint64_t BeginWrite();
  void EndWrite(uint64_t seq);
  // The version (and proto::kWriteFlag* flags) of the next write or trim of `object`, counted
  // in flight in `versions` (the caller's hold on versions_) until Finished.
  struct Versioned {
    uint64_t version = 0;
    uint32_t flags = 0;
  };
  asio::awaitable<Result<Versioned>> NextVersion(std::shared_ptr<ObjectVersions> versions,
                                                 uint32_t object, DiskSet disks);
  static void Finished(ObjectVersions& versions, uint32_t object);
  asio::awaitable<Result<uint64_t>> QueryVersion(uint32_t object, const DiskSet& disks);
  asio::awaitable<Status> WriteReplica(DiskId disk,
                                       std::shared_ptr<const std::vector<uint8_t>> encoded);
  asio::awaitable<Status> InfoReplica(DiskId disk, uint32_t object,
                                      std::shared_ptr<std::vector<uint64_t>> out, size_t slot);
  // One replica's copy of `e` into `out`, checked against the crcs it came with. flags:
  // proto::kRead*. *bad_crcs: the answer came but failed this check (not the server's).
  asio::awaitable<Status> ReadReplica(DiskId disk, Extent e, std::span<uint8_t> out, uint32_t flags,
                                      bool* bad_crcs);
  // Disks of `set` that take writes (up, recovering included) / serve reads (up, caught up).
  DiskSet UsableDisks(const DiskSet& set) const;
  // A write or trim may go to `disks` (UsableDisks of the object's set): at least one of them
  // is caught up (not recovering). Else kUnavailable.
  Status CheckWritable(const DiskSet& disks, uint32_t object) const;
  DiskSet ReadableDisks(DiskSet set) const;
  // The replicas' versions of `object` are known (EnsureEqual has nothing to do).
  bool VersionKnown(uint32_t object) const;
  // Completes a write or trim sent to `disks` with `results`: OK when all succeeded, or when
  // some did and mgmt marked the others down; else the error (and the object's version is
  // asked of the replicas again next time).
  asio::awaitable<Status> CompleteReplicated(const DiskSet& disks,
                                             const std::vector<Status>& results, uint32_t object);
  // Once per object and layer: asks the replicas' versions and has the ones behind catch up.
  asio::awaitable<Status> EnsureEqual(uint32_t object);
  // Makes the object's last version known, asking `disks` once (concurrent callers wait for
  // that answer).
  asio::awaitable<Status> LoadVersion(std::shared_ptr<ObjectVersions> versions, uint32_t object,
                                      const DiskSet& disks);
  asio::awaitable<Status> SyncReplica(DiskId disk, uint32_t object, uint64_t version);

  asio::any_io_executor ex_;
  ServerPool& pool_;
  VolumeSpec spec_;
  std::shared_ptr<ObjectVersions> versions_;
  // Writes in flight by sequence number, for Flush().
  uint64_t next_write_seq_ = 0;
  std::set<uint64_t> writes_in_flight_;
  AsyncSignal write_done_;
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> locked_blocks_;  // seq → [first, last)
  bool switching_ = false;  // SwitchLayer holds new writes back
  bool paused_ = false;     // a group snapshot's cut holds new writes back
  AsyncSignal switched_;    // switching_ or paused_ ended
};

}  // namespace spindle::client
