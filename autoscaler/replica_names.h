#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

/// How replicas are named: from the cluster's name template and a random id.
namespace ra::autoscaler {

/// Replaces {cluster}, {id} and {zone} in a replica name template. An empty zone leaves no
/// stray separator behind ("{cluster}-{zone}-{id}" -> "pg-1a2b3c").
std::string ReplicaName(const std::string& name_template, const std::string& cluster,
                        const std::string& id, const std::string& zone);

/// A regular expression matching every name the template makes for `cluster` (any 6-hex-digit
/// id, no zone): how a load balancer's member is recognised as ours before the cloud lists it.
std::string ReplicaNamePattern(const std::string& name_template, const std::string& cluster);

/// `count` names not in `taken`, from 24-bit ids drawn from `random`. Bounded: gives up (fewer
/// names) rather than spin on a broken source.
std::vector<std::string> FreshReplicaNames(const std::string& name_template,
                                           const std::string& cluster, std::set<std::string> taken,
                                           int count, const std::function<uint32_t()>& random);

}  // namespace ra::autoscaler
