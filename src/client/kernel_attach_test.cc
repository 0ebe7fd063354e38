// The nbd generic-netlink messages are laid out as the kernel expects (header, genl command,
// attributes with the right types and sizes, the socket fd nested two levels deep), and kernel
// replies are parsed: family id, device index, and errors turned into a Status. No kernel is
// needed: this machine has no nbd module, so the I/O half is exercised only on hosts with one.
#include "client/kernel_attach.h"

#include <linux/genetlink.h>
#include <linux/nbd-netlink.h>
#include <linux/netlink.h>

#include <gtest/gtest.h>

#include <cstring>
#include <map>

namespace spindle::client::kernel {
namespace {

// type -> payload of the top-level attributes of a message.
std::map<uint16_t, std::vector<uint8_t>> Attrs(std::span<const uint8_t> msg, size_t start) {
  std::map<uint16_t, std::vector<uint8_t>> out;
  size_t at = start;
  while (at + NLA_HDRLEN <= msg.size()) {
    nlattr a;
    std::memcpy(&a, msg.data() + at, sizeof(a));
    EXPECT_GE(a.nla_len, NLA_HDRLEN);
    if (a.nla_len < NLA_HDRLEN) break;
    out[a.nla_type & NLA_TYPE_MASK].assign(msg.begin() + at + NLA_HDRLEN,
                                           msg.begin() + at + a.nla_len);
    at += (a.nla_len + 3) & ~3u;
  }
  return out;
}

uint64_t U64(const std::vector<uint8_t>& v) {
  uint64_t x = 0;
  EXPECT_EQ(v.size(), 8u);
  std::memcpy(&x, v.data(), std::min<size_t>(8, v.size()));
  return x;
}

TEST(KernelAttach, ConnectMessageLayout) {
  ConnectParams p;
  p.size_bytes = 1 << 30;
  p.server_flags = 0x10d;
  p.socket_fd = 42;
  p.backend_id = "spindle:a.b.c";
  auto msg = BuildConnect(27, 5, p);
  nlmsghdr nh;
  std::memcpy(&nh, msg.data(), sizeof(nh));
  EXPECT_EQ(nh.nlmsg_len, msg.size());
  EXPECT_EQ(nh.nlmsg_type, 27);
  EXPECT_EQ(nh.nlmsg_seq, 5u);
  EXPECT_TRUE(nh.nlmsg_flags & NLM_F_ACK);
  EXPECT_EQ(msg[NLMSG_HDRLEN], NBD_CMD_CONNECT);
  auto attrs = Attrs(msg, NLMSG_HDRLEN + GENL_HDRLEN);
  EXPECT_EQ(attrs.count(NBD_ATTR_INDEX), 0u);  // the kernel picks
  EXPECT_EQ(U64(attrs[NBD_ATTR_SIZE_BYTES]), 1u << 30);
  EXPECT_EQ(U64(attrs[NBD_ATTR_BLOCK_SIZE_BYTES]), 512u);
  EXPECT_EQ(U64(attrs[NBD_ATTR_SERVER_FLAGS]), 0x10du);
  EXPECT_EQ(U64(attrs[NBD_ATTR_DEAD_CONN_TIMEOUT]), kDeadConnTimeoutS);
  EXPECT_STREQ(reinterpret_cast<const char*>(attrs[NBD_ATTR_BACKEND_IDENTIFIER].data()),
               "spindle:a.b.c");
  auto sockets = Attrs(attrs[NBD_ATTR_SOCKETS], 0);
  ASSERT_EQ(sockets.count(NBD_SOCK_ITEM), 1u);
  auto item = Attrs(sockets[NBD_SOCK_ITEM], 0);
  ASSERT_EQ(item[NBD_SOCK_FD].size(), 4u);
  uint32_t fd;
  std::memcpy(&fd, item[NBD_SOCK_FD].data(), 4);
  EXPECT_EQ(fd, 42u);

  p.index = 3;
  auto re = BuildReconfigure(27, 6, p);
  EXPECT_EQ(re[NLMSG_HDRLEN], NBD_CMD_RECONFIGURE);
  EXPECT_EQ(Attrs(re, NLMSG_HDRLEN + GENL_HDRLEN)[NBD_ATTR_INDEX].size(), 4u);
  auto dis = BuildDisconnect(27, 7, 3);
  EXPECT_EQ(dis[NLMSG_HDRLEN], NBD_CMD_DISCONNECT);
}

// Builds a reply message of `type` with one u16/u32 attribute.
std::vector<uint8_t> Reply(uint16_t type, uint16_t attr, uint32_t value, size_t value_len) {
  std::vector<uint8_t> m(NLMSG_HDRLEN + GENL_HDRLEN + NLA_HDRLEN + 4, 0);
  nlmsghdr nh{static_cast<uint32_t>(m.size()), type, 0, 1, 0};
  std::memcpy(m.data(), &nh, sizeof(nh));
  nlattr a{static_cast<uint16_t>(NLA_HDRLEN + value_len), attr};
  std::memcpy(m.data() + NLMSG_HDRLEN + GENL_HDRLEN, &a, sizeof(a));
  std::memcpy(m.data() + NLMSG_HDRLEN + GENL_HDRLEN + NLA_HDRLEN, &value, value_len);
  return m;
}

TEST(KernelAttach, ParsesReplies) {
  auto fam = ParseFamilyId(Reply(GENL_ID_CTRL, CTRL_ATTR_FAMILY_ID, 31, 2));
  ASSERT_TRUE(fam.ok());
  EXPECT_EQ(*fam, 31);
  EXPECT_FALSE(ParseFamilyId(Reply(GENL_ID_CTRL, CTRL_ATTR_VERSION, 1, 4)).ok());
  auto idx = ParseIndex(Reply(27, NBD_ATTR_INDEX, 7, 4));
  ASSERT_TRUE(idx.ok());
  EXPECT_EQ(*idx, 7u);

  std::vector<uint8_t> err(NLMSG_HDRLEN + sizeof(nlmsgerr), 0);
  nlmsghdr nh{static_cast<uint32_t>(err.size()), NLMSG_ERROR, 0, 1, 0};
  std::memcpy(err.data(), &nh, sizeof(nh));
  int code = -16;  // EBUSY
  std::memcpy(err.data() + NLMSG_HDRLEN, &code, sizeof(code));
  Status s = ParseAck(err);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("busy"), std::string::npos) << s.message();
  code = 0;
  std::memcpy(err.data() + NLMSG_HDRLEN, &code, sizeof(code));
  EXPECT_TRUE(ParseAck(err).ok());

  auto truncated = Reply(27, NBD_ATTR_INDEX, 7, 4);
  truncated.resize(10);
  EXPECT_FALSE(ParseIndex(truncated).ok());
}

}  // namespace
}  // namespace spindle::client::kernel
