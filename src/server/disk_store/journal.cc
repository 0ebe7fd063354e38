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

Status Journal::WriteRun(uint64_t pos, const std::vector<env::AlignedBuffer>& bufs) {
  if (bufs.empty()) return Status::Ok();
  if (bufs.size() == 1) return file_.PWrite(Physical(pos), bufs[0].span());
  size_t total = 0;
  for (const auto& b : bufs) total += b.size();
  env::AlignedBuffer run(total);
  size_t at = 0;
  for (const auto& b : bufs) {
    std::memcpy(run.data() + at, b.data(), b.size());
    at += b.size();
  }
  return file_.PWrite(Physical(pos), run.span());
}

Status Journal::Append(std::vector<Record*>& records) {
  if (BytesNeeded(records) > free_bytes()) {
    return Error(Code::kResourceExhausted, "journal full");
  }
  JournalCursor c = cursor_;
  uint64_t run_start = c.pos;
  std::vector<env::AlignedBuffer> run;  // records that are contiguous on disk
  for (Record* r : records) {
    r->seq = c.next_seq;
    r->prev_crc = c.prev_crc;
    r->instance = instance_;
    env::AlignedBuffer buf;
    uint32_t crc = EncodeRecord(*r, buf);
    uint64_t pos = Place(c.pos, buf.size());
    if (pos != c.pos || (pos % bytes_ == 0 && !run.empty())) {  // a new lap: new run
      SP_RETURN_IF_ERROR(WriteRun(run_start, run));
      run.clear();
      run_start = pos;
    }
    c = JournalCursor{pos + buf.size(), c.next_seq + 1, crc};
    run.push_back(std::move(buf));
  }
  SP_RETURN_IF_ERROR(WriteRun(run_start, run));
  SP_RETURN_IF_ERROR(file_.DataSync());
  cursor_ = c;
  return Status::Ok();
}

}  // namespace spindle::server::jdisk
