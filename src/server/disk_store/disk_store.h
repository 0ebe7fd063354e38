// DiskStore: the simple slot store on one file or block device (docs/formats/disk.md).
// Every object (layer, object index) that has been written owns one fixed 32 MiB slot, allocated
// on its first write; the in-memory index (layer, object) -> slot is rebuilt from the slot
// headers at Open. A write is durable (fdatasync'ed) before Write returns.
//
// Not journaled: a crash in the middle of a write can leave blocks whose data and checksum
// disagree; such blocks are reported as kCorruption on read (never returned silently) and must
// be repaired from another replica. The journaled store replaces this one.
//
// Threads: all methods are blocking and thread-safe. The caller must not run two Write calls
// for the same (layer, object) at once (ObjectStore serialises them); reads may run alongside
// writes and see either the old or the new blocks of an object, never a mix within a block.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

#include "common/ids.h"
#include "common/status.h"
#include "env/env.h"
#include "server/disk_store/format.h"

namespace spindle::server::disk {

struct InitOptions {
  DiskId disk;
  std::string cluster_id;  // 1..kMaxClusterIdBytes bytes
  // Size to use; a regular file is grown (sparse) to it. 0: the current size of the file/device.
  uint64_t size_bytes = 0;
};

struct ObjectInfo {
  uint64_t version = 0;  // 0: never written on this disk
  ObjectState state = ObjectState::kUndef;
  uint32_t blocks_present = 0;
};

struct ObjectEntry {
  LayerId layer;
  ObjectIndex object;
  uint32_t slot = 0;
  ObjectInfo info;
};

struct StoreStats {
  uint64_t device_bytes = 0;
  uint32_t slots_total = 0;
  uint32_t slots_used = 0;
  uint32_t slots_damaged = 0;  // headers that failed their checksum at Open; never reused
  uint64_t bytes_stored = 0;   // 4 KiB blocks present, in bytes
};

class DiskStore {
 public:
  // Writes a fresh superblock and clears every slot header. Refuses (kAlreadyExists) a device
  // that already has a valid Spindle superblock, so a live disk is never wiped by mistake.
  static Status Init(env::Env& env, const std::string& path, const InitOptions& options);

  // Opens an initialised disk and rebuilds the index. Refuses (kFailedPrecondition) a device
  // that is not a Spindle disk, has an unknown format version, or belongs to a cluster other
  // than `cluster_id` (empty: accept any, for inspection tools).
  static Result<std::unique_ptr<DiskStore>> Open(env::Env& env, const std::string& path,
                                                 const std::string& cluster_id);

  // Applies data at [offset, offset + data.size()) of (layer, object) as `version`. offset and
  // size are multiples of kSectorSize, size > 0, offset + size <= kObjectSize, version >= 1.
  // Version order: version <= current returns current without change (a duplicate);
  // version == current + 1 applies; version > current + 1 is kFailedPrecondition (the caller
  // waits for the missing versions). Returns the object's version after the call.
  // Errors: kInvalidArgument, kResourceExhausted (no free slot / ENOSPC), kIoError,
  // kCorruption (a partially overwritten block failed its checksum).
  Result<uint64_t> Write(LayerId layer, ObjectIndex object, uint64_t version, uint32_t offset,
                         std::span<const uint8_t> data);

  // Reads [offset, offset + out.size()) of `object` through `chain` (top layer first): each
  // 4 KiB block from the first layer that has it, zeros where none has. Checks every stored
  // block's crc32c (kCorruption naming the block on a mismatch). Same offset/size rules as
  // Write; chain has 1..kMaxChainLength layers.
  Status Read(std::span<const LayerId> chain, ObjectIndex object, uint32_t offset,
              std::span<uint8_t> out);

  // Trims [offset, offset + length) of (layer, object) as `version`: afterwards the range reads
  // as zeros through this layer, also where a lower layer of a chain has data. Versioned and
  // ordered exactly like Write (same range rules, same return value and errors); a trim of an
  // object this disk has never stored allocates its slot (header only) to record the version.
  //  - Whole 4 KiB blocks: presence bit cleared, "zeroed" bit set (reads stop there, zeros;
  //    BlockStatus reports a hole), their file space freed with env::File::PunchHole after
  //    the new header is durable (a device that cannot punch keeps the bytes, unused).
  //  - Partial blocks this layer stores: the covered sectors are zero-filled in place
  //    (read-verify-modify-write, new crc), the block stays present.
  //  - Limitation: a partial block this layer does not store is left untouched, so with a
  //    multi-layer chain a lower layer's bytes would still show in it (one-layer chains, the
  //    only kind today, read zeros there).
  // A later Write of a zeroed block clears its zeroed bit (partial writes merge into zeros).
  Result<uint64_t> Trim(LayerId layer, ObjectIndex object, uint64_t version, uint32_t offset,
                        uint32_t length);

  // Which 4 KiB blocks of [offset, offset + length) hold data through `chain` (top layer
  // first): element i is true when, going down the chain, block offset/4096 + i is found
  // present before it is found zeroed (trimmed) or the chain ends. offset and length are
  // multiples of kBlockSize, length > 0, offset + length <= kObjectSize; chain has
  // 1..kMaxChainLength layers (kInvalidArgument otherwise). Reads only the in-memory index.
  Result<std::vector<bool>> BlockStatus(std::span<const LayerId> chain, ObjectIndex object,
                                        uint32_t offset, uint32_t length) const;

  ObjectInfo Info(LayerId layer, ObjectIndex object) const;
  std::vector<ObjectEntry> List() const;
  StoreStats Stats() const;
  const Superblock& superblock() const { return sb_; }
  const std::string& path() const { return file_->path(); }

  static constexpr size_t kMaxChainLength = 64;

 private:
  struct Slot {
    explicit Slot(uint32_t index) : index(index) {}
    const uint32_t index;
    mutable std::shared_mutex mu;  // exclusive while a write changes data, crcs or header
    SlotHeader header;             // as on disk after the last durable write
  };
  using Key = std::pair<uint64_t, uint32_t>;  // (layer, object)

  DiskStore(std::unique_ptr<env::File> file, Superblock sb);
  Status LoadIndex();
  Slot* Find(LayerId layer, ObjectIndex object) const;
  Result<std::unique_ptr<Slot>> Allocate();
  void Release(std::unique_ptr<Slot> slot);
  // Reads `count` blocks from `first` of the slot into dst and checks them against their crcs.
  Status ReadVerified(const Slot& slot, uint32_t first, uint32_t count, uint8_t* dst) const;
  // The version gate shared by Write and Trim: runs apply(slot) under the slot's exclusive
  // lock when version == current + 1, allocating (and indexing on success) a fresh slot for an
  // object not stored yet.
  Result<uint64_t> Versioned(LayerId layer, ObjectIndex object, uint64_t version,
                             const std::function<Status(Slot&)>& apply);
  Status ApplyTrim(Slot& slot, uint64_t version, uint32_t offset, uint32_t length);
  // Zero-fills bytes [from, to) of stored block `block` and rewrites it with its new crc.
  Status ZeroPartOfBlock(Slot& slot, uint32_t block, uint32_t from, uint32_t to);
  void PunchBlocks(const Slot& slot, const BlockBitmap& freed);
  Status ApplyWrite(Slot& slot, uint64_t version, uint32_t offset, std::span<const uint8_t> data);
  Status ReadChainLayer(const Slot& slot, uint32_t first, uint32_t count, std::vector<bool>& filled,
                        uint8_t* dst) const;

  std::unique_ptr<env::File> file_;
  const Superblock sb_;
  mutable std::mutex mu_;  // guards index_, free_, damaged_, bytes_stored_
  std::map<Key, std::unique_ptr<Slot>> index_;
  std::vector<uint32_t> free_;  // free slot indexes, lowest last
  uint32_t damaged_ = 0;
  uint64_t blocks_stored_ = 0;
};

}  // namespace spindle::server::disk
