#include "core/http_transport.h"

#include <curl/curl.h>
#include <fmt/format.h>
#include <strings.h>

#include <memory>

namespace ra {

bool CaseInsensitiveLess::operator()(const std::string& a, const std::string& b) const {
  return strcasecmp(a.c_str(), b.c_str()) < 0;
}

std::string HttpResponse::Header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

namespace {

// curl_global_init is not thread-safe; run it once before any transport exists.
struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

/// Where libcurl's callbacks put a response, and the limits they hold it to. Returning fewer
/// bytes than given aborts the transfer (CURLE_WRITE_ERROR); `overflow` then says why.
struct Sink {
  HttpResponse* response = nullptr;
  size_t max_body = 0;
  size_t max_headers = 0;
  size_t header_bytes = 0;
  std::string overflow{};
};

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<Sink*>(user);
  const size_t n = size * count;
  if (sink->response->body.size() + n > sink->max_body) {
    sink->overflow =
        fmt::format("response body larger than {} bytes (the limit); not read on", sink->max_body);
    return 0;
  }
  sink->response->body.append(data, n);
  return n;
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<Sink*>(user);
  sink->header_bytes += size * count;
  if (sink->header_bytes > sink->max_headers) {
    sink->overflow = fmt::format("response headers larger than {} bytes (the limit); not read on",
                                 sink->max_headers);
    return 0;
  }
  HttpResponse* response = sink->response;
  std::string_view line(data, size * count);
  if (line.starts_with("HTTP/")) {
    response->headers.clear();  // a new response (after 100 Continue or a redirect)
    return size * count;
  }
  const size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    auto trim = [](std::string_view s) {
      while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
      while (!s.empty() && (s.back() == '\r' || s.back() == '\n' || s.back() == ' '))
        s.remove_suffix(1);
      return s;
    };
    response->headers[std::string(trim(line.substr(0, colon)))] =
        std::string(trim(line.substr(colon + 1)));
  }
  return size * count;
}

Error CurlError(CURLcode code, const std::string& url, const char* detail) {
  const std::string what = fmt::format("{} {}: {}", url, curl_easy_strerror(code),
                                       detail != nullptr && *detail ? detail : "");
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return Error{ErrorKind::kTimeout, what};
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
      return Error{ErrorKind::kConfig, what};
    case CURLE_PEER_FAILED_VERIFICATION:
      return Error{ErrorKind::kAuth, "TLS verification failed: " + what};
    default:
      return Error{ErrorKind::kTransient, what};
  }
}

}  // namespace

CurlHttpTransport::CurlHttpTransport(HttpOptions options) : options_(std::move(options)) {
  static CurlGlobal global;
}

CurlHttpTransport::~CurlHttpTransport() = default;

void CurlHttpTransport::SetHooks(RequestHook on_request, ResponseHook on_response) {
  on_request_ = std::move(on_request);
  on_response_ = std::move(on_response);
}

Result<HttpResponse> CurlHttpTransport::Send(const HttpRequest& request) {
  if (on_request_) on_request_(request);
  auto finish = [&](Result<HttpResponse> result) {
    if (on_response_) on_response_(request, result);
    return result;
  };

  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return finish(Fail(ErrorKind::kInternal, "curl_easy_init failed"));
  CURL* h = curl.get();

  HttpResponse response;
  Sink sink{&response, options_.max_response_body, options_.max_response_headers};
  char error_buffer[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(request.timeout.value_or(options_.total_timeout).count()));
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, options_.verify_tls ? 1L : 0L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, options_.verify_tls ? 2L : 0L);
  if (!options_.ca_bundle.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, options_.ca_bundle.c_str());
  if (!options_.client_cert.empty()) {
    curl_easy_setopt(h, CURLOPT_SSLCERT, options_.client_cert.c_str());
  }
  if (!options_.client_key.empty())
    curl_easy_setopt(h, CURLOPT_SSLKEY, options_.client_key.c_str());
  // libcurl reads *_proxy from the environment by default; an empty CURLOPT_PROXY turns that off.
  if (!options_.proxy_from_env) curl_easy_setopt(h, CURLOPT_PROXY, "");
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &sink);
  curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");

  if (request.method == "GET") {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  } else if (request.method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    if (!request.body.empty() || request.method == "POST" || request.method == "PUT" ||
        request.method == "PATCH") {
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, request.body.data());
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(request.body.size()));
    }
  }

  struct curl_slist* headers = nullptr;
  for (const auto& [name, value] : request.headers) {
    headers = curl_slist_append(headers, fmt::format("{}: {}", name, value).c_str());
  }
  // libcurl adds "Expect: 100-continue" to large bodies; most APIs do not need the round trip.
  headers = curl_slist_append(headers, "Expect:");
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_guard(headers,
                                                                           curl_slist_free_all);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);

  const CURLcode code = curl_easy_perform(h);
  if (code == CURLE_WRITE_ERROR && !sink.overflow.empty()) {
    return finish(Fail(ErrorKind::kParse, request.url + ": " + sink.overflow));
  }
  if (code != CURLE_OK) return finish(Fail(CurlError(code, request.url, error_buffer)));
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  response.status = static_cast<int>(status);
  return finish(std::move(response));
}

}  // namespace ra
