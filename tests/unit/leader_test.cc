#include "autoscaler/leader.h"

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "autoscaler/etcd_intent_store.h"
#include "core/base64.h"

namespace ra::autoscaler {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A small etcd: leases that expire on the fake clock, keys that go with their lease, and the
// gateway's JSON for the five calls the elector makes.
class FakeEtcd {
 public:
  explicit FakeEtcd(const FakeClock& clock) : clock_(clock) {}

  Result<HttpResponse> Handle(const HttpRequest& request) {
    Expire();
    const nlohmann::json in = nlohmann::json::parse(request.body);
    const std::string path = request.url.substr(request.url.find("/v3/"));
    calls.push_back(path);
    if (path == "/v3/lease/grant") {
      const int64_t id = next_lease_++;
      const int64_t ttl = std::stoll(in["TTL"].get<std::string>());
      leases_[id] = {seconds(ttl), clock_.Now() + seconds(ttl)};
      return Ok({{"ID", std::to_string(id)}, {"TTL", std::to_string(ttl)}});
    }
    if (path == "/v3/lease/keepalive") {
      const int64_t id = std::stoll(in["ID"].get<std::string>());
      auto it = leases_.find(id);
      if (it == leases_.end()) return Ok({{"result", {{"ID", std::to_string(id)}}}});
      it->second.expiry = clock_.Now() + it->second.ttl;
      return Ok({{"result",
                  {{"ID", std::to_string(id)},
                   {"TTL", std::to_string(
                               std::chrono::duration_cast<seconds>(it->second.ttl).count())}}}});
    }
    if (path == "/v3/lease/revoke") {
      Drop(std::stoll(in["ID"].get<std::string>()));
      return Ok(nlohmann::json::object());
    }
    if (path == "/v3/kv/txn") {
      const std::string key = *Base64Decode(in["compare"][0]["key"].get<std::string>());
      auto held = keys_.find(key);
      if (held == keys_.end()) {
        const auto& put = in["success"][0]["request_put"];
        const int64_t lease = std::stoll(put["lease"].get<std::string>());
        if (!leases_.contains(lease)) {
          return HttpResponse{404, {}, R"({"error":"etcdserver: requested lease not found"})"};
        }
        keys_[key] = {*Base64Decode(put["value"].get<std::string>()), lease};
        return Ok(
            {{"succeeded", true}, {"responses", {{{"response_put", nlohmann::json::object()}}}}});
      }
      return Ok({{"responses",
                  {{{"response_range",
                     {{"kvs",
                       {{{"key", Base64Encode(key)},
                         {"value", Base64Encode(held->second.value)},
                         {"lease", std::to_string(held->second.lease)}}}}}}}}}});
    }
    return HttpResponse{404, {}, "{}"};
  }

  std::string Holder(const std::string& key) {
    Expire();
    auto it = keys_.find(key);
    return it == keys_.end() ? "" : it->second.value;
  }

  std::vector<std::string> calls;

 private:
  struct Lease {
    Duration ttl;
    TimePoint expiry;
  };
  struct Kv {
    std::string value;
    int64_t lease;
  };
  static Result<HttpResponse> Ok(const nlohmann::json& body) {
    return HttpResponse{200, {}, body.dump()};
  }
  void Expire() {
    std::set<int64_t> gone;
    for (const auto& [id, lease] : leases_) {
      if (clock_.Now() >= lease.expiry) gone.insert(id);
    }
    for (int64_t id : gone) Drop(id);
  }
  void Drop(int64_t id) {
    leases_.erase(id);
    std::erase_if(keys_, [id](const auto& kv) { return kv.second.lease == id; });
  }

  const FakeClock& clock_;
  int64_t next_lease_ = 100;
  std::map<int64_t, Lease> leases_;
  std::map<std::string, Kv> keys_;
};

// One instance's way to etcd, which a test may cut.
class FakeLink final : public HttpTransport {
 public:
  explicit FakeLink(FakeEtcd& etcd) : etcd_(etcd) {}
  Result<HttpResponse> Send(const HttpRequest& request) override {
    if (down) return Fail(ErrorKind::kTransient, "connection refused");
    return etcd_.Handle(request);
  }
  bool down = false;

 private:
  FakeEtcd& etcd_;
};

constexpr char kKey[] = "/replica-autoscaler/leader";

LeaderElectorOptions Options(const std::string& instance) {
  LeaderElectorOptions o;
  o.etcd.endpoints = {"http://etcd:2379"};
  o.key = kKey;
  o.instance = instance;
  o.ttl = seconds(3);
  return o;
}

struct LeaderTest : ::testing::Test {
  FakeClock clock{TimePoint{} + std::chrono::hours(1000)};
  FakeEtcd etcd{clock};
  FakeLink link_a{etcd};
  FakeLink link_b{etcd};
  LeaderElector a{Options("a"), link_a, clock};
  LeaderElector b{Options("b"), link_b, clock};
};

TEST_F(LeaderTest, WinsWhenFreeAndTheOtherFollows) {
  ASSERT_TRUE(a.Step());
  EXPECT_TRUE(a.IsLeader());
  EXPECT_EQ(a.HeldTerm(), 1u);
  EXPECT_EQ(a.LeaderName(), "a");
  EXPECT_EQ(etcd.Holder(kKey), "a");

  ASSERT_TRUE(b.Step());
  EXPECT_FALSE(b.IsLeader());
  EXPECT_EQ(b.HeldTerm(), std::nullopt);
  EXPECT_EQ(b.LeaderName(), "a");
}

TEST_F(LeaderTest, RenewalsKeepLeadership) {
  ASSERT_TRUE(a.Step());
  for (int i = 0; i < 10; ++i) {
    clock.Advance(a.RenewEvery());
    ASSERT_TRUE(a.Step());
    ASSERT_TRUE(b.Step());
    EXPECT_TRUE(a.IsLeader());
    EXPECT_FALSE(b.IsLeader());
  }
  EXPECT_EQ(a.HeldTerm(), 1u);
}

TEST_F(LeaderTest, AFailedRenewalLosesLeadershipAtOnce) {
  ASSERT_TRUE(a.Step());
  clock.Advance(seconds(1));
  link_a.down = true;
  EXPECT_FALSE(a.Step());
  // The lease still has two seconds in etcd: leadership is given up without waiting for them.
  EXPECT_FALSE(a.IsLeader());
  EXPECT_FALSE(a.HoldsTerm(1));
}

TEST_F(LeaderTest, LeadershipEndsWhenTheMarginPassesWithoutRenewal) {
  ASSERT_TRUE(a.Step());
  clock.Advance(milliseconds(1999));  // ttl 3s, margin 1s
  EXPECT_TRUE(a.IsLeader());
  clock.Advance(milliseconds(1));
  EXPECT_FALSE(a.IsLeader());
  EXPECT_FALSE(a.HoldsTerm(1));
}

TEST_F(LeaderTest, TheOtherTakesOverOnceTheLeaseExpires) {
  ASSERT_TRUE(a.Step());
  ASSERT_TRUE(b.Step());
  link_a.down = true;  // a is cut off from etcd (or killed)
  clock.Advance(seconds(1));
  (void)a.Step();
  ASSERT_TRUE(b.Step());
  EXPECT_FALSE(b.IsLeader());  // a's lease still lives in etcd
  clock.Advance(seconds(2));
  ASSERT_TRUE(b.Step());
  EXPECT_TRUE(b.IsLeader());
  EXPECT_EQ(b.LeaderName(), "b");
  EXPECT_FALSE(a.IsLeader());
  // Never two leaders: a gave up at the failed renewal, before its lease could expire.
}

TEST_F(LeaderTest, ALateRoundStartsANewTerm) {
  ASSERT_TRUE(a.Step());
  clock.Advance(milliseconds(2500));  // past the margin, the lease not yet expired
  EXPECT_FALSE(a.IsLeader());
  ASSERT_TRUE(a.Step());  // the key is still under a's lease: won again, in a new term
  EXPECT_TRUE(a.IsLeader());
  EXPECT_EQ(a.HeldTerm(), 2u);
  EXPECT_FALSE(a.HoldsTerm(1));
}

TEST_F(LeaderTest, ANewLeaseAfterExpiryAndANewTermWhenWonAgain) {
  ASSERT_TRUE(a.Step());
  link_a.down = true;
  clock.Advance(seconds(4));  // the lease expired in etcd
  EXPECT_FALSE(a.Step());
  link_a.down = false;
  EXPECT_FALSE(a.Step());  // etcd says the lease is gone
  ASSERT_TRUE(a.Step());   // a new lease, the key is free
  EXPECT_TRUE(a.IsLeader());
  EXPECT_EQ(a.HeldTerm(), 2u);
  EXPECT_EQ(a.LastTerm(), 2u);
}

TEST_F(LeaderTest, StopRevokesSoTheOtherLeadsAtOnce) {
  ASSERT_TRUE(a.Step());
  a.Stop();
  EXPECT_FALSE(a.IsLeader());
  ASSERT_TRUE(b.Step());
  EXPECT_TRUE(b.IsLeader());
}

TEST_F(LeaderTest, StopWithoutRevokeLeavesTheLeaseToRunOut) {
  // serve stops this way while an action is still running: the other instance must wait.
  ASSERT_TRUE(a.Step());
  a.Stop(/*revoke=*/false);
  EXPECT_FALSE(a.IsLeader());
  ASSERT_TRUE(b.Step());
  EXPECT_FALSE(b.IsLeader());
  for (int i = 0; i < 2; ++i) {  // b steps every ttl / 3, as its thread does
    clock.Advance(seconds(1));
    ASSERT_TRUE(b.Step());
    EXPECT_FALSE(b.IsLeader()) << "a's lease still lives in etcd";
  }
  clock.Advance(seconds(1));
  ASSERT_TRUE(b.Step());
  EXPECT_TRUE(b.IsLeader());
}

// An etcd (or something pretending to be one) answering the intent read with a malformed kv.
class CannedLink final : public HttpTransport {
 public:
  explicit CannedLink(std::string body) : body_(std::move(body)) {}
  Result<HttpResponse> Send(const HttpRequest&) override {
    HttpResponse response;
    response.status = 200;
    response.body = body_;
    return response;
  }

 private:
  std::string body_;
};

TEST(EtcdIntentStoreTest, AMalformedAnswerIsAParseErrorNotACrash) {
  for (const char* body : {R"({"kvs": [42]})", R"({"kvs": [{"value": 7}]})", R"({"kvs": [{}]})",
                           R"({"kvs": [{"value": "%%%"}]})", R"([1])"}) {
    CannedLink link(body);
    EtcdOptions options;
    options.endpoints = {"http://etcd:2379"};
    EtcdGateway gateway(options, link);
    EtcdIntentStore store(gateway, "/ra/intent", kKey, "a");
    Result<Intents> intents = store.Load();
    ASSERT_FALSE(intents) << body;
    EXPECT_EQ(intents.error().kind, ErrorKind::kParse) << body;
  }
}

TEST(MonotonicClockTest, FollowsTheWallClockAndNeverGoesBack) {
  MonotonicClock clock;
  const TimePoint first = clock.Now();
  EXPECT_LT(std::chrono::abs(first - std::chrono::system_clock::now()), std::chrono::seconds(5));
  TimePoint last = first;
  for (int i = 0; i < 1000; ++i) {
    const TimePoint now = clock.Now();
    EXPECT_GE(now, last);
    last = now;
  }
}

TEST_F(LeaderTest, RequestsCarryNoPasswordWithoutAuth) {
  ASSERT_TRUE(a.Step());
  for (const std::string& call : etcd.calls) EXPECT_NE(call, "/v3/auth/authenticate");
}

}  // namespace
}  // namespace ra::autoscaler
