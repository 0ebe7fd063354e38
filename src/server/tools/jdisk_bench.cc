// spindle-jdisk bench: the journaled store's own load generator (bench/disk_store runs it).
// `qd` threads issue blocking Write/Read calls; each thread owns its objects, so versions never
// conflict. Prints one JSON line: mode, bs, qd, ops, iops, MB/s, p50/p99 latency in us.
#include "server/tools/jdisk_bench.h"

#include <algorithm>
#include <atomic>
#include <iostream>
#include <random>
#include <thread>

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
  auto pct = [&](double p) {
    return lat.empty() ? 0u : lat[static_cast<size_t>(p * (lat.size() - 1))];
  };
  nlohmann::json j = {{"mode", o.mode},
                      {"bs", o.block_bytes},
                      {"qd", o.qd},
                      {"ops", ops},
                      {"iops", ops / secs},
                      {"mbps", ops * o.block_bytes / secs / 1e6},
                      {"p50_us", pct(0.5)},
                      {"p99_us", pct(0.99)},
                      {"io_engine", env::IoEngineName(env::CurrentIoEngine())}};
  std::cout << j.dump() << "\n";
  return 0;
}

}  // namespace spindle::server::jdisk
