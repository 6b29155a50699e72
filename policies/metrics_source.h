#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"

namespace ra::policies {

struct Series {
  std::map<std::string, std::string> labels{};
  double value = 0;  ///< may be NaN or +/-Inf as Prometheus reports them
  TimePoint timestamp{};
};

struct QueryResult {
  enum class Type { kVector, kScalar };
  Type type = Type::kVector;
  /// A scalar result is one series without labels; an empty vector is an empty list.
  std::vector<Series> series{};
};

/// Something that answers instant PromQL queries (Prometheus, VictoriaMetrics).
class MetricsSource {
 public:
  virtual ~MetricsSource() = default;

  /// Evaluates `promql` at `at` (the server's now when absent). Blocks up to the source's
  /// timeout. Idempotent, thread-safe. Errors: kTimeout; kTransient for 5xx, 429 and
  /// connection failures; kAuth for 401/403; kBadRequest for 400/422 (a bad query, with the
  /// server's own message); kParse for an answer that is not the Prometheus API's JSON;
  /// kBadRequest also for result types other than vector and scalar (matrix, string).
  virtual Result<QueryResult> Query(std::string_view promql, std::optional<TimePoint> at) = 0;
};

}  // namespace ra::policies
