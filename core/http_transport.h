#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"

namespace ra {

/// Header names compare case-insensitively (HTTP/1.1 and HTTP/2 alike).
struct CaseInsensitiveLess {
  bool operator()(const std::string& a, const std::string& b) const;
};
using HttpHeaders = std::map<std::string, std::string, CaseInsensitiveLess>;

struct HttpRequest {
  std::string method = "GET";
  std::string url{};
  HttpHeaders headers{};
  std::string body{};
  /// Overrides HttpOptions::total_timeout for this request.
  std::optional<Duration> timeout{};
};

struct HttpResponse {
  int status = 0;
  HttpHeaders headers{};
  std::string body{};

  /// The header's value, or "" when absent.
  std::string Header(const std::string& name) const;
};

struct HttpOptions {
  Duration connect_timeout = std::chrono::seconds(5);
  Duration total_timeout = std::chrono::seconds(30);
  /// TLS peer and host verification. Turning it off is for test clouds only.
  bool verify_tls = true;
  /// PEM bundle of trusted CAs; empty means the system store.
  std::string ca_bundle{};
  /// PEM client certificate and its key for mutual TLS (etcd with client auth); empty: none.
  std::string client_cert{};
  std::string client_key{};
  /// Honour http_proxy / https_proxy / no_proxy from the environment (libcurl's rules).
  bool proxy_from_env = true;
  /// A response body beyond this many bytes is not read on: the transfer is aborted and Send
  /// fails with kParse, so a broken or hostile endpoint cannot make the service hold it all.
  size_t max_response_body = size_t{16} << 20;
  /// The same for the response's status line and headers together (every response of a
  /// transfer, 100 Continue and redirects included).
  size_t max_response_headers = size_t{256} << 10;
};

/// Sends one HTTP request and returns the response, whatever its status code: a 4xx or 5xx is a
/// response, not an error. Errors are transport failures only: kTimeout when the connect or total
/// timeout passed, kTransient for refused/reset connections and DNS failures, kConfig for a bad
/// URL or CA bundle, kParse for a response larger than HttpOptions allows (the message says
/// which limit).
///
/// Blocks until the response is complete or the timeout passes. Thread-safe: one transport may
/// serve several threads. Not idempotent in itself: the caller decides whether a retry is safe.
class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  virtual Result<HttpResponse> Send(const HttpRequest& request) = 0;
};

/// libcurl behind HttpTransport.
class CurlHttpTransport final : public HttpTransport {
 public:
  using RequestHook = std::function<void(const HttpRequest&)>;
  using ResponseHook = std::function<void(const HttpRequest&, const Result<HttpResponse>&)>;

  explicit CurlHttpTransport(HttpOptions options = {});
  ~CurlHttpTransport() override;

  Result<HttpResponse> Send(const HttpRequest& request) override;

  /// Called before each request is sent and after each answer (or failure), on the calling
  /// thread. For tests and request capture; set before the transport is shared.
  void SetHooks(RequestHook on_request, ResponseHook on_response);

 private:
  HttpOptions options_{};
  RequestHook on_request_{};
  ResponseHook on_response_{};
};

}  // namespace ra
