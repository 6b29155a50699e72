// FakeLoadBalancer keeps the lb::LoadBalancer contracts the service relies on.
#include "testing/fake_load_balancer.h"

#include <gtest/gtest.h>

namespace ra::testing {
namespace {

using lb::AdminState;
using lb::RemoveMode;
using lb::RemoveOutcome;

TEST(FakeLoadBalancer, KeepsTheScaleDownContract) {
  FakeLoadBalancer lb;
  ASSERT_TRUE(lb.EnsureMember({"r1", "127.0.9.1", 5432}).has_value());
  ASSERT_TRUE(lb.EnsureMember({"r1", "127.0.9.1", 5432}).has_value());  // idempotent
  auto listed = lb.ListMembers();
  ASSERT_TRUE(listed.has_value());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_TRUE((*listed)[0].serving);

  auto ready = lb.Remove("r1", RemoveMode::kWhenIdle);
  ASSERT_FALSE(ready.has_value());
  EXPECT_EQ(ready.error().kind, ErrorKind::kConflict);

  ASSERT_TRUE(lb.Drain("r1").has_value());
  lb.SetSessions("r1", 4);
  EXPECT_EQ(*lb.SessionCount("r1"), 4);
  auto busy = lb.Remove("r1", RemoveMode::kWhenIdle);
  ASSERT_TRUE(busy.has_value());
  EXPECT_EQ(busy->status, RemoveOutcome::Status::kStillHasConnections);
  EXPECT_TRUE(lb.Has("r1"));

  lb.SetSessions("r1", 0);
  EXPECT_EQ(lb.Remove("r1", RemoveMode::kWhenIdle)->status, RemoveOutcome::Status::kRemoved);
  EXPECT_EQ(lb.Remove("r1", RemoveMode::kWhenIdle)->status, RemoveOutcome::Status::kAbsent);
  EXPECT_EQ(lb.SessionCount("r1").error().kind, ErrorKind::kNotFound);
}

TEST(FakeLoadBalancer, InjectsErrorsAndRecordsCalls) {
  FakeLoadBalancer lb;
  lb.FailNext("EnsureMember", Error{ErrorKind::kTransient, "reload failed"});
  auto failed = lb.EnsureMember({"r1", "127.0.9.1", 5432});
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().kind, ErrorKind::kTransient);
  EXPECT_FALSE(lb.Has("r1"));
  ASSERT_TRUE(lb.EnsureMember({"r1", "127.0.9.1", 5432}).has_value());
  ASSERT_TRUE(lb.Maint("r1").has_value());
  EXPECT_EQ(lb.Get("r1").admin, AdminState::kMaint);
  EXPECT_FALSE(lb.Get("r1").serving);
  EXPECT_EQ(lb.calls(),
            (std::vector<std::string>{"EnsureMember(r1)", "EnsureMember(r1)", "Maint(r1)"}));
}

}  // namespace
}  // namespace ra::testing
