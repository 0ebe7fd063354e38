#include "server/disk_store/journal.h"

#include <cstring>

#include "common/assert.h"

namespace spindle::server::jdisk {

Journal::Journal(env::File& file, uint64_t offset, uint64_t bytes, uint64_t instance)
    : file_(file), offset_(offset), bytes_(bytes), instance_(instance) {}

uint64_t Journal::Place(uint64_t pos, uint64_t len) const {
  uint64_t in_lap = pos % bytes_;
  if (in_lap + len <= bytes_) return pos;
  return pos - in_lap + bytes_;
}

Result<Record> Journal::ReadExpected(uint64_t pos, const JournalCursor& want, uint32_t* crc,
                                     uint64_t* len) {
  env::AlignedBuffer first(kBlockSize);
  SP_ASSIGN_OR_RETURN(size_t n, file_.PRead(Physical(pos), first.span()));
  uint64_t bytes = n == kBlockSize ? PeekRecordBytes(first.span()) : 0;
  if (bytes == 0 || pos % bytes_ + bytes > bytes_) return Error(Code::kNotFound, "no record");
  env::AlignedBuffer whole(bytes);
  std::memcpy(whole.data(), first.data(), kBlockSize);
  if (bytes > kBlockSize) {
    std::span<uint8_t> rest = whole.span().subspan(kBlockSize);
    SP_ASSIGN_OR_RETURN(size_t m, file_.PRead(Physical(pos) + kBlockSize, rest));
    if (m != rest.size()) return Error(Code::kNotFound, "short record");
  }
  auto rec = DecodeRecord(whole.span(), crc);
  if (!rec.ok()) return Error(Code::kNotFound, "{}", rec.status().message());
  if (rec->seq != want.next_seq || rec->prev_crc != want.prev_crc || rec->instance != instance_) {
    return Error(Code::kNotFound, "stale record");
  }
  *len = bytes;
  return rec;
}

Result<JournalCursor> Journal::Replay(JournalCursor start,
                                      const std::function<Status(Record&&)>& apply) {
  cursor_ = start;
  tail_ = start.pos;
  for (;;) {
    uint32_t crc = 0;
    uint64_t len = 0;
    uint64_t pos = cursor_.pos;
    auto rec = ReadExpected(pos, cursor_, &crc, &len);
    if (!rec.ok() && rec.status().code() != Code::kNotFound) return rec.status();
    if (!rec.ok() && pos % bytes_ != 0) {
      pos = pos - pos % bytes_ + bytes_;  // the record may have started the next lap
      rec = ReadExpected(pos, cursor_, &crc, &len);
      if (!rec.ok() && rec.status().code() != Code::kNotFound) return rec.status();
    }
    if (!rec.ok() || pos + len - tail_ > bytes_) break;
    SP_RETURN_IF_ERROR(apply(std::move(rec).value()));
    cursor_ = JournalCursor{pos + len, cursor_.next_seq + 1, crc};
  }
  return cursor_;
}

uint64_t Journal::BytesNeeded(const std::vector<Record*>& records) const {
  uint64_t pos = cursor_.pos;
  for (const Record* r : records) {
    uint64_t len = RecordBytes(*r);
    pos = Place(pos, len) + len;
  }
  return pos - cursor_.pos;
}

Result<JournalCursor> Journal::Prepare(std::vector<Record*>& records,
                                       std::vector<env::AlignedBuffer>* bufs,
                                       std::vector<env::IoOp>* ops) const {
  if (BytesNeeded(records) > free_bytes()) {
    return Error(Code::kResourceExhausted, "journal full");
  }
  SP_ASSERT(records.size() <= 0xffff);
  // Place the records: a run ends where the next record starts a new lap.
  struct Run {
    uint64_t pos;
    uint64_t bytes = 0;
  };
  std::vector<Run> runs;
  std::vector<uint64_t> lens;
  uint64_t pos = cursor_.pos;
  for (const Record* r : records) {
    const uint64_t len = RecordBytes(*r);
    const uint64_t at = Place(pos, len);
    if (runs.empty() || at != pos || at % bytes_ == 0) runs.push_back(Run{at});
    runs.back().bytes += len;
    lens.push_back(len);
    pos = at + len;
  }
  JournalCursor c = cursor_;
  size_t k = 0;
  for (const Run& run : runs) {
    env::AlignedBuffer buf(run.bytes, env::AlignedBuffer::Fill::kNone);
    uint64_t at = 0;
    for (; at < run.bytes; ++k) {
      Record* r = records[k];
      r->seq = c.next_seq;
      r->prev_crc = c.prev_crc;
      r->instance = instance_;
      r->round_index = static_cast<uint16_t>(k);
      const uint32_t crc = EncodeRecord(*r, buf.span().subspan(at, lens[k]));
      at += lens[k];
      c = JournalCursor{run.pos + at, c.next_seq + 1, crc};
    }
    ops->push_back(env::IoOp::Write(Physical(run.pos), buf.span()));
    bufs->push_back(std::move(buf));
  }
  return c;
}

Status Journal::Append(std::vector<Record*>& records) {
  std::vector<env::AlignedBuffer> bufs;
  std::vector<env::IoOp> ops;
  SP_ASSIGN_OR_RETURN(JournalCursor end, Prepare(records, &bufs, &ops));
  ops.push_back(env::IoOp::Sync());
  SP_RETURN_IF_ERROR(file_.Batch(ops));
  Advance(end);
  return Status::Ok();
}

}  // namespace spindle::server::jdisk
