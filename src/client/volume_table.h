// The volumes attached to this client, by export name (volume name and "~globalId"), kept in
// step with mgmt's ClientState.
// Thread: owned by the io_context thread.
#pragma once

#include <chrono>
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
  VolumeTable(asio::any_io_executor ex, ServerPool& pool)
      : ex_(ex), pool_(pool), pause_timer_(ex) {}

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
    // Group snapshot cut (docs/decisions/0007-group-snapshot.md). `paused`: the globalIds
    // held for state.pause (already Pause()d; the caller drains them with Flush and reports
    // them). `resume`: volumes held for a cut that is over; the caller lets them go after the
    // switches, so the held writes reach the new layers.
    std::vector<std::string> paused;
    std::vector<std::shared_ptr<Volume>> resume;
  };
  // Applies a new state.
  Changes Apply(const ClientState& state);
  int64_t generation() const { return generation_; }
  // Lets every held volume go (the service stops).
  void ReleasePauses();

 private:
  // Holds the read-write volumes `pause` names, lists the held ones no longer named, and lets
  // go of held volumes that went away (their connections are closed).
  void ApplyPause(const PauseRequest& pause, const std::vector<std::shared_ptr<Volume>>& gone,
                  Changes& out);
  // After kMaxPause with no word from mgmt on cut `cut` the volumes go on by themselves: mgmt
  // gives up on a cut long before, so it can no longer commit it.
  void ArmPauseTimer(int64_t cut);

  asio::any_io_executor ex_;
  ServerPool& pool_;
  std::unordered_map<std::string, std::shared_ptr<Volume>> by_global_id_;
  int64_t generation_ = 0;
  int64_t pause_cut_ = 0;  // the cut the volumes are held for; 0: none
  asio::steady_timer pause_timer_;
};

// How long a client holds writes for a cut without hearing from mgmt (mgmt waits at most
// 10 s for the pauses, then commits or drops the cut at once).
inline constexpr std::chrono::milliseconds kMaxPause{30000};

}  // namespace spindle::client
