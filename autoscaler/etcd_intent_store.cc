#include "autoscaler/etcd_intent_store.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/base64.h"

namespace ra::autoscaler {

Result<Intents> EtcdIntentStore::Load() {
  const nlohmann::json body{{"key", Base64Encode(key_)}};
  Result<std::string> answer = gateway_.Post("/v3/kv/range", body.dump(), timeout_);
  if (!answer) return Fail(answer.error());
  const nlohmann::json doc = nlohmann::json::parse(*answer, nullptr, false);
  if (!doc.is_object()) return Fail(ErrorKind::kParse, "etcd /v3/kv/range: not a JSON object");
  const auto kvs = doc.find("kvs");
  if (kvs == doc.end() || !kvs->is_array() || kvs->empty()) return Intents{};  // nothing saved
  const nlohmann::json& kv = (*kvs)[0];
  const auto encoded = kv.is_object() ? kv.find("value") : kv.end();
  if (!kv.is_object() || encoded == kv.end() || !encoded->is_string()) {
    return Fail(ErrorKind::kParse,
                fmt::format("etcd key {}: the answer has no string value", key_));
  }
  const std::optional<std::string> value = Base64Decode(encoded->get<std::string>());
  if (!value) return Fail(ErrorKind::kParse, fmt::format("etcd key {}: not base64", key_));
  return IntentsFromJson(*value);
}

Result<void> EtcdIntentStore::Save(const Intents& intents) {
  const nlohmann::json body{
      {"compare",
       {{{"key", Base64Encode(leader_key_)},
         {"target", "VALUE"},
         {"result", "EQUAL"},
         {"value", Base64Encode(instance_)}}}},
      {"success",
       {{{"request_put",
          {{"key", Base64Encode(key_)}, {"value", Base64Encode(IntentsToJson(intents))}}}}}}};
  Result<std::string> answer = gateway_.Post("/v3/kv/txn", body.dump(), timeout_);
  if (!answer) return Fail(answer.error());
  const nlohmann::json doc = nlohmann::json::parse(*answer, nullptr, false);
  if (!doc.is_object()) return Fail(ErrorKind::kParse, "etcd /v3/kv/txn: not a JSON object");
  if (!doc.value("succeeded", false)) {
    return Fail(ErrorKind::kNotLeader,
                "this instance no longer leads: the operator state was not saved");
  }
  return {};
}

}  // namespace ra::autoscaler
