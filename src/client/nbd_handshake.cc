// NbdSession: the fixed newstyle handshake and option haggling.
#include <array>

#include <cstring>

#include "client/nbd_server.h"
#include "common/log.h"
#include "net/transfer.h"

// GCC 12 reports a false -Wmismatched-new-delete when it inlines one coroutine into another
// here; both the frame's allocation and its release are asio's own operators.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace spindle::client {

using namespace nbd;  // NOLINT: protocol constants

asio::awaitable<Status> NbdSession::ReadExact(std::span<uint8_t> buf) {
  constexpr size_t kInBuffer = 64 * 1024;
  constexpr size_t kDirect = 16 * 1024;  // larger remainders are read straight into `buf`
  if (in_.empty()) in_.resize(kInBuffer);
  size_t done = 0;
  while (done < buf.size()) {
    const size_t n = std::min(buf.size() - done, in_end_ - in_begin_);
    std::memcpy(buf.data() + done, in_.data() + in_begin_, n);
    done += n;
    in_begin_ += n;
    if (in_begin_ == in_end_) in_begin_ = in_end_ = 0;
    if (done == buf.size()) break;
    asio::error_code ec;
    if (buf.size() - done > kDirect) {
      co_await asio::async_read(socket_, asio::buffer(buf.data() + done, buf.size() - done),
                                net::TransferAllAtOnce{},
                                asio::redirect_error(asio::use_awaitable, ec));
      done = buf.size();
    } else {
      in_end_ +=
          co_await socket_.async_read_some(asio::buffer(in_.data() + in_end_, in_.size() - in_end_),
                                           asio::redirect_error(asio::use_awaitable, ec));
    }
    if (ec) {
      SP_LOG_DEBUG("NBD read: {}", ec.message());
      co_return Error(Code::kUnavailable, "read: {}", ec.message());
    }
  }
  co_return Status::Ok();
}

asio::awaitable<Status> NbdSession::WriteAll(std::span<const uint8_t> buf) {
  asio::error_code ec;
  co_await asio::async_write(socket_, asio::buffer(buf.data(), buf.size()),
                             asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    SP_LOG_DEBUG("NBD write: {}", ec.message());
    co_return Error(Code::kUnavailable, "write: {}", ec.message());
  }
  co_return Status::Ok();
}

asio::awaitable<Status> NbdSession::SendOptionReply(uint32_t option, uint32_t type,
                                                    std::span<const uint8_t> data) {
  co_return co_await WriteAll(EncodeOptionReply(option, type, data));
}

asio::awaitable<bool> NbdSession::Handshake() {
  std::vector<uint8_t> hello;
  Append64(hello, kNbdMagic);
  Append64(hello, kIHaveOpt);
  Append16(hello, kFlagFixedNewstyle | kFlagNoZeroes);
  Status sent = co_await WriteAll(hello);
  if (!sent.ok()) co_return false;
  std::array<uint8_t, 4> flags_buf;
  Status got_flags = co_await ReadExact(flags_buf);
  if (!got_flags.ok()) co_return false;
  const uint32_t flags = Load32(flags_buf.data());
  if ((flags & ~(kClientFlagFixedNewstyle | kClientFlagNoZeroes)) != 0 ||
      (flags & kClientFlagFixedNewstyle) == 0) {
    SP_LOG_INFO("NBD client sent flags {:#x}: closing", flags);
    co_return false;
  }
  no_zeroes_ = (flags & kClientFlagNoZeroes) != 0;
  for (uint32_t n = 0; n < kMaxOptionsPerHandshake && open_; ++n) {
    std::array<uint8_t, 16> head;
    Status io_status = co_await ReadExact(head);
    if (!io_status.ok()) co_return false;
    const uint32_t option = Load32(head.data() + 8);
    const uint32_t length = Load32(head.data() + 12);
    if (Load64(head.data()) != kIHaveOpt || length > kMaxOptionBytes) {
      SP_LOG_INFO("NBD option with bad magic or length {}: closing", length);
      co_return false;
    }
    std::vector<uint8_t> body(length);
    Status got_body = co_await ReadExact(body);
    if (!got_body.ok()) co_return false;
    auto r = co_await HandleOption(option, std::move(body));
    if (!r.ok()) co_return false;
    if (*r) co_return open_;
  }
  SP_LOG_INFO("NBD client sent more than {} options: closing", kMaxOptionsPerHandshake);
  co_return false;
}

asio::awaitable<Status> NbdSession::SendExportInfo(uint32_t option, const InfoRequest& req,
                                                   const Volume& v) {
  std::vector<uint8_t> info;
  Append16(info, kInfoExport);
  Append64(info, v.spec().size_bytes);
  Append16(info, TransmissionFlags(
                     ExportView{v.spec().size_bytes, v.spec().read_only, structured_, false}));
  SP_CO_RETURN_IF_ERROR(co_await SendOptionReply(option, kRepInfo, info));
  info.clear();
  Append16(info, kInfoBlockSize);
  Append32(info, kMinBlockBytes);
  Append32(info, kPreferredBlockBytes);
  Append32(info, kMaxPayloadBytes);
  SP_CO_RETURN_IF_ERROR(co_await SendOptionReply(option, kRepInfo, info));
  for (uint16_t item : req.items) {
    if (item != kInfoName) continue;
    info.clear();
    Append16(info, kInfoName);
    info.insert(info.end(), req.name.begin(), req.name.end());
    SP_CO_RETURN_IF_ERROR(co_await SendOptionReply(option, kRepInfo, info));
  }
  co_return co_await SendOptionReply(option, kRepAck, {});
}

asio::awaitable<Status> NbdSession::FinishExportName(std::shared_ptr<Volume> v,
                                                     const std::string& name) {
  std::vector<uint8_t> out;
  Append64(out, v->spec().size_bytes);
  Append16(out, TransmissionFlags(
                    ExportView{v->spec().size_bytes, v->spec().read_only, structured_, false}));
  if (!no_zeroes_) out.resize(out.size() + 124, 0);
  ChooseExport(std::move(v), name);
  co_return co_await WriteAll(out);
}

void NbdSession::ChooseExport(std::shared_ptr<Volume> v, const std::string& name) {
  volume_ = std::move(v);
  if (name != meta_export_) base_allocation_ = false;
}

asio::awaitable<Result<bool>> NbdSession::HandleMetaContext(uint32_t option,
                                                            std::vector<uint8_t> body) {
  MetaContextRequest req;
  const bool listing = option == kOptListMetaContext;
  // SET needs structured replies (BLOCK_STATUS answers are structured); LIST does not.
  if (!DecodeMetaContextRequest(body, req) || (!listing && !structured_)) {
    SP_CO_RETURN_IF_ERROR(co_await SendOptionReply(option, kRepErrInvalid, {}));
    co_return false;
  }
  if (!server_.table().Find(req.name)) {
    SP_CO_RETURN_IF_ERROR(co_await SendOptionReply(option, kRepErrUnknown, {}));
    co_return false;
  }
  bool selected = listing && req.queries.empty();  // an empty LIST means "all contexts"
  for (const std::string& q : req.queries) selected |= QuerySelectsBaseAllocation(q, listing);
  if (!listing) {
    base_allocation_ = selected;
    meta_export_ = req.name;
  }
  if (selected) {
    std::vector<uint8_t> data;
    Append32(data, listing ? 0 : kMetaContextBaseAllocation);
    data.insert(data.end(), kMetaBaseAllocation,
                kMetaBaseAllocation + sizeof(kMetaBaseAllocation) - 1);
    SP_CO_RETURN_IF_ERROR(co_await SendOptionReply(option, kRepMetaContext, data));
  }
  SP_CO_RETURN_IF_ERROR(co_await SendOptionReply(option, kRepAck, {}));
  co_return false;
}

asio::awaitable<Result<bool>> NbdSession::HandleOption(uint32_t option, std::vector<uint8_t> body) {
  switch (option) {
    case kOptExportName: {
      const std::string name(body.begin(), body.end());
      auto v = server_.table().Find(name);
      // This option has no error reply: an unknown export can only be refused by closing.
      if (!v) co_return Error(Code::kNotFound, "unknown export");
      SP_CO_RETURN_IF_ERROR(co_await FinishExportName(std::move(v), name));
      co_return true;
    }
    case kOptAbort:
      (void)co_await SendOptionReply(option, kRepAck, {});
      co_return Error(Code::kAborted, "client aborted");
    case kOptList: {
      if (!body.empty()) {
        SP_CO_RETURN_IF_ERROR(co_await SendOptionReply(option, kRepErrInvalid, {}));
        co_return false;
      }
      for (const std::string& name : server_.table().Names()) {
        std::vector<uint8_t> data;
        Append32(data, static_cast<uint32_t>(name.size()));
        data.insert(data.end(), name.begin(), name.end());
        SP_CO_RETURN_IF_ERROR(co_await SendOptionReply(option, kRepServer, data));
      }
      SP_CO_RETURN_IF_ERROR(co_await SendOptionReply(option, kRepAck, {}));
      co_return false;
    }
    case kOptInfo:
    case kOptGo: {
      InfoRequest req;
      if (!DecodeInfoRequest(body, req)) {
        SP_CO_RETURN_IF_ERROR(co_await SendOptionReply(option, kRepErrInvalid, {}));
        co_return false;
      }
      auto v = server_.table().Find(req.name);
      if (!v) {
        SP_CO_RETURN_IF_ERROR(co_await SendOptionReply(option, kRepErrUnknown, {}));
        co_return false;
      }
      // Chosen before the replies go out, so a detach meanwhile closes this session.
      if (option == kOptGo) ChooseExport(v, req.name);
      SP_CO_RETURN_IF_ERROR(co_await SendExportInfo(option, req, *v));
      co_return option == kOptGo;
    }
    case kOptStructuredReply:
      if (!body.empty()) {
        SP_CO_RETURN_IF_ERROR(co_await SendOptionReply(option, kRepErrInvalid, {}));
        co_return false;
      }
      structured_ = true;
      SP_CO_RETURN_IF_ERROR(co_await SendOptionReply(option, kRepAck, {}));
      co_return false;
    case kOptListMetaContext:
    case kOptSetMetaContext:
      co_return co_await HandleMetaContext(option, std::move(body));
    default:  // STARTTLS, extended headers, ...
      SP_CO_RETURN_IF_ERROR(co_await SendOptionReply(option, kRepErrUnsup, {}));
      co_return false;
  }
}

}  // namespace spindle::client
