#include "proto/wire.h"

#include <bit>
#include <cstring>
#include <type_traits>

#include "common/assert.h"
#include "common/crc32c.h"

namespace spindle::proto {

static_assert(std::endian::native == std::endian::little, "wire codec assumes little-endian");

namespace {

// Appends fixed-width little-endian integers.
class Writer {
 public:
  // Room for `expect` bytes is made at once (fields one by one would regrow the vector).
  explicit Writer(std::vector<uint8_t>& out, size_t expect = 64) : out_(out) {
    out_.clear();
    out_.reserve(expect);
  }
  template <typename T>
  void Put(T v) {
    size_t at = out_.size();
    out_.resize(at + sizeof(T));
    std::memcpy(out_.data() + at, &v, sizeof(T));
  }
  void PutBytes(const void* p, size_t n) {
    size_t at = out_.size();
    out_.resize(at + n);
    if (n != 0) std::memcpy(out_.data() + at, p, n);
  }

 private:
  std::vector<uint8_t>& out_;
};

// Reads fixed-width integers; every read is bounds-checked, failures stick.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> in) : in_(in) {}
  template <typename T>
  T Get() {
    T v{};
    if (!Need(sizeof(T))) return v;
    std::memcpy(&v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::span<const uint8_t> Bytes(size_t n) {
    if (!Need(n)) return {};
    auto s = in_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  std::span<const uint32_t> Words(size_t n) {
    if (n > kMaxChunks || !Need(n * 4)) {
      ok_ = false;
      return {};
    }
    const uint8_t* p = in_.data() + pos_;
    if (reinterpret_cast<uintptr_t>(p) % alignof(uint32_t) != 0) {
      ok_ = false;  // payload buffers are malloc-aligned and fields are laid out aligned
      return {};
    }
    pos_ += n * 4;
    return {reinterpret_cast<const uint32_t*>(p), n};
  }
  bool ok() const { return ok_; }
  bool done() const { return ok_ && pos_ == in_.size(); }

 private:
  bool Need(size_t n) {
    if (!ok_ || in_.size() - pos_ < n) ok_ = false;
    return ok_;
  }
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

Status Malformed(const char* what) {
  return Error(Code::kInvalidArgument, "malformed {} payload", what);
}

// Offset/length rules shared by READ and WRITE.
Status CheckRange(uint32_t offset, uint32_t length) {
  if (length == 0 || length > kMaxIoBytes || offset % kSectorSize != 0 ||
      length % kSectorSize != 0 || uint64_t{offset} + length > kObjectSize) {
    return Error(Code::kInvalidArgument, "bad I/O range offset={} length={}", offset, length);
  }
  return Status::Ok();
}

bool KnownType(uint16_t type) {
  uint16_t t = type & ~kResponseBit;
  return t >= static_cast<uint16_t>(MsgType::kHello) &&
         t <= static_cast<uint16_t>(MsgType::kObjectSync);
}

// READ and BLOCK_STATUS requests share one layout: disk, object, offset, length, then the
// chain of layers (top first).
template <typename M>
void EncodeChainRange(const M& m, std::vector<uint8_t>& out) {
  Writer w(out, 24 + m.chain.size() * 8);
  w.Put<uint32_t>(m.disk.value());
  w.Put<uint32_t>(m.object.value());
  w.Put<uint32_t>(m.offset);
  w.Put<uint32_t>(m.length);
  w.Put<uint32_t>(static_cast<uint32_t>(m.chain.size()));
  if constexpr (std::is_same_v<M, ReadRequest>) {
    w.Put<uint32_t>(m.flags);
  } else {
    w.Put<uint32_t>(0);
  }
  for (LayerId l : m.chain) w.Put<uint64_t>(l.value());
}

template <typename M>
Result<M> DecodeChainRange(std::span<const uint8_t> payload, const char* what) {
  Reader r(payload);
  M m;
  m.disk = DiskId(r.Get<uint32_t>());
  m.object = ObjectIndex(r.Get<uint32_t>());
  m.offset = r.Get<uint32_t>();
  m.length = r.Get<uint32_t>();
  uint32_t n = r.Get<uint32_t>();
  const uint32_t flags = r.Get<uint32_t>();
  if (!r.ok()) return Malformed(what);
  if constexpr (std::is_same_v<M, ReadRequest>) {
    if ((flags & ~kReadFlagsKnown) != 0) {
      return Error(Code::kInvalidArgument, "{} flags {:#x} unknown", what, flags);
    }
    m.flags = flags;
  }
  SP_RETURN_IF_ERROR(CheckRange(m.offset, m.length));
  if (n == 0 || n > kMaxChainLength) {
    return Error(Code::kInvalidArgument, "{} chain length {} out of range", what, n);
  }
  m.chain.reserve(n);
  for (uint32_t i = 0; i < n; ++i) m.chain.emplace_back(r.Get<uint64_t>());
  if (!r.done()) return Malformed(what);
  return m;
}

}  // namespace

void EncodeHeader(const FrameHeader& h, uint8_t* out) {
  // Straight into `out` (every frame has one: no heap).
  size_t at = 0;
  auto put = [&](auto v) {
    std::memcpy(out + at, &v, sizeof(v));
    at += sizeof(v);
  };
  put(kWireMagic);
  put(kWireVersion);
  put(h.type);
  put(h.request_id);
  put(h.payload_len);
  put(h.status);
  put(uint32_t{0});  // reserved
  put(Crc32c(out, at));
  SP_ASSERT(at == kHeaderSize);
}

Result<FrameHeader> DecodeHeader(const uint8_t* in) {
  Reader r({in, kHeaderSize});
  uint32_t magic = r.Get<uint32_t>();
  uint16_t version = r.Get<uint16_t>();
  FrameHeader h;
  h.type = r.Get<uint16_t>();
  h.request_id = r.Get<uint64_t>();
  h.payload_len = r.Get<uint32_t>();
  h.status = r.Get<int32_t>();
  uint32_t reserved = r.Get<uint32_t>();
  uint32_t crc = r.Get<uint32_t>();
  if (magic != kWireMagic) return Error(Code::kInvalidArgument, "bad frame magic {:#x}", magic);
  if (version != kWireVersion) {
    return Error(Code::kInvalidArgument, "unsupported wire version {}", version);
  }
  if (crc != Crc32c(in, kHeaderSize - 4)) {
    return Error(Code::kCorruption, "frame header checksum mismatch");
  }
  if (!KnownType(h.type) || reserved != 0) {
    return Error(Code::kInvalidArgument, "unknown frame type {}", h.type);
  }
  if (h.payload_len > kMaxPayloadBytes) {
    return Error(Code::kInvalidArgument, "frame payload {} over limit", h.payload_len);
  }
  return h;
}

namespace {
// A WRITE's or TRIM's version and flags: known flags, a version with a base.
Status CheckWriteVersion(const char* what, uint64_t version, uint32_t flags) {
  if ((flags & ~kWriteFlagsKnown) != 0) {
    return Error(Code::kInvalidArgument, "{} flags {:#x} unknown", what, flags);
  }
  const uint64_t lowest = (flags & kWriteFlagSkip) != 0 ? kVersionSkip : 1;
  if (version < lowest) {
    return Error(Code::kInvalidArgument, "{} version {} (at least {} with flags {:#x})", what,
                 version, lowest, flags);
  }
  return Status::Ok();
}
}  // namespace

void EncodePayload(const WriteRequest& m, std::vector<uint8_t>& out) {
  SP_ASSERT(m.crcs.size() == ChunkCount(static_cast<uint32_t>(m.data.size())));
  Writer w(out, 40 + m.crcs.size() * 4 + m.data.size());
  w.Put<uint32_t>(m.disk.value());
  w.Put<uint32_t>(m.object.value());
  w.Put<uint64_t>(m.layer.value());
  w.Put<uint64_t>(m.version);
  w.Put<uint32_t>(m.offset);
  w.Put<uint32_t>(static_cast<uint32_t>(m.data.size()));
  w.Put<uint32_t>(m.flags);
  w.Put<uint32_t>(m.client);
  w.PutBytes(m.crcs.data(), m.crcs.size() * 4);
  w.PutBytes(m.data.data(), m.data.size());
}

Result<WriteRequest> DecodeWriteRequest(std::span<const uint8_t> payload) {
  Reader r(payload);
  WriteRequest m;
  m.disk = DiskId(r.Get<uint32_t>());
  m.object = ObjectIndex(r.Get<uint32_t>());
  m.layer = LayerId(r.Get<uint64_t>());
  m.version = r.Get<uint64_t>();
  m.offset = r.Get<uint32_t>();
  uint32_t length = r.Get<uint32_t>();
  m.flags = r.Get<uint32_t>();
  m.client = r.Get<uint32_t>();
  if (!r.ok()) return Malformed("write");
  SP_RETURN_IF_ERROR(CheckRange(m.offset, length));
  m.crcs = r.Words(ChunkCount(length));
  m.data = r.Bytes(length);
  if (!r.done()) return Malformed("write");
  SP_RETURN_IF_ERROR(CheckWriteVersion("write", m.version, m.flags));
  return m;
}

void EncodePayload(const WriteResponse& m, std::vector<uint8_t>& out) {
  Writer w(out);
  w.Put<uint64_t>(m.version);
}

Result<WriteResponse> DecodeWriteResponse(std::span<const uint8_t> payload) {
  Reader r(payload);
  WriteResponse m;
  m.version = r.Get<uint64_t>();
  if (!r.done()) return Malformed("write response");
  return m;
}

void EncodePayload(const ReadRequest& m, std::vector<uint8_t>& out) {
  EncodeChainRange(m, out);
}

Result<ReadRequest> DecodeReadRequest(std::span<const uint8_t> payload) {
  return DecodeChainRange<ReadRequest>(payload, "read");
}

void EncodeReadResponseHead(const ReadResponse& m, std::vector<uint8_t>& out) {
  Writer w(out, 16 + m.crcs.size() * 4);
  w.Put<uint64_t>(m.version);
  w.Put<uint32_t>(static_cast<uint32_t>(m.data.size()));
  w.Put<uint32_t>(0);
  w.PutBytes(m.crcs.data(), m.crcs.size() * 4);
}

void EncodePayload(const ReadResponse& m, std::vector<uint8_t>& out) {
  EncodeReadResponseHead(m, out);
  out.insert(out.end(), m.data.begin(), m.data.end());
}

Result<ReadResponse> DecodeReadResponseHead(std::span<const uint8_t> head,
                                            std::span<const uint8_t> data) {
  Reader r(head);
  ReadResponse m;
  m.version = r.Get<uint64_t>();
  uint32_t length = r.Get<uint32_t>();
  r.Get<uint32_t>();
  if (!r.ok() || length != data.size() || length > kMaxIoBytes) return Malformed("read response");
  m.crcs = r.Words(ChunkCount(length));
  if (!r.done()) return Malformed("read response");
  m.data = data;
  return m;
}

void EncodeDiskId(DiskId disk, std::vector<uint8_t>& out) {
  Writer w(out);
  w.Put<uint32_t>(disk.value());
}

Result<ReadResponse> DecodeReadResponse(std::span<const uint8_t> payload) {
  Reader r(payload);
  ReadResponse m;
  m.version = r.Get<uint64_t>();
  uint32_t length = r.Get<uint32_t>();
  r.Get<uint32_t>();
  if (!r.ok() || length > kMaxIoBytes) return Malformed("read response");
  m.crcs = r.Words(ChunkCount(length));
  m.data = r.Bytes(length);
  if (!r.done()) return Malformed("read response");
  return m;
}

void EncodePayload(const ObjectInfoRequest& m, std::vector<uint8_t>& out) {
  Writer w(out);
  w.Put<uint32_t>(m.disk.value());
  w.Put<uint32_t>(m.object.value());
  w.Put<uint64_t>(m.layer.value());
}

Result<ObjectInfoRequest> DecodeObjectInfoRequest(std::span<const uint8_t> payload) {
  Reader r(payload);
  ObjectInfoRequest m;
  m.disk = DiskId(r.Get<uint32_t>());
  m.object = ObjectIndex(r.Get<uint32_t>());
  m.layer = LayerId(r.Get<uint64_t>());
  if (!r.done()) return Malformed("object info");
  return m;
}

void EncodePayload(const ObjectInfoResponse& m, std::vector<uint8_t>& out) {
  Writer w(out);
  w.Put<uint64_t>(m.version);
  w.Put<uint32_t>(m.state);
  w.Put<uint32_t>(m.blocks_present);
}

Result<ObjectInfoResponse> DecodeObjectInfoResponse(std::span<const uint8_t> payload) {
  Reader r(payload);
  ObjectInfoResponse m;
  m.version = r.Get<uint64_t>();
  m.state = r.Get<uint32_t>();
  m.blocks_present = r.Get<uint32_t>();
  if (!r.done()) return Malformed("object info response");
  return m;
}

void EncodePayload(const HelloRequest& m, std::vector<uint8_t>& out) {
  Writer w(out);
  w.Put<uint32_t>(static_cast<uint32_t>(m.kind));
  w.Put<uint32_t>(m.peer_id);
}

Result<HelloRequest> DecodeHelloRequest(std::span<const uint8_t> payload) {
  Reader r(payload);
  HelloRequest m;
  uint32_t kind = r.Get<uint32_t>();
  m.peer_id = r.Get<uint32_t>();
  if (!r.done() || kind < 1 || kind > 3) return Malformed("hello");
  m.kind = static_cast<PeerKind>(kind);
  return m;
}

void EncodePayload(const HelloResponse& m, std::vector<uint8_t>& out) {
  Writer w(out);
  w.Put<uint32_t>(m.server.value());
  w.Put<uint32_t>(static_cast<uint32_t>(m.disks.size()));
  for (DiskId d : m.disks) w.Put<uint32_t>(d.value());
}

Result<HelloResponse> DecodeHelloResponse(std::span<const uint8_t> payload) {
  Reader r(payload);
  HelloResponse m;
  m.server = ServerId(r.Get<uint32_t>());
  uint32_t n = r.Get<uint32_t>();
  if (!r.ok() || n > kMaxDisksPerServer) return Malformed("hello response");
  for (uint32_t i = 0; i < n; ++i) m.disks.emplace_back(r.Get<uint32_t>());
  if (!r.done()) return Malformed("hello response");
  return m;
}

void EncodePayload(const TrimRequest& m, std::vector<uint8_t>& out) {
  Writer w(out);
  w.Put<uint32_t>(m.disk.value());
  w.Put<uint32_t>(m.object.value());
  w.Put<uint64_t>(m.layer.value());
  w.Put<uint64_t>(m.version);
  w.Put<uint32_t>(m.offset);
  w.Put<uint32_t>(m.length);
  w.Put<uint32_t>(m.client);
  w.Put<uint32_t>(m.flags);
}

Result<TrimRequest> DecodeTrimRequest(std::span<const uint8_t> payload) {
  Reader r(payload);
  TrimRequest m;
  m.disk = DiskId(r.Get<uint32_t>());
  m.object = ObjectIndex(r.Get<uint32_t>());
  m.layer = LayerId(r.Get<uint64_t>());
  m.version = r.Get<uint64_t>();
  m.offset = r.Get<uint32_t>();
  m.length = r.Get<uint32_t>();
  m.client = r.Get<uint32_t>();
  m.flags = r.Get<uint32_t>();
  if (!r.done()) return Malformed("trim");
  SP_RETURN_IF_ERROR(CheckRange(m.offset, m.length));
  SP_RETURN_IF_ERROR(CheckWriteVersion("trim", m.version, m.flags));
  return m;
}

void EncodePayload(const BlockStatusRequest& m, std::vector<uint8_t>& out) {
  EncodeChainRange(m, out);
}

Result<BlockStatusRequest> DecodeBlockStatusRequest(std::span<const uint8_t> payload) {
  SP_ASSIGN_OR_RETURN(BlockStatusRequest m,
                      DecodeChainRange<BlockStatusRequest>(payload, "block status"));
  if (m.offset % kBlockSize != 0 || m.length % kBlockSize != 0) {
    return Error(Code::kInvalidArgument, "block status range must be 4 KiB aligned");
  }
  return m;
}

void EncodePayload(const BlockStatusResponse& m, std::vector<uint8_t>& out) {
  SP_ASSERT(m.bitmap.size() == (m.blocks + 7) / 8);
  Writer w(out);
  w.Put<uint32_t>(m.blocks);
  w.Put<uint32_t>(0);
  w.PutBytes(m.bitmap.data(), m.bitmap.size());
}

Result<BlockStatusResponse> DecodeBlockStatusResponse(std::span<const uint8_t> payload) {
  Reader r(payload);
  BlockStatusResponse m;
  m.blocks = r.Get<uint32_t>();
  r.Get<uint32_t>();
  if (!r.ok() || m.blocks > kBlocksPerObject) return Malformed("block status response");
  auto bytes = r.Bytes((m.blocks + 7) / 8);
  if (!r.done()) return Malformed("block status response");
  m.bitmap.assign(bytes.begin(), bytes.end());
  return m;
}

void EncodePayload(const ObjectListRequest& m, std::vector<uint8_t>& out) {
  Writer w(out);
  w.Put<uint32_t>(m.disk.value());
  w.Put<uint32_t>(m.max);
  w.Put<uint64_t>(m.after_layer.value());
  w.Put<uint32_t>(m.after_object.value());
  w.Put<uint32_t>(0);
}

Result<ObjectListRequest> DecodeObjectListRequest(std::span<const uint8_t> payload) {
  Reader r(payload);
  ObjectListRequest m;
  m.disk = DiskId(r.Get<uint32_t>());
  m.max = r.Get<uint32_t>();
  m.after_layer = LayerId(r.Get<uint64_t>());
  m.after_object = ObjectIndex(r.Get<uint32_t>());
  r.Get<uint32_t>();
  if (!r.done()) return Malformed("object list");
  if (m.max == 0 || m.max > kMaxListEntries) {
    return Error(Code::kInvalidArgument, "object list max {} out of range", m.max);
  }
  return m;
}

void EncodePayload(const ObjectListResponse& m, std::vector<uint8_t>& out) {
  Writer w(out);
  w.Put<uint32_t>(static_cast<uint32_t>(m.entries.size()));
  w.Put<uint32_t>(m.more ? 1 : 0);
  for (const ObjectListEntry& e : m.entries) {
    w.Put<uint64_t>(e.layer.value());
    w.Put<uint32_t>(e.object.value());
    w.Put<uint32_t>(e.state);
    w.Put<uint64_t>(e.version);
  }
}

Result<ObjectListResponse> DecodeObjectListResponse(std::span<const uint8_t> payload) {
  Reader r(payload);
  ObjectListResponse m;
  uint32_t n = r.Get<uint32_t>();
  uint32_t more = r.Get<uint32_t>();
  if (!r.ok() || n > kMaxListEntries || more > 1) return Malformed("object list response");
  m.more = more == 1;
  m.entries.reserve(n);
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    ObjectListEntry e;
    e.layer = LayerId(r.Get<uint64_t>());
    e.object = ObjectIndex(r.Get<uint32_t>());
    e.state = r.Get<uint32_t>();
    e.version = r.Get<uint64_t>();
    m.entries.push_back(e);
  }
  if (!r.done()) return Malformed("object list response");
  return m;
}

void EncodePayload(const ObjectPullRequest& m, std::vector<uint8_t>& out) {
  Writer w(out);
  w.Put<uint32_t>(m.disk.value());
  w.Put<uint32_t>(m.object.value());
  w.Put<uint64_t>(m.layer.value());
}

Result<ObjectPullRequest> DecodeObjectPullRequest(std::span<const uint8_t> payload) {
  Reader r(payload);
  ObjectPullRequest m;
  m.disk = DiskId(r.Get<uint32_t>());
  m.object = ObjectIndex(r.Get<uint32_t>());
  m.layer = LayerId(r.Get<uint64_t>());
  if (!r.done()) return Malformed("object pull");
  return m;
}

namespace {
constexpr size_t kBitmapBytes = kBlocksPerObject / 8;

size_t CountBits(std::span<const uint8_t> bitmap) {
  size_t n = 0;
  for (uint8_t b : bitmap) n += static_cast<size_t>(std::popcount(b));
  return n;
}
}  // namespace

void EncodePayload(const ObjectPullResponse& m, std::vector<uint8_t>& out) {
  SP_ASSERT(m.present.size() == kBitmapBytes && m.zeroed.size() == kBitmapBytes);
  const size_t n = CountBits(m.present);
  SP_ASSERT(m.crcs.size() == n && m.data.size() == n * kBlockSize);
  Writer w(out);
  w.Put<uint64_t>(m.version);
  w.Put<uint32_t>(static_cast<uint32_t>(n));
  w.Put<uint32_t>(0);
  w.PutBytes(m.present.data(), kBitmapBytes);
  w.PutBytes(m.zeroed.data(), kBitmapBytes);
  w.PutBytes(m.crcs.data(), n * 4);
  w.PutBytes(m.data.data(), m.data.size());
}

Result<ObjectPullResponse> DecodeObjectPullResponse(std::span<const uint8_t> payload) {
  Reader r(payload);
  ObjectPullResponse m;
  m.version = r.Get<uint64_t>();
  uint32_t n = r.Get<uint32_t>();
  r.Get<uint32_t>();
  if (!r.ok() || n > kBlocksPerObject) return Malformed("object pull response");
  auto present = r.Bytes(kBitmapBytes);
  auto zeroed = r.Bytes(kBitmapBytes);
  if (!r.ok() || CountBits(present) != n) return Malformed("object pull response");
  m.present.assign(present.begin(), present.end());
  m.zeroed.assign(zeroed.begin(), zeroed.end());
  m.crcs = r.Words(n);
  m.data = r.Bytes(size_t{n} * kBlockSize);
  if (!r.done()) return Malformed("object pull response");
  return m;
}

void EncodePayload(const ObjectSyncRequest& m, std::vector<uint8_t>& out) {
  Writer w(out);
  w.Put<uint32_t>(m.disk.value());
  w.Put<uint32_t>(m.object.value());
  w.Put<uint64_t>(m.layer.value());
  w.Put<uint64_t>(m.version);
}

Result<ObjectSyncRequest> DecodeObjectSyncRequest(std::span<const uint8_t> payload) {
  Reader r(payload);
  ObjectSyncRequest m;
  m.disk = DiskId(r.Get<uint32_t>());
  m.object = ObjectIndex(r.Get<uint32_t>());
  m.layer = LayerId(r.Get<uint64_t>());
  m.version = r.Get<uint64_t>();
  if (!r.done()) return Malformed("object sync");
  return m;
}

void ComputeChunkCrcs(std::span<const uint8_t> data, std::vector<uint32_t>& out) {
  out.resize(ChunkCount(static_cast<uint32_t>(data.size())));
  for (size_t i = 0; i < out.size(); ++i) {
    size_t off = i * kBlockSize;
    out[i] = Crc32c(data.data() + off, std::min<size_t>(kBlockSize, data.size() - off));
  }
}

Status VerifyChunkCrcs(std::span<const uint8_t> data, std::span<const uint32_t> crcs) {
  if (crcs.size() != ChunkCount(static_cast<uint32_t>(data.size()))) {
    return Error(Code::kInvalidArgument, "checksum count does not match data length");
  }
  for (size_t i = 0; i < crcs.size(); ++i) {
    size_t off = i * kBlockSize;
    uint32_t c = Crc32c(data.data() + off, std::min<size_t>(kBlockSize, data.size() - off));
    if (c != crcs[i]) {
      return Error(Code::kCorruption, "checksum mismatch in chunk {} (at byte {})", i, off);
    }
  }
  return Status::Ok();
}

}  // namespace spindle::proto
