#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <set>

#include "api/api_server.h"
#include "core/duration.h"

namespace ra::autoscaler {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// 2026-11-21T10:00:00Z: the "now" of these tests.
const TimePoint kT0 = TimePoint{} + std::chrono::seconds(1795255200);

ClusterStatus FullStatus(TimePoint t0) {
  ClusterStatus s;
  s.name = "main";
  s.min_replicas = 1;
  s.max_replicas = 6;
  s.desired = 3;
  s.active = 2;
  s.serving = 1;
  s.paused = true;
  s.paused_reason = "maintenance window";
  s.manual = policies::ManualOverride{3, t0 + 30min, "black friday"};
  policies::Decision d;
  d.current = 1;
  d.recommended = 3;
  d.desired = 3;
  d.override_active = true;
  d.reason = "manual override: 3 replicas";
  d.verdicts = {
      {"sessions", policies::VerdictKind::kScaleUp, 2, "sessions per replica 42 > target 30"},
      {"metrics-down", policies::VerdictKind::kNoData, std::nullopt, "query failed"}};
  s.decision = d;
  s.decided_at = t0 - 10s;
  s.plan_reason = "desired 3, active 2 (1 serving): create 1 in az2";
  ReplicaView serving;
  serving.name = "main-replica-a1";
  serving.phase = Phase::kServing;
  serving.phase_since = t0 - 5min;
  serving.zone = "az1";
  serving.address = "10.0.0.5";
  serving.lag_bytes = 8192;
  serving.lag_seconds = 0.5;
  serving.sessions = 12;
  serving.created = t0 - 1h;
  serving.detail = "";
  ReplicaView building;
  building.name = "main-replica-b2";
  building.phase = Phase::kServerBuilding;
  building.phase_since = t0 - 40s;
  building.zone = "az2";
  building.detail = "server BUILD";
  building.created = t0 - 90s;
  s.replicas = {serving, building};
  s.blocked = {{ActionKind::kCreateVolume, "", "zone az3 backed off until 10:05 after quota"}};
  s.last_cycle_at = t0 - 2s;
  s.last_error = "";
  s.primary = "10.0.0.2:5432";
  s.newest_snapshot =
      openstack::SnapshotFacts{"snap-1", "main-golden-1", "available", "vol-9", 300, t0 - 2h};
  return s;
}

TEST(StatusJsonTest, CarriesEveryDocumentedField) {
  const TimePoint t0 = kT0;
  const json j = StatusJson(FullStatus(t0), t0);

  EXPECT_EQ(j["name"], "main");
  EXPECT_EQ(j["desired"], 3);
  EXPECT_EQ(j["active"], 2);
  EXPECT_EQ(j["serving"], 1);
  EXPECT_EQ(j["min_replicas"], 1);
  EXPECT_EQ(j["max_replicas"], 6);
  EXPECT_EQ(j["paused"], true);
  EXPECT_EQ(j["paused_reason"], "maintenance window");
  EXPECT_EQ(j["manual_override"]["replicas"], 3);
  EXPECT_EQ(j["manual_override"]["expires_at"], FormatTime(t0 + 30min));
  EXPECT_EQ(j["manual_override"]["reason"], "black friday");

  const json& d = j["last_decision"];
  EXPECT_EQ(d["current"], 1);
  EXPECT_EQ(d["recommended"], 3);
  EXPECT_EQ(d["desired"], 3);
  EXPECT_EQ(d["override_active"], true);
  EXPECT_EQ(d["reason"], "manual override: 3 replicas");
  EXPECT_EQ(d["decided_at"], FormatTime(t0 - 10s));
  ASSERT_EQ(d["policies"].size(), 2u);
  EXPECT_EQ(d["policies"][0], json({{"name", "sessions"},
                                    {"verdict", "scale_up"},
                                    {"desired", 2},
                                    {"reason", "sessions per replica 42 > target 30"}}));
  EXPECT_EQ(d["policies"][1]["verdict"], "no_data");
  EXPECT_TRUE(d["policies"][1]["desired"].is_null());

  EXPECT_EQ(j["plan_reason"], "desired 3, active 2 (1 serving): create 1 in az2");
  ASSERT_EQ(j["replicas"].size(), 2u);
  const json& a1 = j["replicas"][0];
  EXPECT_EQ(a1["name"], "main-replica-a1");
  EXPECT_EQ(a1["phase"], "serving");
  EXPECT_EQ(a1["zone"], "az1");
  EXPECT_EQ(a1["address"], "10.0.0.5");
  EXPECT_EQ(a1["lag_bytes"], 8192);
  EXPECT_DOUBLE_EQ(a1["lag_seconds"].get<double>(), 0.5);
  EXPECT_EQ(a1["sessions"], 12);
  EXPECT_EQ(a1["age_seconds"], 3600);
  EXPECT_EQ(a1["phase_since"], FormatTime(t0 - 5min));
  EXPECT_EQ(a1["detail"], "");
  const json& b2 = j["replicas"][1];
  EXPECT_EQ(b2["phase"], "server_building");
  EXPECT_TRUE(b2["lag_bytes"].is_null());
  EXPECT_TRUE(b2["lag_seconds"].is_null());
  EXPECT_EQ(b2["age_seconds"], 90);
  EXPECT_EQ(b2["detail"], "server BUILD");

  ASSERT_EQ(j["blocked"].size(), 1u);
  EXPECT_EQ(j["blocked"][0], json({{"action", "create_volume"},
                                   {"replica", ""},
                                   {"reason", "zone az3 backed off until 10:05 after quota"}}));
  EXPECT_EQ(j["last_cycle_at"], FormatTime(t0 - 2s));
  EXPECT_EQ(j["last_error"], "");
  EXPECT_EQ(j["primary"], "10.0.0.2:5432");
  EXPECT_EQ(j["newest_snapshot"], json({{"id", "snap-1"},
                                        {"name", "main-golden-1"},
                                        {"status", "available"},
                                        {"created", FormatTime(t0 - 2h)},
                                        {"age_seconds", 7200}}));
}

TEST(StatusJsonTest, AbsentPartsAreNullNotMissing) {
  ClusterStatus s;
  s.name = "empty";
  const json j = StatusJson(s);
  for (const char* key : {"manual_override", "last_decision", "last_cycle_at", "newest_snapshot"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    EXPECT_TRUE(j[key].is_null()) << key;
  }
  EXPECT_TRUE(j["replicas"].is_array());
  EXPECT_TRUE(j["replicas"].empty());
  EXPECT_TRUE(j["blocked"].is_array());
  EXPECT_EQ(j["paused"], false);
}

TEST(StatusJsonTest, WithoutNowAgesAreMeasuredAtTheLastCycle) {
  const TimePoint t0 = kT0;
  ClusterStatus s = FullStatus(t0);
  const json j = StatusJson(s);  // last_cycle_at is t0 - 2s
  EXPECT_EQ(j["replicas"][0]["age_seconds"], 3598);

  s.last_cycle_at.reset();
  EXPECT_TRUE(StatusJson(s)["replicas"][0]["age_seconds"].is_null());
}

TEST(StatusJsonTest, UnknownOrFutureCreationTimesHaveNoAge) {
  const TimePoint t0 = kT0;
  ClusterStatus s = FullStatus(t0);
  s.replicas[0].created = TimePoint{};  // the cloud did not say
  s.replicas[1].created = t0 + 1min;    // clock skew with the cloud
  s.replicas[1].phase_since = TimePoint{};
  s.manual->expires_at.reset();
  const json j = StatusJson(s, t0);
  EXPECT_TRUE(j["replicas"][0]["age_seconds"].is_null());
  EXPECT_TRUE(j["replicas"][1]["age_seconds"].is_null());
  EXPECT_TRUE(j["replicas"][1]["phase_since"].is_null());
  EXPECT_TRUE(j["manual_override"]["expires_at"].is_null());
}

TEST(EventJsonTest, IsTheJournalsShape) {
  Event e;
  e.at = kT0 + 123ms;
  e.cluster = "main";
  e.replica = "main-replica-b2";
  e.type = "action_failed";
  e.action = "create_server";
  e.result = "quota";
  e.message = "quota exceeded for instances in az2";
  e.details = {{"zone", "az2"}};
  const json j = EventJson(e);
  EXPECT_EQ(j, ToJson(e));
  EXPECT_EQ(j["at"], FormatTime(e.at));
  EXPECT_EQ(j["type"], "action_failed");
  EXPECT_EQ(j["result"], "quota");
  EXPECT_EQ(j["details"]["zone"], "az2");

  Event service;
  service.at = e.at;
  service.type = "service_started";
  const json s = EventJson(service);
  EXPECT_FALSE(s.contains("cluster"));  // empty strings are left out
  EXPECT_EQ(s["type"], "service_started");
}

// docs/openapi.yaml is what clients are written against: its schemas must name exactly the
// fields the server sends, and every reference in it must lead somewhere.
class OpenApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    doc_ = YAML::LoadFile(std::string(RA_SOURCE_DIR) + "/docs/openapi.yaml");
  }

  YAML::Node Schema(const std::string& name) { return doc_["components"]["schemas"][name]; }

  static std::set<std::string> Keys(const YAML::Node& map) {
    std::set<std::string> out;
    for (const auto& kv : map) out.insert(kv.first.as<std::string>());
    return out;
  }
  static std::set<std::string> List(const YAML::Node& seq) {
    std::set<std::string> out;
    for (const auto& item : seq) out.insert(item.as<std::string>());
    return out;
  }
  static std::set<std::string> Keys(const json& object) {
    std::set<std::string> out;
    for (const auto& [key, value] : object.items()) out.insert(key);
    return out;
  }

  // Every property is sent, always (null when unknown): required == properties == what we send.
  void ExpectExactly(const std::string& schema, const json& sent) {
    const YAML::Node s = Schema(schema);
    ASSERT_TRUE(s.IsMap()) << schema;
    EXPECT_EQ(Keys(s["properties"]), Keys(sent)) << schema;
    EXPECT_EQ(List(s["required"]), Keys(sent)) << schema;
  }

  void CheckRefs(const YAML::Node& node, int* count) {
    if (node.IsMap()) {
      for (const auto& kv : node) {
        if (kv.first.as<std::string>() == "$ref") {
          ++*count;
          const std::string ref = kv.second.as<std::string>();
          ASSERT_EQ(ref.rfind("#/", 0), 0u) << ref;
          YAML::Node at = YAML::Clone(doc_);
          size_t start = 2;
          while (start <= ref.size()) {
            size_t end = ref.find('/', start);
            if (end == std::string::npos) end = ref.size();
            at = at[ref.substr(start, end - start)];
            ASSERT_TRUE(at.IsDefined()) << "unresolved " << ref;
            start = end + 1;
          }
        } else {
          CheckRefs(kv.second, count);
        }
      }
    } else if (node.IsSequence()) {
      for (const auto& item : node) CheckRefs(item, count);
    }
  }

  YAML::Node doc_;
};

TEST_F(OpenApiTest, SchemasNameExactlyTheFieldsTheServerSends) {
  EXPECT_EQ(doc_["openapi"].as<std::string>().rfind("3.0.", 0), 0u);
  const json status = StatusJson(FullStatus(kT0), kT0);
  ExpectExactly("ClusterStatus", status);
  ExpectExactly("ManualOverride", status["manual_override"]);
  ExpectExactly("Decision", status["last_decision"]);
  ExpectExactly("PolicyVerdict", status["last_decision"]["policies"][0]);
  ExpectExactly("Replica", status["replicas"][0]);
  ExpectExactly("BlockedAction", status["blocked"][0]);
  ExpectExactly("Snapshot", status["newest_snapshot"]);

  Event e;
  e.at = kT0;
  e.cluster = "main";
  e.replica = "r";
  e.type = "action_failed";
  e.action = "create_server";
  e.result = "quota";
  e.message = "m";
  e.details = {{"zone", "az1"}};
  EXPECT_EQ(Keys(Schema("Event")["properties"]), Keys(EventJson(e)));

  // Every phase the server can send is in the enum.
  const std::set<std::string> phases = List(Schema("Replica")["properties"]["phase"]["enum"]);
  for (int p = 0; p <= static_cast<int>(Phase::kFailed); ++p) {
    EXPECT_TRUE(phases.count(std::string(ToString(static_cast<Phase>(p)))))
        << ToString(static_cast<Phase>(p));
  }
}

TEST_F(OpenApiTest, EveryRouteIsDescribedAndEveryReferenceResolves) {
  EXPECT_EQ(Keys(doc_["paths"]),
            (std::set<std::string>{
                "/healthz", "/readyz", "/metrics", "/v1/clusters", "/v1/clusters/{name}",
                "/v1/clusters/{name}/override", "/v1/clusters/{name}/pause",
                "/v1/clusters/{name}/resume", "/v1/clusters/{name}/snapshot",
                "/v1/clusters/{name}/replicas/{replica}/replace", "/v1/events"}));
  EXPECT_TRUE(doc_["paths"]["/v1/clusters/{name}/override"]["put"].IsMap());
  EXPECT_TRUE(doc_["paths"]["/v1/clusters/{name}/override"]["delete"].IsMap());
  int refs = 0;
  CheckRefs(doc_, &refs);
  EXPECT_GT(refs, 20);
}

TEST(HttpStatus, OneMappingFromErrorKinds) {
  EXPECT_EQ(HttpStatus(ErrorKind::kNotFound), 404);
  EXPECT_EQ(HttpStatus(ErrorKind::kBadRequest), 400);
  EXPECT_EQ(HttpStatus(ErrorKind::kConflict), 409);
  // Nothing changed (e.g. state.json could not be saved): the client may retry.
  EXPECT_EQ(HttpStatus(ErrorKind::kTransient), 503);
  for (ErrorKind kind :
       {ErrorKind::kTimeout, ErrorKind::kAuth, ErrorKind::kQuota, ErrorKind::kCapacity,
        ErrorKind::kConfig, ErrorKind::kParse, ErrorKind::kInternal}) {
    EXPECT_EQ(HttpStatus(kind), 500) << ToString(kind);
  }
}

}  // namespace
}  // namespace ra::autoscaler
