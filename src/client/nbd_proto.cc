#include "client/nbd_proto.h"

namespace spindle::client::nbd {

uint16_t Load16(const uint8_t* p) {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}
uint32_t Load32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
uint64_t Load64(const uint8_t* p) {
  return (uint64_t{Load32(p)} << 32) | Load32(p + 4);
}

void Append16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}
void Append32(std::vector<uint8_t>& out, uint32_t v) {
  Append16(out, static_cast<uint16_t>(v >> 16));
  Append16(out, static_cast<uint16_t>(v));
}
void Append64(std::vector<uint8_t>& out, uint64_t v) {
  Append32(out, static_cast<uint32_t>(v >> 32));
  Append32(out, static_cast<uint32_t>(v));
}

namespace {
void Store32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}
void Store16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void Store64(uint8_t* p, uint64_t v) {
  Store32(p, static_cast<uint32_t>(v >> 32));
  Store32(p + 4, static_cast<uint32_t>(v));
}

bool IsWriteLike(uint16_t type) {
  return type == kCmdWrite || type == kCmdWriteZeroes || type == kCmdTrim;
}

uint16_t AllowedFlags(uint16_t type, const ExportView& ex) {
  switch (type) {
    case kCmdWriteZeroes:
      return kCmdFlagFua | kCmdFlagNoHole;
    case kCmdRead:
      return ex.structured ? (kCmdFlagFua | kCmdFlagDf) : kCmdFlagFua;
    case kCmdBlockStatus:
      return kCmdFlagReqOne;
    default:
      return kCmdFlagFua;
  }
}

Validation Fail(uint32_t error) {
  return Validation{Verdict::kReplyError, error};
}
}  // namespace

bool DecodeRequest(const uint8_t* in, Request& out) {
  if (Load32(in) != kRequestMagic) return false;
  out.flags = Load16(in + 4);
  out.type = Load16(in + 6);
  out.cookie = Load64(in + 8);
  out.offset = Load64(in + 16);
  out.length = Load32(in + 24);
  return true;
}

void EncodeRequest(const Request& r, uint8_t* out) {
  Store32(out, kRequestMagic);
  Store16(out + 4, r.flags);
  Store16(out + 6, r.type);
  Store64(out + 8, r.cookie);
  Store64(out + 16, r.offset);
  Store32(out + 24, r.length);
}

void EncodeSimpleReply(uint32_t error, uint64_t cookie, uint8_t* out) {
  Store32(out, kSimpleReplyMagic);
  Store32(out + 4, error);
  Store64(out + 8, cookie);
}

Validation ValidateRequest(const Request& r, const ExportView& ex) {
  switch (r.type) {
    case kCmdDisc:
      return Validation{Verdict::kDisconnect, 0};
    case kCmdFlush:
      return Validation{};
    case kCmdRead:
    case kCmdWrite:
    case kCmdWriteZeroes:
    case kCmdTrim:
      break;
    case kCmdBlockStatus:
      if (!ex.base_allocation) return Fail(kEInval);  // no meta context negotiated
      break;
    default:
      return Fail(kEInval);
  }
  if (r.type == kCmdWrite && r.length > kMaxPayloadBytes) {
    return Validation{Verdict::kClose, kEInval};  // cannot skip that much payload safely
  }
  if ((r.flags & ~AllowedFlags(r.type, ex)) != 0) return Fail(kEInval);
  if (r.length == 0) return Fail(kEInval);
  if (r.type == kCmdRead && r.length > kMaxPayloadBytes) return Fail(kEInval);
  if (IsWriteLike(r.type) && ex.read_only) return Fail(kEPerm);
  const uint64_t end = r.offset + r.length;
  if (end < r.offset || end > ex.size_bytes) {
    return Fail(IsWriteLike(r.type) ? kENoSpc : kEInval);
  }
  if (IsWriteLike(r.type) && (r.offset % kMinBlockBytes != 0 || r.length % kMinBlockBytes != 0)) {
    return Fail(kEInval);
  }
  return Validation{};
}

uint16_t TransmissionFlags(const ExportView& ex) {
  uint16_t f = kTxHasFlags | kTxSendFlush | kTxSendFua | kTxCanMultiConn;
  if (ex.read_only) {
    f |= kTxReadOnly;
  } else {
    f |= kTxSendWriteZeroes | kTxSendTrim;
  }
  if (ex.structured) f |= kTxSendDf;  // every READ is answered in one chunk anyway
  return f;
}

bool DecodeInfoRequest(std::span<const uint8_t> body, InfoRequest& out) {
  if (body.size() < 4) return false;
  const uint32_t name_len = Load32(body.data());
  if (name_len > body.size() - 4 || body.size() - 4 - name_len < 2) return false;
  out.name.assign(reinterpret_cast<const char*>(body.data() + 4), name_len);
  const uint8_t* p = body.data() + 4 + name_len;
  const uint16_t n = Load16(p);
  if (n > kMaxInfoRequests || body.size() != 4 + name_len + 2 + size_t{n} * 2) return false;
  out.items.clear();
  for (uint16_t i = 0; i < n; ++i) out.items.push_back(Load16(p + 2 + 2 * i));
  return true;
}

std::vector<uint8_t> EncodeOptionReply(uint32_t option, uint32_t type,
                                       std::span<const uint8_t> data) {
  std::vector<uint8_t> out;
  out.reserve(20 + data.size());
  Append64(out, kOptReplyMagic);
  Append32(out, option);
  Append32(out, type);
  Append32(out, static_cast<uint32_t>(data.size()));
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::vector<uint8_t> EncodeChunkHeader(uint16_t flags, uint16_t type, uint64_t cookie,
                                       uint32_t length) {
  std::vector<uint8_t> out;
  out.reserve(kStructuredReplyHeaderSize + 16);  // room for a chunk's small payload
  out.resize(kStructuredReplyHeaderSize);
  EncodeChunkHeader(flags, type, cookie, length, out.data());
  return out;
}

void EncodeChunkHeader(uint16_t flags, uint16_t type, uint64_t cookie, uint32_t length,
                       uint8_t* out) {
  Store32(out, kStructuredReplyMagic);
  Store16(out + 4, flags);
  Store16(out + 6, type);
  Store64(out + 8, cookie);
  Store32(out + 16, length);
}

void EncodeReadChunkHead(uint64_t cookie, uint64_t offset, uint32_t data_length, uint8_t* out) {
  EncodeChunkHeader(kReplyFlagDone, kReplyTypeOffsetData, cookie, 8 + data_length, out);
  Store64(out + kStructuredReplyHeaderSize, offset);
}

std::vector<uint8_t> EncodeErrorChunk(uint64_t cookie, uint32_t error, std::string_view message) {
  message = message.substr(0, kMaxErrorMessageBytes);
  auto out = EncodeChunkHeader(kReplyFlagDone, kReplyTypeError, cookie,
                               static_cast<uint32_t>(6 + message.size()));
  Append32(out, error);
  Append16(out, static_cast<uint16_t>(message.size()));
  out.insert(out.end(), message.begin(), message.end());
  return out;
}

std::vector<uint8_t> EncodeBlockStatusChunk(uint64_t cookie, uint32_t context_id,
                                            std::span<const StatusExtent> extents) {
  auto out = EncodeChunkHeader(kReplyFlagDone, kReplyTypeBlockStatus, cookie,
                               static_cast<uint32_t>(4 + 8 * extents.size()));
  Append32(out, context_id);
  for (const StatusExtent& e : extents) {
    Append32(out, e.length);
    Append32(out, e.flags);
  }
  return out;
}

bool DecodeMetaContextRequest(std::span<const uint8_t> body, MetaContextRequest& out) {
  size_t pos = 0;
  auto take_string = [&](std::string& s) {
    if (body.size() - pos < 4) return false;
    const uint32_t n = Load32(body.data() + pos);
    pos += 4;
    if (n > body.size() - pos) return false;
    s.assign(reinterpret_cast<const char*>(body.data() + pos), n);
    pos += n;
    return true;
  };
  if (!take_string(out.name)) return false;
  if (body.size() - pos < 4) return false;
  const uint32_t n = Load32(body.data() + pos);
  pos += 4;
  if (n > kMaxMetaQueries) return false;
  out.queries.assign(n, std::string());
  for (std::string& q : out.queries) {
    if (!take_string(q)) return false;
  }
  return pos == body.size();
}

bool QuerySelectsBaseAllocation(std::string_view query, bool listing) {
  if (query == kMetaBaseAllocation) return true;
  return listing && query == "base:";
}

}  // namespace spindle::client::nbd
