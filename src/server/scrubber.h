// Scrubber: verifies in the background, pass after pass, the crc32c of every block stored on one
// disk (JStore::ScrubBlocks, from the device or the journaled image in memory), at a bounded
// bandwidth, so that a rotten block is found and repaired from a replica before a read needs it.
//
// Steps: one step verifies at most `step_blocks` blocks (of one or several objects) on the disk
// pool; a timer on the pool then waits until bytes read / bandwidth has passed, and at least
// `min_pass_interval` separates the starts of two passes. While clients do I/O on the disk
// (JStore::client_ios moved since the previous step) the bandwidth is divided by `busy_divisor`:
// scrubbing yields to clients but never stops (as md's sync_speed_min/max). A step never takes an
// object's turn: ScrubBlocks tolerates concurrent writes, flushes and installs. Findings: a bad
// block is logged once ("scrub: disk D bad block layer L object O block B") and stays known bad (in
// Stats()) until the object's version changes (rewritten, installed) or a later pass verifies it
// good (repaired at the same version). on_bad(disk, layer, object) is called once per pass for each
// object in which the pass found a bad block. Statistics are published to the JStore
// (JStore::scrub_stats) after every step, for the registrar's heartbeat.
//
// Threads: Start, Stop and Stats from any thread but the pool's; steps and on_bad run on the
// pool, one at a time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <tuple>

#include <asio.hpp>

#include "common/ids.h"
#include "env/env.h"
#include "server/disk_store/jstore.h"

namespace spindle::server {

using ScrubStats = jdisk::ScrubStats;

inline constexpr uint64_t kDefaultScrubBandwidth = 32 * kMiB;  // bytes per second
inline constexpr uint32_t kMaxScrubObjectsPerStep = 256;       // bounds a step of tiny objects

struct ScrubOptions {
  uint64_t bandwidth_bytes_per_s = kDefaultScrubBandwidth;  // 0: the scrubber does not run
  uint32_t step_blocks = 256;                               // 1 MiB per step
  uint32_t busy_divisor = 16;                               // >= 1
  std::chrono::milliseconds min_pass_interval{60000};
};

class Scrubber {
 public:
  // Runs on the pool; should only post work elsewhere (it delays the next step).
  using OnBad = std::function<void(DiskId, LayerId, ObjectIndex)>;

  // store, pool: not owned; must outlive the Scrubber. Nothing runs until Start().
  Scrubber(env::Env& env, asio::thread_pool& pool, jdisk::JStore& store, ScrubOptions options);
  ~Scrubber();  // Stop()

  // Set before Start().
  void set_on_bad(OnBad on_bad) { on_bad_ = std::move(on_bad); }
  // Publishes empty statistics and schedules the first step (unless the bandwidth is 0).
  void Start();
  // Cancels the wait and waits for a step in progress. REQUIRES: the pool still runs.
  void Stop();
  ScrubStats Stats() const { return store_.scrub_stats().value_or(ScrubStats{}); }

 private:
  using ObjectKey = std::pair<uint64_t, uint32_t>;            // (layer, object)
  using BlockKey = std::tuple<uint64_t, uint32_t, uint32_t>;  // (layer, object, block)

  void Step();
  // Verifies up to step_blocks blocks; returns true when the pass ended. *bytes: read.
  bool RunStep(uint64_t* bytes);
  // Updates the known bad blocks of the object from a ScrubBlocks of it from `first_block`.
  void Record(LayerId layer, ObjectIndex object, uint32_t first_block, const jdisk::ScrubResult& r);
  void EndPass();
  void Publish();

  env::Env& env_;
  asio::thread_pool& pool_;
  jdisk::JStore& store_;
  const ScrubOptions options_;
  OnBad on_bad_;

  // Owned by the step in progress (one at a time).
  bool in_object_ = false;            // cursor_ names the object being verified
  bool pass_end_ = false;             // no object after cursor_
  ObjectKey cursor_{0, 0};            // the object being verified, or where to look for the next
  uint32_t next_block_ = 0;           // within the object being verified
  std::map<BlockKey, uint64_t> bad_;  // known bad -> the object's version then
  std::set<ObjectKey> reported_;      // objects passed to on_bad in this pass
  bool io_error_logged_ = false;      // in this pass
  ScrubStats stats_;
  std::chrono::steady_clock::time_point pass_start_;
  uint64_t client_ios_seen_ = 0;  // JStore::client_ios at the previous step

  std::mutex mu_;  // stop_, active_, timer_
  std::condition_variable cv_;
  bool stop_ = false;
  bool active_ = false;  // a step runs or is scheduled
  asio::steady_timer timer_;
};

}  // namespace spindle::server
