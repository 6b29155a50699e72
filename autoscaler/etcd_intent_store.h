#pragma once

#include <string>

#include "autoscaler/intent_store.h"
#include "autoscaler/leader.h"

namespace ra::autoscaler {

/// Operator intent kept in etcd (ha), so that whichever instance leads next has it: one key
/// (`<key prefix>/intent`) holding the same JSON document as state.json. A write is a
/// transaction that puts it only while the election key still names this instance, so an
/// instance that lost leadership meanwhile cannot overwrite what the new leader saved.
class EtcdIntentStore final : public IntentStore {
 public:
  /// `gateway` must outlive the store. `leader_key` and `instance` are the elector's.
  EtcdIntentStore(EtcdGateway& gateway, std::string key, std::string leader_key,
                  std::string instance, Duration timeout = std::chrono::seconds(5))
      : gateway_(gateway),
        key_(std::move(key)),
        leader_key_(std::move(leader_key)),
        instance_(std::move(instance)),
        timeout_(timeout) {}

  /// An empty map when the key does not exist. Errors: etcd's (unreachable: kTransient or
  /// kTimeout), kParse when the value is not an intent document.
  Result<Intents> Load() override;
  /// kNotLeader when the election key does not name this instance; etcd's errors otherwise.
  Result<void> Save(const Intents& intents) override;

 private:
  EtcdGateway& gateway_;
  std::string key_;
  std::string leader_key_;
  std::string instance_;
  Duration timeout_;
};

}  // namespace ra::autoscaler
