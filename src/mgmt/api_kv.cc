// The key-value store: KV, KV/List|Get|Create|Delete|Set (reference §3 "Key Value Store").
// Every bucket change bumps the bucket's version; KV/Set with runIfVersionIs applies only when
// it matches (else error runIfVersionIsMismatch).
#include "mgmt/api_common.h"
#include "mgmt/api_errors.h"
#include "proto/api_validate.h"

namespace spindle::mgmt {
namespace {

constexpr size_t kMaxBuckets = 1024;
constexpr size_t kMaxPairsPerBucket = 16384;
constexpr size_t kMaxValueBytes = 64 * 1024;

Json BucketJson(const KvBucketRecord& b, const std::map<std::string, std::string>& pairs) {
  return {{"name", b.name}, {"version", b.version}, {"pairs", pairs}};
}

Result<const KvBucketRecord*> FindBucket(const State& s, const std::string& name) {
  auto it = s.kv.find(name);
  if (it == s.kv.end()) return Error(Code::kNotFound, "bucket '{}' does not exist", name);
  return &it->second;
}

Result<Json> Buckets(Cluster& c) {
  return c.Read([](const State& s, const Runtime&) {
    Json b = Json::object();
    for (const auto& [name, bucket] : s.kv) b[name] = bucket.version;
    return Json{{"buckets", b}};
  });
}

Result<Json> List(Cluster& c, const std::string& bucket) {
  return c.Read([&](const State& s, const Runtime&) -> Result<Json> {
    SP_ASSIGN_OR_RETURN(const KvBucketRecord* b, FindBucket(s, bucket));
    return BucketJson(*b, b->pairs);
  });
}

Result<Json> Get(Cluster& c, const std::string& bucket, const std::string& key) {
  SP_RETURN_IF_ERROR(proto::ValidateKvsKeyName("key", key));
  return c.Read([&](const State& s, const Runtime&) -> Result<Json> {
    SP_ASSIGN_OR_RETURN(const KvBucketRecord* b, FindBucket(s, bucket));
    auto it = b->pairs.find(key);
    if (it == b->pairs.end()) {
      return Error(Code::kNotFound, "key '{}' not in bucket '{}'", key, bucket);
    }
    return BucketJson(*b, {{it->first, it->second}});
  });
}

Result<Json> Create(Cluster& c, const std::string& bucket) {
  SP_ASSIGN_OR_RETURN(int64_t gen, c.Mutate([&](State& s) -> Status {
    if (s.kv.count(bucket)) return Error(Code::kAlreadyExists, "bucket '{}' exists", bucket);
    if (s.kv.size() >= kMaxBuckets) {
      return Error(Code::kResourceExhausted, "at most {} buckets", kMaxBuckets);
    }
    s.kv[bucket] = {bucket, 1, {}};
    return Status::Ok();
  }));
  return ApiOk(gen);
}

Result<Json> Delete(Cluster& c, const std::string& bucket) {
  SP_ASSIGN_OR_RETURN(int64_t gen, c.Mutate([&](State& s) -> Status {
    if (!s.kv.erase(bucket)) return Error(Code::kNotFound, "bucket '{}' does not exist", bucket);
    return Status::Ok();
  }));
  return ApiOk(gen);
}

Result<Json> Set(Cluster& c, const std::string& bucket, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(Json body, BodyObject(req, EmptyBody::kRejected));
  std::optional<int64_t> if_version;
  SP_RETURN_IF_ERROR(OptInt(body, "runIfVersionIs", if_version));
  auto set = body.find("set");
  if (set == body.end() || !set->is_object()) {
    return Error(Code::kInvalidArgument, "'set' must be an object of strings");
  }
  for (const auto& [k, v] : set->items()) {
    SP_RETURN_IF_ERROR(proto::ValidateKvsKeyName("set key", k));
    if (!v.is_string() || v.get<std::string>().size() > kMaxValueBytes) {
      return Error(Code::kInvalidArgument, "value of '{}' must be a string of at most {} bytes", k,
                   kMaxValueBytes);
    }
  }
  SP_ASSIGN_OR_RETURN(int64_t gen, c.Mutate([&](State& s) -> Status {
    auto it = s.kv.find(bucket);
    if (it == s.kv.end()) return Error(Code::kNotFound, "bucket '{}' does not exist", bucket);
    KvBucketRecord& b = it->second;
    if (if_version && *if_version != b.version) {
      return Error(Code::kFailedPrecondition, "{}runIfVersionIsMismatch: bucket '{}' is at {}",
                   kNamedErrorMark, bucket, b.version);
    }
    for (const auto& [k, v] : set->items()) {
      const std::string& text = v.get_ref<const std::string&>();
      if (text.empty()) {
        b.pairs.erase(k);
      } else {
        b.pairs[k] = text;
      }
    }
    if (b.pairs.size() > kMaxPairsPerBucket) {
      return Error(Code::kResourceExhausted, "at most {} keys per bucket", kMaxPairsPerBucket);
    }
    ++b.version;
    return Status::Ok();
  }));
  return ApiOk(gen);
}

// KV[/<op>/<bucket>[/<key...>]]: the method and argument count depend on the operation.
Result<Json> Kv(Cluster& c, const ApiRequest& req) {
  const auto& a = req.args;
  auto need = [&](Method m, bool exact2) -> Status {
    if (req.method != m) {
      return Error(Code::kInvalidArgument, "KV/{} must be called with {}", a[0],
                   m == Method::kGet ? "GET" : "POST");
    }
    if (exact2 ? a.size() != 2 : a.size() < 3) {
      return Error(Code::kInvalidArgument, "KV/{}: wrong number of path arguments", a[0]);
    }
    return proto::ValidateKvsName("bucket", a[1]);
  };
  if (a.empty()) {
    if (req.method != Method::kGet) return Error(Code::kInvalidArgument, "KV must be a GET");
    return Buckets(c);
  }
  const std::string& op = a[0];
  if (op == "List") {
    SP_RETURN_IF_ERROR(need(Method::kGet, true));
    return List(c, a[1]);
  }
  if (op == "Get") {
    SP_RETURN_IF_ERROR(need(Method::kGet, false));
    std::string key = a[2];
    for (size_t i = 3; i < a.size(); ++i) key += "/" + a[i];
    return Get(c, a[1], key);
  }
  if (op == "Create" || op == "Delete" || op == "Set") {
    SP_RETURN_IF_ERROR(need(Method::kPost, true));
    if (op == "Create") return Create(c, a[1]);
    if (op == "Delete") return Delete(c, a[1]);
    return Set(c, a[1], req);
  }
  return Error(Code::kNotFound, "unknown KV operation '{}'", op);
}

}  // namespace

void RegisterKvCalls(CallTable& t) {
  t["KV"] = {Method::kAny, kAnyArgs, Kv};
}

}  // namespace spindle::mgmt
