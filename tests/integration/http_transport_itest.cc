// CurlHttpTransport over real sockets: what goes on the wire, hooks, timeouts, refused
// connections, and TLS verification against a self-signed `openssl s_server`.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "core/http_transport.h"
#include "tests/integration/metrics_harness.h"
#include "tests/support/process.h"

namespace ra {
namespace {

using namespace std::chrono_literals;
using ra::testing::LoopbackHttpOptions;
using ra::testing::LoopbackHttpServer;

TEST(CurlHttpTransport, SendsHeadersAndBodyAndCallsHooks) {
  auto server = LoopbackHttpServer::Start();
  ASSERT_TRUE(server.has_value()) << server.error().message;
  (*server)->SetReply({201, {{"X-Reply", "yes"}, {"Content-Type", "text/plain"}}, "created"});

  CurlHttpTransport transport(LoopbackHttpOptions());
  std::vector<std::string> calls;
  int answered_status = 0;
  transport.SetHooks(
      [&](const HttpRequest& r) { calls.push_back("request " + r.method + " " + r.url); },
      [&](const HttpRequest& r, const Result<HttpResponse>& answer) {
        calls.push_back("response " + r.method);
        if (answer) answered_status = answer->status;
      });

  HttpRequest request;
  request.method = "PUT";
  request.url = (*server)->url() + "/things/1?x=y";
  request.headers["X-Custom"] = "value 1";
  request.headers["Content-Type"] = "application/json";
  request.body = std::string(100'000, 'a');  // big enough that libcurl would want 100-continue
  auto got = transport.Send(request);
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_EQ(got->status, 201);
  EXPECT_EQ(got->body, "created");
  EXPECT_EQ(got->Header("x-reply"), "yes");
  EXPECT_EQ(got->Header("CONTENT-TYPE"), "text/plain");
  EXPECT_EQ(got->Header("X-Absent"), "");

  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0], "request PUT " + request.url);
  EXPECT_EQ(calls[1], "response PUT");
  EXPECT_EQ(answered_status, 201);

  const auto received = (*server)->received();
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].method, "PUT");
  EXPECT_EQ(received[0].target, "/things/1?x=y");
  EXPECT_EQ(received[0].headers.at("x-custom"), "value 1");
  EXPECT_EQ(received[0].headers.at("Content-Type"), "application/json");
  EXPECT_EQ(received[0].headers.count("Expect"), 0u);
  EXPECT_EQ(received[0].body.size(), 100'000u);
}

TEST(CurlHttpTransport, ErrorStatusesAreResponsesNotErrors) {
  auto server = LoopbackHttpServer::Start();
  ASSERT_TRUE(server.has_value()) << server.error().message;
  (*server)->SetReply({503, {}, "busy"});
  CurlHttpTransport transport(LoopbackHttpOptions());
  auto got = transport.Send({.url = (*server)->url() + "/"});
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_EQ(got->status, 503);
  EXPECT_EQ(got->body, "busy");
  EXPECT_EQ((*server)->received().at(0).method, "GET");
}

TEST(CurlHttpTransport, PerRequestTimeoutWinsAndReachesTheHook) {
  auto server = LoopbackHttpServer::Start();
  ASSERT_TRUE(server.has_value()) << server.error().message;
  (*server)->SetHang(true);
  CurlHttpTransport transport(
      LoopbackHttpOptions());  // 5 s by default; the request asks for 700 ms
  std::optional<ErrorKind> hooked;
  transport.SetHooks(nullptr, [&](const HttpRequest&, const Result<HttpResponse>& answer) {
    if (!answer) hooked = answer.error().kind;
  });
  const auto started = std::chrono::steady_clock::now();
  auto got = transport.Send({.url = (*server)->url() + "/slow", .timeout = 700ms});
  const auto elapsed = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().kind, ErrorKind::kTimeout) << got.error().ToString();
  EXPECT_GE(elapsed, 600ms);
  EXPECT_LT(elapsed, 3s);
  EXPECT_EQ(hooked, ErrorKind::kTimeout);
}

TEST(CurlHttpTransport, RefusedConnectionIsTransientAndBadUrlIsConfig) {
  CurlHttpTransport transport(LoopbackHttpOptions());
  const int port = ra::testing::FreePort();
  auto refused = transport.Send({.url = "http://127.0.0.1:" + std::to_string(port) + "/"});
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().kind, ErrorKind::kTransient) << refused.error().ToString();

  auto bad = transport.Send({.url = "gopherz://127.0.0.1/"});
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().kind, ErrorKind::kConfig) << bad.error().ToString();
}

// A hostile server: answers every connection with `head` and then `filler` for ever (until the
// client goes away), as a broken or malicious endpoint could.
class EndlessServer {
 public:
  EndlessServer(std::string head, std::string filler)
      : head_(std::move(head)), filler_(std::move(filler)) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    listen(fd_, 4);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~EndlessServer() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/"; }
  size_t sent() const { return sent_; }

 private:
  void Serve() {
    const int client = accept(fd_, nullptr, nullptr);
    if (client < 0) return;
    char buf[4096];
    (void)!read(client, buf, sizeof buf);  // the request; its content does not matter
    (void)!send(client, head_.data(), head_.size(), MSG_NOSIGNAL);
    while (!stop_) {
      const ssize_t n = send(client, filler_.data(), filler_.size(), MSG_NOSIGNAL);
      if (n <= 0) break;
      sent_ += static_cast<size_t>(n);
    }
    close(client);
  }

  std::string head_;
  std::string filler_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> sent_{0};
  std::thread thread_;
};

TEST(CurlHttpTransport, DefaultResponseLimitsAre16MiBOfBodyAnd256KiBOfHeaders) {
  const HttpOptions options;
  EXPECT_EQ(options.max_response_body, size_t{16} << 20);
  EXPECT_EQ(options.max_response_headers, size_t{256} << 10);
}

TEST(CurlHttpTransport, AnEndlessBodyIsCutAtTheLimitWithAClearError) {
  EndlessServer server("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n",
                       std::string(64 * 1024, 'x'));
  HttpOptions options = LoopbackHttpOptions();
  options.max_response_body = 1 << 20;
  CurlHttpTransport transport(options);
  const auto started = std::chrono::steady_clock::now();
  auto got = transport.Send({.url = server.url(), .timeout = 20s});
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().kind, ErrorKind::kParse) << got.error().ToString();
  EXPECT_NE(got.error().message.find("response body larger than 1048576 bytes"), std::string::npos)
      << got.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);  // not the timeout
}

TEST(CurlHttpTransport, EndlessHeadersAreCutAtTheLimitWithAClearError) {
  EndlessServer server("HTTP/1.1 200 OK\r\n", "X-Filler: " + std::string(1000, 'h') + "\r\n");
  HttpOptions options = LoopbackHttpOptions();
  options.max_response_headers = 64 * 1024;
  CurlHttpTransport transport(options);
  auto got = transport.Send({.url = server.url(), .timeout = 20s});
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().kind, ErrorKind::kParse) << got.error().ToString();
  EXPECT_NE(got.error().message.find("response headers larger than 65536 bytes"), std::string::npos)
      << got.error().message;
}

// A self-signed certificate for 127.0.0.1 and `openssl s_server -www` serving it.
class TlsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"server", "other"}) {
      auto made = ra::testing::RunCommand(
          {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
           "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
           "subjectAltName=IP:127.0.0.1", "-keyout", dir_.path() + "/" + name + ".key", "-out",
           dir_.path() + "/" + name + ".pem"},
          30s);
      ASSERT_EQ(made.status, 0) << made.output;
    }
    port_ = ra::testing::FreePort();
    auto child = ra::testing::ChildProcess::Start(
        {.argv = {"openssl", "s_server", "-quiet", "-www", "-accept",
                  "127.0.0.1:" + std::to_string(port_), "-cert", dir_.path() + "/server.pem",
                  "-key", dir_.path() + "/server.key"},
         .log_path = dir_.path() + "/s_server.log"});
    ASSERT_TRUE(child.has_value()) << child.error().message;
    server_ = std::move(*child);
    auto up = ra::testing::WaitForTcp("127.0.0.1", port_, 10s, &server_);
    ASSERT_TRUE(up.has_value()) << up.error().message
                                << ra::testing::ReadFile(dir_.path() + "/s_server.log");
  }

  std::string Url() const { return "https://127.0.0.1:" + std::to_string(port_) + "/"; }

  ra::testing::TempDir dir_{"ra-tls"};
  ra::testing::ChildProcess server_;
  int port_ = 0;
};

TEST_F(TlsServerTest, RefusesAnUntrustedCertificate) {
  CurlHttpTransport transport(LoopbackHttpOptions());
  auto got = transport.Send({.url = Url()});
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().kind, ErrorKind::kAuth) << got.error().ToString();
  EXPECT_NE(got.error().message.find("TLS verification failed"), std::string::npos);

  HttpOptions wrong_ca = LoopbackHttpOptions();
  wrong_ca.ca_bundle = dir_.path() + "/other.pem";
  auto other = CurlHttpTransport(wrong_ca).Send({.url = Url()});
  ASSERT_FALSE(other.has_value());
  EXPECT_EQ(other.error().kind, ErrorKind::kAuth) << other.error().ToString();
}

TEST_F(TlsServerTest, TrustsItsOwnCaBundleOrNoVerification) {
  HttpOptions with_ca = LoopbackHttpOptions();
  with_ca.ca_bundle = dir_.path() + "/server.pem";
  auto trusted = CurlHttpTransport(with_ca).Send({.url = Url()});
  ASSERT_TRUE(trusted.has_value()) << trusted.error().message;
  EXPECT_EQ(trusted->status, 200);

  HttpOptions unverified = LoopbackHttpOptions();
  unverified.verify_tls = false;
  auto insecure = CurlHttpTransport(unverified).Send({.url = Url()});
  ASSERT_TRUE(insecure.has_value()) << insecure.error().message;
  EXPECT_EQ(insecure->status, 200);
}

TEST_F(TlsServerTest, MissingCaBundleIsAConfigError) {
  HttpOptions missing = LoopbackHttpOptions();
  missing.ca_bundle = dir_.path() + "/no-such-bundle.pem";
  auto got = CurlHttpTransport(missing).Send({.url = Url()});
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().kind, ErrorKind::kConfig) << got.error().ToString();
}

}  // namespace
}  // namespace ra
