// Kernel attach: connects /dev/nbdN to an export through the kernel's `nbd` generic-netlink
// family, and keeps /dev/storpool/<name> and /dev/storpool-byid/<globalId> symlinks.
//
// The kernel gets one end of a socketpair; spindle-block serves the other end with an
// NbdSession that starts directly in transmission (the kernel does no handshake). A device is
// created with a dead-connection timeout, so it survives a restart of spindle-block, which
// then re-attaches the same index with NBD_CMD_RECONFIGURE (indexes are remembered in
// <workdir>/kernel-attach.json).
//
// Where the host has no nbd module (/sys/module/nbd absent), Available() is false and nothing
// here runs: the NBD sockets are the device.
//
// The message builders and parsers are pure and unit-tested; KernelNbd does the I/O.
// Thread: KernelNbd is used from the io_context thread only (its netlink calls are short and
// synchronous).
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace spindle::client::kernel {

inline constexpr size_t kMaxNetlinkMessage = 16384;
inline constexpr uint64_t kDeadConnTimeoutS = 120;
inline constexpr uint64_t kIoTimeoutS = 60;

struct ConnectParams {
  uint64_t size_bytes = 0;
  uint64_t block_size = 512;
  uint64_t server_flags = 0;  // NBD transmission flags
  int socket_fd = -1;
  int64_t index = -1;      // -1: let the kernel pick; >= 0: reconfigure/connect that index
  std::string backend_id;  // "spindle:<globalId>"
};

// Message builders (complete netlink messages, ready to send).
std::vector<uint8_t> BuildGetFamily(uint32_t seq);
std::vector<uint8_t> BuildConnect(uint16_t family, uint32_t seq, const ConnectParams& p);
std::vector<uint8_t> BuildReconfigure(uint16_t family, uint32_t seq, const ConnectParams& p);
std::vector<uint8_t> BuildDisconnect(uint16_t family, uint32_t seq, uint32_t index);

// Parsers of kernel replies. An NLMSG_ERROR with a non-zero error becomes a Status naming it.
Result<uint16_t> ParseFamilyId(std::span<const uint8_t> reply);
Result<uint32_t> ParseIndex(std::span<const uint8_t> reply);
Status ParseAck(std::span<const uint8_t> reply);

// True when the kernel has the nbd driver (/sys/module/nbd).
bool Available();

class KernelNbd {
 public:
  KernelNbd(std::string dev_dir, std::string byid_dir, std::string state_path);
  ~KernelNbd();
  // Opens the netlink socket and resolves the family. Call only when Available().
  Status Open();
  // Connects (or re-attaches the remembered index of `global_id`) and creates the symlinks.
  // Returns the device index.
  Result<uint32_t> Attach(const std::string& name, const std::string& global_id,
                          ConnectParams params);
  // Disconnects the device of `global_id` and removes its symlinks.
  Status Detach(const std::string& name, const std::string& global_id);
  // True when /dev/nbdN of `global_id` is held open by someone (a mount, a VM).
  bool InUse(const std::string& global_id) const;

 private:
  Result<std::vector<uint8_t>> Transact(std::vector<uint8_t> msg);
  void SaveState() const;
  void LoadState();

  std::string dev_dir_, byid_dir_, state_path_;
  int fd_ = -1;
  uint16_t family_ = 0;
  uint32_t seq_ = 1;
  std::map<std::string, uint32_t> index_of_;  // globalId -> nbd index
};

}  // namespace spindle::client::kernel
