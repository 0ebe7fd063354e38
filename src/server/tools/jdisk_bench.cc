// spindle-jdisk bench: the journaled store's own load generator (bench/disk_store runs it).
// `qd` threads issue blocking Write/Read calls; each thread owns its objects, so versions never
// conflict. Prints one JSON line: mode, bs, qd, ops, iops, MB/s, p50/p99 latency in us.
#include "server/tools/jdisk_bench.h"

#include <algorithm>
#include <atomic>
#include <barrier>
#include <iostream>
#include <random>
#include <thread>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "env/env.h"
#include "server/disk_store/jstore.h"

namespace spindle::server::jdisk {
namespace {

constexpr size_t kMaxSamplesPerThread = 1 << 20;  // latency samples kept per thread

struct ThreadResult {
  uint64_t ops = 0;
  std::vector<uint32_t> lat_us;
  Status error;
};

struct Worker {
  JStore* store;
  const BenchOptions* o;
  uint32_t index;
  std::chrono::steady_clock::time_point end;
  ThreadResult* out;

  // Objects in the span (a writer needs one of its own, so writes may go a little past it).
  uint32_t SpanObjects() const {
    return static_cast<uint32_t>(std::max<uint64_t>(1, o->span_bytes / kObjectSize));
  }
  // Objects a writer owns: index, index + qd, index + 2 qd, ... (at least its own index).
  uint32_t OwnedObjects() const {
    const uint32_t total = std::max(SpanObjects(), o->qd);
    return (total - index + o->qd - 1) / o->qd;
  }

  void operator()() {
    std::mt19937_64 rng(index + 1);
    // Aligned for direct I/O, as a caller that wants zero-copy reads and writes provides.
    env::AlignedBuffer aligned(o->block_bytes, env::AlignedBuffer::Fill::kNone);
    std::span<uint8_t> buf(aligned.data(), o->block_bytes);
    for (auto& b : buf) b = static_cast<uint8_t>(rng());
    const bool write = o->mode == "randwrite" || o->mode == "seqwrite";
    const bool random = o->mode == "randwrite" || o->mode == "randread";
    // Writers use their own objects (versions never conflict); readers read the whole span.
    const uint32_t n = write ? OwnedObjects() : SpanObjects();
    const uint32_t stride = write ? o->qd : 1, first = write ? index : 0;
    std::vector<uint64_t> versions(n);
    for (uint32_t k = 0; k < n && write; ++k) {
      versions[k] = store->Info(LayerId(1), ObjectIndex(first + k * stride)).version;
    }
    const uint64_t per_object = kObjectSize / o->block_bytes;
    uint64_t seq = write ? 0 : index * (n * per_object / o->qd);  // readers start spread out
    while (std::chrono::steady_clock::now() < end && (o->max_ops == 0 || out->ops < o->max_ops)) {
      uint64_t slot = random ? rng() % (n * per_object) : seq++ % (n * per_object);
      uint32_t k = static_cast<uint32_t>(slot / per_object);
      uint32_t off = static_cast<uint32_t>((slot % per_object) * o->block_bytes);
      ObjectIndex obj(first + k * stride);
      auto t0 = std::chrono::steady_clock::now();
      Status s;
      if (write) {
        auto r = store->Write(LayerId(1), obj, versions[k] + 1, off, buf);
        s = r.status();
        if (r.ok()) versions[k] = *r;
      } else {
        const LayerId chain[1] = {LayerId(1)};
        s = store->Read(chain, obj, off, buf);
      }
      if (!s.ok()) {
        out->error = s;
        return;
      }
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::steady_clock::now() - t0)
                    .count();
      if (out->lat_us.size() < kMaxSamplesPerThread)
        out->lat_us.push_back(static_cast<uint32_t>(us));
      ++out->ops;
    }
  }
};

// The p-quantile of sorted latencies (0 when there are none).
uint32_t Percentile(const std::vector<uint32_t>& sorted, double p) {
  return sorted.empty() ? 0u : sorted[static_cast<size_t>(p * (sorted.size() - 1))];
}

}  // namespace

int RunBench(const BenchOptions& o) {
  if (o.block_bytes == 0 || o.block_bytes % kSectorSize != 0 || o.block_bytes > kObjectSize ||
      kObjectSize % o.block_bytes != 0 || o.qd == 0) {
    std::cerr << "spindle-jdisk bench: bad --bs or --qd\n";
    return 1;
  }
  auto store = JStore::Open(env::Env::Default(), o.file, "");
  if (!store.ok()) {
    std::cerr << "spindle-jdisk bench: " << store.status().ToString() << "\n";
    return 1;
  }
  std::vector<ThreadResult> results(o.qd);
  std::vector<std::thread> threads;
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::seconds(o.seconds);
  for (uint32_t t = 0; t < o.qd; ++t) {
    threads.emplace_back(Worker{store->get(), &o, t, end, &results[t]});
  }
  for (auto& th : threads) th.join();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  uint64_t ops = 0;
  std::vector<uint32_t> lat;
  for (auto& r : results) {
    if (!r.error.ok()) {
      std::cerr << "spindle-jdisk bench: " << r.error.ToString() << "\n";
      return 1;
    }
    ops += r.ops;
    lat.insert(lat.end(), r.lat_us.begin(), r.lat_us.end());
  }
  std::sort(lat.begin(), lat.end());
  nlohmann::json j = {{"mode", o.mode},
                      {"bs", o.block_bytes},
                      {"qd", o.qd},
                      {"ops", ops},
                      {"iops", ops / secs},
                      {"mbps", ops * o.block_bytes / secs / 1e6},
                      {"p50_us", Percentile(lat, 0.5)},
                      {"p99_us", Percentile(lat, 0.99)},
                      {"io_engine", env::IoEngineName(env::CurrentIoEngine())}};
  std::cout << j.dump() << "\n";
  return 0;
}

namespace {

constexpr uint32_t kMaxWriters = 16;
constexpr size_t kMaxRounds = 1 << 20;

// Writes the file whole (blocks allocated and written, as a device is) and syncs it.
Status FillFile(env::File& f, uint64_t bytes) {
  constexpr size_t kChunk = 1 << 20;
  env::AlignedBuffer chunk(kChunk, env::AlignedBuffer::Fill::kZero);
  for (uint64_t off = 0; off < bytes; off += kChunk) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, bytes - off));
    SP_RETURN_IF_ERROR(f.PWrite(off, std::span<const uint8_t>(chunk.data(), n)));
  }
  return f.DataSync();
}

}  // namespace

int RunSyncFloor(const SyncFloorOptions& o) {
  if (o.writers == 0 || o.writers > kMaxWriters || o.block_bytes == 0 ||
      o.block_bytes % 4096 != 0 || o.file_bytes % o.block_bytes != 0 ||
      o.file_bytes < 16ull * o.block_bytes) {
    std::cerr << "spindle-jdisk sync-floor: writers must be 1.." << kMaxWriters
              << ", the block a multiple of 4096, the file whole blocks and at least 16\n";
    return 2;
  }
  std::vector<std::unique_ptr<env::File>> files;
  std::vector<std::string> paths;
  auto cleanup = [&] {
    files.clear();
    for (auto& p : paths) ::unlink(p.c_str());
  };
  for (uint32_t i = 0; i < o.writers; ++i) {
    paths.push_back(o.dir + "/sync-floor." + std::to_string(::getpid()) + "." + std::to_string(i));
    auto f = env::Env::Default().OpenFile(paths.back(), {.create = env::Create::kYes});
    Status s = f.ok() ? FillFile(**f, o.file_bytes) : f.status();
    if (!s.ok()) {
      std::cerr << "spindle-jdisk sync-floor: " << paths.back() << ": " << s.ToString() << "\n";
      cleanup();
      return 1;
    }
    files.push_back(std::move(*f));
  }
  // Round k: every writer waits at `start`, does its write and sync, then waits at `done`; the
  // main thread times from `start` to `done`.
  std::barrier start(o.writers + 1), done(o.writers + 1);
  std::atomic<bool> stop{false};
  std::vector<Status> errors(o.writers);
  std::vector<std::thread> threads;
  for (uint32_t i = 0; i < o.writers; ++i) {
    threads.emplace_back([&, i] {
      std::mt19937_64 rng(i + 1);
      env::AlignedBuffer aligned(o.block_bytes, env::AlignedBuffer::Fill::kNone);
      for (size_t b = 0; b < o.block_bytes; ++b) aligned.data()[b] = static_cast<uint8_t>(rng());
      const uint64_t blocks = o.file_bytes / o.block_bytes;
      for (;;) {
        start.arrive_and_wait();
        if (stop.load()) break;
        const uint64_t off = rng() % blocks * o.block_bytes;
        Status s = files[i]->PWrite(off, std::span<const uint8_t>(aligned.data(), o.block_bytes));
        if (s.ok() && !o.one_sync) s = files[i]->DataSync();
        if (!s.ok() && errors[i].ok()) errors[i] = s;
        done.arrive_and_wait();
      }
    });
  }
  std::vector<uint32_t> lat;
  const auto begin = std::chrono::steady_clock::now();
  const auto end = begin + std::chrono::seconds(o.seconds);
  while (std::chrono::steady_clock::now() < end && lat.size() < kMaxRounds) {
    const auto t0 = std::chrono::steady_clock::now();
    start.arrive_and_wait();
    done.arrive_and_wait();
    if (o.one_sync) {
      // One flush of the device after every writer's write returned: covers all of them
      // (the files are written whole, so no write changes file-system metadata).
      if (Status s = files[0]->DataSync(); !s.ok() && errors[0].ok()) errors[0] = s;
    }
    lat.push_back(static_cast<uint32_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
            .count()));
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  stop.store(true);
  start.arrive_and_wait();
  for (auto& t : threads) t.join();
  const bool direct = files[0]->is_direct();
  cleanup();
  for (auto& e : errors) {
    if (!e.ok()) {
      std::cerr << "spindle-jdisk sync-floor: " << e.ToString() << "\n";
      return 1;
    }
  }
  std::sort(lat.begin(), lat.end());
  nlohmann::json j = {{"writers", o.writers},
                      {"bs", o.block_bytes},
                      {"rounds", lat.size()},
                      {"rounds_per_s", lat.size() / secs},
                      {"p50_us", Percentile(lat, 0.5)},
                      {"p90_us", Percentile(lat, 0.9)},
                      {"p99_us", Percentile(lat, 0.99)},
                      {"direct", direct},
                      {"one_sync", o.one_sync}};
  std::cout << j.dump() << "\n";
  return 0;
}

}  // namespace spindle::server::jdisk
