// NbdSession: transmission phase. One reader (this coroutine) parses requests and spawns one
// coroutine per request; one writer sends the replies, one at a time, in completion order.
#include "client/nbd_server.h"
#include "common/log.h"
#include "net/transfer.h"

namespace spindle::client {

using namespace nbd;  // NOLINT: protocol constants

namespace {
uint32_t ErrnoFor(const Status& s) {
  switch (s.code()) {
    case Code::kOk:
      return 0;
    case Code::kPermissionDenied:
      return kEPerm;
    case Code::kInvalidArgument:
      return kEInval;
    case Code::kResourceExhausted:
      return kENoSpc;
    default:
      return kEIo;
  }
}

static_assert(kMaxBlockStatusBytes <= UINT32_MAX);

uint64_t CostOf(const Request& r) {
  return (r.type == kCmdRead || r.type == kCmdWrite) ? r.length : 0;
}
}  // namespace

NbdSession::NbdSession(Socket socket, NbdServer& server)
    : socket_(std::move(socket)),
      server_(server),
      slot_freed_(socket_.get_executor()),
      reply_queued_(socket_.get_executor()) {}

asio::awaitable<void> NbdSession::RunAttached(std::shared_ptr<NbdSession> self,
                                              std::shared_ptr<Volume> v) {
  self->volume_ = std::move(v);
  co_await self->Transmission();
  self->Close();
  self->server_.Forget(self.get());
}

asio::awaitable<void> NbdSession::Run(std::shared_ptr<NbdSession> self) {
  const bool chosen = co_await self->Handshake();
  if (chosen) {
    // Counted as "in use" for detach (a kernel-attached device's own session is not).
    const std::string gid = self->volume_->spec().global_id;
    self->server_.NoteInUse(gid, +1);
    co_await self->Transmission();
    self->server_.NoteInUse(gid, -1);
  }
  self->Close();
  self->server_.Forget(self.get());
}

void NbdSession::Close() {
  if (!open_) return;
  open_ = false;
  asio::error_code ignored;
  socket_.shutdown(asio::socket_base::shutdown_both, ignored);
  socket_.close(ignored);
  // The replies the writer is sending stay until its send completes (it releases them).
  while (replies_.size() > writing_) {
    ReleaseSlot(replies_.back().cost_bytes);
    replies_.pop_back();
  }
  reply_queued_.NotifyAll();
}

ExportView NbdSession::View() const {
  return ExportView{volume_->spec().size_bytes, volume_->spec().read_only, structured_,
                    base_allocation_};
}

void NbdSession::ReleaseSlot(uint64_t cost) {
  SP_ASSERT(in_flight_ > 0 && bytes_in_flight_ >= cost);
  --in_flight_;
  bytes_in_flight_ -= cost;
  slot_freed_.NotifyAll();
  // Once reading is done the writer waits for the last slot to end (before that, a freed slot
  // is nothing to it).
  if (reading_done_) reply_queued_.NotifyAll();
}

asio::awaitable<bool> NbdSession::WaitForSlot(uint64_t bytes) {
  // An oversized request still runs alone, so it cannot wait forever.
  while (open_ && (in_flight_ >= kMaxRequestsInFlight ||
                   (in_flight_ > 0 && bytes_in_flight_ + bytes > kMaxBytesInFlight))) {
    co_await slot_freed_.Wait();
  }
  if (!open_) co_return false;
  ++in_flight_;
  bytes_in_flight_ += bytes;
  co_return true;
}

void NbdSession::QueueReply(const Request& r, uint32_t error, std::string_view message,
                            IoBytes data, std::span<const StatusExtent> extents) {
  const uint64_t cost = CostOf(r);
  if (!open_) {
    ReleaseSlot(cost);
    return;
  }
  Reply reply;
  reply.cost_bytes = cost;
  if (!structured_) {
    EncodeSimpleReply(error, r.cookie, reply.fixed.data());
    reply.fixed_size = kSimpleReplySize;
    if (error == 0 && r.type == kCmdRead) reply.data = std::move(data);
  } else if (error != 0) {
    reply.header = EncodeErrorChunk(r.cookie, error, message);
  } else if (r.type == kCmdRead) {
    // One OFFSET_DATA chunk for the whole read (so NBD_CMD_FLAG_DF always holds).
    EncodeReadChunkHead(r.cookie, r.offset, static_cast<uint32_t>(data.size()), reply.fixed.data());
    reply.fixed_size = kReadChunkHeadSize;
    reply.data = std::move(data);
  } else if (r.type == kCmdBlockStatus) {
    reply.header = EncodeBlockStatusChunk(r.cookie, kMetaContextBaseAllocation, extents);
  } else {
    reply.header = EncodeChunkHeader(kReplyFlagDone, kReplyTypeNone, r.cookie, 0);
  }
  // The only request in flight, nothing queued or being sent: try to send it right here (the
  // socket is non-blocking), which spares the hand-over to the writer at queue depth 1. What
  // the socket does not take, the writer sends. With other requests in flight the writer sends
  // it, after the handlers that are ready (answers that came in the same receive) have queued
  // theirs: one gathering send for the burst instead of one send per reply.
  if (writing_ == 0 && replies_.empty() && in_flight_ == 1) {
    const std::span<const uint8_t> head = reply.head();
    std::array<asio::const_buffer, 2> bufs{asio::buffer(head.data(), head.size()),
                                           asio::buffer(reply.data)};
    asio::error_code ec;
    reply.sent = socket_.send(bufs, 0, ec);
    if (reply.sent == head.size() + reply.data.size()) {
      ReleaseSlot(cost);
      return;
    }
    if (ec && ec != asio::error::would_block) reply.sent = 0;  // the writer fails and closes
  }
  replies_.push_back(std::move(reply));
  reply_queued_.NotifyAll();
}

asio::awaitable<void> NbdSession::WriterLoop(std::shared_ptr<NbdSession> self) {
  // Every queued reply (up to kMaxBatch) goes out in one gathering send.
  constexpr size_t kMaxBatch = 32;
  std::vector<asio::const_buffer> bufs;
  while (self->open_) {
    if (self->replies_.empty()) {
      if (self->reading_done_ && self->in_flight_ == 0) break;
      co_await self->reply_queued_.Wait();
      continue;
    }
    const size_t n = std::min(self->replies_.size(), kMaxBatch);
    bufs.clear();
    for (size_t i = 0; i < n; ++i) {
      const Reply& reply = self->replies_[i];
      const std::span<const uint8_t> head = reply.head();
      // Skip what a direct send got out (only ever the first reply).
      const size_t h = std::min(reply.sent, head.size());
      if (h < head.size()) bufs.push_back(asio::buffer(head.data(), head.size()) + h);
      const size_t d = reply.sent - h;
      if (d < reply.data.size()) bufs.push_back(asio::buffer(reply.data) + d);
    }
    asio::error_code ec;
    self->writing_ = n;
    co_await asio::async_write(self->socket_, bufs, net::TransferAllAtOnce{},
                               asio::redirect_error(asio::use_awaitable, ec));
    self->writing_ = 0;
    for (size_t i = 0; i < n; ++i) {
      self->ReleaseSlot(self->replies_.front().cost_bytes);
      self->replies_.pop_front();
    }
    if (ec) self->Close();
  }
  self->writer_done_ = true;
  self->slot_freed_.NotifyAll();
}

asio::awaitable<void> NbdSession::Transmission() {
  auto self = shared_from_this();
  asio::error_code nb;
  socket_.non_blocking(true, nb);  // for QueueReply's direct sends; async operations unaffected
  asio::co_spawn(socket_.get_executor(), WriterLoop(self), LogExceptions{});
  while (open_) {
    std::array<uint8_t, kRequestHeaderSize> head;
    Status io_status = co_await ReadExact(head);
    if (!io_status.ok()) break;
    Request r;
    if (!DecodeRequest(head.data(), r)) {
      SP_LOG_INFO("NBD request with bad magic: closing the connection");
      break;
    }
    const Validation v = ValidateRequest(r, View());
    if (v.verdict == Verdict::kClose) {
      SP_LOG_INFO("NBD request type {} length {} refused: closing", r.type, r.length);
      break;
    }
    if (v.verdict == Verdict::kDisconnect) break;
    const uint64_t cost = CostOf(r);
    const bool slot = co_await WaitForSlot(cost);
    if (!slot) break;
    IoBytes payload;
    if (r.type == kCmdWrite) {
      payload.resize(r.length);
      Status io_status = co_await ReadExact(payload);
      if (!io_status.ok()) {
        ReleaseSlot(cost);
        break;
      }
    }
    if (v.verdict == Verdict::kReplyError) {
      QueueReply(r, v.error, "request refused", {}, {});
      continue;
    }
    asio::co_spawn(socket_.get_executor(), Execute(self, r, std::move(payload)), LogExceptions{});
  }
  // Finish what was accepted (NBD_CMD_DISC asks for that), then let the writer drain.
  reading_done_ = true;
  reply_queued_.NotifyAll();
  while (!writer_done_) co_await slot_freed_.Wait();
}

asio::awaitable<void> NbdSession::Execute(std::shared_ptr<NbdSession> self, Request r,
                                          IoBytes payload) {
  IoBytes data;
  std::vector<StatusExtent> extents;
  const Status s = co_await self->Perform(r, payload, data, extents);
  self->QueueReply(r, ErrnoFor(s), s.message(), std::move(data), extents);
}

asio::awaitable<Status> NbdSession::Perform(const Request& r, std::span<const uint8_t> payload,
                                            IoBytes& data, std::vector<StatusExtent>& extents) {
  Status s;
  switch (r.type) {
    case kCmdRead:
      data.resize(r.length);
      s = co_await volume_->Read(r.offset, data);
      break;
    case kCmdWrite:
      // FUA needs nothing extra: a write is acknowledged only once durable on every replica.
      s = co_await volume_->Write(r.offset, payload);
      break;
    case kCmdWriteZeroes:
      // Without NO_HOLE the range may become a hole: a trim reads back as zeros too.
      if ((r.flags & kCmdFlagNoHole) != 0) {
        s = co_await volume_->WriteZeroes(r.offset, r.length);
      } else {
        s = co_await volume_->Trim(r.offset, r.length);
      }
      break;
    case kCmdTrim:
      s = co_await volume_->Trim(r.offset, r.length);
      break;
    case kCmdBlockStatus:
      s = co_await BlockStatus(r, extents);
      break;
    case kCmdFlush:
      co_await volume_->Flush();
      break;
    default:
      s = Error(Code::kInvalidArgument, "command {}", r.type);
  }
  if (!s.ok()) {
    SP_LOG_WARN("{}: NBD command {} at {}+{} failed: {}", volume_->spec().name, r.type, r.offset,
                r.length, s.ToString());
  }
  co_return s;
}

asio::awaitable<Status> NbdSession::BlockStatus(const Request& r,
                                                std::vector<StatusExtent>& extents) {
  auto runs = co_await volume_->BlockStatus(r.offset, r.length);
  if (!runs.ok()) co_return runs.status();
  for (const AllocRun& run : *runs) {
    // Runs are at most kMaxBlockStatusBytes long, so they fit the u32 length.
    extents.push_back(
        StatusExtent{static_cast<uint32_t>(run.length), run.data ? 0u : (kStateHole | kStateZero)});
    if ((r.flags & kCmdFlagReqOne) != 0) break;
  }
  co_return Status::Ok();
}

}  // namespace spindle::client
