#include "client/volume_table.h"

#include <set>

#include "common/log.h"

namespace spindle::client {

std::shared_ptr<Volume> VolumeTable::Find(std::string_view export_name) const {
  if (!export_name.empty() && export_name.front() == '~') {
    auto it = by_global_id_.find(std::string(export_name.substr(1)));
    return it == by_global_id_.end() ? nullptr : it->second;
  }
  for (const auto& [gid, v] : by_global_id_) {
    if (v->spec().name == export_name) return v;
  }
  return nullptr;
}

std::vector<std::string> VolumeTable::Names() const {
  std::vector<std::string> out;
  for (const auto& [gid, v] : by_global_id_) out.push_back(v->spec().name);
  return out;
}

std::vector<std::shared_ptr<Volume>> VolumeTable::All() const {
  std::vector<std::shared_ptr<Volume>> out;
  for (const auto& [gid, v] : by_global_id_) out.push_back(v);
  return out;
}

VolumeTable::Changes VolumeTable::Apply(const ClientState& state) {
  pool_.UpdateDisks(state.disks, state.generation);
  Changes out;
  std::vector<std::shared_ptr<Volume>>& gone = out.gone;
  std::unordered_map<std::string, std::shared_ptr<Volume>> next;
  for (const VolumeSpec& spec : state.volumes) {
    auto it = by_global_id_.find(spec.global_id);
    std::shared_ptr<Volume> old = it == by_global_id_.end() ? nullptr : it->second;
    const bool same_shape = old && old->spec().size_bytes == spec.size_bytes &&
                            old->spec().read_only == spec.read_only &&
                            old->spec().name == spec.name;
    if (same_shape && old->spec().layer == spec.layer) {
      old->UpdateSpec(spec);
      next[spec.global_id] = old;
      continue;
    }
    if (same_shape) {
      SP_LOG_INFO("export {} (~{}) moves to layer {}", spec.name, spec.global_id,
                  spec.layer.value());
      out.switches.emplace_back(old, spec);
      next[spec.global_id] = old;
      continue;
    }
    // Versions belong to the layer: hand them on while the layer stays, so no version is
    // given out twice by the old and the new Volume.
    std::shared_ptr<ObjectVersions> versions;
    if (old && old->spec().layer == spec.layer) versions = old->versions();
    if (old) gone.push_back(old);
    next[spec.global_id] = std::make_shared<Volume>(ex_, pool_, spec, std::move(versions));
    SP_LOG_INFO("export {} (~{}) {}: {} bytes, {}", spec.name, spec.global_id,
                old ? "changed" : "attached", spec.size_bytes, spec.read_only ? "ro" : "rw");
  }
  for (const auto& [gid, v] : by_global_id_) {
    if (!next.contains(gid)) {
      SP_LOG_INFO("export {} (~{}) detached", v->spec().name, gid);
      gone.push_back(v);
    }
  }
  by_global_id_ = std::move(next);
  generation_ = state.generation;
  ApplyPause(state.pause, gone, out);
  return out;
}

void VolumeTable::ApplyPause(const PauseRequest& pause,
                             const std::vector<std::shared_ptr<Volume>>& gone, Changes& out) {
  const std::set<std::string> want(pause.volumes.begin(), pause.volumes.end());
  for (const auto& [gid, v] : by_global_id_) {
    if (pause.cut != 0 && want.contains(gid) && !v->spec().read_only) {
      v->Pause();
      out.paused.push_back(gid);
    } else if (v->paused()) {
      out.resume.push_back(v);
    }
  }
  for (const auto& v : gone) {
    if (v->paused()) v->Resume();
  }
  if (pause.cut == pause_cut_) return;
  if (pause.cut != 0) {
    SP_LOG_INFO("group snapshot cut {}: holding writes of {} volume(s)", pause.cut,
                out.paused.size());
  } else {
    SP_LOG_INFO("group snapshot cut {} over: {} volume(s) go on", pause_cut_, out.resume.size());
  }
  pause_cut_ = pause.cut;
  pause_timer_.cancel();
  if (pause.cut != 0) ArmPauseTimer(pause.cut);
}

void VolumeTable::ArmPauseTimer(int64_t cut) {
  pause_timer_.expires_after(kMaxPause);
  pause_timer_.async_wait([this, cut](const asio::error_code& ec) {
    if (ec || pause_cut_ != cut) return;
    SP_LOG_WARN("group snapshot cut {}: no word from mgmt in {} ms, writes go on", cut,
                kMaxPause.count());
    ReleasePauses();
  });
}

void VolumeTable::ReleasePauses() {
  pause_cut_ = 0;
  pause_timer_.cancel();
  for (const auto& [gid, v] : by_global_id_) {
    if (v->paused()) v->Resume();
  }
}

}  // namespace spindle::client
