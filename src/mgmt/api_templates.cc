// VolumeTemplatesList / Describe / Create / Update / Delete.
#include "mgmt/api_common.h"
#include "proto/api_validate.h"

namespace spindle::mgmt {
namespace {

constexpr size_t kMaxTemplates = 1024;

Json TemplateJson(const TemplateRecord& t) {
  Json j = {{"id", t.id},
            {"name", t.name},
            {"parentName", ""},
            {"placeAll", t.placeAll},
            {"placeTail", t.placeTail},
            {"placeHead", t.placeHead},
            {"size", t.size > 0 ? Json(t.size) : Json("-")},
            {"replication", t.replication > 0 ? Json(t.replication) : Json("-")},
            {"reuseServer", t.reuseServer},
            {"bw", LimitJson(t.bw)},
            {"iops", LimitJson(t.iops)},
            {"limitType", "total"}};
  if (!t.tags.empty()) j["tags"] = t.tags;
  return j;
}

Result<std::string> TemplateArg(const ApiRequest& req) {
  SP_RETURN_IF_ERROR(proto::ValidateTemplateName("template", req.args[0]));
  return req.args[0];
}

// Copies the given policy members into the template.
void ApplyPolicy(TemplateRecord& t, const Policy& p) {
  if (p.placeAll) t.placeAll = *p.placeAll;
  if (p.placeTail) t.placeTail = *p.placeTail;
  if (p.placeHead) t.placeHead = *p.placeHead;
  if (p.replication) t.replication = *p.replication;
  if (p.bw) t.bw = *p.bw;
  if (p.iops) t.iops = *p.iops;
  if (p.reuseServer) t.reuseServer = *p.reuseServer;
  if (p.tags) {
    for (const auto& [k, v] : *p.tags) {
      if (v.empty()) {
        t.tags.erase(k);
      } else {
        t.tags[k] = v;
      }
    }
  }
}

Status RejectParent(const Json& body) {
  std::optional<std::string> parent;
  SP_RETURN_IF_ERROR(OptString(body, "parent", parent));
  if (parent && !parent->empty()) {
    SP_RETURN_IF_ERROR(proto::ValidateSnapshotName("parent", *parent));
    return Error(Code::kUnimplemented, "template parent snapshots are not implemented");
  }
  return Status::Ok();
}

Result<Json> TemplatesList(Cluster& c, const ApiRequest&) {
  return c.Read([](const State& s, const Runtime&) {
    Json out = Json::array();
    for (const auto& [_, t] : s.templates) out.push_back(TemplateJson(t));
    return out;
  });
}

Result<Json> TemplateDescribe(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(std::string name, TemplateArg(req));
  return c.Read([&](const State& s, const Runtime&) -> Result<Json> {
    auto it = s.templates.find(name);
    if (it == s.templates.end())
      return Error(Code::kNotFound, "template '{}' does not exist", name);
    return TemplateJson(it->second);
  });
}

Result<Json> TemplateCreate(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(Json body, BodyObject(req, EmptyBody::kRejected));
  std::optional<std::string> name;
  std::optional<int64_t> size;
  SP_RETURN_IF_ERROR(OptString(body, "name", name));
  if (!name) return Error(Code::kInvalidArgument, "missing 'name'");
  SP_RETURN_IF_ERROR(proto::ValidateTemplateName("name", *name));
  SP_RETURN_IF_ERROR(OptSize(body, "size", size));
  SP_RETURN_IF_ERROR(RejectParent(body));
  SP_ASSIGN_OR_RETURN(Policy p, ParsePolicy(body));
  if (!p.placeAll) return Error(Code::kInvalidArgument, "a template needs 'placeAll'");
  SP_ASSIGN_OR_RETURN(int64_t gen, c.Mutate([&](State& s) -> Status {
    if (s.templates.count(*name)) {
      return Error(Code::kAlreadyExists, "template '{}' already exists", *name);
    }
    if (s.templates.size() >= kMaxTemplates) {
      return Error(Code::kResourceExhausted, "at most {} templates", kMaxTemplates);
    }
    SP_RETURN_IF_ERROR(CheckPlacementGroups(s, p));
    TemplateRecord t;
    t.id = s.counters.nextTemplateId++;
    t.name = *name;
    t.size = size.value_or(0);
    ApplyPolicy(t, p);
    if (t.placeHead.empty()) t.placeHead = t.placeAll;
    if (t.placeTail.empty()) t.placeTail = t.placeAll;
    s.templates[*name] = t;
    return Status::Ok();
  }));
  return ApiOk(gen);
}

Status UpdateTemplate(State& s, const std::string& name, const std::optional<std::string>& rename,
                      const std::optional<int64_t>& size, const Policy& p) {
  auto it = s.templates.find(name);
  if (it == s.templates.end()) return Error(Code::kNotFound, "template '{}' does not exist", name);
  SP_RETURN_IF_ERROR(CheckPlacementGroups(s, p));
  TemplateRecord t = it->second;
  if (size) t.size = *size;
  ApplyPolicy(t, p);
  if (rename && *rename != name) {
    if (s.templates.count(*rename)) {
      return Error(Code::kAlreadyExists, "template '{}' already exists", *rename);
    }
    std::vector<int64_t> hit;  // changed after the walk (a change clones the map)
    for (const auto& [id, v] : s.volumes) {
      if (v.templateName == name) hit.push_back(id);
    }
    for (int64_t id : hit) {
      VolumeRecord v = s.volumes.at(id);
      v.templateName = *rename;
      s.PutVolume(std::move(v));
    }
    s.templates.erase(it);
    t.name = *rename;
  }
  s.templates[t.name] = t;
  return Status::Ok();
}

Result<Json> TemplateUpdate(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(std::string name, TemplateArg(req));
  SP_ASSIGN_OR_RETURN(Json body, BodyObject(req, EmptyBody::kAllowed));
  std::optional<std::string> rename;
  std::optional<int64_t> size;
  std::optional<bool> propagate;
  SP_RETURN_IF_ERROR(OptString(body, "rename", rename));
  if (rename) SP_RETURN_IF_ERROR(proto::ValidateTemplateName("rename", *rename));
  SP_RETURN_IF_ERROR(OptSize(body, "size", size));
  SP_RETURN_IF_ERROR(OptBool(body, "propagate", propagate));
  SP_RETURN_IF_ERROR(RejectParent(body));
  SP_ASSIGN_OR_RETURN(Policy p, ParsePolicy(body));
  if (propagate.value_or(false)) {
    return Error(Code::kUnimplemented,
                 "propagating template changes to volumes (relocation) is not implemented");
  }
  SP_ASSIGN_OR_RETURN(int64_t gen,
                      c.Mutate([&](State& s) { return UpdateTemplate(s, name, rename, size, p); }));
  return ApiOk(gen);
}

Result<Json> TemplateDelete(Cluster& c, const ApiRequest& req) {
  SP_ASSIGN_OR_RETURN(std::string name, TemplateArg(req));
  SP_ASSIGN_OR_RETURN(int64_t gen, c.Mutate([&](State& s) -> Status {
    if (!s.templates.count(name)) {
      return Error(Code::kNotFound, "template '{}' does not exist", name);
    }
    for (const auto& [_, v] : s.volumes) {
      if (v.templateName == name) {
        return Error(Code::kFailedPrecondition, "template '{}' is used by volume '{}'", name,
                     v.name);
      }
    }
    s.templates.erase(name);
    return Status::Ok();
  }));
  return ApiOk(gen);
}

}  // namespace

void RegisterTemplateCalls(CallTable& t) {
  t["VolumeTemplatesList"] = {Method::kGet, 0, TemplatesList};
  t["VolumeTemplateDescribe"] = {Method::kGet, 1, TemplateDescribe};
  t["VolumeTemplateCreate"] = {Method::kPost, 0, TemplateCreate};
  t["VolumeTemplateUpdate"] = {Method::kPost, 1, TemplateUpdate};
  t["VolumeTemplateDelete"] = {Method::kPost, 1, TemplateDelete};
}

}  // namespace spindle::mgmt
