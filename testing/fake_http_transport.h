#pragma once

#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "core/http_transport.h"

namespace ra::testing {

/// An HttpTransport that answers from a script and records every request. Unit tests use it
/// in place of the network.
class FakeHttpTransport final : public HttpTransport {
 public:
  using Responder = std::function<Result<HttpResponse>(const HttpRequest&)>;

  /// Queues an answer for the next request (FIFO), whatever it is.
  void Push(Result<HttpResponse> answer) {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(answer));
  }
  void Push(int status, std::string body, HttpHeaders headers = {}) {
    Push(HttpResponse{status, std::move(headers), std::move(body)});
  }
  /// Answers every request for which no queued answer is left.
  void SetResponder(Responder responder) {
    std::lock_guard lock(mu_);
    responder_ = std::move(responder);
  }

  Result<HttpResponse> Send(const HttpRequest& request) override {
    std::lock_guard lock(mu_);
    requests_.push_back(request);
    if (!queue_.empty()) {
      Result<HttpResponse> answer = std::move(queue_.front());
      queue_.pop_front();
      return answer;
    }
    if (responder_) return responder_(request);
    return Fail(ErrorKind::kInternal,
                "FakeHttpTransport: no answer scripted for " + request.method + " " + request.url);
  }

  std::vector<HttpRequest> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  mutable std::mutex mu_;
  std::deque<Result<HttpResponse>> queue_;
  Responder responder_;
  std::vector<HttpRequest> requests_;
};

}  // namespace ra::testing
