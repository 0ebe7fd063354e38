#include "client/kernel_attach.h"

#include <fcntl.h>
#include <linux/genetlink.h>
#include <linux/nbd-netlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/log.h"

namespace spindle::client::kernel {
namespace {

size_t Align4(size_t n) {
  return (n + 3) & ~size_t{3};
}

// Builds one generic-netlink message; nested attributes are closed with End().
class MessageBuilder {
 public:
  MessageBuilder(uint16_t type, uint16_t flags, uint32_t seq, uint8_t cmd, uint8_t version) {
    buf_.resize(NLMSG_HDRLEN + GENL_HDRLEN);
    auto* nh = reinterpret_cast<nlmsghdr*>(buf_.data());
    nh->nlmsg_type = type;
    nh->nlmsg_flags = flags;
    nh->nlmsg_seq = seq;
    auto* gh = reinterpret_cast<genlmsghdr*>(buf_.data() + NLMSG_HDRLEN);
    gh->cmd = cmd;
    gh->version = version;
  }
  void Put(uint16_t type, const void* data, size_t len) {
    size_t at = buf_.size();
    buf_.resize(at + Align4(NLA_HDRLEN + len));
    auto* a = reinterpret_cast<nlattr*>(buf_.data() + at);
    a->nla_type = type;
    a->nla_len = static_cast<uint16_t>(NLA_HDRLEN + len);
    if (len != 0) std::memcpy(buf_.data() + at + NLA_HDRLEN, data, len);
  }
  void PutU32(uint16_t type, uint32_t v) { Put(type, &v, sizeof(v)); }
  void PutU64(uint16_t type, uint64_t v) { Put(type, &v, sizeof(v)); }
  void PutString(uint16_t type, const std::string& s) { Put(type, s.c_str(), s.size() + 1); }
  void Begin(uint16_t type) {
    nests_.push_back(buf_.size());
    Put(type | NLA_F_NESTED, nullptr, 0);
  }
  void End() {
    size_t at = nests_.back();
    nests_.pop_back();
    reinterpret_cast<nlattr*>(buf_.data() + at)->nla_len = static_cast<uint16_t>(buf_.size() - at);
  }
  std::vector<uint8_t> Finish() {
    reinterpret_cast<nlmsghdr*>(buf_.data())->nlmsg_len = static_cast<uint32_t>(buf_.size());
    return std::move(buf_);
  }

 private:
  std::vector<uint8_t> buf_;
  std::vector<size_t> nests_;
};

void PutDevice(MessageBuilder& m, const ConnectParams& p) {
  if (p.index >= 0) m.PutU32(NBD_ATTR_INDEX, static_cast<uint32_t>(p.index));
  m.PutU64(NBD_ATTR_SIZE_BYTES, p.size_bytes);
  m.PutU64(NBD_ATTR_BLOCK_SIZE_BYTES, p.block_size);
  m.PutU64(NBD_ATTR_SERVER_FLAGS, p.server_flags);
  m.PutU64(NBD_ATTR_TIMEOUT, kIoTimeoutS);
  m.PutU64(NBD_ATTR_DEAD_CONN_TIMEOUT, kDeadConnTimeoutS);
  if (!p.backend_id.empty()) m.PutString(NBD_ATTR_BACKEND_IDENTIFIER, p.backend_id);
  m.Begin(NBD_ATTR_SOCKETS);
  m.Begin(NBD_SOCK_ITEM);
  m.PutU32(NBD_SOCK_FD, static_cast<uint32_t>(p.socket_fd));
  m.End();
  m.End();
}

// Walks the attributes of the first message in `reply`; calls fn(type, payload) for each.
template <typename F>
Status ForEachAttr(std::span<const uint8_t> reply, F&& fn) {
  if (reply.size() < NLMSG_HDRLEN) return Error(Code::kInternal, "short netlink reply");
  const auto* nh = reinterpret_cast<const nlmsghdr*>(reply.data());
  if (nh->nlmsg_len > reply.size() || nh->nlmsg_len < NLMSG_HDRLEN) {
    return Error(Code::kInternal, "bad netlink reply length");
  }
  if (nh->nlmsg_type == NLMSG_ERROR) {
    if (nh->nlmsg_len < NLMSG_HDRLEN + sizeof(nlmsgerr)) {
      return Error(Code::kInternal, "short netlink error");
    }
    int err = reinterpret_cast<const nlmsgerr*>(reply.data() + NLMSG_HDRLEN)->error;
    if (err == 0) return Status::Ok();
    return Error(Code::kFailedPrecondition, "kernel nbd: {}", std::strerror(-err));
  }
  size_t at = NLMSG_HDRLEN + GENL_HDRLEN;
  while (at + NLA_HDRLEN <= nh->nlmsg_len) {
    const auto* a = reinterpret_cast<const nlattr*>(reply.data() + at);
    if (a->nla_len < NLA_HDRLEN || at + a->nla_len > nh->nlmsg_len) {
      return Error(Code::kInternal, "bad netlink attribute");
    }
    fn(a->nla_type & NLA_TYPE_MASK, reply.subspan(at + NLA_HDRLEN, a->nla_len - NLA_HDRLEN));
    at += Align4(a->nla_len);
  }
  return Status::Ok();
}

}  // namespace

std::vector<uint8_t> BuildGetFamily(uint32_t seq) {
  MessageBuilder m(GENL_ID_CTRL, NLM_F_REQUEST, seq, CTRL_CMD_GETFAMILY, 1);
  m.PutString(CTRL_ATTR_FAMILY_NAME, NBD_GENL_FAMILY_NAME);
  return m.Finish();
}

std::vector<uint8_t> BuildConnect(uint16_t family, uint32_t seq, const ConnectParams& p) {
  MessageBuilder m(family, NLM_F_REQUEST | NLM_F_ACK, seq, NBD_CMD_CONNECT, NBD_GENL_VERSION);
  PutDevice(m, p);
  return m.Finish();
}

std::vector<uint8_t> BuildReconfigure(uint16_t family, uint32_t seq, const ConnectParams& p) {
  MessageBuilder m(family, NLM_F_REQUEST | NLM_F_ACK, seq, NBD_CMD_RECONFIGURE, NBD_GENL_VERSION);
  PutDevice(m, p);
  return m.Finish();
}

std::vector<uint8_t> BuildDisconnect(uint16_t family, uint32_t seq, uint32_t index) {
  MessageBuilder m(family, NLM_F_REQUEST | NLM_F_ACK, seq, NBD_CMD_DISCONNECT, NBD_GENL_VERSION);
  m.PutU32(NBD_ATTR_INDEX, index);
  return m.Finish();
}

Result<uint16_t> ParseFamilyId(std::span<const uint8_t> reply) {
  int family = -1;
  Status s = ForEachAttr(reply, [&](uint16_t type, std::span<const uint8_t> v) {
    if (type == CTRL_ATTR_FAMILY_ID && v.size() >= 2) {
      uint16_t id;
      std::memcpy(&id, v.data(), 2);
      family = id;
    }
  });
  if (!s.ok()) return s;
  if (family < 0) return Error(Code::kNotFound, "kernel has no nbd netlink family");
  return static_cast<uint16_t>(family);
}

Result<uint32_t> ParseIndex(std::span<const uint8_t> reply) {
  int64_t index = -1;
  Status s = ForEachAttr(reply, [&](uint16_t type, std::span<const uint8_t> v) {
    if (type == NBD_ATTR_INDEX && v.size() >= 4) {
      uint32_t i;
      std::memcpy(&i, v.data(), 4);
      index = i;
    }
  });
  if (!s.ok()) return s;
  if (index < 0) return Error(Code::kInternal, "kernel reply carries no nbd index");
  return static_cast<uint32_t>(index);
}

Status ParseAck(std::span<const uint8_t> reply) {
  return ForEachAttr(reply, [](uint16_t, std::span<const uint8_t>) {});
}

bool Available() {
  return std::filesystem::exists("/sys/module/nbd");
}

KernelNbd::KernelNbd(std::string dev_dir, std::string byid_dir, std::string state_path)
    : dev_dir_(std::move(dev_dir)),
      byid_dir_(std::move(byid_dir)),
      state_path_(std::move(state_path)) {
  LoadState();
}

KernelNbd::~KernelNbd() {
  if (fd_ >= 0) close(fd_);
}

Status KernelNbd::Open() {
  fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
  if (fd_ < 0) return Error(Code::kIoError, "netlink socket: {}", std::strerror(errno));
  timeval tv{5, 0};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  SP_ASSIGN_OR_RETURN(auto reply, Transact(BuildGetFamily(seq_++)));
  SP_ASSIGN_OR_RETURN(family_, ParseFamilyId(reply));
  return Status::Ok();
}

Result<std::vector<uint8_t>> KernelNbd::Transact(std::vector<uint8_t> msg) {
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd_, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) <
      0) {
    return Error(Code::kIoError, "netlink send: {}", std::strerror(errno));
  }
  std::vector<uint8_t> reply(kMaxNetlinkMessage);
  ssize_t n = recv(fd_, reply.data(), reply.size(), 0);
  if (n < 0) return Error(Code::kIoError, "netlink recv: {}", std::strerror(errno));
  reply.resize(static_cast<size_t>(n));
  return reply;
}

Result<uint32_t> KernelNbd::Attach(const std::string& name, const std::string& global_id,
                                   ConnectParams params) {
  params.backend_id = "spindle:" + global_id;
  uint32_t index = 0;
  auto known = index_of_.find(global_id);
  bool reattached = false;
  if (known != index_of_.end()) {
    // Our previous incarnation's device may still be waiting (dead-connection timeout).
    params.index = known->second;
    auto r = Transact(BuildReconfigure(family_, seq_++, params));
    if (r.ok() && ParseAck(*r).ok()) {
      index = known->second;
      reattached = true;
    }
  }
  if (!reattached) {
    params.index = -1;
    SP_ASSIGN_OR_RETURN(auto reply, Transact(BuildConnect(family_, seq_++, params)));
    SP_ASSIGN_OR_RETURN(index, ParseIndex(reply));
  }
  index_of_[global_id] = index;
  SaveState();
  std::error_code ec;
  std::string dev = "/dev/nbd" + std::to_string(index);
  for (auto [dir, link] : {std::pair{dev_dir_, name}, std::pair{byid_dir_, global_id}}) {
    std::filesystem::create_directories(dir, ec);
    std::filesystem::remove(dir + "/" + link, ec);
    std::filesystem::create_symlink(dev, dir + "/" + link, ec);
    if (ec) SP_LOG_WARN("symlink {}/{} -> {}: {}", dir, link, dev, ec.message());
  }
  SP_LOG_INFO("volume {} attached as {} ({})", name, dev, reattached ? "re-attached" : "new");
  return index;
}

Status KernelNbd::Detach(const std::string& name, const std::string& global_id) {
  auto it = index_of_.find(global_id);
  if (it == index_of_.end()) return Status::Ok();
  uint32_t index = it->second;
  std::error_code ec;
  std::filesystem::remove(dev_dir_ + "/" + name, ec);
  std::filesystem::remove(byid_dir_ + "/" + global_id, ec);
  index_of_.erase(it);
  SaveState();
  SP_ASSIGN_OR_RETURN(auto reply, Transact(BuildDisconnect(family_, seq_++, index)));
  return ParseAck(reply);
}

bool KernelNbd::InUse(const std::string& global_id) const {
  auto it = index_of_.find(global_id);
  if (it == index_of_.end()) return false;
  // O_EXCL on a block device fails with EBUSY while it is mounted or held by another opener.
  std::string dev = "/dev/nbd" + std::to_string(it->second);
  int fd = open(dev.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC);
  if (fd < 0) return errno == EBUSY;
  close(fd);
  return false;
}

void KernelNbd::SaveState() const {
  nlohmann::json j = nlohmann::json::object();
  for (auto& [gid, index] : index_of_) j[gid] = index;
  std::string tmp = state_path_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump();
  }
  std::error_code ec;
  std::filesystem::rename(tmp, state_path_, ec);
}

void KernelNbd::LoadState() {
  std::ifstream in(state_path_);
  if (!in) return;
  auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return;
  for (auto& [gid, index] : j.items()) {
    if (index.is_number_unsigned()) index_of_[gid] = index.get<uint32_t>();
  }
}

}  // namespace spindle::client::kernel
