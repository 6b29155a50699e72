// DnsRecords against the cloud simulator's Designate: create, keep, update in place, remove,
// each idempotent, with Designate's asynchronous PENDING states in between.

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "core/sleeper.h"
#include "openstack/designate.h"
#include "openstack/dns_records.h"
#include "openstack/session.h"
#include "tests/integration/openstack_harness.h"

namespace ra::testing {
namespace {

using namespace std::chrono_literals;

class OpenStackDnsRecords : public ::testing::Test {
 protected:
  void SetUp() override {
    auto sim = CloudSim::Start({.root = dir_.path() + "/cloud"});
    ASSERT_TRUE(sim) << sim.error().message;
    sim_ = std::move(*sim);
    session_ = std::make_unique<openstack::Session>(
        sim_->ClientOptions(), openstack::SessionDeps{transport_, clock_, sleeper_, nullptr});
    client_ = std::make_unique<openstack::DesignateClient>(*session_);
    auto zone = client_->FindZone("cloud.internal.");
    ASSERT_TRUE(zone) << zone.error().message;
    zone_id_ = *zone;
  }

  std::vector<openstack::Recordset> Listed(const std::string& name) {
    auto list = client_->ListRecordsets(zone_id_, name, "A");
    EXPECT_TRUE(list) << list.error().message;
    return list ? *list : std::vector<openstack::Recordset>{};
  }

  // Designate applies changes asynchronously; waits (bounded) until `name` is gone.
  bool GoneWithin(const std::string& name, std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (Listed(name).empty()) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  TempDir dir_{"ra-os-dns"};
  std::unique_ptr<CloudSim> sim_;
  CurlHttpTransport transport_;
  SystemClock clock_;
  RealSleeper sleeper_;
  std::unique_ptr<openstack::Session> session_;
  std::unique_ptr<openstack::DesignateClient> client_;
  std::string zone_id_;
};

TEST_F(OpenStackDnsRecords, EnsureIsIdempotentAndUpdatesInPlace) {
  openstack::DnsRecords dns(*client_, "cloud.internal", 60);
  const std::string name = "main-r1.cloud.internal";
  ASSERT_TRUE(dns.Ensure(name, "127.0.100.5"));
  auto first = Listed(name);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].records, std::vector<std::string>{"127.0.100.5"});
  EXPECT_EQ(first[0].ttl, 60);

  // Still PENDING or already ACTIVE: either way nothing new is made.
  auto again = dns.Ensure(name + ".", "127.0.100.5");
  ASSERT_TRUE(again) << again.error().message;
  auto second = Listed(name);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].id, first[0].id);

  auto moved = dns.Ensure(name, "127.0.100.9");
  ASSERT_TRUE(moved) << moved.error().message;
  auto third = Listed(name);
  ASSERT_EQ(third.size(), 1u);
  EXPECT_EQ(third[0].id, first[0].id);
  EXPECT_EQ(third[0].records, std::vector<std::string>{"127.0.100.9"});

  // Another record in the zone is left alone by everything above and below.
  ASSERT_TRUE(dns.Ensure("main-r2.cloud.internal", "127.0.100.6"));
  ASSERT_TRUE(dns.Remove(name));
  ASSERT_TRUE(dns.Remove(name));  // while the deletion is pending
  EXPECT_TRUE(GoneWithin(name, 10s));
  auto absent = dns.Remove(name);
  EXPECT_TRUE(absent) << absent.error().message;
  EXPECT_EQ(Listed("main-r2.cloud.internal").size(), 1u);
}

TEST_F(OpenStackDnsRecords, ProblemsAreTyped) {
  openstack::DnsRecords missing(*client_, "no-such.zone.", 60);
  auto r = missing.Ensure("a.no-such.zone", "127.0.100.5");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kNotFound);

  openstack::DnsRecords dns(*client_, "cloud.internal.", 60);
  auto outside = dns.Ensure("a.elsewhere.example", "127.0.100.5");
  ASSERT_FALSE(outside);
  EXPECT_EQ(outside.error().kind, ErrorKind::kConfig);
}

}  // namespace
}  // namespace ra::testing
