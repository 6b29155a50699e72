#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "core/url.h"
#include "openstack/dns_records.h"
#include "openstack/errors.h"
#include "tests/unit/openstack_test_support.h"

namespace ra::openstack {
namespace {

using testing::Harness;
using ::testing::HasSubstr;

constexpr const char* kDns = "https://dns.example";
constexpr const char* kZoneId = "z-1";

// A small Designate: one zone, recordsets kept in memory, answers shaped like Designate's.
class DnsRecordsTest : public ::testing::Test {
 protected:
  DnsRecordsTest() {
    h_.PushToken();
    h_.transport.SetResponder([this](const HttpRequest& r) { return Answer(r); });
  }

  Result<HttpResponse> Answer(const HttpRequest& r) {
    const std::string zones = std::string(kDns) + "/v2/zones";
    const std::string sets = zones + "/" + kZoneId + "/recordsets";
    if (r.method == "GET" && r.url.rfind(zones + "?name=", 0) == 0) {
      nlohmann::json list = nlohmann::json::array();
      if (r.url == zones + "?name=" + UrlEncode("db.example.")) {
        list.push_back({{"id", kZoneId}, {"name", "db.example."}});
      }
      return Json(200, {{"zones", list}});
    }
    if (r.method == "GET" && r.url.rfind(sets + "?", 0) == 0) {
      nlohmann::json list = nlohmann::json::array();
      for (const auto& [id, rs] : recordsets_) {
        if (r.url.find("name=" + UrlEncode(rs["name"].get<std::string>())) != std::string::npos) {
          list.push_back(rs);
        }
      }
      return Json(200, {{"recordsets", list}, {"links", {{"self", sets}}}});
    }
    if (r.method == "POST" && r.url == sets) {
      auto body = nlohmann::json::parse(r.body);
      for (const auto& [id, rs] : recordsets_) {
        if (rs["name"] == body["name"]) {
          return Json(
              409,
              {{"code", 409}, {"type", "duplicate_recordset"}, {"message", "Duplicate RecordSet"}});
        }
      }
      const std::string id = "r-" + std::to_string(++next_id_);
      body["id"] = id;
      body["zone_id"] = kZoneId;
      body["status"] = "PENDING";
      body["action"] = "CREATE";
      recordsets_[id] = body;
      return Json(202, body);
    }
    if ((r.method == "PUT" || r.method == "DELETE") && r.url.rfind(sets + "/", 0) == 0) {
      const std::string id = r.url.substr(sets.size() + 1);
      auto it = recordsets_.find(id);
      if (it == recordsets_.end()) {
        return Json(404, {{"code", 404},
                          {"type", "recordset_not_found"},
                          {"message", "Could not find RecordSet"}});
      }
      if (r.method == "DELETE") {
        nlohmann::json gone = it->second;
        recordsets_.erase(it);
        return Json(202, gone);
      }
      auto body = nlohmann::json::parse(r.body);
      it->second["records"] = body["records"];
      it->second["action"] = "UPDATE";
      return Json(202, it->second);
    }
    return Fail(ErrorKind::kInternal, "unexpected " + r.method + " " + r.url);
  }

  static HttpResponse Json(int status, const nlohmann::json& body) {
    return HttpResponse{status, {}, body.dump()};
  }

  std::vector<std::string> Calls() const {
    std::vector<std::string> out;
    for (const HttpRequest& r : h_.transport.requests()) {
      if (r.url.find("/auth/tokens") == std::string::npos) out.push_back(r.method);
    }
    return out;
  }

  Harness h_;
  DesignateClient client_{h_.session};
  std::map<std::string, nlohmann::json> recordsets_;
  int next_id_ = 0;
};

TEST_F(DnsRecordsTest, EnsureCreatesOnceThenKeepsTheSameAddress) {
  DnsRecords dns(client_, "db.example", 60);
  ASSERT_TRUE(dns.Ensure("main-r1.db.example", "10.0.0.5"));
  ASSERT_EQ(recordsets_.size(), 1u);
  const nlohmann::json& rs = recordsets_.begin()->second;
  EXPECT_EQ(rs["name"], "main-r1.db.example.");
  EXPECT_EQ(rs["records"], nlohmann::json({"10.0.0.5"}));
  EXPECT_EQ(rs["ttl"], 60);

  ASSERT_TRUE(dns.Ensure("main-r1.db.example.", "10.0.0.5"));
  EXPECT_EQ(recordsets_.size(), 1u);
  // zone lookup once, list + create, then list only.
  EXPECT_EQ(Calls(), (std::vector<std::string>{"GET", "GET", "POST", "GET"}));
}

TEST_F(DnsRecordsTest, EnsureReplacesAnotherAddressInPlace) {
  DnsRecords dns(client_, "db.example.", 0);
  ASSERT_TRUE(dns.Ensure("main-r1.db.example", "10.0.0.5"));
  const std::string id = recordsets_.begin()->first;
  ASSERT_TRUE(dns.Ensure("main-r1.db.example", "10.0.0.9"));
  ASSERT_EQ(recordsets_.size(), 1u);
  EXPECT_EQ(recordsets_.begin()->first, id);
  EXPECT_EQ(recordsets_[id]["records"], nlohmann::json({"10.0.0.9"}));
  EXPECT_EQ(Calls().back(), "PUT");
}

TEST_F(DnsRecordsTest, RemoveIsIdempotent) {
  DnsRecords dns(client_, "db.example", 60);
  ASSERT_TRUE(dns.Ensure("main-r1.db.example", "10.0.0.5"));
  ASSERT_TRUE(dns.Ensure("main-r2.db.example", "10.0.0.6"));
  ASSERT_TRUE(dns.Remove("main-r1.db.example"));
  ASSERT_EQ(recordsets_.size(), 1u);
  EXPECT_EQ(recordsets_.begin()->second["name"], "main-r2.db.example.");
  auto again = dns.Remove("main-r1.db.example");
  EXPECT_TRUE(again) << again.error().message;
  EXPECT_EQ(recordsets_.size(), 1u);
}

TEST_F(DnsRecordsTest, ACreateRaceIsResolvedByLookingAgain) {
  DnsRecords dns(client_, "db.example", 60);
  ASSERT_TRUE(dns.Ensure("warm.db.example", "10.0.0.1"));  // zone cached
  // Another writer creates the record between our list and our create.
  h_.transport.Push(Json(200, {{"recordsets", nlohmann::json::array()}}));
  recordsets_["r-x"] = {
      {"id", "r-x"},     {"zone_id", kZoneId},      {"name", "main-r1.db.example."},
      {"type", "A"},     {"records", {"10.0.0.7"}}, {"status", "ACTIVE"},
      {"action", "NONE"}};
  auto r = dns.Ensure("main-r1.db.example", "10.0.0.5");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(recordsets_["r-x"]["records"], nlohmann::json({"10.0.0.5"}));
}

TEST_F(DnsRecordsTest, BadInputIsRefusedBeforeAnyRequest) {
  DnsRecords dns(client_, "db.example", 60);
  auto outside = dns.Ensure("main-r1.other.example", "10.0.0.5");
  ASSERT_FALSE(outside);
  EXPECT_EQ(outside.error().kind, ErrorKind::kConfig);
  EXPECT_THAT(outside.error().message, HasSubstr("not a name inside zone 'db.example.'"));
  auto suffix_only = dns.Ensure("xdb.example", "10.0.0.5");
  ASSERT_FALSE(suffix_only);
  EXPECT_EQ(suffix_only.error().kind, ErrorKind::kConfig);
  auto not_ipv4 = dns.Ensure("main-r1.db.example", "10.0.0.300");
  ASSERT_FALSE(not_ipv4);
  EXPECT_EQ(not_ipv4.error().kind, ErrorKind::kBadRequest);
  EXPECT_TRUE(Calls().empty());
}

TEST_F(DnsRecordsTest, UnknownZoneIsNotFoundAndNotCached) {
  DnsRecords dns(client_, "nope.example", 60);
  auto r = dns.Ensure("a.nope.example", "10.0.0.5");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kNotFound);
  ASSERT_FALSE(dns.Remove("a.nope.example"));
  EXPECT_EQ(Calls(), (std::vector<std::string>{"GET", "GET"}));
}

TEST(DesignateParse, RecordsetFields) {
  auto r = DesignateClient::ParseRecordset({{"id", "r1"},
                                            {"zone_id", "z"},
                                            {"name", "a.example."},
                                            {"type", "A"},
                                            {"records", {"1.2.3.4", 7}},
                                            {"status", "PENDING"},
                                            {"action", "UPDATE"},
                                            {"ttl", 30}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->records, std::vector<std::string>{"1.2.3.4"});
  EXPECT_EQ(r->action, "UPDATE");
  EXPECT_EQ(r->ttl, 30);
  EXPECT_FALSE(DesignateClient::ParseRecordset({{"name", "no-id."}}));
}

}  // namespace
}  // namespace ra::openstack
