#include "mgmt/api_json.h"

#include "mgmt/state.h"
#include "proto/api_validate.h"

namespace spindle::mgmt {
namespace {

const Json* Find(const Json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

Status TypeError(const char* key, const char* want) {
  return Error(Code::kInvalidArgument, "field '{}' must be {}", key, want);
}

Result<int64_t> AsInt(const Json& v, const char* key) {
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) return TypeError(key, "an int64");
    return static_cast<int64_t>(v.get<uint64_t>());
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  return TypeError(key, "an integer");
}

}  // namespace

Status OptString(const Json& obj, const char* key, std::optional<std::string>& out) {
  const Json* v = Find(obj, key);
  if (v == nullptr) return Status::Ok();
  if (!v->is_string()) return TypeError(key, "a string");
  out = v->get<std::string>();
  return Status::Ok();
}

Status OptInt(const Json& obj, const char* key, std::optional<int64_t>& out) {
  const Json* v = Find(obj, key);
  if (v == nullptr) return Status::Ok();
  SP_ASSIGN_OR_RETURN(out, AsInt(*v, key));
  return Status::Ok();
}

Status OptBool(const Json& obj, const char* key, std::optional<bool>& out) {
  const Json* v = Find(obj, key);
  if (v == nullptr) return Status::Ok();
  if (!v->is_boolean()) return TypeError(key, "a boolean");
  out = v->get<bool>();
  return Status::Ok();
}

Status OptLimit(const Json& obj, const char* key, std::optional<int64_t>& out) {
  const Json* v = Find(obj, key);
  if (v == nullptr) return Status::Ok();
  if (v->is_string() && v->get<std::string>() == "-") {
    out = kUnlimited;
    return Status::Ok();
  }
  SP_ASSIGN_OR_RETURN(int64_t n, AsInt(*v, key));
  if (n < 0) return TypeError(key, "an integer >= 0 or \"-\"");
  out = n;
  return Status::Ok();
}

Status OptTags(const Json& obj, const char* key,
               std::optional<std::map<std::string, std::string>>& out) {
  const Json* v = Find(obj, key);
  if (v == nullptr) return Status::Ok();
  if (!v->is_object()) return TypeError(key, "an object of tag names to values");
  std::map<std::string, std::string> tags;
  for (const auto& [name, value] : v->items()) {
    SP_RETURN_IF_ERROR(proto::ValidateTagName("tag name", name));
    if (!value.is_string()) return TypeError(key, "an object of string values");
    SP_RETURN_IF_ERROR(proto::ValidateTagValue("tag value", value.get<std::string>()));
    tags[name] = value.get<std::string>();
  }
  out = std::move(tags);
  return Status::Ok();
}

Status DiskIdList(const Json& obj, const char* key, std::vector<uint32_t>& out) {
  out.clear();
  const Json* v = Find(obj, key);
  if (v == nullptr) return Status::Ok();
  if (!v->is_array()) return TypeError(key, "a list of disk ids");
  for (const Json& e : *v) {
    int64_t id = -1;
    if (e.is_string()) {
      const std::string& s = e.get_ref<const std::string&>();
      if (s.empty() || s.size() > 10 || s.find_first_not_of("0123456789") != s.npos) {
        return TypeError(key, "a list of disk ids");
      }
      id = std::stoll(s);
    } else {
      SP_ASSIGN_OR_RETURN(id, AsInt(e, key));
    }
    SP_RETURN_IF_ERROR(proto::ValidateDiskId(key, id));
    out.push_back(static_cast<uint32_t>(id));
  }
  return Status::Ok();
}

Status OptClientIdList(const Json& obj, const char* key,
                       std::optional<std::vector<uint32_t>>& out) {
  const Json* v = Find(obj, key);
  if (v == nullptr) return Status::Ok();
  if (!v->is_array()) return TypeError(key, "a list of client ids");
  std::vector<uint32_t> ids;
  for (const Json& e : *v) {
    SP_ASSIGN_OR_RETURN(int64_t id, AsInt(e, key));
    SP_RETURN_IF_ERROR(proto::ValidateClientId(key, id));
    ids.push_back(static_cast<uint32_t>(id));
  }
  out = std::move(ids);
  return Status::Ok();
}

Json LimitJson(int64_t v) {
  return v == kUnlimited ? Json("-") : Json(v);
}

}  // namespace spindle::mgmt
