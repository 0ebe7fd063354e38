"""An independent validator of the StorPool API's JSON types, written from
/work/shared/reference/storpool-api.md (§2 scalars, §4 object types, §5 unions) — not from
Spindle's C++. Used by test_conformance.py.

Type expressions:
  "Name"                       a scalar of §2 or an object type of §4 (by name)
  List(T) / Set(T)             JSON array (Set: no duplicates)
  Map(K, V)                    JSON object whose keys are the scalar K written as strings
  Union(A, B, ...)             §5 `either`: first alternative (declared order) that converts wins
  Const(v)                     must equal v (absent counts as equal when it is a field)
  Lit(v)                       a literal alternative (`"-"`, `""`, `0`, None, ...)
  Enum("a", "b", ...)          one of the exact strings

check(value, T) returns a list of error strings ("" path prefix); pick(union, value) returns the
name of the alternative the bindings would choose (or None).
"""
import re

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


class List:
    def __init__(self, t):
        self.t = t


class Set(List):
    pass


class Map:
    def __init__(self, k, v):
        self.k, self.v = k, v


class Union:
    def __init__(self, *alts):
        self.alts = alts


class Const:
    def __init__(self, v):
        self.v = v


class Lit:
    def __init__(self, v):
        self.v = v


class Enum:
    def __init__(self, *values):
        self.values = values


# ---- §2.1 string scalars ------------------------------------------------------------------

# name: (pattern, limit (max chars = limit - 1, None = no limit), reserved words)
_VOL = r"^\#?[A-Za-z0-9_\-.:]+$"
_SNAP = r"^\*?[A-Za-z0-9_\-.:@]+$"
_GID = r"[a-z0-9]+\.[a-z0-9]+\.[a-z0-9]+$"
STRINGS = {
    "VolumeName": (_VOL, 200, ("list", "status")),
    "VolumeNameOrGlobalId": (_VOL + r"|^~[a-z0-9]+\.[a-z0-9]+\.[a-z0-9]+$", 200,
                             ("list", "status")),
    "SnapshotName": (_SNAP, 200, ("list", "status")),
    "SnapshotNameOrGlobalId": (_SNAP + r"|^~[a-z0-9]+\.[a-z0-9]+\.[a-z0-9]+$", 200,
                               ("list", "status")),
    "PlacementGroupName": (r"^[A-Za-z0-9_\-]+$", 128, ("list",)),
    "VolumeTemplateName": (r"^[A-Za-z0-9_\-]+$", 200, ("list",)),
    "VolumeTagName": (r"^[A-Za-z0-9_\-.:]+$", 200, ()),
    "VolumeTagValue": (r"^[A-Za-z0-9_\-.:]*$", 200, ()),
    "RemoteLocationName": (r"^\#?[A-Za-z0-9_\-.:]+$", 64, ("list",)),
    "RemoteClusterName": (r"^\#?[A-Za-z0-9_\-.:]+$", 64, ("list",)),
    "ClusterName": (r"^\#?[A-Za-z0-9_\-.:]+$", 64, ()),
    "KvsName": (r"^\#?[A-Za-z0-9_\-.:]+$", 1023, ()),
    "KvsKeyName": (None, 1023, ()),
    "DiskDescription": (r"^[A-Za-z0-9_\- ]{0,30}$", 31, ()),
    "GlobalVolumeId": (_GID, None, ()),
    "LocationId": (r"[a-z0-9]+$", None, ()),
    "ClusterId": (r"[a-z0-9]+\.[a-z0-9]+$", None, ()),
    "SubClusterId": (r"[a-z0-9]+$", None, ()),
    "MacAddr": (r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$", None, ()),
    "GUID": (r"^0x[0-9a-fA-F]{2,16}$", None, ()),
    "iSCSIName": (None, None, ()),
    "iSCSIPGName": (None, None, ()),
    "string": (None, None, ()),
}
STRINGS["FaultSetName"] = STRINGS["PlacementGroupName"]

# ---- §2.2 numeric scalars (inclusive ranges) ------------------------------------------------

INTS = {
    "NetId": (0, 3), "NodeId": (0, 63), "PeerId": (0, 65535), "ServerId": (1, 32767),
    "ClientId": (1, 4095), "MgmtId": (1, 4095), "BridgeId": (1, 4095),
    "iscsiTargetId": (1, 4095), "iSCSIId": (0, 4095), "DiskId": (0, 4095),
    "AttachmentPos": (0, 1023), "VolumeReplication": (1, 3),
    "VagId": (1, 18446744073709551616), "int": (None, None), "int64": (INT64_MIN, INT64_MAX),
}
NO_DISK_ID = 4294967294


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check_string(v, name):
    pattern, limit, reserved = STRINGS[name]
    if not isinstance(v, str):
        return [f"{name}: not a string: {v!r}"]
    # Python re.match semantics, except that a trailing newline is never accepted.
    if pattern is not None and (re.match(pattern, v) is None or "\n" in v):
        return [f"{name}: {v!r} does not match {pattern}"]
    if v in reserved:
        return [f"{name}: {v!r} is reserved"]
    if limit is not None and len(v) > limit - 1:
        return [f"{name}: {v!r} longer than {limit - 1}"]
    return []


def _check_int(v, name):
    if not is_int(v):
        return [f"{name}: not an integer: {v!r}"]
    lo, hi = INTS[name]
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        return [f"{name}: {v} outside {lo}..{hi}"]
    return []


def _scalar(v, name):
    if name in STRINGS:
        return _check_string(v, name)
    if name in INTS:
        return _check_int(v, name)
    if name == "bool":
        return [] if isinstance(v, bool) else [f"bool: {v!r}"]
    if name == "DiskIdOrNoDiskId":
        return [] if v == NO_DISK_ID and is_int(v) else _check_int(v, "DiskId")
    if name in ("VolumeSize", "VolumeResize"):
        if not is_int(v) or v < 1 or v % 512 != 0:
            return [f"{name}: {v!r} is not a positive multiple of 512"]
        return []
    if name == "TargetsCount":
        ok = is_int(v) and v in [1 << i for i in range(16)]
        return [] if ok else [f"TargetsCount: {v!r}"]
    if name in ("Bandwidth", "IOPS", "OverrideId"):
        ok = v == "-" or (is_int(v) and v >= 0)
        return [] if ok else [f"{name}: {v!r}"]
    if name == "ObjectState":
        ok = is_int(v) and 0 <= v <= 9
        return [] if ok else [f"ObjectState: {v!r}"]
    if name in ENUMS:
        return check(v, ENUMS[name])
    raise KeyError(name)


# ---- §2.3 string enums ----------------------------------------------------------------------

ENUMS = {
    "BeaconNodeStatus": Enum("NODE_DOWN", "NODE_UP"),
    "BeaconClusterStatus": Enum("CNODE_DOWN", "CNODE_DAMPING", "CNODE_UP"),
    "RdmaState": Enum("Idle", "GidReceived", "Connecting", "Connected", "pendingError", "Error"),
    "ClientStatus": Enum("running", "down"),
    "ServerStatus": Enum("running", "waiting", "booting", "down"),
    "BridgeStatus": Enum("running", "joining", "down"),
    "iscsiTargetStatus": Enum("running", "joining", "down"),
    "ClusterStatusEnum": Enum("running", "waiting", "down"),
    "LimitType": Enum("total", "perGiB"),
    "AttachmentRights": Enum("rw", "ro"),
    "OnAttached": Enum("fail", "detach", "detachForce", "export"),
    "mcMode": Enum("move", "export"),
    "DematerializationStatus": Enum("pending", "allObjectsUsed", "complete", "blockedRelocate",
                                    "blockedParentRelocate", "blockedParentRemoving",
                                    "blockedParentDifferentVag", "destroyed"),
    "DeleteBlocked": Enum("not blocked", "pending", "rebasing", "flushing", "volume not found",
                          "generation mismatch", "disk down", "multiple children", "peer down",
                          "write not completed", "recovering from remote",
                          "parent recovering from remote", "moving to remote", "unknown"),
    "MultiClusterState": Enum("owner", "ownerExported", "slaveCopy", "clusterLocal",
                              "clusterLocalExported", "clusterLocalAutoReconcile",
                              "clusterLocalAutoReconcileExported"),
    "VolumeCurrentStatus": Enum("up", "up soon", "data lost", "down"),
    "SoftEject": Enum("on", "off", "paused"),
}

# ---- §4 object types --------------------------------------------------------------------------
# TYPES[name] = (base or None, {field: (type, kind)}); kind: "req", "opt", "int" (internal),
# "intopt" (internal, optional). Inherited fields come from the base chain; a field redefined
# here overrides the base's.

R, O, I = "req", "opt", "int"
DISK_IDS = List("DiskId")
TAGS = Map("VolumeTagName", "VolumeTagValue")

TYPES = {}


def _t(tname, base=None, /, **fields):
    TYPES[tname] = (base, fields)


# 4.1 ApiOk family
_t("ApiOk", ok=(Const(True), R), generation=("int64", R), info=("string", O))
_t("ApiOkVolumeCreate", "ApiOk", autoName=("SnapshotName", O),
   name=("VolumeNameOrGlobalId", O), globalId=("GlobalVolumeId", O))
_t("ApiOkSnapshotCreate", "ApiOk", autoName=("SnapshotName", O),
   snapshotGlobalId=("GlobalVolumeId", O), snapshotVisibleVolumeId=("int64", O))
# Errors (§1.3): {"error": {"name", "descr", "transient"}}
_t("ApiErrorBody", name=("string", R), descr=("string", R), transient=("bool", R))
_t("ApiError", error=("ApiErrorBody", R))

# 4.2 peers and services
_t("NetDesc", mac=("MacAddr", R))
_t("RdmaDesc", guid=("GUID", R), state=("RdmaState", R))
_t("PeerDesc", beaconStatus=("BeaconNodeStatus", R), clusterStatus=("BeaconClusterStatus", R),
   joined=("bool", R), networks=(Map("NetId", "NetDesc"), O), rdma=(Map("NetId", "RdmaDesc"), R),
   nonVoting=("bool", R))
_t("Service", nodeId=("NodeId", O), version=("string", R), startTime=(Union(Lit(None), "int"), R))
_t("Server", "Service", id=("ServerId", R), status=("ServerStatus", R),
   missingDisks=(DISK_IDS, R), pendingDisks=(DISK_IDS, R))
_t("Client", "Service", id=("ClientId", R), status=("ClientStatus", R))
_t("Mgmt", "Service", id=("MgmtId", R), status=("ClientStatus", R), prio=("int", I),
   active=("bool", R))
_t("Bridge", "Service", id=("BridgeId", R), status=("BridgeStatus", R))
_t("iscsiTarget", "Service", id=("iscsiTargetId", R), status=("iscsiTargetStatus", R))
_t("ClusterStatus", clusterStatus=("ClusterStatusEnum", R), mgmt=(Map("MgmtId", "Mgmt"), R),
   clients=(Map("ClientId", "Client"), R), servers=(Map("ServerId", "Server"), R),
   bridges=(Map("BridgeId", "Bridge"), R),
   iscsiTargets=(Map("iscsiTargetId", "iscsiTarget"), R))

# 4.3 clients and tasks
_t("ClientConfigStatus", id=("ClientId", R), generation=("int64", R),
   clientGeneration=("int64", R), configStatus=(Enum("ok", "updating", "down"), R),
   delay=("int", R))
_t("Task", diskId=("DiskId", R), transactionId=("int64", R), allObjects=("int", R),
   completedObjects=("int", R), dispatchedObjects=("int", R), unresolvedObjects=("int", I))

# 4.4 disks
_t("DiskObject", objectId=("int", I), generation=("int64", R), version=("int64", R),
   volume=("string", R), parentVolume=("string", R), onDiskSize=("int", R),
   storedSize=("int", R), state=("ObjectState", R), volumeId=("int64", I))
_t("DiskWbcStats", pages=("int", R), pagesPending=("int", R), maxPages=("int", R))
_t("DiskAggregateScores", entries=("int", R), space=("int", R), total=("int", R))
_t("DiskSummaryBase", id=("DiskId", R), serverId=("ServerId", R), ssd=("bool", R),
   generationLeft=("int64", R), model=("string", R), serial=("string", R),
   description=("DiskDescription", R), softEject=("SoftEject", R))
_t("DownDiskSummary", "DiskSummaryBase")
_t("UpDiskSummary", "DiskSummaryBase", generationLeft=(Const(-1), R),
   sectorsCount=("int64", R), empty=("bool", R), noFua=("bool", R), noFlush=("bool", R),
   noTrim=("bool", R), isWbc=("bool", R), journaled=("bool", R), device=("string", R),
   agCount=("int", I), agAllocated=("int", I), agFree=("int", I), agFull=("int", I),
   agPartial=("int", I), agFreeing=("int", I), agMaxSizeFull=("int", I),
   agMaxSizePartial=("int", I), entriesCount=("int", R), entriesAllocated=("int", R),
   entriesFree=("int", R), objectsCount=("int", R), objectsAllocated=("int", R),
   objectsFree=("int", R), objectsOnDiskSize=("int64", R),
   wbc=(Union(Lit(None), "DiskWbcStats"), I), aggregateScore=("DiskAggregateScores", I),
   scrubbingStartedBefore=("int", R), scrubbedBytes=("int", R), scrubbingBW=("int", R),
   scrubbingFinishAfter=("int", R), scrubbingPausedFor=("int", R),
   scrubbingPaused=("bool", R), lastScrubCompleted=("int", R))
_t("Disk", "UpDiskSummary", objects=(Map("int", "DiskObject"), R))
_t("DiskDescUpdate", description=("DiskDescription", R))
DISK_SUMMARY = Union("UpDiskSummary", "DownDiskSummary")

# 4.6 placement groups, fault sets, VAGs
_t("PlacementGroup", id=("int", I), name=("PlacementGroupName", R), disks=(Set("DiskId"), R))
_t("PlacementGroupUpdateDesc", rename=("PlacementGroupName", O), addDisks=(Set("DiskId"), R),
   rmDisks=(Set("DiskId"), R))
_t("FaultSet", name=("PlacementGroupName", R), servers=(Set("ServerId"), R))
_t("Vag", name=("VagId", R), chains=(List(DISK_IDS), R),
   diskSetsConstraintsViolated=("bool", R), overrides=(Map("OverrideId", DISK_IDS), R),
   parentVagId=("int64", I), placeAll=("PlacementGroupName", R),
   placeTail=("PlacementGroupName", R), placeHead=("PlacementGroupName", R),
   replication=("VolumeReplication", R), reuseServer=("bool", O),
   targetDiskSets=(List(DISK_IDS), R), templateName=(Union("VolumeTemplateName", Lit("")), R),
   templateId=("int64", I), vagId=("int64", I))
_t("VagUpdateDesc", vagId=("string", R), targetsCount=("TargetsCount", R))

# 4.7 volumes and snapshots (read side)
_t("VolumeLimits", bw=("Bandwidth", R), iops=("IOPS", R), limitType=("LimitType", O))
_t("VolumeSummaryBase", "VolumeLimits", id=("int64", I),
   parentName=(Union(Lit(""), "SnapshotNameOrGlobalId"), R),
   templateName=(Union(Lit(""), "VolumeTemplateName"), R), size=("VolumeSize", R),
   replication=("VolumeReplication", R), globalId=("GlobalVolumeId", R),
   placeAll=("PlacementGroupName", R), placeTail=("PlacementGroupName", R),
   placeHead=("PlacementGroupName", R), parentVolumeId=("int64", I),
   originalParentVolumeId=("int64", I), visibleVolumeId=("int64", R), templateId=("int64", I),
   objectsCount=("int", R), creationTimestamp=("int64", R), flags=("int", I),
   tags=(TAGS, O), clusterName=("ClusterName", O), clusterId=("ClusterId", O),
   reuseServer=("bool", O), firstNotParentObjectId=("int", I))
_t("VolumeSummary", "VolumeSummaryBase", name=("VolumeNameOrGlobalId", R))
_t("SnapshotSummary", "VolumeSummaryBase", name=("SnapshotNameOrGlobalId", R),
   onVolume=("VolumeNameOrGlobalId", R), autoName=("bool", R), bound=("bool", R),
   deleted=("bool", R), transient=("bool", R), targetDeleteDate=("int", O),
   recoveringFromRemote=("bool", R), backup=("bool", O), backupOfVisibleVolumeId=("int64", O),
   backupOfGlobalId=("GlobalVolumeId", O), createdFromVisibleVolumeId=("int64", "intopt"),
   createdFromGlobalId=("GlobalVolumeId", "intopt"),
   dematerializationStatus=("DematerializationStatus", "intopt"),
   deleteBlocked=("DeleteBlocked", "intopt"), destroyed=("bool", "intopt"),
   volumeMoveSource=("bool", "intopt"), mcState=("MultiClusterState", "intopt"),
   mcStateVal=("int", "intopt"))
_t("SnapshotSpace", "SnapshotSummary", storedSize=("int64", R), spaceUsed=("int64", R))
_t("VolumeSpace", "VolumeSummary", storedSize=("int64", R), spaceUsed=("int64", R))
_t("VolumeChainStat", disks=(DISK_IDS, R), count=("int", R))
_INFO = dict(disksCount=("int", R), objectsPerDisk=(Map("DiskId", "int"), R),
             objectsPerChain=(List("VolumeChainStat"), R),
             objectsPerDiskSet=(List("VolumeChainStat"), R))
_t("VolumeInfo", "VolumeSummary", **_INFO)
_t("SnapshotInfo", "SnapshotSummary", **_INFO)
_QUICK = dict(status=("VolumeCurrentStatus", R), snapshot=("bool", R), migrating=("bool", R),
              decreasedRedundancy=("bool", R), balancerBlocked=("bool", R),
              syncingDataBytes=("int", R), syncingMetaObjects=("int", R), downBytes=("int", R),
              objectsCount=("int", R), upSoonChainsCount=("int", R), downDrives=(DISK_IDS, R),
              missingDrives=(DISK_IDS, R), missingTargetDrives=(DISK_IDS, R),
              softEjectingDrives=(DISK_IDS, R))
_t("VolumeStatusQuick", "VolumeSummary", **_QUICK)
_t("SnapshotStatusQuick", "SnapshotSummary", **_QUICK)
_t("VolumeStatus", "VolumeStatusQuick", storedSize=("int", R), onDiskSize=("int", R))
_t("SnapshotStatus", "SnapshotStatusQuick", storedSize=("int", R), onDiskSize=("int", R))
_t("Volume", "VolumeSummary", targetDiskSets=(List(DISK_IDS), R), objects=(List(DISK_IDS), R))
_t("Snapshot", "SnapshotSummary", targetDiskSets=(List(DISK_IDS), R),
   objects=(List(DISK_IDS), R))
STATUS = Union("SnapshotStatus", "VolumeStatus")
STATUS_QUICK = Union("SnapshotStatusQuick", "VolumeStatusQuick")
STATUS_KEY = Union("SnapshotNameOrGlobalId", "VolumeNameOrGlobalId")

# 4.8 volume requests
_t("VolumePolicyDesc", placeAll=("PlacementGroupName", O), placeTail=("PlacementGroupName", O),
   placeHead=("PlacementGroupName", O), replication=("VolumeReplication", O),
   bw=("Bandwidth", O), iops=("IOPS", O), reuseServer=("bool", O), tags=(TAGS, O))
_t("VolumeCreateDesc", "VolumePolicyDesc", name=("VolumeName", O), size=("VolumeSize", O),
   parent=("SnapshotNameOrGlobalId", O), template=("VolumeTemplateName", O),
   baseOn=("VolumeNameOrGlobalId", O))
_t("VolumeUpdateDesc", "VolumePolicyDesc", rename=("VolumeName", O), size=("VolumeSize", O),
   sizeAdd=("VolumeResize", O), template=("VolumeTemplateName", O), shrinkOk=("bool", O))
_t("VolumeSnapshotDesc", name=("VolumeName", O), bind=("bool", O), targetDeleteDate=("int", O),
   deleteAfter=("int", O), tags=(TAGS, O))
_t("SnapshotUpdateDesc", "VolumePolicyDesc", rename=("VolumeName", O),
   template=("VolumeTemplateName", O), bind=("bool", O), targetDeleteDate=("int", O),
   deleteAfter=("int", O), tags=(TAGS, O))
_t("VolumeRebaseDesc", parentName=("SnapshotNameOrGlobalId", O))
# 4.15 group snapshots
_t("GroupSnapshotSpec", volume=("VolumeNameOrGlobalId", R), name=("SnapshotName", O),
   tags=(TAGS, O))
_t("GroupSnapshotsSpec", volumes=(List("GroupSnapshotSpec"), R), tags=(TAGS, O))
_t("GroupSnapshotResult", volume=("VolumeNameOrGlobalId", R),
   volumeGlobalId=("GlobalVolumeId", R), snapshot=("SnapshotNameOrGlobalId", O),
   remoteId=("GlobalVolumeId", R), snapshotGlobalId=("GlobalVolumeId", R))
_t("GroupSnapshotsResult", snapshots=(List("GroupSnapshotResult"), R))
_t("VolumeFreezeDesc", targetDeleteDate=("int", O), deleteAfter=("int", O))
_t("VolumeRevertDesc", toSnapshot=("SnapshotNameOrGlobalId", R))

# 4.9 attachments
DETACH = Union(Lit("all"), List("ClientId"))
_t("VolumeReassignDesc", volume=("VolumeNameOrGlobalId", R), detach=(DETACH, O),
   ro=(List("ClientId"), O), rw=(List("ClientId"), O), force=("bool", "default:false"),
   allowRemoteExported=("bool", O), onRemoteAttached=("OnAttached", O), mcMode=("mcMode", O))
_t("SnapshotReassignDesc", snapshot=("SnapshotNameOrGlobalId", R), detach=(DETACH, O),
   ro=(List("ClientId"), O), force=("bool", "default:false"))
REASSIGN = Union("VolumeReassignDesc", "SnapshotReassignDesc")
_t("VolumesReassignWaitDesc", reassign=(List(REASSIGN), R), attachTimeout=("int", O))
_t("AttachmentDesc", volume=("VolumeNameOrGlobalId", R), snapshot=("bool", R),
   client=("ClientId", R), rights=("AttachmentRights", R), pos=("AttachmentPos", R),
   globalId=("GlobalVolumeId", O), cluster=("RemoteLocationName", O),
   clusterId=("ClusterId", O))

# 4.10 templates
_t("VolumeTemplateDesc", "VolumeLimits", id=("int", I), name=("VolumeTemplateName", R),
   parentName=(Union(Lit(""), "SnapshotName"), R), placeAll=("PlacementGroupName", R),
   placeTail=("PlacementGroupName", R), placeHead=("PlacementGroupName", R),
   size=(Union(Lit("-"), "VolumeSize"), R), replication=(Union(Lit("-"), "VolumeReplication"), R),
   reuseServer=("bool", O))
_t("VolumeTemplateSpaceEstInternal", u1=("int", R), u2=("int", R), u3=("int", R))
_t("VolumeTemplateSpaceEstEntry", free=("int", R), capacity=("int", R),
   internal=("VolumeTemplateSpaceEstInternal", I))
_t("VolumeTemplateSpaceEst", "VolumeTemplateSpaceEstEntry",
   placeAll=("VolumeTemplateSpaceEstEntry", R), placeTail=("VolumeTemplateSpaceEstEntry", R),
   placeHead=("VolumeTemplateSpaceEstEntry", R))
SIZE0 = Union(Lit(0), "VolumeSize")
_t("VolumeTemplateStatusDesc", id=("int", I), name=("VolumeTemplateName", R),
   placeAll=("PlacementGroupName", R), placeTail=("PlacementGroupName", R),
   placeHead=("PlacementGroupName", R), replication=(Union(Lit("-"), "VolumeReplication"), R),
   volumesCount=("int", R), snapshotsCount=("int", R), removingSnapshotsCount=("int", R),
   size=(SIZE0, R), totalSize=(SIZE0, R), onDiskSize=("int64", R), storedSize=("int64", R),
   volumesSize=(SIZE0, O), snapshotsWithoutChildrenSize=(SIZE0, O),
   snapshotsWithChildrenSize=(SIZE0, O), availablePlaceAll=("int64", R),
   availablePlaceTail=("int64", R), availablePlaceHead=("int64", R),
   capacityPlaceAll=("int64", R), capacityPlaceTail=("int64", R),
   capacityPlaceHead=("int64", R), stored=("VolumeTemplateSpaceEst", R))
_t("VolumeTemplateCreateDesc", "VolumePolicyDesc", name=("VolumeTemplateName", R),
   parent=("SnapshotName", O), size=("VolumeSize", O))
_t("VolumeTemplateUpdateDesc", "VolumePolicyDesc", rename=("VolumeTemplateName", O),
   parent=("SnapshotName", O), size=("VolumeSize", O), propagate=("bool", O))

# 4.19 key-value store
_t("KeyValueBucket", name=("KvsName", R), version=("int64", R),
   pairs=(Map("KvsKeyName", "string"), O))
_t("KeyValueBucketsList", buckets=(Map("KvsName", "int64"), R))
_t("KeyValueBucketSetDesc", runIfVersionIs=("int64", O), set=(Map("KvsKeyName", "string"), R))


def fields_of(name):
    """Every field of an object type, base chain first, redefinitions overriding."""
    base, own = TYPES[name]
    out = dict(fields_of(base)) if base else {}
    out.update(own)
    return out


# ---- validation -------------------------------------------------------------------------------

def check(v, t, path="", extras=None):
    """Errors of value v against type expression t. `extras` (a list) collects the paths of
    members an object type does not declare (the bindings ignore them; tests decide)."""
    if isinstance(t, str):
        if t in TYPES:
            return _check_object(v, t, path, extras)
        return [f"{path}: {e}" for e in _scalar(v, t)]
    if isinstance(t, Const) or isinstance(t, Lit):
        ok = v == t.v and type(v) is type(t.v)
        return [] if ok else [f"{path}: {v!r} != {t.v!r}"]
    if isinstance(t, Enum):
        ok = isinstance(v, str) and v in t.values
        return [] if ok else [f"{path}: {v!r} not one of {t.values}"]
    if isinstance(t, List):
        if not isinstance(v, list):
            return [f"{path}: not a list: {str(v)[:80]}"]
        errs = []
        for i, item in enumerate(v):
            errs += check(item, t.t, f"{path}[{i}]", extras)
        if isinstance(t, Set) and len({repr(x) for x in v}) != len(v):
            errs.append(f"{path}: duplicate members in a set: {v}")
        return errs
    if isinstance(t, Map):
        if not isinstance(v, dict):
            return [f"{path}: not an object: {str(v)[:80]}"]
        errs = []
        for k, item in v.items():
            errs += check_key(k, t.k, f"{path}{{{k}}}")
            errs += check(item, t.v, f"{path}.{k}", extras)
        return errs
    if isinstance(t, Union):
        alt = pick(t, v)
        if alt is None:
            return [f"{path}: no alternative of {describe(t)} fits {str(v)[:120]}"]
        return check(v, t.alts[alt], path, extras)
    raise TypeError(t)


def check_key(k, t, path):
    """A map key: a string; integer key types are decimal strings of an in-range integer."""
    if not isinstance(k, str):
        return [f"{path}: key not a string"]
    if isinstance(t, str) and (t in INTS or t in ("ObjectState", "OverrideId")):
        if t == "OverrideId" and k == "-":
            return []
        if not re.fullmatch(r"-?[0-9]+", k) or (k != "0" and k.lstrip("-").startswith("0")):
            return [f"{path}: key {k!r} is not a decimal integer"]
        return check(int(k), t, path)
    return check(k, t, path)


def _check_object(v, name, path, extras):
    if not isinstance(v, dict):
        return [f"{path}: {name} is not an object: {str(v)[:80]}"]
    errs = []
    fields = fields_of(name)
    for f, (ft, kind) in fields.items():
        p = f"{path}.{f}"
        if f not in v:
            if kind == R and not isinstance(ft, Const):
                errs.append(f"{p}: required {name} field missing")
            elif kind == R:
                errs.append(f"{p}: const field missing (allowed by the bindings, not sent)")
            elif kind.startswith("default:"):
                errs.append(f"{p}: field with a literal default missing")
            continue
        if v[f] is None and kind in (O, "intopt"):
            continue  # optional: may be null
        errs += check(v[f], ft, p, extras)
    if extras is not None:
        extras += [f"{path}.{k}" for k in v if k not in fields]
    return errs


def converts(v, t):
    """§5: does v convert completely to t — its required fields present and valid, every const
    equal (a missing const counts as equal)? Optional/internal fields are not looked at."""
    if isinstance(t, str) and t in TYPES:
        if not isinstance(v, dict):
            return False
        for f, (ft, kind) in fields_of(t).items():
            if kind != R:
                continue
            if f not in v:
                if isinstance(ft, Const):
                    continue
                return False
            if check(v[f], ft):
                return False
        return True
    return not check(v, t)


def pick(u, v):
    """Index of the alternative of union u the bindings would choose for v, or None."""
    for i, alt in enumerate(u.alts):
        if converts(v, alt):
            return i
    return None


def pick_name(u, v):
    i = pick(u, v)
    return None if i is None else describe(u.alts[i])


def describe(t):
    if isinstance(t, str):
        return t
    if isinstance(t, Lit):
        return repr(t.v)
    if isinstance(t, Union):
        return " | ".join(describe(a) for a in t.alts)
    return type(t).__name__


# ---- requests as the bindings build them (§1.2) -----------------------------------------------

def _strip_nulls(v):
    if isinstance(v, dict):
        return {k: _strip_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_strip_nulls(x) for x in v if x is not None]
    return v


def encode(t, value):
    """Builds a request body from `value` the way the bindings do for declared type t: drops
    undeclared keys and nulls (recursively), adds `[]`/`{}` for non-optional collections and
    literal defaults; raises ValueError when the result does not validate (the client would not
    send it)."""
    if isinstance(t, List):
        out = [encode(t.t, x) for x in value if x is not None]
    elif isinstance(t, Union):
        alt = pick(t, _strip_nulls(value))
        out = encode(t.alts[alt if alt is not None else 0], value)
    elif isinstance(t, str) and t in TYPES:
        out = {}
        for f, (ft, kind) in fields_of(t).items():
            x = value.get(f)
            if x is None:
                if kind == R and isinstance(ft, (List, Map)):
                    out[f] = [] if isinstance(ft, List) else {}
                elif kind.startswith("default:"):
                    out[f] = kind.split(":", 1)[1] == "true"
                continue
            out[f] = encode(ft, x) if not isinstance(ft, Map) else _strip_nulls(x)
    else:
        out = _strip_nulls(value)
    errs = check(out, t)
    if errs:
        raise ValueError(f"the bindings would refuse to send this: {errs}")
    return out
