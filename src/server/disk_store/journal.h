// Journal: the circular log region of a format-3 disk. Positions are logical byte counts that
// only grow; a record lives at journal_offset + pos % journal_bytes and never wraps: a record
// that would cross the end starts the next lap instead. Records are chained: each carries the
// sequence number one above its predecessor and the predecessor's crc, so replay stops at the
// first torn, stale or foreign block. Not thread-safe (the store's journal_mu_ guards it).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "common/status.h"
#include "env/file.h"
#include "server/disk_store/jformat.h"

namespace spindle::server::jdisk {

// Where the next record goes and what it must carry.
struct JournalCursor {
  uint64_t pos = 0;       // logical position
  uint64_t next_seq = 1;  // its sequence number
  uint32_t prev_crc = 0;  // crc of the record before it
};

class Journal {
 public:
  Journal(env::File& file, uint64_t offset, uint64_t bytes, uint64_t instance);

  // Reads records from `start` and hands each valid one to `apply` in order; stops at the first
  // block that is not the expected record. Leaves the journal positioned after the last one.
  Result<JournalCursor> Replay(JournalCursor start, const std::function<Status(Record&&)>& apply);

  // One durable round: assigns seq/prev_crc/instance/round_index to each record and encodes
  // them after the head into at most two contiguous runs (two when the round reaches the end of
  // the circle); appends their writes to *ops, the buffers to *bufs (keep them until the I/O is
  // done). Returns the cursor after them; nothing changes until Advance. kResourceExhausted
  // when they do not fit before the tail.
  Result<JournalCursor> Prepare(std::vector<Record*>& records,
                                std::vector<env::AlignedBuffer>* bufs,
                                std::vector<env::IoOp>* ops) const;
  // The records of the last Prepare are durable: the head moves to `end`.
  void Advance(const JournalCursor& end) { cursor_ = end; }
  // Prepare, the writes and one DataSync in one File::Batch, Advance.
  Status Append(std::vector<Record*>& records);

  // Bytes `records` would take from the current head, counting a lap skip.
  uint64_t BytesNeeded(const std::vector<Record*>& records) const;
  uint64_t free_bytes() const { return bytes_ - (cursor_.pos - tail_); }
  uint64_t used_bytes() const { return cursor_.pos - tail_; }
  uint64_t capacity() const { return bytes_; }
  const JournalCursor& cursor() const { return cursor_; }
  // Everything before `pos` is no longer needed (a checkpoint covers it).
  void SetTail(uint64_t pos) { tail_ = pos; }

 private:
  // The position where a record of `len` bytes starting at or after `pos` is placed.
  uint64_t Place(uint64_t pos, uint64_t len) const;
  uint64_t Physical(uint64_t pos) const { return offset_ + pos % bytes_; }
  // Reads the record at logical `pos` if it is the expected one.
  Result<Record> ReadExpected(uint64_t pos, const JournalCursor& want, uint32_t* crc,
                              uint64_t* len);

  env::File& file_;
  const uint64_t offset_;
  const uint64_t bytes_;
  const uint64_t instance_;
  JournalCursor cursor_;
  uint64_t tail_ = 0;
};

}  // namespace spindle::server::jdisk
