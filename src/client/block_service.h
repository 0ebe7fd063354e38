// spindle-block wired together: volume table + server pool + NBD server + mgmt link.
// Thread: constructed, started and stopped on the io_context thread (main's); the mgmt link
// runs its own threads and posts states into the io_context.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <asio.hpp>

#include "client/kernel_attach.h"
#include "client/mgmt_link.h"
#include "client/nbd_server.h"
#include "client/server_pool.h"
#include "client/volume_table.h"
#include "common/config.h"
#include "common/ids.h"
#include "net/api_client.h"

namespace spindle::client {

struct BlockOptions {
  ClientId id;
  std::string workdir = "/var/run/storpool";
  std::string nbd_host = "127.0.0.1";
  uint16_t nbd_port = 10809;
  net::ApiEndpoint api;

  // Kernel attach (hosts with the nbd module): symlink directories.
  std::string dev_dir = "/dev/storpool";
  std::string dev_byid_dir = "/dev/storpool-byid";
  // How long the service thread keeps polling after its last event before it sleeps
  // (net/run_loop.h); 0 sleeps at once.
  std::chrono::microseconds poll_window{50};

  std::string nbd_socket() const { return workdir + "/nbd.sock"; }
  // Reads SP_OURID (required), SP_WORKDIR, SP_BLOCK_NBD_HOST, SP_BLOCK_NBD_PORT,
  // SP_DEV_DIR, SP_DEV_BYID_DIR, SP_BLOCK_POLL_US and the API endpoint keys.
  static Result<BlockOptions> FromConfig(const Config& config);
};

class BlockService {
 public:
  BlockService(asio::io_context& io, BlockOptions options);

  // Starts the NBD listeners and the mgmt link.
  Status Start();
  // Stops accepting, closes NBD connections and server connections, asks the mgmt link to
  // stop. In-flight work then finishes and io.run() returns. Call on the io thread.
  void Stop();
  // Waits for the mgmt link's threads. Call after io.run() returned.
  void Join();

 private:
  void Apply(ClientState state, std::function<void(std::vector<std::string>)> done);
  // Runs the layer switches one after the other, lets go the volumes of a cut that is over,
  // drains the ones just held, then `done` with those.
  asio::awaitable<void> SwitchLayers(VolumeTable::Changes changes,
                                     std::function<void(std::vector<std::string>)> done);
  // Attaches /dev/nbdN for every volume of `state` that has none (or whose export changed)
  // and detaches the devices of volumes that went away. Only with the kernel nbd driver.
  void SyncKernel(const ClientState& state);

  asio::io_context& io_;
  BlockOptions options_;
  ServerPool pool_;
  VolumeTable table_;
  NbdServer nbd_;
  MgmtLink link_;
  std::unique_ptr<kernel::KernelNbd> kernel_;  // null without the kernel nbd driver
  // globalId -> (name, the Volume its device is served from)
  std::map<std::string, std::pair<std::string, const Volume*>> kernel_attached_;
};

// Logs whether the kernel nbd driver is present; without it no /dev/nbdN is attached and the
// NBD endpoint is the device.
void LogKernelNbdSupport();

}  // namespace spindle::client
