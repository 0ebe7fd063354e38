#include "server/scrubber.h"

#include <algorithm>
#include <limits>

#include "common/assert.h"
#include "common/log.h"

namespace spindle::server {

Scrubber::Scrubber(env::Env& env, asio::thread_pool& pool, jdisk::JStore& store,
                   ScrubOptions options)
    : env_(env), pool_(pool), store_(store), options_(options), timer_(pool.get_executor()) {
  SP_ASSERT(options_.step_blocks > 0 && options_.busy_divisor > 0);
  stats_.bandwidth_bytes_per_s = options_.bandwidth_bytes_per_s;
}

Scrubber::~Scrubber() {
  Stop();
}

void Scrubber::Start() {
  Publish();
  if (options_.bandwidth_bytes_per_s == 0) return;
  std::lock_guard lock(mu_);
  if (active_ || stop_) return;
  active_ = true;
  pass_start_ = std::chrono::steady_clock::now();
  asio::post(pool_, [this] { Step(); });
}

void Scrubber::Stop() {
  std::unique_lock lock(mu_);
  stop_ = true;
  timer_.cancel();
  cv_.wait(lock, [this] { return !active_; });
}

void Scrubber::Step() {
  {
    std::lock_guard lock(mu_);
    if (stop_) {
      active_ = false;
      cv_.notify_all();
      return;
    }
  }
  const auto start = std::chrono::steady_clock::now();
  uint64_t bytes = 0;
  const bool pass_done = RunStep(&bytes);
  const uint64_t ios = store_.client_ios();
  stats_.throttled = ios != client_ios_seen_;
  client_ios_seen_ = ios;
  Publish();
  // Paced by what was read: the step's bytes take bytes / bandwidth seconds in all.
  const uint64_t rate =
      stats_.throttled
          ? std::max<uint64_t>(1, options_.bandwidth_bytes_per_s / options_.busy_divisor)
          : options_.bandwidth_bytes_per_s;
  auto next = start + std::chrono::nanoseconds(bytes * 1'000'000'000 / rate);
  if (pass_done) {
    next = std::max(next, pass_start_ + options_.min_pass_interval);
    pass_start_ = next;
  }
  std::lock_guard lock(mu_);
  if (stop_) {
    active_ = false;
    cv_.notify_all();
    return;
  }
  timer_.expires_at(next);
  timer_.async_wait([this](const asio::error_code&) { Step(); });
}

bool Scrubber::RunStep(uint64_t* bytes) {
  uint32_t budget = options_.step_blocks;
  for (uint32_t objects = 0; budget > 0 && objects < kMaxScrubObjectsPerStep;) {
    if (!in_object_) {
      auto next = pass_end_
                      ? std::nullopt
                      : store_.NextObject(LayerId(cursor_.first), ObjectIndex(cursor_.second));
      if (!next) {
        EndPass();
        return true;
      }
      cursor_ = {next->first.value(), next->second.value()};
      next_block_ = 0;
      in_object_ = true;
    }
    const LayerId layer(cursor_.first);
    const ObjectIndex object(cursor_.second);
    auto r = store_.ScrubBlocks(layer, object, next_block_, budget);
    if (r.ok()) {
      Record(layer, object, next_block_, *r);
      *bytes += r->bytes_read;
      budget -= std::min(budget, r->blocks_verified);
      stats_.verified_blocks += r->blocks_verified;
      next_block_ = r->next_block;
    } else {
      if (!io_error_logged_) {
        SP_LOG_WARN("scrub: disk {} layer {} object {}: {} (skipped; logged once per pass)",
                    store_.superblock().disk.value(), layer.value(), object.value(),
                    r.status().ToString());
      }
      io_error_logged_ = true;
      next_block_ = static_cast<uint32_t>(kBlocksPerObject);
    }
    if (next_block_ < kBlocksPerObject) continue;  // the budget ran out within the object
    // Done with the object: the next search starts just after it.
    in_object_ = false;
    ++objects;
    if (cursor_.second < std::numeric_limits<uint32_t>::max()) {
      ++cursor_.second;
    } else if (cursor_.first < std::numeric_limits<uint64_t>::max()) {
      cursor_ = {cursor_.first + 1, 0};
    } else {
      pass_end_ = true;
    }
  }
  return false;
}

void Scrubber::Record(LayerId layer, ObjectIndex object, uint32_t first_block,
                      const jdisk::ScrubResult& r) {
  const DiskId disk = store_.superblock().disk;
  // Known bad blocks of the object stop being bad when its version changed or when this call
  // verified them good (a repair at the same version).
  auto it = bad_.lower_bound(BlockKey{layer.value(), object.value(), 0});
  while (it != bad_.end() && std::get<0>(it->first) == layer.value() &&
         std::get<1>(it->first) == object.value()) {
    const uint32_t b = std::get<2>(it->first);
    const bool verified = b >= first_block && b < r.next_block;
    if (it->second != r.version ||
        (verified && !std::binary_search(r.bad_blocks.begin(), r.bad_blocks.end(), b))) {
      it = bad_.erase(it);
    } else {
      ++it;
    }
  }
  for (uint32_t b : r.bad_blocks) {
    const BlockKey key{layer.value(), object.value(), b};
    if (bad_.contains(key)) continue;
    SP_LOG_WARN("scrub: disk {} bad block layer {} object {} block {} (version {})", disk.value(),
                layer.value(), object.value(), b, r.version);
    if (bad_.size() < jdisk::JStore::kMaxScrubBadBlocks) bad_.emplace(key, r.version);
  }
  if (!r.bad_blocks.empty() && reported_.insert({layer.value(), object.value()}).second &&
      on_bad_) {
    on_bad_(disk, layer, object);
  }
}

void Scrubber::EndPass() {
  ++stats_.passes;
  stats_.last_pass_end_unix_seconds = env_.clock().UnixSeconds();
  // Objects deleted or rewritten since are not visited again in their old version.
  std::erase_if(bad_, [&](const auto& entry) {
    const auto& [key, version] = entry;
    return store_.Info(LayerId(std::get<0>(key)), ObjectIndex(std::get<1>(key))).version != version;
  });
  SP_LOG_DEBUG("scrub: disk {} pass {} done: {} blocks verified in all, {} known bad",
               store_.superblock().disk.value(), stats_.passes, stats_.verified_blocks,
               bad_.size());
  reported_.clear();
  io_error_logged_ = false;
  pass_end_ = false;
  in_object_ = false;
  cursor_ = {0, 0};
}

void Scrubber::Publish() {
  stats_.bad_blocks.clear();
  for (const auto& [key, version] : bad_) {
    stats_.bad_blocks.push_back(jdisk::BadBlock{
        LayerId(std::get<0>(key)), ObjectIndex(std::get<1>(key)), std::get<2>(key), version});
  }
  store_.PublishScrubStats(stats_);
}

}  // namespace spindle::server
