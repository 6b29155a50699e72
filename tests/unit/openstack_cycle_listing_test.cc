// One listing per project and cycle (CloudProvider::BeginCycle): OpenStackCloudProvider against a
// scripted project that filters lists as Nova and Cinder do, counting the list requests.

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "openstack/openstack_cloud_provider.h"
#include "openstack_test_support.h"

namespace ra::openstack {
namespace {

using json = nlohmann::json;
using testing::Harness;

std::string PercentDecode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

std::map<std::string, std::string> QueryOf(const std::string& url) {
  std::map<std::string, std::string> q;
  const size_t at = url.find('?');
  if (at == std::string::npos) return q;
  std::string rest = url.substr(at + 1);
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    const std::string part = rest.substr(0, amp);
    const size_t eq = part.find('=');
    q[part.substr(0, eq)] = eq == std::string::npos ? "" : PercentDecode(part.substr(eq + 1));
    rest = amp == std::string::npos ? "" : rest.substr(amp + 1);
  }
  return q;
}

// A project as Nova and Cinder show it: ?tags= keeps the servers that carry every tag named,
// ?metadata= the volumes (snapshots) whose metadata holds every pair named (nova/db/main/api.py
// and cinder/db/sqlalchemy/api.py do the same). `hidden` volumes are left out of every list but
// answer GET by id, as a cloud whose list lags does. POST /volumes adds a `creating` volume.
struct Project {
  json servers = json::array();
  json volumes = json::array();
  json snapshots = json::array();
  std::vector<std::string> hidden;
  int lists = 0;  ///< GET .../detail requests answered
  std::map<std::string, int> lists_of;
  int fail_lists_with = 0;  ///< an HTTP status every list answers with, 0: none

  static bool HasMetadata(const json& item, const json& wanted) {
    for (const auto& [k, v] : wanted.items()) {
      if (!item["metadata"].contains(k) || item["metadata"][k] != v) return false;
    }
    return true;
  }

  Result<HttpResponse> Answer(const HttpRequest& r) {
    auto ok = [](const json& body, int status = 200) {
      return HttpResponse{status, {{"Content-Type", "application/json"}}, body.dump()};
    };
    const std::string path = r.url.substr(0, r.url.find('?'));
    const auto query = QueryOf(r.url);
    auto ends = [&path](const std::string& tail) {
      return path.size() >= tail.size() &&
             path.compare(path.size() - tail.size(), tail.size(), tail) == 0;
    };
    if (r.method == "GET" && ends("/detail")) {
      ++lists;
      if (fail_lists_with != 0) {
        return ok(json{{"badRequest", {{"code", fail_lists_with}, {"message", "no"}}}},
                  fail_lists_with);
      }
      if (ends("/servers/detail")) {
        ++lists_of["servers"];
        std::vector<std::string> tags;
        std::string t = query.count("tags") ? query.at("tags") : "";
        for (size_t at = 0; at <= t.size() && !t.empty();) {
          const size_t comma = t.find(',', at);
          tags.push_back(t.substr(at, comma - at));
          if (comma == std::string::npos) break;
          at = comma + 1;
        }
        json out = json::array();
        for (const json& s : servers) {
          bool all = true;
          for (const std::string& tag : tags) {
            all = all && std::find(s["tags"].begin(), s["tags"].end(), tag) != s["tags"].end();
          }
          if (all) out.push_back(s);
        }
        return ok(json{{"servers", out}});
      }
      const bool vols = ends("/volumes/detail");
      ++lists_of[vols ? "volumes" : "snapshots"];
      const json wanted = query.count("metadata") ? json::parse(query.at("metadata")) : json{};
      json out = json::array();
      for (const json& item : vols ? volumes : snapshots) {
        if (vols && std::find(hidden.begin(), hidden.end(), item["id"]) != hidden.end()) continue;
        if (HasMetadata(item, wanted)) out.push_back(item);
      }
      return ok(json{{vols ? "volumes" : "snapshots", out}});
    }
    for (const std::string kind : {"volume", "snapshot"}) {
      if (r.method != "GET" || path.find("/" + kind + "s/") == std::string::npos) continue;
      const std::string id = path.substr(path.rfind('/') + 1);
      for (const json& item : kind == "volume" ? volumes : snapshots) {
        if (item["id"] == id) return ok(json{{kind, item}});
      }
      return ok(json{{"itemNotFound", {{"code", 404}, {"message", "gone"}}}}, 404);
    }
    if (r.method == "POST" && ends("/volumes")) {
      json v = json::parse(r.body)["volume"];
      v["id"] = "v-new-" + std::to_string(volumes.size());
      v["status"] = "creating";
      v["size"] = 10;
      volumes.push_back(v);
      return ok(json{{"volume", v}}, 202);
    }
    return Fail(ErrorKind::kInternal, "Project: nothing scripted for " + r.method + " " + r.url);
  }
};

json OurServer(const std::string& id, const std::string& cluster, const std::string& replica,
               std::vector<std::string> attached = {}) {
  json vols = json::array();
  for (const std::string& v : attached) vols.push_back({{"id", v}});
  return {
      {"id", id},
      {"name", replica},
      {"status", "ACTIVE"},
      {"tags", {"replica-autoscaler", "ra-cluster:" + cluster}},
      {"metadata",
       {{"ra_managed_by", "replica-autoscaler"}, {"ra_cluster", cluster}, {"ra_replica", replica}}},
      {"addresses", {{"net", {{{"addr", "10.0.0." + id}, {"version", 4}}}}}},
      {"os-extended-volumes:volumes_attached", vols}};
}

json OurVolume(const std::string& id, const std::string& cluster, const std::string& replica,
               const std::string& status = "in-use") {
  return {{"id", id},
          {"name", replica},
          {"status", status},
          {"size", 10},
          {"metadata",
           {{"ra_managed_by", "replica-autoscaler"},
            {"ra_cluster", cluster},
            {"ra_replica", replica},
            {"ra_role", "replica"}}}};
}

json Golden(const std::string& id, const std::string& cluster, const std::string& created) {
  return {
      {"id", id},
      {"status", "available"},
      {"volume_id", "v-donor"},
      {"size", 10},
      {"created_at", created},
      {"metadata",
       {{"ra_managed_by", "replica-autoscaler"}, {"ra_cluster", cluster}, {"ra_role", "golden"}}}};
}

// Three clusters with what ListReplicas must sort out: an orphan volume, a server whose volume
// only its attachments name, duplicate volumes of one replica, strangers with our tags.
Project ThreeClusters() {
  Project p;
  p.servers = json::array({
      OurServer("1", "a", "a-r1", {"va1"}), OurServer("3", "a", "a-r3", {"v-root", "va3"}),
      OurServer("11", "b", "b-r1", {"vb1"}),
      OurServer("12", "b", "b-r2"),  // no volume at all: being torn down
  });
  json stranger = OurServer("90", "a", "a-r9");
  stranger["metadata"] = {{"owner", "someone else"}};  // our tags, not our metadata
  p.servers.push_back(stranger);
  json crossed = OurServer("91", "b", "a-r8");
  crossed["metadata"]["ra_cluster"] = "a";  // b's tag, a's metadata: nobody's
  p.servers.push_back(crossed);
  json untagged = OurServer("92", "c", "c-r1");
  untagged["tags"] = {"ra-cluster:c"};  // no managed tag: not even listed project-wide
  p.servers.push_back(untagged);
  p.volumes = json::array({
      OurVolume("va1-old", "a", "a-r1", "error"), OurVolume("va1", "a", "a-r1"),
      OurVolume("va1-gone", "a", "a-r1", "deleting"),
      OurVolume("va2", "a", "a-r2", "available"),  // orphan
      OurVolume("va3", "a", "a-r3"),               // hidden from lists below
      OurVolume("vb1", "b", "b-r1"), OurVolume("vc9", "c", "c-r9", "error"),  // orphan in error
  });
  json foreign = OurVolume("vx", "a", "a-r7", "available");
  foreign["metadata"]["ra_role"] = "golden";  // not a replica volume
  p.volumes.push_back(foreign);
  p.volumes.push_back(
      {{"id", "v-root"}, {"status", "in-use"}, {"size", 10}, {"metadata", json::object()}});
  p.hidden = {"va3"};
  p.snapshots = json::array({
      Golden("sa2", "a", "2026-11-21T05:00:00.000000"),
      Golden("sa1", "a", "2026-11-21T04:00:00.000000"),
      Golden("sc1", "c", "2026-11-21T03:00:00.000000"),
  });
  json other = Golden("sx", "a", "2026-11-21T02:00:00.000000");
  other["metadata"]["ra_role"] = "something";
  p.snapshots.push_back(other);
  return p;
}

// A replica in one line, everything the observer uses of it.
std::string Describe(const ReplicaFacts& r) {
  std::string out = r.cluster + "/" + r.name + ":";
  if (r.server) out += " server " + r.server->id + " " + r.server->status + " " + r.server->address;
  if (r.volume) out += " volume " + r.volume->id + " " + r.volume->status;
  return out;
}

std::vector<std::string> Describe(const Result<std::vector<ReplicaFacts>>& listed) {
  if (!listed) return {"error: " + listed.error().message};
  std::vector<std::string> out;
  for (const ReplicaFacts& r : *listed) out.push_back(Describe(r));
  return out;
}

std::vector<std::string> Describe(const Result<std::vector<SnapshotFacts>>& listed) {
  if (!listed) return {"error: " + listed.error().message};
  std::vector<std::string> out;
  for (const SnapshotFacts& s : *listed) out.push_back(s.id + " " + s.status);
  return out;
}

struct Fixture {
  explicit Fixture(Project p) : project(std::move(p)) {
    h.PushToken();
    h.transport.SetResponder([this](const HttpRequest& r) { return project.Answer(r); });
  }
  Project project;
  Harness h;
};

const std::vector<std::string> kClusters{"a", "b", "c"};

TEST(CycleListing, ThreeClustersOfOneProjectCostThreeListsAndSeeWhatTheirOwnListsWouldShow) {
  // Each cluster listed by itself, as outside a cycle.
  Fixture alone(ThreeClusters());
  OpenStackCloudProvider per_cluster(alone.h.session);
  std::map<std::string, std::vector<std::string>> replicas, snapshots;
  for (const std::string& c : kClusters) {
    replicas[c] = Describe(per_cluster.ListReplicas(c));
    snapshots[c] = Describe(per_cluster.ListSnapshots(c));
  }
  EXPECT_EQ(alone.project.lists, 9) << "three lists per cluster outside a cycle";

  // The same clusters in one cycle.
  Fixture shared(ThreeClusters());
  OpenStackCloudProvider provider(shared.h.session);
  provider.BeginCycle();
  for (const std::string& c : kClusters) {
    EXPECT_EQ(Describe(provider.ListReplicas(c)), replicas[c]) << c;
    EXPECT_EQ(Describe(provider.ListSnapshots(c)), snapshots[c]) << c;
  }
  provider.EndCycle();
  EXPECT_EQ(shared.project.lists, 3);
  EXPECT_EQ(shared.project.lists_of["servers"], 1);
  EXPECT_EQ(shared.project.lists_of["volumes"], 1);
  EXPECT_EQ(shared.project.lists_of["snapshots"], 1);

  // What both agree on is what ListReplicas has always sorted out.
  EXPECT_EQ(replicas["a"], (std::vector<std::string>{
                               "a/a-r1: server 1 ACTIVE 10.0.0.1 volume va1 in-use",
                               "a/a-r2: volume va2 available",
                               "a/a-r3: server 3 ACTIVE 10.0.0.3 volume va3 in-use",
                           }));
  EXPECT_EQ(replicas["b"], (std::vector<std::string>{
                               "b/b-r1: server 11 ACTIVE 10.0.0.11 volume vb1 in-use",
                               "b/b-r2: server 12 ACTIVE 10.0.0.12",
                           }));
  EXPECT_EQ(replicas["c"], (std::vector<std::string>{"c/c-r9: volume vc9 error"}));
  EXPECT_EQ(snapshots["a"], (std::vector<std::string>{"sa1 available", "sa2 available"}));
  EXPECT_TRUE(snapshots["b"].empty());
  EXPECT_EQ(snapshots["c"], (std::vector<std::string>{"sc1 available"}));

  // The project-wide filters: the managed tag alone, and ra_role alone.
  bool servers_by_tag = false, volumes_by_role = false;
  for (const HttpRequest& r : shared.h.transport.requests()) {
    const auto q = QueryOf(r.url);
    if (r.url.find("/servers/detail") != std::string::npos) {
      servers_by_tag = q.count("tags") && q.at("tags") == "replica-autoscaler";
    }
    if (r.url.find("/volumes/detail") != std::string::npos) {
      volumes_by_role =
          q.count("metadata") && json::parse(q.at("metadata")) == json{{"ra_role", "replica"}};
    }
  }
  EXPECT_TRUE(servers_by_tag);
  EXPECT_TRUE(volumes_by_role);
}

// A cloud that ignores the filters (?tags=, ?metadata=) hands every resource to every list:
// the shared listing still gives each cluster only what is its own.
TEST(CycleListing, ACloudThatIgnoresFiltersChangesNothing) {
  Project ignoring = ThreeClusters();
  ignoring.hidden.clear();
  Fixture alone(ignoring);
  OpenStackCloudProvider per_cluster(alone.h.session);
  Fixture shared(ignoring);
  OpenStackCloudProvider provider(shared.h.session);
  // Answers as if no filter had been asked for.
  for (Fixture* f : {&alone, &shared}) {
    f->h.transport.SetResponder([f](const HttpRequest& r) {
      HttpRequest unfiltered = r;
      if (r.url.find("/detail?") != std::string::npos) {
        unfiltered.url = r.url.substr(0, r.url.find('?'));
      }
      return f->project.Answer(unfiltered);
    });
  }
  provider.BeginCycle();
  for (const std::string& c : kClusters) {
    EXPECT_EQ(Describe(provider.ListReplicas(c)), Describe(per_cluster.ListReplicas(c))) << c;
    EXPECT_EQ(Describe(provider.ListSnapshots(c)), Describe(per_cluster.ListSnapshots(c))) << c;
  }
  EXPECT_EQ(shared.project.lists, 3);
}

TEST(CycleListing, AFailedListingFailsEveryClusterOnceAndTheNextCycleListsAgain) {
  Fixture f(ThreeClusters());
  OpenStackCloudProvider provider(f.h.session);
  f.project.fail_lists_with = 400;
  provider.BeginCycle();
  for (const std::string& c : kClusters) {
    auto listed = provider.ListReplicas(c);
    ASSERT_FALSE(listed) << c;
    EXPECT_EQ(listed.error().kind, ErrorKind::kBadRequest) << c;
    auto snapshots = provider.ListSnapshots(c);
    ASSERT_FALSE(snapshots) << c;
    EXPECT_EQ(snapshots.error().kind, ErrorKind::kBadRequest) << c;
  }
  EXPECT_EQ(f.project.lists, 2) << "the servers' list failed once, the snapshots' once";

  // The next cycle does not inherit the failure: it lists again.
  f.project.fail_lists_with = 0;
  provider.EndCycle();
  provider.BeginCycle();
  for (const std::string& c : kClusters) {
    ASSERT_TRUE(provider.ListReplicas(c)) << c;
    ASSERT_TRUE(provider.ListSnapshots(c)) << c;
  }
  EXPECT_EQ(f.project.lists, 2 + 3);
}

TEST(CycleListing, EachCycleListsAgainAndOutsideACycleEveryCallReadsTheCloud) {
  Fixture f(ThreeClusters());
  OpenStackCloudProvider provider(f.h.session);
  provider.BeginCycle();
  ASSERT_EQ(Describe(provider.ListReplicas("c")),
            (std::vector<std::string>{"c/c-r9: volume vc9 error"}));
  EXPECT_EQ(f.project.lists, 2);
  // The cloud changes between cycles (someone else deleted the volume): the next cycle sees it.
  f.project.volumes.erase(f.project.volumes.begin() + 6);
  provider.EndCycle();
  provider.BeginCycle();  // without EndCycle too: a new cycle drops the old listing
  provider.BeginCycle();
  EXPECT_TRUE(provider.ListReplicas("c")->empty());
  EXPECT_EQ(f.project.lists, 4);
  provider.EndCycle();
  ASSERT_TRUE(provider.ListReplicas("a"));
  ASSERT_TRUE(provider.ListReplicas("a"));
  EXPECT_EQ(f.project.lists, 8) << "outside a cycle, two lists per call";
}

// What the provider itself creates or deletes after the listing was taken is never hidden: that
// cluster reads the cloud itself for the rest of the cycle; the others keep the listing.
TEST(CycleListing, AClusterWrittenToAfterTheListingReadsTheCloudItself) {
  Fixture f(ThreeClusters());
  OpenStackCloudProvider provider(f.h.session);
  provider.BeginCycle();
  for (const std::string& c : kClusters) ASSERT_TRUE(provider.ListReplicas(c));
  ASSERT_EQ(f.project.lists, 2);

  ReplicaSpec spec{.cluster = "b", .name = "b-r3", .snapshot_id = "sa1"};
  auto created = provider.CreateReplicaVolume(spec);
  ASSERT_TRUE(created) << created.error().message;
  const int after_create = f.project.lists;  // the creation's own idempotency check lists too

  auto b = Describe(provider.ListReplicas("b"));
  EXPECT_NE(std::find(b.begin(), b.end(), "b/b-r3: volume " + created->id + " creating"), b.end())
      << "the new volume is seen in the same cycle";
  EXPECT_EQ(f.project.lists, after_create + 2) << "b read the cloud itself";
  ASSERT_TRUE(provider.ListReplicas("c"));
  EXPECT_EQ(f.project.lists, after_create + 2) << "c still reads the listing";
}

}  // namespace
}  // namespace ra::openstack
