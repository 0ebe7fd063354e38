// The volumes attached to this client, by export name (volume name and "~globalId"), kept in
// step with mgmt's ClientState.
// Thread: owned by the io_context thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <asio.hpp>

#include "client/server_pool.h"
#include "client/state.h"
#include "client/volume.h"

namespace spindle::client {

class VolumeTable {
 public:
  VolumeTable(asio::any_io_executor ex, ServerPool& pool) : ex_(ex), pool_(pool) {}

  // Looks up an export name: a volume/snapshot name or "~<globalId>". nullptr if absent.
  std::shared_ptr<Volume> Find(std::string_view export_name) const;
  // Names of all exports, volume names only.
  std::vector<std::string> Names() const;
  // Every attached volume and snapshot.
  std::vector<std::shared_ptr<Volume>> All() const;

  struct Changes {
    // Volumes that went away or changed in a way an open NBD connection cannot follow (size,
    // rights, name); their connections must close.
    std::vector<std::shared_ptr<Volume>> gone;
    // Volumes that only moved to a new top layer (a snapshot): the caller runs
    // Volume::SwitchLayer with the new spec; their connections stay open.
    std::vector<std::pair<std::shared_ptr<Volume>, VolumeSpec>> switches;
  };
  // Applies a new state.
  Changes Apply(const ClientState& state);
  int64_t generation() const { return generation_; }

 private:
  asio::any_io_executor ex_;
  ServerPool& pool_;
  std::unordered_map<std::string, std::shared_ptr<Volume>> by_global_id_;
  int64_t generation_ = 0;
};

}  // namespace spindle::client
